//! The house rule: the consensus crate's normal dependencies are serde, bincode,
//! ed25519-dalek, sha2 and thiserror — no tokio, no clock, no RNG. utoipa may be there only
//! as an optional dependency behind the `openapi` feature (schemas for the node's API
//! document; it does no I/O either).

#[test]
fn normal_dependencies_are_the_allowed_five() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("read Cargo.toml");
    let mut section = String::new();
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.']).next().unwrap_or_default().trim();
            if name == "utoipa" {
                assert!(
                    line.contains("optional = true"),
                    "utoipa must be optional: {line}"
                );
                continue;
            }
            names.push(name.to_string());
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["bincode", "ed25519-dalek", "serde", "sha2", "thiserror"]
    );
    assert!(
        !manifest.contains("[target."),
        "no platform-specific dependencies"
    );
}
