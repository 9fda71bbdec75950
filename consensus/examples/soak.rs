//! Soak the consensus engine in the deterministic simulator.
//!
//! ```text
//! cargo run --release -p interpool-consensus --example soak -- --seeds 10000 --validators 7
//! cargo run -p interpool-consensus --example soak -- --seed 42 --validators 4 --scenario mixed --trace
//! ```
//!
//! Options: `--seeds N` (default 1000), `--first-seed S` (default 0), `--validators N`
//! (default 4; repeatable or comma-separated, e.g. `--validators 4,7`), `--scenario NAME`
//! (`mixed`, `all-crash`, `majority-down`, `rejoin-behind`, `byzantine`, `calm` (no
//! faults: the baseline message count), or `all`; default `all`, which rotates through
//! the fault scenarios), `--seed S` (one seed), `--trace` (print its trace),
//! `--broken-quorum` (the teeth knob: quorum 2f, expect violations).

use std::process::ExitCode;
use std::time::Instant;

use interpool_consensus::sim::{self, FaultCounts, Scenario, SimOptions};
use interpool_consensus::Metrics;

struct Args {
    first_seed: u64,
    seeds: u64,
    validators: Vec<usize>,
    scenarios: Vec<Scenario>,
    trace: bool,
    broken_quorum: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        first_seed: 0,
        seeds: 1000,
        validators: Vec::new(),
        scenarios: Scenario::ALL.to_vec(),
        trace: false,
        broken_quorum: false,
    };
    let mut it = std::env::args().skip(1);
    let number = |value: Option<String>, name: &str| -> Result<u64, String> {
        value
            .ok_or_else(|| format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seeds" => args.seeds = number(it.next(), "--seeds")?,
            "--first-seed" => args.first_seed = number(it.next(), "--first-seed")?,
            "--seed" => {
                args.first_seed = number(it.next(), "--seed")?;
                args.seeds = 1;
            }
            "--validators" => {
                let value = it.next().ok_or("--validators needs a value")?;
                for part in value.split(',') {
                    let n: usize = part.parse().map_err(|e| format!("--validators: {e}"))?;
                    if n < 4 {
                        return Err("--validators must be at least 4".into());
                    }
                    args.validators.push(n);
                }
            }
            "--scenario" => {
                let value = it.next().ok_or("--scenario needs a value")?;
                args.scenarios = if value == "all" {
                    Scenario::ALL.to_vec()
                } else {
                    vec![value.parse()?]
                };
            }
            "--trace" => args.trace = true,
            "--broken-quorum" => args.broken_quorum = true,
            "--help" | "-h" => {
                return Err(
                    "usage: soak [--seeds N] [--first-seed S] [--seed S] [--validators 4,7] \
                     [--scenario mixed|all-crash|majority-down|rejoin-behind|byzantine|calm|all] \
                     [--trace] [--broken-quorum]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.validators.is_empty() {
        args.validators.push(4);
    }
    Ok(args)
}

fn options(args: &Args, seed: u64, n: usize) -> SimOptions {
    // Rotate scenarios by seed so that any seed range covers all of them.
    let scenario = args.scenarios[(seed % args.scenarios.len() as u64) as usize];
    let mut options = SimOptions::new(seed, n, scenario);
    options.broken_quorum = args.broken_quorum;
    options
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if args.trace {
        let mut failed = false;
        for &n in &args.validators {
            for seed in args.first_seed..args.first_seed + args.seeds {
                let (result, lines) = sim::trace(&options(&args, seed, n));
                for line in &lines {
                    println!("{line}");
                }
                match result {
                    Ok(report) => println!(
                        "OK: seed {seed} n={n}: {} heights, {} messages, {} virtual ms",
                        report.heights_committed, report.messages_sent, report.virtual_ms
                    ),
                    Err(failure) => {
                        failed = true;
                        println!("{failure}");
                    }
                }
            }
        }
        return if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let mut failures = 0u64;
    for &n in &args.validators {
        let started = Instant::now();
        let mut faults = FaultCounts::default();
        let mut engine = Metrics::default();
        let (mut heights, mut messages, mut virtual_ms, mut events) = (0u64, 0u64, 0u64, 0u64);
        let mut per_scenario = std::collections::BTreeMap::<Scenario, u64>::new();
        for seed in args.first_seed..args.first_seed + args.seeds {
            let options = options(&args, seed, n);
            *per_scenario.entry(options.scenario).or_default() += 1;
            match sim::run(&options) {
                Ok(report) => {
                    faults.add(&report.faults);
                    sim::add_metrics(&mut engine, &report.engine);
                    heights += report.heights_committed;
                    messages += report.messages_sent;
                    virtual_ms += report.virtual_ms;
                    events += report.events;
                }
                Err(failure) => {
                    failures += 1;
                    println!("{failure}");
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "== n = {n}: {} seeds in {seconds:.1} s ({:.1} seeds/s), {failures} failed",
            args.seeds,
            args.seeds as f64 / seconds
        );
        println!("   scenarios: {per_scenario:?}");
        println!(
            "   heights committed: {heights}, messages: {messages} ({:.1} per committed height), events: {events}, virtual time: {:.1} h",
            messages as f64 / heights.max(1) as f64,
            virtual_ms as f64 / 3_600_000.0
        );
        println!("   faults: {faults:?}");
        println!("   engine counters (honest validators): {engine:?}");
    }
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
