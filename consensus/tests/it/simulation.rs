//! Seeded simulation runs. Each failure prints the one command that replays it.

use interpool_consensus::sim::{self, FaultCounts, Scenario, SimOptions, SimReport};
use interpool_consensus::Metrics;

/// Runs `seeds` seeds of `scenario` with `n` validators, panicking with a replayable
/// failure report on the first violation; returns the summed reports.
fn run_seeds(
    scenario: Scenario,
    n: usize,
    seeds: std::ops::Range<u64>,
) -> (FaultCounts, Metrics, u64, u64) {
    let mut faults = FaultCounts::default();
    let mut engine = Metrics::default();
    let (mut heights, mut messages) = (0, 0);
    let count = seeds.end - seeds.start;
    for seed in seeds {
        match sim::run(&SimOptions::new(seed, n, scenario)) {
            Ok(SimReport {
                faults: f,
                engine: e,
                heights_committed,
                messages_sent,
                ..
            }) => {
                faults.add(&f);
                sim::add_metrics(&mut engine, &e);
                heights += heights_committed;
                messages += messages_sent;
            }
            Err(failure) => panic!("\n{failure}"),
        }
    }
    eprintln!(
        "{scenario} n={n}: {count} seeds, {heights} heights, {:.1} messages/height\n  {faults:?}\n  {engine:?}",
        messages as f64 / heights.max(1) as f64
    );
    (faults, engine, heights, messages)
}

#[test]
fn mixed_faults_n4_1000_seeds() {
    let (faults, engine, _, _) = run_seeds(Scenario::Mixed, 4, 0..1000);
    // The mix really exercised every fault family.
    assert!(faults.crashes > 0 && faults.crashes_mid_actions > 0 && faults.partitions > 0);
    assert!(faults.equivocating_proposals > 0 && faults.double_votes > 0);
    assert!(faults.bad_signatures > 0 && faults.replays > 0 && faults.withheld > 0);
    assert!(faults.messages_dropped > 0 && faults.messages_duplicated > 0);
    assert!(engine.equivocations > 0 && engine.invalid_signatures > 0 && engine.round_changes > 0);
    assert!(engine.heights_synced > 0);
}

#[test]
fn mixed_faults_n7_seeds_0_to_500() {
    run_seeds(Scenario::Mixed, 7, 0..500);
}

#[test]
fn mixed_faults_n7_seeds_500_to_1000() {
    run_seeds(Scenario::Mixed, 7, 500..1000);
}

#[test]
fn every_validator_crashes_and_restarts() {
    for n in [4, 7] {
        let (faults, _, _, _) = run_seeds(Scenario::AllCrash, n, 0..150);
        assert_eq!(faults.restarts, 150 * n as u64);
    }
}

#[test]
fn more_than_f_down_for_long_then_back_one_by_one() {
    for n in [4, 7] {
        let (faults, engine, _, _) = run_seeds(Scenario::MajorityDown, n, 0..150);
        assert!(faults.restarts >= 150 * (n as u64 - 1) / 3 + 150);
        assert!(
            engine.round_jumps > 0,
            "returning validators catch up by the f+1 rule"
        );
    }
}

#[test]
fn a_validator_rejoins_many_heights_and_rounds_behind() {
    for n in [4, 7] {
        let (_, engine, _, _) = run_seeds(Scenario::RejoinBehind, n, 0..150);
        assert!(engine.heights_synced > 0);
    }
}

#[test]
fn byzantine_proposers_and_double_voters_cannot_split_honest_validators() {
    for n in [4, 7] {
        let (faults, engine, _, _) = run_seeds(Scenario::Byzantine, n, 0..150);
        assert!(faults.equivocating_proposals > 0 && faults.double_votes > 0);
        assert!(engine.equivocations > 0);
    }
}

#[test]
fn runs_are_deterministic_and_replayable() {
    let options = SimOptions::new(12345, 4, Scenario::Mixed);
    let (first, trace_a) = sim::trace(&options);
    let (second, trace_b) = sim::trace(&options);
    assert_eq!(first.expect("passes"), second.expect("passes"));
    assert_eq!(trace_a, trace_b);
    assert!(trace_a.iter().any(|line| line.contains("COMMITTED")));
    assert!(options
        .replay_command()
        .contains("--seed 12345 --validators 4 --scenario mixed"));
}

#[test]
fn consortia_of_one_to_three_tolerate_no_fault_but_commit_and_survive_restarts() {
    // f = 0: the quorum is every validator. Calm runs commit; when every validator crashes
    // and restarts from its persisted state, they go on, and never disagree.
    for n in 1..=3 {
        let (_, _, heights, _) = run_seeds(Scenario::Calm, n, 0..40);
        assert!(heights > 0, "n={n} committed nothing");
        let (faults, _, _, _) = run_seeds(Scenario::AllCrash, n, 0..40);
        assert_eq!(faults.restarts, 40 * n as u64);
    }
}
