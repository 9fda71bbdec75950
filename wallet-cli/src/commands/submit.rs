//! Every command that submits a transaction: look up the chain and the signer's nonce,
//! sign, submit, and with `--wait` follow the transaction until it is committed, rejected
//! or expired.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use interpool_contracts::outcome::Outcome;
use interpool_contracts::primitives::to_hex;
use interpool_contracts::views::{TxStatus, TxStatusView};
use interpool_contracts::{AccountId, AdmissionCode, Transaction};
use serde::Serialize;

use crate::cli::{BodyArgs, SubmitArgs, DEFAULT_WAIT_TIMEOUT_SECONDS};
use crate::client::{ClientError, Node};
use crate::commands::query::{describe_transaction, outcome_detail, status_name};
use crate::exit::{is_final, Exit};
use crate::keyfile;
use crate::output::{fields, Output};

/// How often `--wait` asks about the transaction.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What a submitting command prints: the transaction's status (as `GET
/// /v1/transactions/{hash}` shows it) and how it was signed.
#[derive(Serialize)]
struct Submitted {
    #[serde(flatten)]
    status: TxStatusView,
    signer: AccountId,
    nonce: u64,
    valid_until_height: u64,
    /// The amount signed, in the chain's currency (bodies that move money).
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<String>,
    /// The amount signed, in minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_minor_units: Option<u64>,
    /// The currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
}

/// The amount a body moves, if it moves money.
fn amount_of(body: &interpool_contracts::Body) -> Option<interpool_contracts::Amount> {
    use interpool_contracts::Body;
    match body {
        Body::Transfer { amount, .. }
        | Body::Deposit { amount, .. }
        | Body::Withdraw { amount, .. }
        | Body::Issue { amount, .. }
        | Body::Redeem { amount, .. } => Some(*amount),
        Body::SetNetDebitCap { cap, .. } => Some(*cap),
        _ => None,
    }
}

/// The nonce to sign with: `/v1/signers/{id}`'s `pending_nonce`, past the signer's
/// transactions still pending at the node, so a second payment sent before the first one
/// commits is not refused as `nonce_taken`. A customer's key must have an account.
fn next_nonce(node: &Node, signer: &AccountId, official: bool) -> Result<u64> {
    match node.signer(signer) {
        Ok(view) if !official && view.role != "customer" => Err(anyhow!(
            "the key {signer} is the {} key{}, not a customer account: it cannot send transfers",
            view.role,
            view.bank.map(|b| format!(" of {b}")).unwrap_or_default()
        )),
        Ok(view) => Ok(view.pending_nonce),
        Err(e) if !official && e.code() == Some("unknown_signer") => Err(anyhow!(
            "the key {signer} has no account on this chain, so it cannot send transfers ({e})"
        )),
        Err(e) if e.code() == Some("unknown_signer") => Err(anyhow!(
            "the key {signer} is not an official key of this chain, so it cannot sign this \
             ({e})"
        )),
        // The route itself is missing: an older node.
        Err(e)
            if e.code() == Some("not_found") || (e.status() == Some(404) && e.code().is_none()) =>
        {
            Err(anyhow!(
                "this node cannot tell the nonce of {signer} ({e}); pass --nonce N"
            ))
        }
        Err(e) => Err(e).context(format!("cannot look up the nonce of {signer}")),
    }
}

/// Explains the submission refusals a user can act on.
fn submit_error(error: ClientError, nonce: u64) -> anyhow::Error {
    let hint = match (error.admission(), error.code()) {
        (Some(AdmissionCode::NonceTaken | AdmissionCode::AlreadyPending), _) => format!(
            "; a transaction with nonce {nonce} from this key is already pending: wait for it \
             (interpool-wallet tx HASH) or pass --nonce"
        ),
        (Some(AdmissionCode::AlreadyIncluded), _) => {
            "; it is already in a block: see interpool-wallet tx HASH".into()
        }
        (Some(code), _) if code.is_transient() => {
            "; the node is busy: try again shortly, or another validator with --node".into()
        }
        (_, Some("bad_nonce")) => "; pass --nonce with the signer's next nonce".into(),
        (_, Some("read_only")) => "; use --node with a validator's URL".into(),
        _ => String::new(),
    };
    anyhow!("cannot submit the transaction: {error}{hint}")
}

/// A transaction signed for the chain a node serves.
pub struct Signed {
    /// The transaction, its signature checked.
    pub verified: interpool_contracts::VerifiedTransaction,
    /// The node's status when it was signed (chain id, currency, decimals, height).
    pub chain: interpool_contracts::views::StatusView,
}

/// Signs `body` with the key of `args` for the chain `node` serves: its chain id, the
/// signer's next nonce (unless given), a validity from the current height. `Ok(Err(Exit))`:
/// the arguments do not fit the chain (a usage error, already reported).
/// From then on `node` signs its requests with that key too (ADR 0014: the signer reads its
/// own nonce and its transaction's status).
pub fn sign(node: &mut Node, body: &BodyArgs, args: &SubmitArgs) -> Result<Result<Signed, Exit>> {
    let (key, signer) = keyfile::load_signing_key(&args.key)?;
    *node = node.clone().signed_by(&key);
    let node = &*node;
    let mut chain = node
        .status()
        .context("cannot read the chain id and decimals")?;
    if let Some(path) = &args.genesis {
        let genesis = interpool_genesis::files::read_genesis(path)?;
        let expected = genesis.hash();
        if chain.genesis_hash != expected || chain.chain_id != genesis.chain_id {
            bail!(
                "the node serves chain {:?} with genesis {}, not the chain of {} ({:?}, genesis \
                 {expected}): nothing was signed",
                chain.chain_id,
                chain.genesis_hash,
                path.display(),
                genesis.chain_id
            );
        }
        // The file's, which the user trusts, over the node's answer.
        chain.decimals = genesis.decimals;
        chain.currency = genesis.currency;
    }
    let nonce = match args.nonce {
        Some(nonce) => nonce,
        None => next_nonce(node, &signer, body.signed_by_official())?,
    };
    let valid_until_height = chain
        .height
        .checked_add(args.valid_for)
        .ok_or_else(|| anyhow!("--valid-for {} is too large", args.valid_for))?;
    // What the chain's decimals make of the arguments (`12.345` where it has two): a usage
    // error, exit code 2, like a malformed amount.
    let body = match body.build(chain.decimals, &signer, nonce) {
        Ok(body) => body,
        Err(error) => {
            eprintln!("error: {}", format!("{error:#}").replace(['\n', '\r'], " "));
            return Ok(Err(Exit::Usage));
        }
    };
    let signed = Transaction {
        chain_id: chain.chain_id.clone(),
        signer,
        nonce,
        valid_until_height,
        body,
    }
    .sign(&key);
    // The node would refuse it on sight; say why without a round trip.
    let verified = signed
        .check_stateless(&chain.chain_id)
        .map_err(|e| anyhow!("{} ({})", e, e.code()))?;
    Ok(Ok(Signed { verified, chain }))
}

/// Signs `body` with the key of `args` and submits it to `node`.
pub fn submit(node_url: &str, out: Output, body: &BodyArgs, args: &SubmitArgs) -> Result<Exit> {
    let mut node = Node::new(node_url)?;
    let Signed { verified, chain } = match sign(&mut node, body, args)? {
        Ok(signed) => signed,
        Err(exit) => return Ok(exit),
    };
    let signer = verified.tx().signer;
    let nonce = verified.tx().nonce;
    let valid_until_height = verified.tx().valid_until_height;
    let hash = verified.hash();
    let accepted = node
        .submit(&to_hex(&verified.signed().encode()))
        .map_err(|e| submit_error(e, nonce))?;
    if accepted.hash != hash {
        bail!(
            "the node acknowledged transaction {} but the wallet submitted {hash}",
            accepted.hash
        );
    }
    let pending = TxStatusView {
        hash,
        status: TxStatus::Pending,
        height: None,
        settled_height: None,
        receipt: None,
        rejection: None,
    };
    let (last, exit) = if args.wait {
        let timeout = Duration::from_secs(args.timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT_SECONDS));
        wait(&node, out, pending, valid_until_height, timeout)?
    } else {
        (pending, Exit::Success)
    };
    // What was signed, in the units the chain's decimals give it: the user sees the amount
    // the signature covers, not only what was typed.
    let amount = amount_of(&verified.tx().body);
    let result = Submitted {
        status: last,
        signer,
        nonce,
        valid_until_height,
        amount: amount.map(|a| a.format(chain.decimals)),
        amount_minor_units: amount.map(|a| a.0),
        currency: amount.map(|_| chain.currency.clone()),
    };
    out.show(&result, || {
        let mut rows = describe_transaction(&result.status);
        if let Some(amount) = amount {
            rows.push((
                "amount",
                format!(
                    "{} {} ({} minor units)",
                    amount.format(chain.decimals),
                    chain.currency,
                    amount.0
                ),
            ));
        }
        rows.push(("signer", signer.to_hex()));
        rows.push(("nonce", nonce.to_string()));
        rows.push(("valid until", format!("height {valid_until_height}")));
        fields(&rows)
    })?;
    report_end(&result.status, exit, args.wait);
    Ok(exit)
}

/// The one stderr line for a transaction that did not succeed.
fn report_end(view: &TxStatusView, exit: Exit, waited: bool) {
    let hash = view.hash;
    match exit {
        Exit::Success => {}
        Exit::StillPending => eprintln!(
            "transaction {hash} is still {} after the --wait timeout; check later with \
             `interpool-wallet tx {hash}`",
            status_name(view.status)
        ),
        Exit::Failure | Exit::Usage if waited => eprintln!(
            "error: transaction {hash} {}: {}",
            status_name(view.status),
            outcome_detail(view)
        ),
        Exit::Failure | Exit::Usage => {}
    }
}

fn transient(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Connect { .. } | ClientError::Timeout { .. } | ClientError::Transport { .. }
    ) || error.status().is_some_and(|s| s >= 500)
}

/// Polls until the transaction is final or `timeout` passes. Prints `queued` once.
fn wait(
    node: &Node,
    out: Output,
    mut last: TxStatusView,
    valid_until_height: u64,
    timeout: Duration,
) -> Result<(TxStatusView, Exit)> {
    let deadline = Instant::now() + timeout;
    let mut announced_queue = false;
    let mut warned = false;
    loop {
        // No poll outlasts the deadline: a node that does not answer would otherwise hold
        // `--timeout 2` for the client's own 30 s.
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(200));
        let node = node.clone().with_request_timeout(remaining);
        match node.transaction(&last.hash) {
            Ok(view) => last = view,
            // The node may restart or be busy: keep asking until the deadline; the
            // transaction's fate is unknown, not failed.
            Err(error) if transient(&error) => {
                if !warned {
                    eprintln!("warning: {error}; still waiting");
                    warned = true;
                }
            }
            Err(error) => return Err(error).context("cannot follow the transaction"),
        }
        if last.status == TxStatus::Queued && !announced_queue {
            let expires = match last.receipt.as_ref().map(|r| &r.outcome) {
                Some(Outcome::Queued { expires_at_height }) => {
                    format!(" until height {expires_at_height} at the latest")
                }
                _ => String::new(),
            };
            out.note(&format!(
                "queued: waiting in the bank's queue for room under its net debit cap{expires} \
                 (funds reserved)"
            ))?;
            announced_queue = true;
        }
        if is_final(last.status) {
            return Ok((last.clone(), Exit::for_status(last.status)));
        }
        if last.status == TxStatus::Unknown {
            // Dropped from the mempool (e.g. it outlived its validity) and never included.
            if let Ok(status) = node.status() {
                if status.height > valid_until_height {
                    bail!(
                        "transaction {} was not included by its last valid height \
                         {valid_until_height} and will never be; it can be signed again",
                        last.hash
                    );
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok((last.clone(), Exit::StillPending));
        }
        thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::TransferBody;
    use crate::teststub::{self, Reply, Request, Stub};
    use interpool_contracts::keys::PlainKeyFile;
    use interpool_contracts::outcome::Receipt;
    use interpool_contracts::testkit::{account, key};
    use interpool_contracts::{Amount, Body, Hash, SignedTransaction, TxError};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const OUT: Output = Output { json: true };

    fn key_file(dir: &tempfile::TempDir, seed: u64) -> PathBuf {
        let path = dir.path().join(format!("key-{seed}.json"));
        let json = serde_json::to_vec(&PlainKeyFile::new("test", &key(seed))).expect("json");
        std::fs::write(&path, json).expect("write");
        path
    }

    fn args(key: PathBuf, wait: bool, timeout: u64) -> SubmitArgs {
        SubmitArgs {
            key,
            nonce: None,
            valid_for: 100,
            wait,
            timeout: Some(timeout),
            genesis: None,
        }
    }

    fn transfer_to(seed: u64) -> BodyArgs {
        BodyArgs::Transfer(TransferBody {
            to: account(seed),
            amount: "1.50".into(),
            end_to_end_id: None,
            reference: "rent".into(),
            priority: interpool_contracts::Priority::Normal,
            not_before: None,
            reject_after: None,
        })
    }

    /// Remembers the submitted transaction and answers `POST /v1/transactions` as a node.
    fn accept(request: &Request, store: &Mutex<Option<SignedTransaction>>) -> Reply {
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        let hex = body["tx"].as_str().expect("tx");
        let bytes = interpool_contracts::primitives::from_hex_vec(hex, 4096).expect("hex");
        let signed = SignedTransaction::decode(&bytes).expect("decodes");
        let hash = signed.hash();
        *store.lock().expect("lock") = Some(signed);
        Reply::json(202, serde_json::json!({ "hash": hash }).to_string())
    }

    fn tx_status(hash: Hash, status: TxStatus, outcome: Option<Outcome>) -> Reply {
        let view = TxStatusView {
            hash,
            status,
            height: outcome.as_ref().map(|_| 11),
            settled_height: (status == TxStatus::Committed).then_some(12),
            receipt: outcome.map(|outcome| Receipt {
                tx_hash: hash,
                height: 11,
                index: 0,
                outcome,
            }),
            rejection: None,
        };
        Reply::json(200, serde_json::to_string(&view).expect("json"))
    }

    fn submitted_hash(store: &Mutex<Option<SignedTransaction>>) -> Hash {
        store
            .lock()
            .expect("lock")
            .as_ref()
            .map(|t| t.hash())
            .unwrap_or(Hash::ZERO)
    }

    /// The node's answer to a route it does not have.
    fn no_route() -> Reply {
        Reply::error(404, "not_found", "no such route")
    }

    /// `GET /v1/signers/{id}`'s answer: the last committed nonce, the next free one (past
    /// the node's pending transactions), the role and the bank.
    fn signer_view(
        id: AccountId,
        nonce: u64,
        pending_nonce: u64,
        role: &str,
        bank: Option<&str>,
    ) -> (AccountId, serde_json::Value) {
        let view = serde_json::json!({"id": id, "nonce": nonce, "pending_nonce": pending_nonce,
            "role": role, "bank": bank});
        (id, view)
    }

    /// A stub node for the submitting commands, keeping the transaction submitted to it.
    struct FakeNode {
        stub: Stub,
        store: Arc<Mutex<Option<SignedTransaction>>>,
    }

    impl FakeNode {
        /// Answers `GET /v1/status` with `status`, `GET /v1/signers/{id}` with the signer's
        /// view (if there is one), `POST /v1/transactions` by keeping the transaction, `GET
        /// /v1/transactions/{hash}` with what `poll` makes of the kept transaction's hash
        /// (zero before one), and anything else with 404.
        fn start(
            status: String,
            signer: Option<(AccountId, serde_json::Value)>,
            poll: impl Fn(Hash) -> Reply + Send + 'static,
        ) -> FakeNode {
            let store = Arc::new(Mutex::new(None));
            let seen = Arc::clone(&store);
            let signer_route = signer.as_ref().map(|(id, _)| format!("/v1/signers/{id}"));
            let signer_body = signer.map(|(_, view)| view.to_string()).unwrap_or_default();
            let stub = teststub::serve(move |request| {
                let target = request.target.as_str();
                match request.method.as_str() {
                    "GET" if target == "/v1/status" => Reply::json(200, status.clone()),
                    "GET" if Some(target) == signer_route.as_deref() => {
                        Reply::json(200, signer_body.clone())
                    }
                    "POST" if target == "/v1/transactions" => accept(request, &seen),
                    "GET" if target.starts_with("/v1/transactions/") => poll(submitted_hash(&seen)),
                    _ => no_route(),
                }
            });
            FakeNode { stub, store }
        }

        fn url(&self) -> &str {
            &self.stub.url
        }

        /// The last transaction submitted, if any.
        fn submitted(&self) -> Option<SignedTransaction> {
            self.store.lock().expect("lock").clone()
        }
    }

    #[test]
    fn a_transfer_is_signed_with_the_chain_and_nonce_and_followed_through_the_queue() {
        let dir = tempfile::tempdir().expect("dir");
        let signer = account(1);
        let polls = AtomicUsize::new(0);
        let node = FakeNode::start(
            teststub::status_json(10),
            // Nonce 2 is committed; 2 and 3 are pending at the node.
            Some(signer_view(signer, 2, 4, "customer", Some("BANK_A"))),
            move |hash| {
                let queued = Outcome::Queued {
                    expires_at_height: 31,
                };
                match polls.fetch_add(1, Ordering::SeqCst) {
                    0 => tx_status(hash, TxStatus::Pending, None),
                    1 | 2 => tx_status(hash, TxStatus::Queued, Some(queued)),
                    _ => tx_status(hash, TxStatus::Committed, Some(queued)),
                }
            },
        );
        let exit = submit(
            node.url(),
            OUT,
            &transfer_to(2),
            &args(key_file(&dir, 1), true, 20),
        )
        .expect("submits");
        assert_eq!(exit, Exit::Success);
        let signed = node.submitted().expect("submitted");
        assert_eq!(signed.tx.chain_id, "c");
        assert_eq!(signed.tx.signer, signer);
        assert_eq!(signed.tx.nonce, 4);
        assert_eq!(signed.tx.valid_until_height, 110);
        assert_eq!(
            signed.tx.body,
            Body::Transfer {
                to: account(2),
                amount: Amount(150),
                end_to_end_id: crate::cli::default_end_to_end_id(&signer, 4),
                reference: "rent".into(),
                terms: Default::default(),
            }
        );
        signed.check_stateless("c").expect("a valid signature");
    }

    /// `--wait --timeout 2` against a node that stops answering gives up near its deadline
    /// (exit 3), not after the client's own 30 s request timeout. (A loose bound: the point
    /// is 2 s against 30.)
    #[test]
    fn a_node_that_stops_answering_does_not_hold_the_wait_past_its_timeout() {
        let dir = tempfile::tempdir().expect("dir");
        let node = FakeNode::start(
            teststub::status_json(10),
            Some(signer_view(account(1), 0, 0, "customer", Some("BANK_A"))),
            |_| {
                std::thread::sleep(Duration::from_secs(60));
                Reply::error(503, "busy", "late")
            },
        );
        let started = Instant::now();
        let exit = submit(
            node.url(),
            OUT,
            &transfer_to(2),
            &args(key_file(&dir, 1), true, 2),
        )
        .expect("gives up, no error");
        assert_eq!(exit, Exit::StillPending);
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "{:?}",
            started.elapsed()
        );
    }

    /// With `--genesis`, the chain is the file's and so are the decimals: a node answering
    /// another genesis hash gets nothing signed, and one answering the right hash but 5
    /// decimals (its answer is not signed) cannot turn "1.50" into 150,000 minor units.
    /// Before, the node's decimals were taken as they came: 1.50 became 150,000.
    #[test]
    fn with_the_genesis_file_the_node_cannot_change_the_chain_or_the_decimals() {
        let dir = tempfile::tempdir().expect("dir");
        let mut genesis = interpool_contracts::testkit::genesis(1, 2, 100_000, 1_000_000, 0);
        genesis.chain_id = "c".into();
        genesis.decimals = 2;
        let genesis_file = dir.path().join("genesis.json");
        std::fs::write(&genesis_file, serde_json::to_vec(&genesis).expect("json")).expect("write");
        for (served_hash, submitted) in [(genesis.hash(), true), (Hash([9; 32]), false)] {
            let mut status: serde_json::Value =
                serde_json::from_str(&teststub::status_json(10)).expect("json");
            status["genesis_hash"] = serde_json::json!(served_hash);
            status["decimals"] = serde_json::json!(5);
            let node = FakeNode::start(
                status.to_string(),
                Some(signer_view(account(1), 0, 0, "customer", Some("BANK_A"))),
                |_| no_route(),
            );
            let mut submit_args = args(key_file(&dir, 1), false, 20);
            submit_args.genesis = Some(genesis_file.clone());
            let result = submit(node.url(), OUT, &transfer_to(2), &submit_args);
            let signed = node.submitted();
            if submitted {
                assert_eq!(result.expect("submits"), Exit::Success);
                let signed = signed.expect("submitted");
                assert!(
                    matches!(
                        signed.tx.body,
                        Body::Transfer {
                            amount: Amount(150),
                            ..
                        }
                    ),
                    "{:?}",
                    signed.tx.body
                );
            } else {
                let error = format!("{:#}", result.expect_err("another chain"));
                assert!(error.contains("nothing was signed"), "{error}");
                assert!(signed.is_none(), "nothing submitted");
            }
        }
    }

    #[test]
    fn an_official_gets_the_nonce_from_signers_and_a_rejection_exits_1() {
        let dir = tempfile::tempdir().expect("dir");
        let node = FakeNode::start(
            teststub::status_json(10),
            Some(signer_view(account(3), 7, 7, "authority", None)),
            |hash| {
                let rejected = Outcome::Rejected {
                    error: TxError::ZeroAmount,
                };
                tx_status(hash, TxStatus::Rejected, Some(rejected))
            },
        );
        let exit = submit(
            node.url(),
            OUT,
            &BodyArgs::Settle,
            &args(key_file(&dir, 3), true, 20),
        )
        .expect("submits");
        assert_eq!(exit, Exit::Failure);
        let signed = node.submitted().expect("submitted");
        assert_eq!((signed.tx.nonce, signed.tx.body), (7, Body::SettleCycle));
    }

    #[test]
    fn a_wait_that_times_out_exits_3_and_without_wait_it_returns_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let node = FakeNode::start(teststub::status_json(10), None, |hash| {
            tx_status(hash, TxStatus::Pending, None)
        });
        let mut with_nonce = args(key_file(&dir, 3), true, 1);
        with_nonce.nonce = Some(9);
        let exit = submit(node.url(), OUT, &BodyArgs::Settle, &with_nonce).expect("submits");
        assert_eq!(exit, Exit::StillPending);
        with_nonce.wait = false;
        let exit = submit(node.url(), OUT, &BodyArgs::Settle, &with_nonce).expect("submits");
        assert_eq!(exit, Exit::Success);
        assert_eq!(node.submitted().map(|t| t.tx.nonce), Some(9));
    }

    #[test]
    fn missing_nonce_routes_and_refusals_are_explained() {
        let dir = tempfile::tempdir().expect("dir");
        let stub = teststub::serve(move |request| match request.target.as_str() {
            "/v1/status" => Reply::json(200, teststub::status_json(10)),
            "/v1/transactions" => Reply::error(409, "nonce_taken", "nonce 2 is pending"),
            target if target == format!("/v1/signers/{}", account(1)) => Reply::error(
                404,
                "unknown_signer",
                "neither an account nor an official key",
            ),
            _ => Reply::error(404, "not_found", "no such route; see /v1/status"),
        });
        let error = submit(
            &stub.url,
            OUT,
            &BodyArgs::Settle,
            &args(key_file(&dir, 3), false, 1),
        )
        .expect_err("no signers route");
        let line = format!("{error:#}");
        assert!(
            line.contains("pass --nonce N") && line.contains("not_found"),
            "{line}"
        );

        let error = submit(
            &stub.url,
            OUT,
            &transfer_to(2),
            &args(key_file(&dir, 1), false, 1),
        )
        .expect_err("no account");
        let line = format!("{error:#}");
        assert!(line.contains("has no account on this chain"), "{line}");

        let mut with_nonce = args(key_file(&dir, 3), false, 1);
        with_nonce.nonce = Some(2);
        let error =
            submit(&stub.url, OUT, &BodyArgs::Settle, &with_nonce).expect_err("nonce taken");
        let line = format!("{error:#}");
        assert!(
            line.contains("409 nonce_taken") && line.contains("already pending"),
            "{line}"
        );
    }

    #[test]
    fn only_connection_trouble_and_server_errors_are_retried() {
        let api = |status| ClientError::Api {
            request: "GET /".into(),
            status,
            code: "x".into(),
            message: "y".into(),
        };
        assert!(transient(&ClientError::Connect {
            node: "n".into(),
            reason: "refused".into()
        }));
        assert!(transient(&api(503)));
        assert!(!transient(&api(400)));
        assert!(!transient(&ClientError::BadBody {
            request: "GET /".into(),
            reason: "r".into(),
            snippet: String::new()
        }));
    }
}
