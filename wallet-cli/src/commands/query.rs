//! Read-only commands: balance (optionally verified), account, history, tx, block, status,
//! cycle, banks.

use std::path::Path;

use anyhow::{bail, Context, Result};
use interpool_consensus::CommitCertificate;
use interpool_contracts::outcome::{Outcome, Receipt};
use interpool_contracts::views::{
    AccountView, BankView, BlockView, CycleView, StatusView, TxStatus, TxStatusView,
};
use interpool_contracts::{AccountId, Hash};
use serde::Serialize;

use crate::client::Node;
use crate::exit::Exit;
use crate::output::{fields, table, Output};
use crate::verify::{self, Verified};
use interpool_genesis::files::read_genesis;
use interpool_genesis::spec::validator_set;

/// The lower-case name of a status, as in JSON.
pub fn status_name(status: TxStatus) -> &'static str {
    match status {
        TxStatus::Pending => "pending",
        TxStatus::Committed => "committed",
        TxStatus::Queued => "queued",
        TxStatus::Rejected => "rejected",
        TxStatus::Expired => "expired",
        TxStatus::Cancelled => "cancelled",
        TxStatus::RejectTime => "reject_time",
        TxStatus::Cutoff => "cutoff",
        TxStatus::Unknown => "unknown",
    }
}

/// One line on what happened to a transaction beyond its status.
pub fn outcome_detail(view: &TxStatusView) -> String {
    let receipt_detail = |receipt: &Receipt| match &receipt.outcome {
        Outcome::Committed => String::new(),
        Outcome::Queued { expires_at_height } => {
            format!("queued: expires after height {expires_at_height}")
        }
        Outcome::Rejected { error } => format!("{}: {error}", error.code()),
    };
    // A receipt the node left out (it holds figures that are not this caller's to read):
    // the reason as the caller may read it.
    if let (None, Some(why)) = (&view.receipt, &view.rejection) {
        return format!("{}: {}", why.code, why.message);
    }
    match (view.status, &view.receipt, view.settled_height) {
        (TxStatus::Committed, Some(_), Some(settled)) => {
            format!("released from the queue at height {settled}")
        }
        (TxStatus::Expired, _, Some(settled)) => {
            format!("expired in the queue at height {settled}; funds refunded")
        }
        (TxStatus::Cancelled, _, Some(settled)) => {
            format!("cancelled in the queue at height {settled}; funds refunded")
        }
        (TxStatus::RejectTime, _, Some(settled)) => {
            format!("rejected at its reject time at height {settled}; funds refunded")
        }
        (TxStatus::Cutoff, _, Some(settled)) => {
            format!("rejected at the customer cut-off at height {settled}; funds refunded")
        }
        (_, Some(receipt), _) => receipt_detail(receipt),
        (TxStatus::Pending, None, _) => "in the mempool".into(),
        (TxStatus::Unknown, None, _) => "not known to this node".into(),
        _ => String::new(),
    }
}

/// The human form of a transaction's status.
pub fn describe_transaction(view: &TxStatusView) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("hash", view.hash.to_hex()),
        ("status", status_name(view.status).to_string()),
    ];
    if let Some(height) = view.height {
        rows.push(("height", height.to_string()));
    }
    if let Some(receipt) = &view.receipt {
        rows.push(("index", receipt.index.to_string()));
    }
    let detail = outcome_detail(view);
    if !detail.is_empty() {
        rows.push(("detail", detail));
    }
    rows
}

fn describe_account(view: &AccountView) -> String {
    fields(&[
        ("account", view.id.to_hex()),
        ("bank", view.bank.to_string()),
        ("balance", view.balance.clone()),
        ("reserved", view.reserved.clone()),
        ("nonce", view.nonce.to_string()),
        ("frozen", if view.frozen { "yes" } else { "no" }.into()),
    ])
}

fn balance_line(view: &AccountView) -> String {
    let mut line = view.balance.clone();
    if view
        .reserved
        .chars()
        .any(|c| c.is_ascii_digit() && c != '0')
    {
        line.push_str(&format!(
            " ({} reserved by queued transfers)",
            view.reserved
        ));
    }
    if view.frozen {
        line.push_str(" (frozen)");
    }
    line
}

/// `balance ID`.
pub fn balance(node: &str, out: Output, id: &AccountId) -> Result<Exit> {
    let view = Node::new(node)?.account(id)?;
    out.show(&view, || balance_line(&view))?;
    Ok(Exit::Success)
}

/// What `balance --verify` proves, in JSON.
#[derive(Serialize)]
struct VerifiedBalance {
    /// The account (`null`: it provably does not exist).
    account: Option<AccountView>,
    verified: VerifiedSummary,
}

#[derive(Serialize)]
struct VerifiedSummary {
    /// The state holds after this height.
    height: u64,
    block_height: u64,
    block_hash: Hash,
    state_root: Hash,
    signers: usize,
    validators: usize,
    /// The certifying block's time, milliseconds since the Unix epoch.
    block_time_ms: u64,
    /// How old the certified state was when verified, in seconds.
    age_seconds: u64,
}

/// `balance ID --verify --genesis FILE [--max-age S | --any-age]`: trusts the genesis file,
/// not the node; refuses a certified state older than `max_age_seconds` (when given).
pub fn verified_balance(
    node: &str,
    out: Output,
    id: &AccountId,
    genesis: &Path,
    max_age_seconds: Option<u64>,
) -> Result<Exit> {
    let genesis = read_genesis(genesis)?;
    let validators = validator_set(&genesis)
        .with_context(|| "the genesis file's validators are not a valid validator set")?;
    let view = Node::new(node)?.account_proof(id)?;
    let verified: Verified =
        verify::verify_account_proof(&view, id, &genesis.chain_id, &validators)
            .context("verification failed")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let age_seconds = now_ms.saturating_sub(verified.block_time_ms) / 1000;
    if let Some(max) = max_age_seconds {
        if age_seconds > max {
            bail!(
                "the proof is certified by block {} of {} s ago, older than --max-age {max} s: \
                 the node may be cut off from the chain or replaying old answers; ask another \
                 node, or pass --any-age to accept it",
                verified.block_height,
                age_seconds
            );
        }
    }
    let summary = format!(
        "verified against block {} ({age_seconds} s ago) certified by {} of {} validators",
        verified.block_height, verified.signers, verified.validators
    );
    let account = verified
        .account
        .as_ref()
        .map(|a| AccountView::new(*id, a, genesis.decimals));
    let result = VerifiedBalance {
        account: account.clone(),
        verified: VerifiedSummary {
            height: verified.height,
            block_height: verified.block_height,
            block_hash: verified.block_hash,
            state_root: verified.state_root,
            signers: verified.signers,
            validators: verified.validators,
            block_time_ms: verified.block_time_ms,
            age_seconds,
        },
    };
    match &account {
        Some(view) => {
            out.show(&result, || {
                format!(
                    "{} {}\n{summary} (state after height {})",
                    balance_line(view),
                    genesis.currency,
                    verified.height
                )
            })?;
            Ok(Exit::Success)
        }
        None => {
            out.show(&result, || {
                format!(
                    "no account {id}\n{summary} (state after height {})",
                    verified.height
                )
            })?;
            bail!(
                "account {id} does not exist (its absence is {summary} at height {})",
                verified.height
            )
        }
    }
}

/// `account ID`.
pub fn account(node: &str, out: Output, id: &AccountId) -> Result<Exit> {
    let view = Node::new(node)?.account(id)?;
    out.show(&view, || describe_account(&view))?;
    Ok(Exit::Success)
}

/// `history ID [--limit N] [--before CURSOR]`.
pub fn history(
    node: &str,
    out: Output,
    id: &AccountId,
    limit: u32,
    before: Option<&str>,
) -> Result<Exit> {
    let view = Node::new(node)?.history(id, limit, before)?;
    out.show(&view, || {
        if view.transactions.is_empty() {
            return "no transactions".into();
        }
        let rows: Vec<Vec<String>> = view
            .transactions
            .iter()
            .map(|tx| {
                vec![
                    tx.height
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "-".into()),
                    tx.hash.to_hex(),
                    status_name(tx.status).into(),
                    outcome_detail(tx),
                ]
            })
            .collect();
        let mut text = table(&[">HEIGHT", "HASH", "STATUS", "DETAIL"], &rows);
        if let Some(next) = &view.next {
            text.push_str(&format!("older: --before {next}\n"));
        }
        text
    })?;
    Ok(Exit::Success)
}

/// `tx HASH`.
pub fn transaction(node: &str, out: Output, hash: &Hash) -> Result<Exit> {
    let view = Node::new(node)?.transaction(hash)?;
    out.show(&view, || fields(&describe_transaction(&view)))?;
    Ok(Exit::Success)
}

fn describe_block(view: &BlockView<CommitCertificate>) -> String {
    let header = &view.header;
    let mut text = fields(&[
        ("height", header.height.to_string()),
        ("hash", view.hash.to_hex()),
        ("parent", header.parent_hash.to_hex()),
        ("proposer", header.proposer.to_hex()),
        (
            "timestamp",
            format!("{} ms since the Unix epoch", header.timestamp_ms),
        ),
        ("previous state root", header.previous_state_root.to_hex()),
        ("state root after", view.state_root.to_hex()),
        (
            "certificate",
            format!(
                "round {}, {} COMMIT signatures (not verified; use balance --verify)",
                view.certificate.vote.round,
                view.certificate.signatures.len()
            ),
        ),
        ("transactions", view.transactions.len().to_string()),
    ]);
    for hash in &view.transactions {
        text.push_str(&format!("  {hash}\n"));
    }
    text
}

/// `block [HEIGHT]`.
pub fn block(node: &str, out: Output, height: Option<u64>) -> Result<Exit> {
    let view = Node::new(node)?.block(height)?;
    out.show(&view, || describe_block(&view))?;
    Ok(Exit::Success)
}

fn describe_status(view: &StatusView) -> String {
    fields(&[
        ("chain", view.chain_id.clone()),
        ("node", format!("{} ({})", view.node, view.role)),
        ("height", view.height.to_string()),
        ("block", view.block_hash.to_hex()),
        ("state root", view.state_root.to_hex()),
        ("genesis", view.genesis_hash.to_hex()),
        (
            "currency",
            format!("{} ({} decimals)", view.currency, view.decimals),
        ),
        ("mempool", view.mempool_size.to_string()),
        ("peers", view.peers.to_string()),
    ])
}

/// `status`.
pub fn status(node: &str, out: Output) -> Result<Exit> {
    let view = Node::new(node)?.status()?;
    out.show(&view, || describe_status(&view))?;
    Ok(Exit::Success)
}

fn describe_cycle(view: &CycleView) -> String {
    let trigger = serde_json::to_value(view.trigger)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut text = fields(&[
        ("cycle", view.cycle.to_string()),
        (
            "heights",
            format!("{} to {}", view.start_height, view.height),
        ),
        ("closed by", trigger),
        ("gross", view.gross_total.clone()),
        ("net", view.net_total.clone()),
    ]);
    text.push('\n');
    let rows: Vec<Vec<String>> = view
        .banks
        .iter()
        .map(|b| {
            vec![
                b.bank.to_string(),
                b.sent.clone(),
                b.received.clone(),
                b.net.clone(),
                b.pool_before.clone(),
                b.pool_after.clone(),
            ]
        })
        .collect();
    text.push_str(&table(
        &[
            "BANK",
            ">SENT",
            ">RECEIVED",
            ">NET",
            ">POOL BEFORE",
            ">POOL AFTER",
        ],
        &rows,
    ));
    text
}

/// `cycle [N]`.
pub fn cycle(node: &str, out: Output, n: Option<u64>) -> Result<Exit> {
    let view = Node::new(node)?.cycle(n)?;
    out.show(&view, || describe_cycle(&view))?;
    Ok(Exit::Success)
}

fn describe_banks(banks: &[BankView]) -> String {
    let rows: Vec<Vec<String>> = banks
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.pool.clone(),
                b.net_debit_cap.clone(),
                b.position.clone(),
                b.queued.to_string(),
            ]
        })
        .collect();
    table(
        &["BANK", ">POOL", ">NET DEBIT CAP", ">POSITION", ">QUEUED"],
        &rows,
    )
}

/// `banks`.
pub fn banks(node: &str, out: Output) -> Result<Exit> {
    let view = Node::new(node)?.banks()?;
    out.show(&view, || describe_banks(&view))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teststub::{self, Reply};
    use crate::verify::tests::{customer, genesis_validators, genesis_with, proof_view};
    use interpool_contracts::TxError;

    #[test]
    fn a_verified_balance_shows_its_age_and_refuses_an_old_proof() {
        // The certifying block's time is 1 s after the epoch: a very old state.
        let id = customer();
        let view = serde_json::to_string(&proof_view(id, &[0, 1, 2])).expect("json");
        let stub = teststub::serve(move |_| Reply::json(200, view.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = dir.path().join("genesis.json");
        std::fs::write(
            &genesis,
            serde_json::to_vec(&genesis_with(genesis_validators())).expect("json"),
        )
        .expect("write genesis");
        let refused = verified_balance(&stub.url, Output { json: true }, &id, &genesis, Some(300))
            .expect_err("too old");
        assert!(
            refused.to_string().contains("older than --max-age 300 s"),
            "{refused:#}"
        );
        assert!(matches!(
            verified_balance(&stub.url, Output { json: true }, &id, &genesis, None),
            Ok(Exit::Success)
        ));
    }

    fn view(status: TxStatus, outcome: Option<Outcome>, settled: Option<u64>) -> TxStatusView {
        TxStatusView {
            hash: Hash([1; 32]),
            status,
            height: outcome.as_ref().map(|_| 5),
            settled_height: settled,
            receipt: outcome.map(|outcome| Receipt {
                tx_hash: Hash([1; 32]),
                height: 5,
                index: 0,
                outcome,
            }),
            rejection: None,
        }
    }

    #[test]
    fn outcomes_read_as_one_line_each() {
        assert_eq!(
            outcome_detail(&view(TxStatus::Committed, Some(Outcome::Committed), None)),
            ""
        );
        assert_eq!(
            outcome_detail(&view(
                TxStatus::Queued,
                Some(Outcome::Queued {
                    expires_at_height: 25
                }),
                None
            )),
            "queued: expires after height 25"
        );
        assert_eq!(
            outcome_detail(&view(
                TxStatus::Committed,
                Some(Outcome::Queued {
                    expires_at_height: 25
                }),
                Some(9)
            )),
            "released from the queue at height 9"
        );
        let rejected = outcome_detail(&view(
            TxStatus::Rejected,
            Some(Outcome::Rejected {
                error: TxError::ZeroAmount,
            }),
            None,
        ));
        assert!(rejected.starts_with("zero_amount: "), "{rejected}");
        // Without its receipt (another bank's pool is not the payer's to read), the reason
        // as the node gave it.
        let mut withheld = view(TxStatus::Rejected, None, None);
        withheld.rejection = Some(interpool_contracts::error::ErrorView {
            code: "pool_limit".into(),
            message: "the receiving bank's pool cannot take this amount in this cycle".into(),
        });
        assert_eq!(
            outcome_detail(&withheld),
            "pool_limit: the receiving bank's pool cannot take this amount in this cycle"
        );
        assert_eq!(
            outcome_detail(&view(TxStatus::Pending, None, None)),
            "in the mempool"
        );
    }

    #[test]
    fn balance_mentions_reserved_funds_only_when_there_are_some() {
        let mut account = AccountView {
            id: AccountId([2; 32]),
            bank: interpool_contracts::BankId::new("B").expect("id"),
            balance: "12.34".into(),
            reserved: "0.00".into(),
            nonce: 0,
            frozen: false,
        };
        assert_eq!(balance_line(&account), "12.34");
        account.reserved = "0.50".into();
        account.frozen = true;
        assert_eq!(
            balance_line(&account),
            "12.34 (0.50 reserved by queued transfers) (frozen)"
        );
    }
}
