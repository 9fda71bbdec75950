//! `interpool-wallet`: signs Interpool transactions.
//!
//! This first version works offline (an air-gapped signer is what a bank's treasury wants
//! anyway): it reads a key file, builds and signs a transaction, and prints its hash and
//! canonical encoding as one JSON line, the body `POST /v1/transactions` takes.
//!
//! ```text
//! interpool-wallet address --key alice.json
//! interpool-wallet sign --key alice.json --chain-id interpool-local --nonce 0 \
//!     --valid-until 1000 transfer --to <64 hex> --amount 12.34 --end-to-end-id INV-7
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use interpool_contracts::keys::PlainKeyFile;
use interpool_contracts::primitives::to_hex;
use interpool_contracts::{AccountId, Amount, BankId, Body, Transaction};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "interpool-wallet",
    version,
    about = "Sign Interpool transactions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the account id (public key) of a key file.
    Address {
        /// Key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Sign a transaction offline and print `{"hash": ..., "tx": <hex>}`.
    Sign(SignArgs),
}

#[derive(clap::Args)]
struct SignArgs {
    /// Key file of the signer.
    #[arg(long)]
    key: PathBuf,
    /// The chain id (from genesis.json).
    #[arg(long)]
    chain_id: String,
    /// The signer's next nonce.
    #[arg(long)]
    nonce: u64,
    /// Last block height at which the transaction may be included.
    #[arg(long)]
    valid_until: u64,
    /// Minor-unit digits of the chain's currency (from genesis.json).
    #[arg(long, default_value_t = 2)]
    decimals: u8,
    #[command(subcommand)]
    body: BodyArgs,
}

#[derive(Subcommand)]
enum BodyArgs {
    /// Customer transfer from the signer's account.
    Transfer {
        /// Recipient account id (64 hex characters).
        #[arg(long)]
        to: AccountId,
        /// Amount, e.g. 12.34.
        #[arg(long)]
        amount: String,
        /// Idempotency key (1–35 printable ASCII characters); reuse it when re-signing a
        /// transfer whose fate you do not know.
        #[arg(long)]
        end_to_end_id: String,
        /// Free text for the recipient (up to 140 characters).
        #[arg(long, default_value = "")]
        reference: String,
    },
    /// Bank operator: open an account for OWNER at the operator's bank.
    OpenAccount {
        /// The new account's public key.
        #[arg(long)]
        owner: AccountId,
    },
    /// Bank operator: credit a customer account (cash in).
    Deposit {
        /// Account id.
        #[arg(long)]
        account: AccountId,
        /// Amount.
        #[arg(long)]
        amount: String,
    },
    /// Bank operator: debit a customer account (cash out).
    Withdraw {
        /// Account id.
        #[arg(long)]
        account: AccountId,
        /// Amount.
        #[arg(long)]
        amount: String,
    },
    /// Settlement authority: issue money into a bank's pool.
    Issue {
        /// Bank id.
        #[arg(long)]
        bank: BankId,
        /// Amount.
        #[arg(long)]
        amount: String,
    },
    /// Settlement authority: redeem money from a bank's pool.
    Redeem {
        /// Bank id.
        #[arg(long)]
        bank: BankId,
        /// Amount.
        #[arg(long)]
        amount: String,
    },
    /// Settlement authority: set a bank's net debit cap.
    SetCap {
        /// Bank id.
        #[arg(long)]
        bank: BankId,
        /// New cap.
        #[arg(long)]
        cap: String,
    },
    /// Settlement authority: close the current settlement cycle.
    Settle,
    /// Regulator: freeze an account.
    Freeze {
        /// Account id.
        #[arg(long)]
        account: AccountId,
    },
    /// Regulator: unfreeze an account.
    Unfreeze {
        /// Account id.
        #[arg(long)]
        account: AccountId,
    },
}

/// What `sign` prints.
#[derive(Serialize)]
struct SignedOutput {
    hash: String,
    tx: String,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Address { key } => read_key(&key).map(|file| println!("{}", file.public_key)),
        Command::Sign(args) => sign(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn read_key(path: &Path) -> Result<PlainKeyFile> {
    let text =
        fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not a key file", path.display()))
}

fn sign(args: SignArgs) -> Result<()> {
    let file = read_key(&args.key)?;
    let key = file
        .signing_key()
        .with_context(|| format!("key file {}", args.key.display()))?;
    let decimals = args.decimals;
    let amount =
        |text: &str| Amount::parse(text, decimals).with_context(|| format!("amount {text:?}"));
    let body = match args.body {
        BodyArgs::Transfer {
            to,
            amount: text,
            end_to_end_id,
            reference,
        } => Body::Transfer {
            to,
            amount: amount(&text)?,
            end_to_end_id,
            reference,
        },
        BodyArgs::OpenAccount { owner } => Body::OpenAccount { owner },
        BodyArgs::Deposit {
            account,
            amount: text,
        } => Body::Deposit {
            account,
            amount: amount(&text)?,
        },
        BodyArgs::Withdraw {
            account,
            amount: text,
        } => Body::Withdraw {
            account,
            amount: amount(&text)?,
        },
        BodyArgs::Issue { bank, amount: text } => Body::Issue {
            bank,
            amount: amount(&text)?,
        },
        BodyArgs::Redeem { bank, amount: text } => Body::Redeem {
            bank,
            amount: amount(&text)?,
        },
        BodyArgs::SetCap { bank, cap } => Body::SetNetDebitCap {
            bank,
            cap: amount(&cap)?,
        },
        BodyArgs::Settle => Body::SettleCycle,
        BodyArgs::Freeze { account } => Body::Freeze { account },
        BodyArgs::Unfreeze { account } => Body::Unfreeze { account },
    };
    let chain_id = args.chain_id;
    let signed = Transaction {
        chain_id: chain_id.clone(),
        signer: file.public_key,
        nonce: args.nonce,
        valid_until_height: args.valid_until,
        body,
    }
    .sign(&key);
    // Refuse to print a transaction every node would reject on sight.
    let verified = signed
        .check_stateless(&chain_id)
        .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
    let output = SignedOutput {
        hash: verified.hash().to_hex(),
        tx: to_hex(&verified.signed().encode()),
    };
    println!("{}", serde_json::to_string(&output)?);
    Ok(())
}
