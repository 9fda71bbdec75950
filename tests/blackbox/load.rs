//! `interpool-wallet load` against a real localnet: what it signs is valid there (within the
//! genesis's validity horizon) and commits.

use std::time::Duration;

use interpool_tests::run;

use crate::localnet::{path, Localnet};

#[test]
fn the_load_generator_commits_what_it_signs() {
    let net = Localnet::start(4, 0, 2);
    net.wait_height(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let root = net.root();

    // Every transfer is admitted and commits (a validity beyond the genesis's horizon had
    // every one refused).
    let report = run(
        "interpool-wallet",
        [
            "--json",
            "load",
            "--localnet",
            path(&root),
            "--transfers",
            "200",
            "--batch",
            "50",
            "--timeout",
            "50",
        ],
    )
    .success();
    let report: serde_json::Value = serde_json::from_str(&report).expect("json report");
    assert_eq!(report["refused"], 0, "{report}");
    assert_eq!(report["committed"], 200, "{report}");
}
