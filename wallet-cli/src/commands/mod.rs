//! The commands: each takes its parsed arguments and the output mode, does its work, and
//! returns how the process should exit. Errors bubble up to `main` as one line.

mod iso;
mod keys;
pub mod load;
mod query;
mod reconcile;
mod submit;
mod watch;

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::exit::Exit;
use crate::output::Output;

/// Runs the command `cli` names.
pub fn run(cli: Cli) -> Result<Exit> {
    let out = Output { json: cli.json };
    let node = cli.node;
    // How nodes are reached: the CA, and the key that signs the requests (a submitting
    // command signs with its own key instead).
    let key = match cli.command.read_key() {
        Some(path) => Some(crate::keyfile::load_signing_key(path)?.0),
        None => None,
    };
    crate::client::set_access(crate::client::Access { ca: cli.ca, key });
    let command = match cli.command.submission() {
        Ok((body, args)) => return submit::submit(&node, out, &body, &args),
        Err(command) => command,
    };
    match *command {
        Command::Address { key } => keys::address(out, &key),
        Command::Keygen {
            out: path,
            label,
            insecure_plaintext,
        } => keys::keygen(out, &path, &label, insecure_plaintext),
        Command::Sign(args) => keys::sign(&args),
        Command::Balance {
            id,
            verify: true,
            genesis: Some(genesis),
            max_age,
            any_age,
            ..
        } => query::verified_balance(&node, out, &id, &genesis, (!any_age).then_some(max_age)),
        Command::Balance { id, .. } => query::balance(&node, out, &id),
        Command::Account { id, .. } => query::account(&node, out, &id),
        Command::History {
            id, limit, before, ..
        } => query::history(&node, out, &id, limit, before.as_deref()),
        Command::Tx { hash, .. } => query::transaction(&node, out, &hash),
        Command::Block { height, .. } => query::block(&node, out, height),
        Command::Status => query::status(&node, out),
        Command::Cycle { n, .. } => query::cycle(&node, out, n),
        Command::Banks { .. } => query::banks(&node, out),
        Command::Watch { account, limit, .. } => watch::watch(&node, out, account.as_ref(), limit),
        Command::Iso { command } => iso::run(&node, out, command),
        Command::Statement {
            bank,
            cycle,
            xml,
            out: file,
            ..
        } => iso::statement(&node, out, &bank, cycle, xml, file.as_deref()),
        Command::Reconcile {
            bank, cycle, books, ..
        } => reconcile::reconcile(&node, out, &bank, cycle, &books),
        Command::Load {
            manifest,
            localnet,
            accounts,
            txs,
            duration,
            rate,
            batch,
            submitters,
            timeout,
            out: report,
            seed,
            sign_only,
        } => load::load(
            out,
            &load::LoadArgs {
                manifest: manifest
                    .or(localnet)
                    .unwrap_or_else(|| PathBuf::from("localnet")),
                accounts,
                txs,
                duration,
                rate,
                batch,
                submitters,
                timeout,
                out: report,
                seed,
                sign_only,
            },
        ),
        Command::Transfer { .. }
        | Command::Cancel { .. }
        | Command::Bank { .. }
        | Command::Authority { .. }
        | Command::Regulator { .. } => Err(anyhow::anyhow!(
            "internal error: a submitting command was not dispatched to submit"
        )),
    }
}
