//! A whole local consortium in one folder: genesis, keys for every role and sample customer,
//! one folder per node with its config and key, and `localnet.json`, the manifest that
//! scripts, the wallet and the tests read to find everything.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use interpool_contracts::testkit::bank_id;
use interpool_contracts::{
    AccountId, Amount, BankId, Genesis, GenesisAccount, GenesisBank, GenesisNode,
};
use serde::{Deserialize, Serialize};

use crate::config::{self, NodeConfig, P2pConfig, PeerConfig, Role, RpcConfig};
use crate::files::{fresh_key, public, write_key, write_private};
use crate::spec::check_genesis;

/// What to generate.
#[derive(Debug, Clone)]
pub struct LocalnetOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Write into a non-empty folder.
    pub force: bool,
    /// Validators (at least 4).
    pub validators: usize,
    /// Observers.
    pub observers: usize,
    /// Banks.
    pub banks: usize,
    /// Sample customers per bank.
    pub accounts_per_bank: usize,
    /// First port: node `i` listens for peers on `base_port + i` and for HTTP on
    /// `base_port + 1000 + i`.
    pub base_port: u16,
    /// Chain id.
    pub chain_id: String,
    /// Currency code.
    pub currency: String,
    /// Minor-unit digits.
    pub decimals: u8,
    /// Opening balance of each sample account.
    pub balance: Amount,
    /// Opening pool of each bank.
    pub pool: Amount,
    /// Net debit cap of each bank.
    pub cap: Amount,
    /// Cycle length in blocks.
    pub cycle_blocks: u64,
    /// Blocks a queued transfer may wait.
    pub queue_expiry_blocks: u64,
    /// The business-day calendar, if any.
    pub business_day: Option<interpool_contracts::calendar::BusinessDay>,
    /// Serve the APIs over plain HTTP instead of TLS.
    pub plain_http: bool,
}

/// One node in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestNode {
    /// Name in genesis.
    pub name: String,
    /// Validator or observer.
    pub role: Role,
    /// Base URL of its HTTP API.
    pub rpc_url: String,
    /// Its peer-to-peer multiaddress.
    pub p2p_address: String,
    /// Its config file (relative to the manifest's folder).
    pub config: PathBuf,
}

/// A sample customer account in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestAccount {
    /// The account id.
    pub id: AccountId,
    /// Its key file.
    pub key_file: PathBuf,
}

/// A bank in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestBank {
    /// The bank id.
    pub id: BankId,
    /// Its operator's key file.
    pub operator_key_file: PathBuf,
    /// Its sample customer accounts.
    pub accounts: Vec<ManifestAccount>,
}

/// `localnet.json`: where everything of a local consortium is. Paths are relative to the
/// manifest's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Chain id.
    pub chain_id: String,
    /// The genesis file.
    pub genesis: PathBuf,
    /// Every node, validators first.
    pub nodes: Vec<ManifestNode>,
    /// Every bank with its operator and sample customers.
    pub banks: Vec<ManifestBank>,
    /// The settlement authority's key file.
    pub authority_key_file: PathBuf,
    /// The regulator's key file.
    pub regulator_key_file: PathBuf,
    /// The consortium CA's certificate, which signed every node's API certificate (none
    /// when the nodes serve plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Manifest {
    /// Reads a manifest.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a localnet manifest", path.display()))
    }
}

/// Most validators, and most observers, of a localnet.
pub const MAX_LOCAL_NODES: usize = 1_000;

/// Most sample customers per bank of a localnet.
pub const MAX_LOCAL_ACCOUNTS: usize = 10_000;

/// Generates the local consortium described by `options`; returns its manifest.
pub fn generate(options: &LocalnetOptions) -> Result<Manifest> {
    ensure!(
        options.validators >= 1,
        "a consortium needs at least 1 validator (4 or more to tolerate a faulty one)"
    );
    ensure!(options.banks >= 1, "a consortium needs at least one bank");
    ensure!(options.banks <= 200, "at most 200 banks");
    // A localnet runs on one machine, each node on its own ports: a bound says so before
    // anything is written (a count near the largest integer overflowed, or wrapped and
    // tried to allocate a terabyte).
    ensure!(
        options.validators <= MAX_LOCAL_NODES && options.observers <= MAX_LOCAL_NODES,
        "at most {MAX_LOCAL_NODES} validators and {MAX_LOCAL_NODES} observers on one machine"
    );
    ensure!(
        options.accounts_per_bank <= MAX_LOCAL_ACCOUNTS,
        "at most {MAX_LOCAL_ACCOUNTS} sample customers per bank (each gets a key file)"
    );
    let nodes = options.validators + options.observers;
    let last_port = u32::from(options.base_port) + 1000 + nodes as u32;
    ensure!(
        last_port <= u32::from(u16::MAX),
        "--base-port {} leaves no room for {nodes} nodes",
        options.base_port
    );
    let out = &options.out;
    if out.exists() && fs::read_dir(out)?.next().is_some() && !options.force {
        bail!("{} is not empty; pass --force to overwrite", out.display());
    }
    let keys_dir = out.join("keys");
    fs::create_dir_all(&keys_dir)
        .with_context(|| format!("cannot create {}", keys_dir.display()))?;
    let key_path = |name: &str| PathBuf::from("keys").join(format!("{name}.json"));

    let authority = fresh_key();
    write_key(
        &out.join(key_path("authority")),
        "settlement authority",
        &authority,
    )?;
    let regulator = fresh_key();
    write_key(&out.join(key_path("regulator")), "regulator", &regulator)?;

    let mut banks = Vec::new();
    let mut accounts = Vec::new();
    let mut manifest_banks = Vec::new();
    for b in 0..options.banks {
        let id = bank_id(b);
        let operator = fresh_key();
        let operator_file = key_path(&format!("operator-{id}"));
        write_key(
            &out.join(&operator_file),
            &format!("operator of {id}"),
            &operator,
        )?;
        banks.push(GenesisBank {
            id: id.clone(),
            operator: public(&operator),
            initial_pool: options.pool,
            net_debit_cap: options.cap,
        });
        let mut manifest_accounts = Vec::new();
        for i in 0..options.accounts_per_bank {
            let customer = fresh_key();
            let file = key_path(&format!("customer-{id}-{i}"));
            write_key(
                &out.join(&file),
                &format!("customer {i} of {id}"),
                &customer,
            )?;
            accounts.push(GenesisAccount {
                owner: public(&customer),
                bank: id.clone(),
                balance: options.balance,
            });
            manifest_accounts.push(ManifestAccount {
                id: public(&customer),
                key_file: file,
            });
        }
        manifest_banks.push(ManifestBank {
            id,
            operator_key_file: operator_file,
            accounts: manifest_accounts,
        });
    }

    // Node keys, names and addresses.
    struct Planned {
        name: String,
        role: Role,
        key: ed25519_dalek::SigningKey,
        p2p: String,
        rpc: String,
    }
    let planned: Vec<Planned> = (0..nodes)
        .map(|i| {
            let (role, name) = if i < options.validators {
                (Role::Validator, format!("validator-{i}"))
            } else {
                (
                    Role::Observer,
                    format!("observer-{}", i - options.validators),
                )
            };
            let port = u32::from(options.base_port) + i as u32;
            Planned {
                name,
                role,
                key: fresh_key(),
                p2p: format!("/ip4/127.0.0.1/tcp/{port}"),
                rpc: format!("127.0.0.1:{}", port + 1000),
            }
        })
        .collect();
    let genesis_node = |p: &Planned| GenesisNode {
        name: p.name.clone(),
        key: public(&p.key),
    };
    let genesis = Genesis {
        chain_id: options.chain_id.clone(),
        currency: options.currency.clone(),
        decimals: options.decimals,
        banks,
        authority: public(&authority),
        regulators: vec![public(&regulator)],
        cycle_blocks: options.cycle_blocks,
        queue_expiry_blocks: options.queue_expiry_blocks,
        max_queue_per_bank: interpool_contracts::genesis::defaults::MAX_QUEUE_PER_BANK,
        // The default, or longer when the queue keeps transfers longer: the window must
        // cover a queued transfer's life plus the validity horizon (`Genesis::validate`).
        duplicate_window_blocks: interpool_contracts::genesis::defaults::DUPLICATE_WINDOW_BLOCKS
            .max(
                options
                    .queue_expiry_blocks
                    .saturating_add(interpool_contracts::genesis::defaults::MAX_VALIDITY_BLOCKS),
            ),
        max_nonce_lookahead: interpool_contracts::genesis::defaults::MAX_NONCE_LOOKAHEAD,
        max_validity_blocks: interpool_contracts::genesis::defaults::MAX_VALIDITY_BLOCKS,
        max_queued_per_payer: interpool_contracts::genesis::defaults::MAX_QUEUED_PER_PAYER,
        accounts,
        validators: planned
            .iter()
            .filter(|p| p.role == Role::Validator)
            .map(genesis_node)
            .collect(),
        observers: planned
            .iter()
            .filter(|p| p.role == Role::Observer)
            .map(genesis_node)
            .collect(),
        business_day: options.business_day,
        gridlock_pass: interpool_contracts::genesis::GridlockPass::EveryBlock,
        reject_warning_ms: interpool_contracts::genesis::defaults::REJECT_WARNING_MS,
    };
    check_genesis(&genesis).context("the generated genesis is invalid")?;
    fs::write(
        out.join("genesis.json"),
        serde_json::to_vec_pretty(&genesis)?,
    )
    .with_context(|| format!("cannot write {}", out.join("genesis.json").display()))?;

    // The consortium CA signs each node's API certificate and is then forgotten.
    let ca_file = PathBuf::from("tls").join("ca.pem");
    let ca = if options.plain_http {
        None
    } else {
        let ca = crate::tls::Ca::generate(&format!("{} consortium CA", genesis.chain_id))?;
        fs::create_dir_all(out.join("tls"))?;
        fs::write(out.join(&ca_file), ca.pem())
            .with_context(|| format!("cannot write {}", out.join(&ca_file).display()))?;
        Some(ca)
    };

    let mut manifest_nodes = Vec::new();
    for node in &planned {
        let dir = out.join(&node.name);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_key(&dir.join("node-key.json"), &node.name, &node.key)?;
        let rpc = match &ca {
            None => RpcConfig::plain(node.rpc.clone()),
            Some(ca) => {
                fs::create_dir_all(dir.join("tls"))?;
                let host = node
                    .rpc
                    .rsplit_once(':')
                    .map_or("127.0.0.1", |(host, _)| host);
                ca.issue(
                    &node.name,
                    &[host, "localhost"],
                    &dir.join("tls").join("cert.pem"),
                    &dir.join("tls").join("key.pem"),
                )?;
                RpcConfig::tls(
                    node.rpc.clone(),
                    PathBuf::from("tls").join("cert.pem"),
                    PathBuf::from("tls").join("key.pem"),
                )
            }
        };
        let config = NodeConfig {
            role: node.role,
            name: node.name.clone(),
            key_file: "node-key.json".into(),
            genesis_file: "../genesis.json".into(),
            data_dir: "data".into(),
            log_format: config::LogFormat::Text,
            log_level: config::defaults::log_level(),
            p2p: P2pConfig {
                listen: node.p2p.clone(),
                // Everyone dials every validator; observers are dialed by no one and dial in.
                peers: planned
                    .iter()
                    .filter(|p| p.name != node.name && p.role == Role::Validator)
                    .map(|p| PeerConfig {
                        name: p.name.clone(),
                        key: public(&p.key),
                        address: p.p2p.clone(),
                    })
                    .collect(),
                max_message_bytes: config::defaults::max_message_bytes(),
                sync_interval_ms: config::defaults::sync_interval_ms(),
            },
            rpc,
            consensus: Default::default(),
            block: Default::default(),
            mempool: Default::default(),
            storage: Default::default(),
            sync: Default::default(),
            halt_height: None,
        };
        let text = toml::to_string_pretty(&config).context("serialize config")?;
        write_private(&dir.join("config.toml"), text.as_bytes())?;
        manifest_nodes.push(ManifestNode {
            name: node.name.clone(),
            role: node.role,
            rpc_url: format!(
                "{}://{}",
                if ca.is_some() { "https" } else { "http" },
                node.rpc
            ),
            p2p_address: node.p2p.clone(),
            config: PathBuf::from(&node.name).join("config.toml"),
        });
    }
    let manifest = Manifest {
        chain_id: genesis.chain_id.clone(),
        genesis: "genesis.json".into(),
        nodes: manifest_nodes,
        banks: manifest_banks,
        authority_key_file: key_path("authority"),
        regulator_key_file: key_path("regulator"),
        ca_file: ca.is_some().then_some(ca_file),
    };
    fs::write(
        out.join("localnet.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .with_context(|| format!("cannot write {}", out.join("localnet.json").display()))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{read_genesis, read_key};
    use std::os::unix::fs::PermissionsExt;

    fn options(out: PathBuf) -> LocalnetOptions {
        LocalnetOptions {
            out,
            force: false,
            validators: 4,
            observers: 1,
            banks: 2,
            accounts_per_bank: 2,
            base_port: 36_000,
            chain_id: "unit".into(),
            currency: "EUR".into(),
            decimals: 2,
            balance: Amount(100_000),
            pool: Amount(10_000_000),
            cap: Amount(500_000),
            cycle_blocks: 10,
            queue_expiry_blocks: 5,
            business_day: None,
            plain_http: false,
        }
    }

    /// Counts no machine could run are refused before anything is written: the largest
    /// integer overflowed (a panic), and 2^32 - 1 validators wrapped the port check and
    /// tried to allocate a terabyte.
    #[test]
    fn impossible_node_counts_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (validators, observers, accounts) in [
            (usize::MAX, 1, 2),
            (4_294_967_295, 1, 2),
            (4, usize::MAX, 2),
            (4, 1, usize::MAX),
        ] {
            let out = dir.path().join("net");
            let error = generate(&LocalnetOptions {
                validators,
                observers,
                accounts_per_bank: accounts,
                ..options(out.clone())
            })
            .expect_err("refused");
            assert!(error.to_string().contains("at most"), "{error}");
            assert!(!out.exists(), "nothing written");
        }
    }

    #[test]
    fn generates_a_consistent_consortium() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("net");
        let manifest = generate(&options(out.clone())).expect("generate");
        let genesis = read_genesis(&out.join(&manifest.genesis)).expect("genesis");
        assert_eq!(genesis.validators.len(), 4);
        assert_eq!(genesis.observers.len(), 1);
        assert_eq!(manifest.nodes.len(), 5);
        for (i, node) in manifest.nodes.iter().enumerate() {
            let config = NodeConfig::load(&out.join(&node.config)).expect("config loads");
            let key = read_key(&config.key_file).expect("node key");
            let in_genesis = genesis
                .validators
                .iter()
                .chain(&genesis.observers)
                .nth(i)
                .expect("node");
            assert_eq!(public(&key), in_genesis.key);
            assert_eq!(config.name, in_genesis.name);
            assert_eq!(
                config.p2p.peers.len(),
                if config.role == Role::Validator { 3 } else { 4 }
            );
            assert_eq!(node.rpc_url, format!("https://{}", config.rpc.listen));
            // TLS by default: the node's certificate and key, resolved next to its config.
            let cert = config.rpc.tls_cert.as_ref().expect("a certificate");
            assert!(cert.is_absolute() && cert.exists());
            assert!(!config.rpc.plain_http);
            let key_mode = fs::metadata(config.rpc.tls_key.as_ref().expect("a key"))
                .expect("TLS key")
                .permissions()
                .mode();
            assert_eq!(key_mode & 0o077, 0);
        }
        let ca = manifest.ca_file.as_ref().expect("a CA");
        assert!(fs::read_to_string(out.join(ca))
            .expect("CA")
            .starts_with("-----BEGIN CERTIFICATE-----"));
        // The CA's key is not kept.
        assert_eq!(fs::read_dir(out.join("tls")).expect("tls").count(), 1);
        for bank in &manifest.banks {
            for account in &bank.accounts {
                let key = read_key(&out.join(&account.key_file)).expect("customer key");
                assert_eq!(public(&key), account.id);
                assert!(genesis
                    .accounts
                    .iter()
                    .any(|a| a.owner == account.id && a.bank == bank.id));
            }
        }
        for entry in fs::read_dir(out.join("keys")).expect("keys") {
            let mode = entry
                .expect("entry")
                .metadata()
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
        assert_eq!(
            Manifest::load(&out.join("localnet.json")).expect("manifest"),
            manifest
        );
        // A second run refuses to overwrite; with force it replaces everything.
        assert!(generate(&options(out.clone())).is_err());
        let again = generate(&LocalnetOptions {
            force: true,
            ..options(out)
        })
        .expect("forced");
        assert_ne!(
            again.banks[0].accounts[0].id,
            manifest.banks[0].accounts[0].id
        );
    }

    #[test]
    fn plain_http_only_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("net");
        let manifest = generate(&LocalnetOptions {
            plain_http: true,
            ..options(out.clone())
        })
        .expect("generate");
        assert_eq!(manifest.ca_file, None);
        let config = NodeConfig::load(&out.join(&manifest.nodes[0].config)).expect("config");
        assert!(config.rpc.plain_http && config.rpc.tls_cert.is_none());
        assert!(manifest.nodes[0].rpc_url.starts_with("http://"));
        assert!(!out.join("tls").exists());
    }

    #[test]
    fn refuses_no_validator_and_port_overflow_and_allows_a_consortium_of_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = options(dir.path().join("a"));
        opts.validators = 0;
        let error = generate(&opts).expect_err("no validator").to_string();
        assert!(error.contains("at least 1 validator"), "{error}");
        let mut opts = options(dir.path().join("one"));
        opts.validators = 1;
        assert_eq!(generate(&opts).expect("a consortium of one").nodes.len(), 2);
        let mut opts = options(dir.path().join("b"));
        opts.base_port = 65_000;
        assert!(generate(&opts).is_err());
    }
}
