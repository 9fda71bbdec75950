//! The command line: global flags, subcommands, and the one function that turns body
//! arguments into a transaction [`Body`] (shared by the offline `sign` and every networked
//! command that submits).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use interpool_contracts::{AccountId, Amount, BankId, Body, Hash, Priority, TransferTerms};

/// The first validator of `scripts/localnet.sh`.
pub const DEFAULT_NODE: &str = "https://127.0.0.1:27000";

/// How old (seconds) a verified balance's certifying block may be unless told otherwise.
pub const DEFAULT_MAX_PROOF_AGE_SECONDS: u64 = 300;

/// Blocks a transaction stays valid for when `--valid-for` is not given.
pub const DEFAULT_VALID_FOR_BLOCKS: u64 = 1000;

/// Seconds `--wait` waits when `--timeout` is not given.
pub const DEFAULT_WAIT_TIMEOUT_SECONDS: u64 = 60;

#[derive(Debug, Parser)]
#[command(
    name = "interpool-wallet",
    version,
    about = "Interpool wallet: keys, signing, transfers, queries, bank, authority and regulator commands",
    after_help = "Exit codes: 0 success, 1 rejected or error, 2 usage, 3 still pending when --wait timed out."
)]
pub struct Cli {
    /// The node's HTTP API.
    #[arg(long, global = true, env = "INTERPOOL_NODE", default_value = DEFAULT_NODE)]
    pub node: String,
    /// Machine-readable output: exactly one JSON document on stdout per command (one per
    /// line for `watch`).
    #[arg(long, global = true)]
    pub json: bool,
    /// The consortium CA's certificate (PEM): an https node must present a certificate it
    /// signed. A localnet's is `tls/ca.pem` in its folder.
    #[arg(long, global = true, env = "INTERPOOL_CA")]
    pub ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the account id (public key) of a key file.
    Address {
        /// Key file (plain or encrypted; no passphrase needed).
        #[arg(long)]
        key: PathBuf,
    },
    /// Generate a new key and write it to a new file (never overwrites).
    Keygen {
        /// The file to create (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Free text stored with the key, e.g. `treasury of BANK_A`.
        #[arg(long, default_value = "")]
        label: String,
        /// Write the unencrypted format (for localnets only).
        #[arg(long)]
        insecure_plaintext: bool,
    },
    /// Sign a transaction offline and print `{"hash": ..., "tx": <hex>}`.
    Sign(SignArgs),
    /// An account's balance. With --verify, checked against the genesis validator set
    /// without trusting the node.
    Balance {
        #[command(flatten)]
        reader: ReadKey,
        /// Account id (64 hex characters).
        id: AccountId,
        /// Verify a Merkle proof and its commit certificate instead of trusting the node.
        #[arg(long, requires = "genesis")]
        verify: bool,
        /// The chain's genesis.json (its validators certify the proof).
        #[arg(long, requires = "verify")]
        genesis: Option<PathBuf>,
        /// With --verify: refuse a proof whose certifying block is older than this many
        /// seconds (a node cut off from the chain, or one replaying old answers, can only
        /// serve old certified states).
        #[arg(long, default_value_t = DEFAULT_MAX_PROOF_AGE_SECONDS, requires = "verify")]
        max_age: u64,
        /// With --verify: accept a proof of any age (its height and age are still shown).
        #[arg(long, requires = "verify", conflicts_with = "max_age")]
        any_age: bool,
    },
    /// An account: bank, balance, reserved funds, nonce, frozen.
    Account {
        #[command(flatten)]
        reader: ReadKey,
        /// Account id.
        id: AccountId,
    },
    /// An account's transactions, newest first, one page at a time.
    History {
        #[command(flatten)]
        reader: ReadKey,
        /// Account id.
        id: AccountId,
        /// Transactions per page.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Cursor from the previous page (`next`).
        #[arg(long)]
        before: Option<String>,
    },
    /// A transaction's status and receipt.
    Tx {
        #[command(flatten)]
        reader: ReadKey,
        /// Transaction hash.
        hash: Hash,
    },
    /// A block with its commit certificate (the latest by default).
    Block {
        #[command(flatten)]
        reader: ReadKey,
        /// Height.
        height: Option<u64>,
    },
    /// The node's status: chain, height, peers, mempool.
    Status,
    /// A settlement cycle's report (the latest by default).
    Cycle {
        #[command(flatten)]
        reader: ReadKey,
        /// Cycle number (the first is 1).
        n: Option<u64>,
    },
    /// Every bank: pool, net debit cap, position, queue.
    Banks {
        #[command(flatten)]
        reader: ReadKey,
    },
    /// Send money from the key's account.
    Transfer {
        #[command(flatten)]
        body: TransferBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Cancel a transfer waiting in a bank's queue: signed by its payer (or by the
    /// operator of the payer's bank); the reservation is refunded.
    Cancel {
        /// The queued transfer's hash.
        hash: Hash,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Bank operator commands.
    Bank {
        #[command(subcommand)]
        command: BankCommand,
    },
    /// Settlement authority commands.
    Authority {
        #[command(subcommand)]
        command: AuthorityCommand,
    },
    /// Regulator commands.
    Regulator {
        #[command(subcommand)]
        command: RegulatorCommand,
    },
    /// Load generator for a localnet: opens and funds customer accounts over its banks,
    /// pre-signs transfers between them, submits them in binary batches to every validator
    /// (each customer's in order through one of its submitters, --submitters per validator,
    /// each with one batch in flight) at a fixed or
    /// the highest accepted rate, follows each to its outcome, and reports
    /// rates, latency percentiles, refusals, blocks and the nodes' CPU and memory.
    Load {
        /// The localnet's manifest (`DIR/localnet.json`; keys and nodes are found beside it).
        #[arg(long, value_name = "FILE", conflicts_with = "localnet")]
        manifest: Option<PathBuf>,
        /// The localnet's folder (the same as `--manifest DIR/localnet.json`).
        #[arg(long, value_name = "DIR")]
        localnet: Option<PathBuf>,
        /// Customer accounts to open and fund for the load, spread over the banks (with the
        /// operators' keys); 0 uses the localnet's sample customers [default: 10000; 0
        /// with --sign-only].
        #[arg(long)]
        accounts: Option<usize>,
        /// Transfers to send [default: 10000 unless --duration].
        #[arg(long, alias = "transfers", conflicts_with = "duration")]
        txs: Option<usize>,
        /// Send for this many seconds instead.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<u64>,
        /// Offered rate: transfers per second, or `max` (as fast as they are accepted).
        #[arg(long, default_value = "max")]
        rate: crate::commands::load::Rate,
        /// Transfers per batch request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Batch requests in flight at once per validator (each from its own submitter,
        /// which waits for a batch's answer before sending its next).
        #[arg(long, default_value_t = crate::commands::load::DEFAULT_SUBMITTERS)]
        submitters: usize,
        /// Seconds to wait for the last outcome.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Also write the report (JSON) to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Seed of the opened accounts' keys [default: a new one each run].
        #[arg(long)]
        seed: Option<u64>,
        /// Sign transfers between the sample customers and write them to this file
        /// (`HASH HEX` a line, in order) instead of submitting them.
        #[arg(long, value_name = "FILE")]
        sign_only: Option<PathBuf>,
    },
    /// ISO 20022: write a pacs.008 payment order for a transfer, submit one, or ask a
    /// transfer's pacs.002 status.
    Iso {
        #[command(subcommand)]
        command: IsoCommand,
    },
    /// A bank's statement of a closed cycle: pool and customer accounts, opening balance,
    /// entries, closing balance (with --xml, the ISO 20022 camt.053).
    Statement {
        #[command(flatten)]
        reader: ReadKey,
        /// The bank.
        #[arg(long)]
        bank: BankId,
        /// The cycle [default: the last closed one].
        #[arg(long)]
        cycle: Option<u64>,
        /// Write the camt.053 XML instead (to --out, or stdout).
        #[arg(long)]
        xml: bool,
        /// With --xml: write it to this file.
        #[arg(long, requires = "xml")]
        out: Option<PathBuf>,
    },
    /// Compare a bank's own books of a cycle with the chain's statement and list every
    /// break: entries only on one side, amounts that differ, duplicates, and each account's
    /// difference in closing balance. Exit 0 only if they agree, 1 if they do not.
    Reconcile {
        #[command(flatten)]
        reader: ReadKey,
        /// The bank.
        #[arg(long)]
        bank: BankId,
        /// The cycle.
        #[arg(long)]
        cycle: u64,
        /// The bank's books of the cycle: CSV (`end_to_end_id,account,amount,direction`,
        /// direction `credit`/`debit`; a header line is optional; an entry without an
        /// end-to-end id, a deposit or withdrawal, is named by its entry reference
        /// `height-position`), or a camt.053.001.08 of the bank's own.
        #[arg(long)]
        books: PathBuf,
    },
    /// Follow committed transactions, queue releases and settlements live (Ctrl-C stops).
    Watch {
        #[command(flatten)]
        reader: ReadKey,
        /// Only events touching this account.
        #[arg(long)]
        account: Option<AccountId>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
}

/// The key a query signs its requests with (ADR 0014): the node answers only what that
/// key's role may read.
#[derive(Debug, Clone, Default, Args)]
pub struct ReadKey {
    /// Key file to sign the request with: the account's owner, its bank's operator, a
    /// regulator, the authority or a node. Without one the request is anonymous.
    #[arg(long = "key", env = "INTERPOOL_KEY")]
    pub key: Option<PathBuf>,
}

impl Command {
    /// The key file a query signs its requests with, if it is one and was given one.
    pub fn read_key(&self) -> Option<&std::path::Path> {
        let reader = match self {
            Command::Balance { reader, .. }
            | Command::Account { reader, .. }
            | Command::History { reader, .. }
            | Command::Tx { reader, .. }
            | Command::Block { reader, .. }
            | Command::Cycle { reader, .. }
            | Command::Banks { reader }
            | Command::Statement { reader, .. }
            | Command::Reconcile { reader, .. }
            | Command::Watch { reader, .. }
            | Command::Iso {
                command: IsoCommand::Status { reader, .. },
            } => reader,
            _ => return None,
        };
        reader.key.as_deref()
    }
}

#[derive(Debug, Subcommand)]
pub enum IsoCommand {
    /// Sign a transfer from the key's account and write it as a pacs.008.001.08 (the
    /// signed transaction in its supplementary data), to --out or stdout; with --submit,
    /// also send it to the node and show its pacs.002 answer.
    Pacs008 {
        #[command(flatten)]
        body: TransferBody,
        #[command(flatten)]
        submit: SubmitArgs,
        /// Write the document to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also submit it (`POST /v1/iso20022/pacs.008`).
        #[arg(long)]
        send: bool,
    },
    /// Submit a pacs.008 document (written by `iso pacs008` or a bank's system) and show
    /// the pacs.002 answer.
    Submit {
        /// The pacs.008 file.
        file: PathBuf,
        /// Also write the pacs.002 answer to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A transfer's pacs.002 status, by end-to-end id.
    Status {
        #[command(flatten)]
        reader: ReadKey,
        /// The end-to-end id.
        end_to_end_id: String,
        /// The debtor's account, when several debtors used the id.
        #[arg(long)]
        debtor: Option<AccountId>,
        /// Also write the pacs.002 to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// Open an account for OWNER at the operator's bank.
    OpenAccount {
        #[command(flatten)]
        body: OpenAccountBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Credit a customer account (cash in).
    Deposit {
        #[command(flatten)]
        body: AccountAmountBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Debit a customer account (cash out).
    Withdraw {
        #[command(flatten)]
        body: AccountAmountBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Change the priority of a transfer queued at the operator's bank.
    Reprioritise {
        #[command(flatten)]
        body: ReprioritiseBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Cancel a transfer queued at the operator's bank (its payer is refunded).
    Cancel {
        #[command(flatten)]
        body: HashBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Issue settlement money into a bank's pool.
    Issue {
        #[command(flatten)]
        body: BankAmountBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Redeem settlement money from a bank's pool.
    Redeem {
        #[command(flatten)]
        body: BankAmountBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Set a bank's net debit cap.
    SetCap {
        #[command(flatten)]
        body: CapBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Close the current settlement cycle at the end of the next block.
    Settle {
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Run the liquidity-saving pass at the end of the next block: settle together the
    /// queued payments that offset.
    ResolveGridlock {
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegulatorCommand {
    /// Freeze an account: it can no longer send or be withdrawn from.
    Freeze {
        #[command(flatten)]
        body: AccountBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Lift a freeze.
    Unfreeze {
        #[command(flatten)]
        body: AccountBody,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

/// What every submitting command takes besides its body.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// Key file of the signer (plain, or encrypted: asks for the passphrase or reads
    /// INTERPOOL_PASSPHRASE).
    #[arg(long)]
    pub key: PathBuf,
    /// Sign with this nonce instead of asking the node for the signer's next one.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// The transaction may be included up to this many blocks after the current height.
    #[arg(long, default_value_t = DEFAULT_VALID_FOR_BLOCKS, value_parser = clap::value_parser!(u64).range(1..))]
    pub valid_for: u64,
    /// Wait until the transaction is committed, rejected or expired.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit code 3) [default: 60].
    #[arg(long, requires = "wait")]
    pub timeout: Option<u64>,
    /// The chain's genesis.json: sign only for that chain (the node's genesis hash must be
    /// its hash) and read the currency's decimals from it, not from the node, whose answer
    /// is not signed (a node claiming 5 decimals for a 2-decimal chain would make `--amount
    /// 12` a transfer of 12,000.00).
    #[arg(long, env = "INTERPOOL_GENESIS")]
    pub genesis: Option<PathBuf>,
}

/// `sign`: everything comes from the command line; nothing is asked of a node.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Key file of the signer.
    #[arg(long)]
    pub key: PathBuf,
    /// The chain id (from genesis.json).
    #[arg(long)]
    pub chain_id: String,
    /// The signer's next nonce.
    #[arg(long)]
    pub nonce: u64,
    /// Last block height at which the transaction may be included.
    #[arg(long)]
    pub valid_until: u64,
    /// Minor-unit digits of the chain's currency (from genesis.json).
    #[arg(long, default_value_t = 2)]
    pub decimals: u8,
    #[command(subcommand)]
    pub body: BodyArgs,
}

/// A transaction body as given on the command line. `sign` takes it as a subcommand; the
/// networked commands build one from their own arguments.
#[derive(Debug, Clone, Subcommand)]
pub enum BodyArgs {
    /// Customer transfer from the signer's account.
    Transfer(TransferBody),
    /// Bank operator: open an account for OWNER at the operator's bank.
    OpenAccount(OpenAccountBody),
    /// Bank operator: credit a customer account (cash in).
    Deposit(AccountAmountBody),
    /// Bank operator: debit a customer account (cash out).
    Withdraw(AccountAmountBody),
    /// Settlement authority: issue money into a bank's pool.
    Issue(BankAmountBody),
    /// Settlement authority: redeem money from a bank's pool.
    Redeem(BankAmountBody),
    /// Settlement authority: set a bank's net debit cap.
    SetCap(CapBody),
    /// Settlement authority: close the current settlement cycle.
    Settle,
    /// Regulator: freeze an account.
    Freeze(AccountBody),
    /// Regulator: unfreeze an account.
    Unfreeze(AccountBody),
    /// Payer or its bank's operator: cancel a queued transfer.
    Cancel(HashBody),
    /// Bank operator: change a queued transfer's priority.
    Reprioritise(ReprioritiseBody),
    /// Settlement authority: run the liquidity-saving pass.
    ResolveGridlock,
}

#[derive(Debug, Clone, Args)]
pub struct TransferBody {
    /// Recipient account id (64 hex characters).
    #[arg(long)]
    pub to: AccountId,
    /// Amount, e.g. 12.34.
    #[arg(long, value_parser = decimal_amount)]
    pub amount: String,
    /// Idempotency key (1–35 printable ASCII characters); reuse it when re-signing a
    /// transfer whose fate you do not know. Default: derived from the signer and the nonce.
    #[arg(long)]
    pub end_to_end_id: Option<String>,
    /// Free text for the recipient (up to 140 characters).
    #[arg(long, default_value = "")]
    pub reference: String,
    /// Release priority while queued: `normal` or `high` (high keeps its place first in
    /// first out and survives the customer cut-off; a high transfer larger than the bank's
    /// whole debit limit that would wait is refused, `high_over_debit_limit`).
    #[arg(long, default_value = "normal")]
    pub priority: Priority,
    /// Do not settle before this time: milliseconds since the Unix epoch, or `+30s`, `+5m`,
    /// `+2h` from now (the chain compares it with its certified block time).
    #[arg(long, value_parser = block_time)]
    pub not_before: Option<u64>,
    /// Reject if still unsettled at this time (same forms as `--not-before`).
    #[arg(long, value_parser = block_time)]
    pub reject_after: Option<u64>,
}

/// A queued transfer named by its hash.
#[derive(Debug, Clone, Args)]
pub struct HashBody {
    /// The queued transfer's hash.
    pub hash: Hash,
}

#[derive(Debug, Clone, Args)]
pub struct ReprioritiseBody {
    /// The queued transfer's hash.
    pub hash: Hash,
    /// Its new priority: `normal` or `high`.
    #[arg(long)]
    pub priority: Priority,
}

/// Clap's parser of a block time: milliseconds since the Unix epoch, or `+N` followed by
/// `s`, `m` or `h`, from this machine's clock.
fn block_time(text: &str) -> std::result::Result<u64, String> {
    let bad = || format!("{text:?}: expected milliseconds since the epoch or +30s, +5m, +2h");
    let Some(relative) = text.strip_prefix('+') else {
        return text.parse().map_err(|_| bad());
    };
    let unit = match relative.chars().last() {
        Some('s') => 1_000u64,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        _ => return Err(bad()),
    };
    let count: u64 = relative[..relative.len() - 1].parse().map_err(|_| bad())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let now = u64::try_from(now.as_millis()).map_err(|e| e.to_string())?;
    count
        .checked_mul(unit)
        .and_then(|ms| now.checked_add(ms))
        .ok_or_else(bad)
}

#[derive(Debug, Clone, Args)]
pub struct OpenAccountBody {
    /// The new account's public key.
    #[arg(long)]
    pub owner: AccountId,
}

#[derive(Debug, Clone, Args)]
pub struct AccountAmountBody {
    /// Account id.
    #[arg(long)]
    pub account: AccountId,
    /// Amount.
    #[arg(long, value_parser = decimal_amount)]
    pub amount: String,
}

#[derive(Debug, Clone, Args)]
pub struct BankAmountBody {
    /// Bank id.
    #[arg(long)]
    pub bank: BankId,
    /// Amount.
    #[arg(long, value_parser = decimal_amount)]
    pub amount: String,
}

#[derive(Debug, Clone, Args)]
pub struct CapBody {
    /// Bank id.
    #[arg(long)]
    pub bank: BankId,
    /// New net debit cap.
    #[arg(long, visible_alias = "cap", value_parser = decimal_amount)]
    pub amount: String,
}

#[derive(Debug, Clone, Args)]
pub struct AccountBody {
    /// Account id.
    #[arg(long)]
    pub account: AccountId,
}

/// The default end-to-end id of a transfer: the signer's first 12 hex digits and the nonce
/// (at most 33 characters). Unique per signer and nonce, and the same when a transfer is
/// re-signed with the same nonce, so a retry after an uncertain answer stays a duplicate.
/// Clap's check of an `--amount`: a non-negative decimal number such as `12.34` (a usage
/// error, exit code 2, when not). Whether the chain's currency has that many decimal places
/// is checked once its decimals are known.
fn decimal_amount(text: &str) -> std::result::Result<String, String> {
    let places = text
        .trim()
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    let places =
        u8::try_from(places).map_err(|_| format!("{places} decimal places is too many"))?;
    Amount::parse(text, places)
        .map(|_| text.trim().to_string())
        .map_err(|e| e.to_string())
}

pub fn default_end_to_end_id(signer: &AccountId, nonce: u64) -> String {
    format!("{}-{nonce}", &signer.to_hex()[..12])
}

impl BodyArgs {
    /// The one place a [`Body`] is built from command-line arguments. `decimals` parses the
    /// amounts; `signer` and `nonce` give the default end-to-end id.
    pub fn build(&self, decimals: u8, signer: &AccountId, nonce: u64) -> Result<Body> {
        let amount =
            |text: &str| Amount::parse(text, decimals).with_context(|| format!("amount {text:?}"));
        Ok(match self {
            BodyArgs::Transfer(t) => Body::Transfer {
                to: t.to,
                amount: amount(&t.amount)?,
                end_to_end_id: t
                    .end_to_end_id
                    .clone()
                    .unwrap_or_else(|| default_end_to_end_id(signer, nonce)),
                reference: t.reference.clone(),
                terms: TransferTerms {
                    priority: t.priority,
                    not_before_ms: t.not_before,
                    reject_after_ms: t.reject_after,
                },
            },
            BodyArgs::OpenAccount(b) => Body::OpenAccount { owner: b.owner },
            BodyArgs::Deposit(b) => Body::Deposit {
                account: b.account,
                amount: amount(&b.amount)?,
            },
            BodyArgs::Withdraw(b) => Body::Withdraw {
                account: b.account,
                amount: amount(&b.amount)?,
            },
            BodyArgs::Issue(b) => Body::Issue {
                bank: b.bank.clone(),
                amount: amount(&b.amount)?,
            },
            BodyArgs::Redeem(b) => Body::Redeem {
                bank: b.bank.clone(),
                amount: amount(&b.amount)?,
            },
            BodyArgs::SetCap(b) => Body::SetNetDebitCap {
                bank: b.bank.clone(),
                cap: amount(&b.amount)?,
            },
            BodyArgs::Settle => Body::SettleCycle,
            BodyArgs::Freeze(b) => Body::Freeze { account: b.account },
            BodyArgs::Unfreeze(b) => Body::Unfreeze { account: b.account },
            BodyArgs::Cancel(b) => Body::CancelTransfer { tx_hash: b.hash },
            BodyArgs::Reprioritise(b) => Body::Reprioritise {
                tx_hash: b.hash,
                priority: b.priority,
            },
            BodyArgs::ResolveGridlock => Body::ResolveGridlock,
        })
    }

    /// Officials (authority, regulators, operators) sign everything but transfers; they
    /// have no account, so their nonce comes from `/v1/signers` (as does a cancellation's,
    /// which its payer or its bank's operator may sign).
    pub fn signed_by_official(&self) -> bool {
        !matches!(self, BodyArgs::Transfer(_))
    }
}

impl Command {
    /// For the commands that submit a transaction: its body and the submit arguments.
    pub fn submission(self) -> Result<(BodyArgs, SubmitArgs), Box<Command>> {
        use AuthorityCommand as A;
        use BankCommand as B;
        use RegulatorCommand as R;
        Ok(match self {
            Command::Transfer { body, submit } => (BodyArgs::Transfer(body), submit),
            Command::Cancel { hash, submit } => (BodyArgs::Cancel(HashBody { hash }), submit),
            Command::Bank { command } => match command {
                B::OpenAccount { body, submit } => (BodyArgs::OpenAccount(body), submit),
                B::Deposit { body, submit } => (BodyArgs::Deposit(body), submit),
                B::Withdraw { body, submit } => (BodyArgs::Withdraw(body), submit),
                B::Reprioritise { body, submit } => (BodyArgs::Reprioritise(body), submit),
                B::Cancel { body, submit } => (BodyArgs::Cancel(body), submit),
            },
            Command::Authority { command } => match command {
                A::Issue { body, submit } => (BodyArgs::Issue(body), submit),
                A::Redeem { body, submit } => (BodyArgs::Redeem(body), submit),
                A::SetCap { body, submit } => (BodyArgs::SetCap(body), submit),
                A::Settle { submit } => (BodyArgs::Settle, submit),
                A::ResolveGridlock { submit } => (BodyArgs::ResolveGridlock, submit),
            },
            Command::Regulator { command } => match command {
                R::Freeze { body, submit } => (BodyArgs::Freeze(body), submit),
                R::Unfreeze { body, submit } => (BodyArgs::Unfreeze(body), submit),
            },
            other => return Err(Box::new(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use interpool_contracts::testkit::account;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("interpool-wallet").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn amounts_are_parsed_with_the_chain_decimals() {
        let signer = account(1);
        let body = BodyArgs::Deposit(AccountAmountBody {
            account: account(2),
            amount: "12.34".into(),
        });
        assert_eq!(
            body.build(2, &signer, 0).expect("valid"),
            Body::Deposit {
                account: account(2),
                amount: Amount(1234)
            }
        );
        assert_eq!(
            body.build(3, &signer, 0).expect("valid"),
            Body::Deposit {
                account: account(2),
                amount: Amount(12_340)
            }
        );
        let error = format!("{:#}", body.build(1, &signer, 0).expect_err("too precise"));
        assert!(
            error.contains("12.34") && error.contains("decimal places"),
            "{error}"
        );
        for bad in ["-1", "1e3", "", "1,5", "abc"] {
            let body = BodyArgs::Issue(BankAmountBody {
                bank: BankId::new("B").expect("id"),
                amount: bad.into(),
            });
            assert!(body.build(2, &signer, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_end_to_end_id_is_valid_and_stable() {
        let signer = account(7);
        let id = default_end_to_end_id(&signer, u64::MAX);
        assert!(id.len() <= 35, "{id}");
        assert_eq!(id, default_end_to_end_id(&signer, u64::MAX));
        assert_ne!(id, default_end_to_end_id(&signer, 0));
        let body = BodyArgs::Transfer(TransferBody {
            to: account(8),
            amount: "1".into(),
            end_to_end_id: None,
            reference: String::new(),
            priority: Priority::Normal,
            not_before: None,
            reject_after: None,
        });
        match body.build(2, &signer, 5).expect("valid") {
            Body::Transfer { end_to_end_id, .. } => {
                assert_eq!(end_to_end_id, default_end_to_end_id(&signer, 5))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_malformed_amount_is_a_usage_error() {
        let to = account(2).to_hex();
        for bad in ["-1", "1e3", "", "1,5", "abc", "1.", "99999999999999999999"] {
            let error = parse(&["transfer", "--key", "k.json", "--to", &to, "--amount", bad])
                .expect_err(bad);
            // `-1` may be refused as a stray flag before it is read as a value; the rest by
            // the amount check. All of them are usage errors (exit code 2).
            if !bad.starts_with('-') {
                assert_eq!(
                    error.kind(),
                    clap::error::ErrorKind::ValueValidation,
                    "{bad:?}"
                );
            }
            assert!(error.use_stderr(), "{bad:?} exits 2");
        }
        for good in ["0.01", "12", "12.340", ".5"] {
            parse(&["transfer", "--key", "k.json", "--to", &to, "--amount", good]).expect(good);
        }
    }

    #[test]
    fn networked_commands_parse_into_bodies() {
        let to = account(2).to_hex();
        let cli = parse(&[
            "transfer",
            "--key",
            "k.json",
            "--to",
            &to,
            "--amount",
            "1.5",
            "--wait",
            "--timeout",
            "5",
            "--json",
        ])
        .expect("parses");
        assert!(cli.json);
        let (body, submit) = cli.command.submission().expect("submits");
        assert!(matches!(body, BodyArgs::Transfer(_)));
        assert!(submit.wait);
        assert_eq!(submit.timeout, Some(5));
        assert_eq!(submit.valid_for, DEFAULT_VALID_FOR_BLOCKS);

        let cli = parse(&[
            "authority",
            "set-cap",
            "--key",
            "a.json",
            "--bank",
            "BANK_A",
            "--amount",
            "10",
        ])
        .expect("parses");
        let (body, _) = cli.command.submission().expect("submits");
        assert!(body.signed_by_official());
        assert!(matches!(body, BodyArgs::SetCap(_)));

        // Queue control: priorities and times on a transfer, cancel, reprioritise, the pass.
        let hash = Hash([9; 32]).to_hex();
        let cli = parse(&[
            "transfer",
            "--key",
            "k.json",
            "--to",
            &to,
            "--amount",
            "1",
            "--priority",
            "high",
            "--not-before",
            "1000",
            "--reject-after",
            "+5m",
        ])
        .expect("parses");
        let (body, _) = cli.command.submission().expect("submits");
        match body.build(2, &account(1), 0).expect("valid") {
            Body::Transfer { terms, .. } => {
                assert_eq!(terms.priority, Priority::High);
                assert_eq!(terms.not_before_ms, Some(1_000));
                assert!(terms.reject_after_ms.is_some_and(|at| at > 1_000));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&[
            "transfer",
            "--key",
            "k",
            "--to",
            &to,
            "--amount",
            "1",
            "--priority",
            "soon"
        ])
        .is_err());
        assert!(parse(&[
            "transfer",
            "--key",
            "k",
            "--to",
            &to,
            "--amount",
            "1",
            "--reject-after",
            "+5d"
        ])
        .is_err());
        let cli = parse(&["cancel", &hash, "--key", "k.json"]).expect("parses");
        let (body, _) = cli.command.submission().expect("submits");
        assert!(
            body.signed_by_official(),
            "the payer's or the operator's nonce, by /v1/signers"
        );
        assert_eq!(
            body.build(2, &account(1), 0).expect("valid"),
            Body::CancelTransfer {
                tx_hash: Hash([9; 32])
            }
        );
        let cli = parse(&[
            "bank",
            "reprioritise",
            &hash,
            "--priority",
            "high",
            "--key",
            "o.json",
        ])
        .expect("parses");
        let (body, _) = cli.command.submission().expect("submits");
        assert_eq!(
            body.build(2, &account(1), 0).expect("valid"),
            Body::Reprioritise {
                tx_hash: Hash([9; 32]),
                priority: Priority::High
            }
        );
        let cli = parse(&["authority", "resolve-gridlock", "--key", "a.json"]).expect("parses");
        let (body, _) = cli.command.submission().expect("submits");
        assert_eq!(
            body.build(2, &account(1), 0).expect("valid"),
            Body::ResolveGridlock
        );

        // `sign` keeps its old spelling of the cap.
        let cli = parse(&[
            "sign",
            "--key",
            "a.json",
            "--chain-id",
            "c",
            "--nonce",
            "0",
            "--valid-until",
            "9",
            "set-cap",
            "--bank",
            "BANK_A",
            "--cap",
            "10",
        ])
        .expect("parses");
        assert!(matches!(cli.command, Command::Sign(_)));

        assert!(parse(&["status"])
            .expect("parses")
            .command
            .submission()
            .is_err());
    }

    #[test]
    fn usage_errors_are_caught_by_the_parser() {
        let usage = |args: &[&str]| {
            let error = parse(args).expect_err("usage error");
            assert!(error.use_stderr(), "{args:?}");
        };
        // --timeout only makes sense with --wait.
        usage(&["authority", "settle", "--key", "a.json", "--timeout", "5"]);
        // --verify needs the genesis file.
        usage(&["balance", &account(1).to_hex(), "--verify"]);
        usage(&["balance", "not-hex"]);
        usage(&[
            "bank",
            "deposit",
            "--key",
            "k",
            "--account",
            &account(1).to_hex(),
        ]);
        usage(&[
            "transfer",
            "--key",
            "k",
            "--to",
            &account(1).to_hex(),
            "--amount",
            "1",
            "--valid-for",
            "0",
        ]);
        usage(&["history", &account(1).to_hex(), "--limit", "0"]);
    }
}
