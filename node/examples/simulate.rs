//! Runs the node (driver, core, mempool, admission, consensus-state store) in the
//! deterministic simulator.
//!
//! ```text
//! cargo run --release -p interpool-node --features sim --example simulate -- --seeds 1000
//! cargo run -p interpool-node --features sim --example simulate -- --seed 42 --trace
//! ```
//!
//! Options: `--seeds N` (default 100), `--first-seed S` (default 0), `--seed S` (one
//! seed), `--validators N` (default 4), `--fault-ms MS` (virtual length of the fault phase,
//! default 20000), `--trace` (print the trace of a failing or single run),
//! `--persist-after-send` (the teeth knob: validators send before they save; expect
//! violations). Prints seeds/s and violations; exits 1 if any.

use std::process::ExitCode;
use std::time::Instant;

use interpool_node::sim::{self, SimOptions, SimReport};

struct Args {
    first_seed: u64,
    seeds: u64,
    validators: usize,
    fault_ms: u64,
    trace: bool,
    persist_after_send: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        first_seed: 0,
        seeds: 100,
        validators: 4,
        fault_ms: SimOptions::new(0).fault_ms,
        trace: false,
        persist_after_send: false,
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
                let n = number(it.next(), "--validators")?;
                if n < 4 {
                    return Err("--validators must be at least 4".into());
                }
                args.validators = usize::try_from(n).map_err(|e| e.to_string())?;
            }
            "--fault-ms" => args.fault_ms = number(it.next(), "--fault-ms")?,
            "--trace" => args.trace = true,
            "--persist-after-send" => args.persist_after_send = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("simulate: {error}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut total = SimReport::default();
    let mut violations = 0u64;
    let mut first_failure = None;
    for seed in args.first_seed..args.first_seed.saturating_add(args.seeds) {
        let options = SimOptions {
            validators: args.validators,
            fault_ms: args.fault_ms,
            persist_after_send: args.persist_after_send,
            trace: args.trace,
            ..SimOptions::new(seed)
        };
        match sim::run(&options) {
            Ok(report) => {
                if args.trace && args.seeds == 1 {
                    for line in &report.trace {
                        println!("{line}");
                    }
                }
                total.add(&report);
            }
            Err(failure) => {
                violations += 1;
                eprintln!("VIOLATION {failure}");
                if args.trace {
                    for line in &failure.trace {
                        eprintln!("{line}");
                    }
                }
                first_failure.get_or_insert(seed);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "node simulator: {} seeds in {seconds:.1} s ({:.2} seeds/s), {violations} violations",
        args.seeds,
        args.seeds as f64 / seconds.max(1e-9)
    );
    println!(
        "  heights {}  acknowledged transfers {}  crashes {} (at a write: {})  unsynced writes lost {}  partitions {}  byzantine validators {}  packets dropped {} duplicated {}  consensus messages {}  longest settle {} ms",
        total.height,
        total.acknowledged,
        total.crashes,
        total.crashes_at_write,
        total.writes_lost,
        total.partitions,
        total.byzantine,
        total.dropped,
        total.duplicated,
        total.messages,
        total.settle_ms
    );
    if let Some(seed) = first_failure {
        println!("first failing seed: {seed}");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
