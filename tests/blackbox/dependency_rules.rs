//! DESIGN.md: `contracts` and `consensus` do no I/O, read no clock and draw no randomness.
//! Their normal dependency trees may not contain crates that do.

use std::process::Command;

/// Crates whose presence would mean sockets, files, async runtimes, storage, clocks or
/// operating-system randomness.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "libp2p",
    "rocksdb",
    "librocksdb-sys",
    "hyper",
    "reqwest",
    "axum",
    "getrandom",
    "rand",
    "chrono",
    "time",
    "tracing",
];

fn normal_dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .args(["--locked", "--offline"])
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn contracts_and_consensus_have_no_io_clock_or_randomness_dependencies() {
    for package in ["interpool-contracts", "interpool-consensus"] {
        let deps = normal_dependencies(package);
        assert!(
            deps.iter().any(|d| d == "sha2"),
            "{package}: tree looks wrong: {deps:?}"
        );
        let bad: Vec<_> = deps
            .iter()
            .filter(|d| FORBIDDEN.contains(&d.as_str()))
            .collect();
        assert!(bad.is_empty(), "{package} depends on {bad:?}");
    }
}
