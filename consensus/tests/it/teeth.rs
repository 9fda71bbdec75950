//! The simulator has teeth: with the quorum lowered to 2f (a deliberately injected bug),
//! some seed in a small search breaks agreement, and the checker reports it with a
//! replay command and a trace.

use interpool_consensus::sim::{self, Scenario, SimOptions, Violation};

#[test]
fn a_quorum_of_2f_is_caught_breaking_agreement() {
    for n in [4, 7] {
        let caught = (0..200u64).find_map(|seed| {
            let mut options = SimOptions::new(seed, n, Scenario::Byzantine);
            options.broken_quorum = true;
            sim::run(&options).err()
        });
        let failure = caught.unwrap_or_else(|| panic!("a 2f quorum went unnoticed for n = {n}"));
        assert!(
            matches!(failure.violation, Violation::Agreement { .. }),
            "{failure}"
        );
        let report = failure.to_string();
        assert!(report.contains("AGREEMENT"), "{report}");
        assert!(report.contains("--broken-quorum"), "{report}");
        assert!(!failure.trace.is_empty());
        eprintln!("n = {n}: caught\n{report}");
    }
}

#[test]
fn the_correct_quorum_survives_the_same_seeds() {
    for seed in 0..50u64 {
        let options = SimOptions::new(seed, 4, Scenario::Byzantine);
        if let Err(failure) = sim::run(&options) {
            panic!("\n{failure}");
        }
    }
}
