//! `interpool-genesis`: builds and checks Interpool genesis files.
//!
//! ```text
//! interpool-genesis localnet --validators 4 --observers 1 --banks 4 --accounts-per-bank 3 --out DIR
//! interpool-genesis build --spec consortium.toml --out genesis.json
//! interpool-genesis verify genesis.json
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use interpool_contracts::calendar::BusinessDay;
use interpool_contracts::{Amount, Genesis};
use interpool_genesis::files::read_genesis;
use interpool_genesis::localnet::{self, LocalnetOptions};
use interpool_genesis::spec::{build_genesis, check_genesis, ConsortiumSpec};

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
    /// Generate a local test consortium: genesis, fresh keys for every node, role and sample
    /// customer (owner-only permissions), a config per node, and the manifest localnet.json.
    Localnet(LocalnetArgs),
    /// Build a real consortium's genesis from a spec holding only public keys.
    ///
    /// TLS is not in the genesis: each node serves its API with a certificate from the
    /// consortium's own CA. Issue one per node (a SAN for every name and address clients
    /// use), point `[rpc] tls_cert` and `tls_key` in the node's config at the PEM files
    /// (paths relative to the config file), and give clients the CA certificate (wallet
    /// `--ca FILE` or `INTERPOOL_CA`). Nothing else is trusted: not the system's roots, not
    /// a certificate from another CA. `plain_http = true` serves without TLS, for networks
    /// nobody else can reach. See ADR 0014.
    Build {
        /// The consortium spec (TOML).
        #[arg(long)]
        spec: PathBuf,
        /// Where to write genesis.json.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a genesis file fully and print its summary, hash and state root.
    Verify {
        /// The genesis file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct LocalnetArgs {
    /// Output directory (must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite files in a non-empty DIR.
    #[arg(long)]
    force: bool,
    /// Number of validators (at least 4).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Number of observers.
    #[arg(long, default_value_t = 1)]
    observers: usize,
    /// Number of member banks (BANK_A, BANK_B, ...).
    #[arg(long, default_value_t = 4)]
    banks: usize,
    /// Sample customer accounts per bank.
    #[arg(long, default_value_t = 3)]
    accounts_per_bank: usize,
    /// Node i listens for peers on base-port + i and for HTTP on base-port + 1000 + i.
    #[arg(long, default_value_t = 26_000)]
    base_port: u16,
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
    /// A business day: `OFFSET,CUTOFF,END` in local time, e.g. `+60,17:00,18:00` (UTC
    /// offset in minutes, customer cut-off, end of day). None by default.
    #[arg(long, value_parser = parse_business_day)]
    business_day: Option<BusinessDay>,
    /// Serve the nodes' APIs over plain HTTP, without TLS (no CA or certificates are made).
    #[arg(long)]
    plain_http: bool,
}

fn parse_business_day(text: &str) -> Result<BusinessDay, String> {
    let parts: Vec<&str> = text.split(',').collect();
    let [offset, cutoff, end] = parts.as_slice() else {
        return Err(format!(
            "{text:?}: expected OFFSET,CUTOFF,END, e.g. +60,17:00,18:00"
        ));
    };
    let calendar = BusinessDay {
        utc_offset_minutes: offset
            .trim_start_matches('+')
            .parse()
            .map_err(|_| format!("{offset:?} is not an offset in minutes"))?,
        customer_cutoff: cutoff.parse()?,
        end_of_day: end.parse()?,
    };
    calendar.validate()?;
    Ok(calendar)
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
        Command::Localnet(args) => run_localnet(&args),
        Command::Build { spec, out, force } => build(&spec, &out, force),
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

fn run_localnet(args: &LocalnetArgs) -> Result<()> {
    let parse = |text: &str, what: &str| {
        Amount::parse(text, args.decimals).with_context(|| format!("--{what} {text:?}"))
    };
    let options = LocalnetOptions {
        out: args.out.clone(),
        force: args.force,
        validators: args.validators,
        observers: args.observers,
        banks: args.banks,
        accounts_per_bank: args.accounts_per_bank,
        base_port: args.base_port,
        chain_id: args.chain_id.clone(),
        currency: args.currency.clone(),
        decimals: args.decimals,
        balance: parse(&args.balance, "balance")?,
        pool: parse(&args.pool, "pool")?,
        cap: parse(&args.cap, "cap")?,
        cycle_blocks: args.cycle_blocks,
        queue_expiry_blocks: args.queue_expiry_blocks,
        business_day: args.business_day,
        plain_http: args.plain_http,
    };
    let manifest = localnet::generate(&options)?;
    println!("local consortium in {}", args.out.display());
    for node in &manifest.nodes {
        println!(
            "  {:<12} {:?}  rpc {}  p2p {}",
            node.name, node.role, node.rpc_url, node.p2p_address
        );
    }
    println!("  manifest {}", args.out.join("localnet.json").display());
    Ok(())
}

fn build(spec_path: &Path, out: &Path, force: bool) -> Result<()> {
    let text = fs::read_to_string(spec_path)
        .with_context(|| format!("cannot read {}", spec_path.display()))?;
    let spec: ConsortiumSpec = toml::from_str(&text)
        .with_context(|| format!("{} is not a consortium spec", spec_path.display()))?;
    let genesis = build_genesis(&spec)
        .with_context(|| format!("{} describes an invalid genesis", spec_path.display()))?;
    if out.exists() && !force {
        bail!("{} exists; pass --force to overwrite", out.display());
    }
    fs::write(out, serde_json::to_vec_pretty(&genesis)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    println!("genesis hash {}", genesis.hash());
    Ok(())
}

fn verify(file: &Path) -> Result<()> {
    let genesis: Genesis = read_genesis(file)?;
    let ledger =
        check_genesis(&genesis).with_context(|| format!("{} is invalid", file.display()))?;
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
    println!("validators     {}", genesis.validators.len());
    for node in &genesis.validators {
        println!("  {:<14} {}", node.name, node.key);
    }
    println!("observers      {}", genesis.observers.len());
    for node in &genesis.observers {
        println!("  {:<14} {}", node.name, node.key);
    }
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
    println!("pools total    {}", format_total(pools, d));
    println!("balances total {}", format_total(balances, d));
    println!("cycle blocks   {}", genesis.cycle_blocks);
    println!("genesis hash   {}", genesis.hash());
    println!("state root     {}", ledger.state_root());
    Ok(())
}

/// Formats a total that may exceed one `u64` amount.
fn format_total(value: u128, decimals: u8) -> String {
    match u64::try_from(value) {
        Ok(v) => Amount(v).format(decimals),
        Err(_) => format!("{value} minor units"),
    }
}
