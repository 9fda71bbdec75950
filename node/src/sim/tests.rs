//! The node simulator's own checks: clean seeds pass, and a broken "save first, then speak"
//! is caught.

use super::*;

/// Seeds per `cargo test` run (`INTERPOOL_NODE_SIM_SEEDS` overrides; scripts/soak.sh runs
/// many more in release).
fn seeds() -> u64 {
    std::env::var("INTERPOOL_NODE_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

#[test]
fn the_node_keeps_agreement_and_loses_no_acknowledged_payment_under_faults() {
    let mut total = SimReport::default();
    for seed in 0..seeds() {
        match run(&SimOptions::new(seed)) {
            Ok(report) => total.add(&report),
            Err(failure) => panic!("{failure}"),
        }
    }
    // The runs did what they claim: transfers, crashes of both kinds, lost writes.
    assert!(total.acknowledged > 0, "{total:?}");
    assert!(total.crashes > 0 && total.crashes_at_write > 0, "{total:?}");
    assert!(total.writes_lost > 0, "{total:?}");
    assert!(total.height > 0, "{total:?}");
}

#[test]
fn a_run_is_fixed_by_its_seed() {
    let options = SimOptions {
        fault_ms: 6_000,
        ..SimOptions::new(7)
    };
    assert_eq!(run(&options).expect("clean"), run(&options).expect("clean"));
}

#[test]
fn sending_before_saving_is_caught_within_a_few_hundred_seeds() {
    for seed in 0..300 {
        let options = SimOptions {
            persist_after_send: true,
            ..SimOptions::new(seed)
        };
        if let Err(failure) = run(&options) {
            eprintln!("caught after {} seeds: {failure}", seed + 1);
            assert!(
                matches!(
                    failure.violation,
                    Violation::DoubleSign { .. } | Violation::Agreement { .. }
                ),
                "{failure}"
            );
            return;
        }
    }
    panic!("300 seeds of a validator that sends before it saves passed the checker");
}
