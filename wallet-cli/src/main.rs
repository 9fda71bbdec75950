//! `interpool-wallet`: keys, signing, transfers, queries and the bank, authority and
//! regulator commands of an Interpool chain.
//!
//! Offline (an air-gapped signer is what a bank's treasury wants):
//!
//! ```text
//! interpool-wallet keygen --out alice.json
//! interpool-wallet address --key alice.json
//! interpool-wallet sign --key alice.json --chain-id interpool-local --nonce 0 \
//!     --valid-until 1000 transfer --to <64 hex> --amount 12.34 --end-to-end-id INV-7
//! ```
//!
//! Against a node (`--node URL`, or `INTERPOOL_NODE`):
//!
//! ```text
//! interpool-wallet transfer --key alice.json --to <64 hex> --amount 12.34 --wait
//! interpool-wallet balance <id> --verify --genesis genesis.json
//! interpool-wallet watch --account <id>
//! ```
//!
//! Exit codes: 0 success, 1 rejected or error, 2 usage, 3 still pending when `--wait`
//! timed out. With `--json`, stdout carries exactly one JSON document per command; errors
//! are always one line on stderr.
//!
//! Modules: [`cli`] (arguments, and the one function that builds a transaction body),
//! [`keyfile`] (plain and encrypted key files), [`client`] (the node's HTTP API),
//! [`verify`] (account proofs against the genesis validators), [`sse`] (the event stream
//! parser), [`output`] (tables and JSON), [`exit`] (exit codes), `commands`.

#![forbid(unsafe_code)]

mod cli;
mod client;
mod commands;
mod exit;
mod keyfile;
mod output;
mod sse;
#[cfg(test)]
mod teststub;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::Exit;

/// True if the error is stdout closing under us (`interpool-wallet watch | head`).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error in interpool-wallet: {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Success.into() // --help, --version
            };
        }
    };
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(error) if is_broken_pipe(&error) => Exit::Success.into(),
        Err(error) => {
            let message = format!("{error:#}").replace(['\n', '\r'], " ");
            eprintln!("error: {message}");
            Exit::Failure.into()
        }
    }
}
