//! `interpool-genesis`: builds a genesis with fresh keys for a test consortium, and checks
//! genesis files.
//!
//! ```text
//! interpool-genesis new --out DIR [--banks 3] [--accounts-per-bank 2] ...
//! interpool-genesis verify genesis.json
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use interpool_contracts::keys::PlainKeyFile;
use interpool_contracts::testkit::bank_id;
use interpool_contracts::{AccountId, Amount, Genesis, GenesisAccount, GenesisBank, Ledger};
use rand::RngCore;

#[derive(Parser)]
#[command(
    name = "interpool-genesis",
    version,
    about = "Build and check Interpool genesis files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a genesis with fresh random keys for every role and sample customer, and
    /// write it with the key files (owner-only permissions) to DIR.
    New(NewArgs),
    /// Check a genesis file fully and print its summary, hash and state root.
    Verify {
        /// The genesis file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct NewArgs {
    /// Output directory (must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite files in a non-empty DIR.
    #[arg(long)]
    force: bool,
    /// Number of member banks (BANK_A, BANK_B, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=200))]
    banks: u16,
    /// Sample customer accounts per bank.
    #[arg(long, default_value_t = 2)]
    accounts_per_bank: u16,
    /// Chain id.
    #[arg(long, default_value = "interpool-local")]
    chain_id: String,
    /// Currency code.
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// Minor-unit digits.
    #[arg(long, default_value_t = 2)]
    decimals: u8,
    /// Opening balance of each sample account (decimal).
    #[arg(long, default_value = "1000.00")]
    balance: String,
    /// Opening pool of each bank (decimal).
    #[arg(long, default_value = "1000000.00")]
    pool: String,
    /// Net debit cap of each bank (decimal).
    #[arg(long, default_value = "50000.00")]
    cap: String,
    /// Cycle length in blocks.
    #[arg(long, default_value_t = 100)]
    cycle_blocks: u64,
    /// Blocks a queued transfer may wait.
    #[arg(long, default_value_t = 50)]
    queue_expiry_blocks: u64,
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
        Command::New(args) => new(&args),
        Command::Verify { file } => verify(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn fresh_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

fn public(key: &SigningKey) -> AccountId {
    AccountId(key.verifying_key().to_bytes())
}

/// Writes `contents` to a new file readable only by its owner.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_key(dir: &Path, name: &str, label: &str, key: &SigningKey) -> Result<()> {
    let json = serde_json::to_vec_pretty(&PlainKeyFile::new(label, key))?;
    write_private(&dir.join(format!("{name}.json")), &json)
}

fn new(args: &NewArgs) -> Result<()> {
    let parse = |text: &str, what: &str| {
        Amount::parse(text, args.decimals).with_context(|| format!("--{what} {text:?}"))
    };
    let (balance, pool, cap) = (
        parse(&args.balance, "balance")?,
        parse(&args.pool, "pool")?,
        parse(&args.cap, "cap")?,
    );
    if args.out.exists() && fs::read_dir(&args.out)?.next().is_some() && !args.force {
        bail!(
            "{} is not empty; pass --force to overwrite",
            args.out.display()
        );
    }
    let keys_dir = args.out.join("keys");
    fs::create_dir_all(&keys_dir)
        .with_context(|| format!("cannot create {}", keys_dir.display()))?;

    let authority = fresh_key();
    write_key(&keys_dir, "authority", "settlement authority", &authority)?;
    let regulator = fresh_key();
    write_key(&keys_dir, "regulator", "regulator", &regulator)?;
    let mut banks = Vec::new();
    let mut accounts = Vec::new();
    for b in 0..usize::from(args.banks) {
        let id = bank_id(b);
        let operator = fresh_key();
        write_key(
            &keys_dir,
            &format!("operator-{id}"),
            &format!("operator of {id}"),
            &operator,
        )?;
        banks.push(GenesisBank {
            id: id.clone(),
            operator: public(&operator),
            initial_pool: pool,
            net_debit_cap: cap,
        });
        for i in 0..args.accounts_per_bank {
            let customer = fresh_key();
            write_key(
                &keys_dir,
                &format!("customer-{id}-{i}"),
                &format!("customer {i} of {id}"),
                &customer,
            )?;
            accounts.push(GenesisAccount {
                owner: public(&customer),
                bank: id.clone(),
                balance,
            });
        }
    }
    let genesis = Genesis {
        chain_id: args.chain_id.clone(),
        currency: args.currency.clone(),
        decimals: args.decimals,
        banks,
        authority: public(&authority),
        regulators: vec![public(&regulator)],
        cycle_blocks: args.cycle_blocks,
        queue_expiry_blocks: args.queue_expiry_blocks,
        max_queue_per_bank: 10_000,
        duplicate_window_blocks: 86_400,
        accounts,
    };
    let ledger = Ledger::from_genesis(&genesis).context("the generated genesis is invalid")?;
    let path = args.out.join("genesis.json");
    fs::write(&path, serde_json::to_vec_pretty(&genesis)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} and {} key files to {}",
        path.display(),
        2 + genesis.banks.len() + genesis.accounts.len(),
        keys_dir.display()
    );
    println!("genesis hash {}", genesis.hash());
    println!("state root   {}", ledger.state_root());
    Ok(())
}

fn verify(file: &Path) -> Result<()> {
    let text = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let genesis: Genesis = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a genesis file", file.display()))?;
    let ledger =
        Ledger::from_genesis(&genesis).with_context(|| format!("{} is invalid", file.display()))?;
    let d = genesis.decimals;
    let pools: u128 = genesis
        .banks
        .iter()
        .map(|b| u128::from(b.initial_pool.0))
        .sum();
    let balances: u128 = genesis
        .accounts
        .iter()
        .map(|a| u128::from(a.balance.0))
        .sum();
    println!("chain id       {}", genesis.chain_id);
    println!("currency       {} ({d} decimals)", genesis.currency);
    println!("banks          {}", genesis.banks.len());
    for bank in &genesis.banks {
        let customers = genesis
            .accounts
            .iter()
            .filter(|a| a.bank == bank.id)
            .count();
        println!(
            "  {:<12} pool {:>16}  cap {:>16}  accounts {customers}",
            bank.id.as_str(),
            bank.initial_pool.format(d),
            bank.net_debit_cap.format(d)
        );
    }
    println!("accounts       {}", genesis.accounts.len());
    println!("pools total    {}", format_u128(pools, d));
    println!("balances total {}", format_u128(balances, d));
    println!("cycle blocks   {}", genesis.cycle_blocks);
    println!("genesis hash   {}", genesis.hash());
    println!("state root     {}", ledger.state_root());
    Ok(())
}

/// Formats a total that may exceed one `u64` amount.
fn format_u128(value: u128, decimals: u8) -> String {
    match u64::try_from(value) {
        Ok(v) => Amount(v).format(decimals),
        Err(_) => format!("{value} minor units"),
    }
}
