//! A real local consortium for black-box tests: `interpool-genesis localnet` output, one
//! `interpool-node` process per node on 127.0.0.1, driven over HTTP. Every wait is on a
//! condition with a deadline.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use interpool_contracts::keys::PlainKeyFile;
use interpool_contracts::primitives::to_hex;
use interpool_contracts::views::{AccountView, StatusView, TxStatusView};
use interpool_contracts::{AccountId, Amount, Body, Genesis, Hash, SignedTransaction, Transaction};
use interpool_tests::{binary, run};
use serde_json::Value;

/// The chain id of every test localnet.
pub const CHAIN_ID: &str = "net-test";

/// What `interpool-genesis localnet` writes into each config.toml when not told otherwise
/// (`interpool_genesis::config::defaults::empty_block_interval_ms`).
const DEFAULT_EMPTY_BLOCK_INTERVAL_MS: u64 = 500;

/// How [`Localnet::generate`] differs from the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra `interpool-genesis localnet` flags, e.g. `["--cycle-blocks", "100000"]`.
    pub genesis_args: Vec<String>,
    /// Written into every node's config.toml (`[consensus] empty_block_interval_ms`): how
    /// long an idle proposer waits before an empty block.
    pub empty_block_interval_ms: Option<u64>,
    /// Run alone: no other localnet of this test process runs meanwhile (for tests that
    /// load the machine on purpose).
    pub exclusive: bool,
}

/// One node process.
pub struct Node {
    /// Its name (`validator-0`, `observer-0`, ...).
    pub name: String,
    /// Base URL of its HTTP API.
    pub rpc: String,
    /// Its config file.
    pub config: PathBuf,
    /// The running process (`None` while stopped); behind a lock so that waits, which only
    /// borrow the localnet, can notice a node that exited.
    child: Mutex<Option<Child>>,
}

/// Localnets share the machine: most run side by side, but a test that loads its localnet
/// to the limit (see [`Options::exclusive`]) runs alone, so that the others' deadlines do not
/// depend on it.
static MACHINE: RwLock<()> = RwLock::new(());

/// A localnet's share of the machine.
#[allow(dead_code)] // held for its drop
enum Turn {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

/// A running localnet in a temporary directory; every process is killed on drop.
pub struct Localnet {
    /// Released after the processes are killed (fields drop after `Drop::drop`).
    _turn: Turn,
    dir: tempfile::TempDir,
    /// The nodes, validators first, in manifest order.
    pub nodes: Vec<Node>,
    /// `localnet.json`.
    pub manifest: Value,
    /// The genesis.
    pub genesis: Genesis,
}

impl Drop for Localnet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The temporary directory goes with the test: show why it failed first.
            eprintln!("node logs (last lines):\n{}", self.logs());
        }
        for node in &mut self.nodes {
            if let Some(child) = node
                .child
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_mut()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Port ranges handed out in this process: tests run in parallel threads, and two of them
/// must never pick the same range even if both see it free at the same moment.
static NEXT_RANGE: AtomicU32 = AtomicU32::new(0);

/// A share of the machine for a test that starts its nodes some other way (e.g. through
/// `scripts/localnet.sh`): it runs beside other localnets, never beside an exclusive one.
pub fn machine_share() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// The kernel's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`; Linux's
/// default when it cannot be read). Outgoing connections (every HTTP request of a test,
/// every libp2p dial) take their local port from it, so a port chosen inside it may be
/// free now and taken by the time a node that starts minutes later binds it.
fn ephemeral_ports() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// A base port whose p2p (base + i) and HTTP (base + 1000 + i) ports are all free now, lie
/// outside the ephemeral range, and that no other localnet of this process has been given.
pub fn free_base_port(nodes: u16) -> u16 {
    // Ports from 10,000 up to the ephemeral range (or above it, if it starts too low).
    let (ephemeral_low, ephemeral_high) = ephemeral_ports();
    let span = 1000 + u32::from(nodes);
    let (low, high) = if u32::from(ephemeral_low) >= 10_000 + span + 2_000 {
        (10_000, u32::from(ephemeral_low) - span)
    } else {
        (u32::from(ephemeral_high) + 1, 65_535 - span)
    };
    assert!(
        low < high,
        "no port range outside the ephemeral ports {ephemeral_low}-{ephemeral_high}"
    );
    let start = std::process::id() % 400 * 50;
    for _ in 0..10_000 {
        let step = NEXT_RANGE.fetch_add(16, Ordering::Relaxed);
        let candidate = (low + (start + step) % (high - low)) as u16;
        let free = (0..nodes).all(|i| {
            TcpListener::bind(("127.0.0.1", candidate + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", candidate + 1000 + i)).is_ok()
        });
        if free {
            return candidate;
        }
    }
    panic!("no free port range found between {low} and {high}");
}

/// Waits until `condition` holds, failing the test after `deadline`.
pub fn wait_for(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        // Poll interval while waiting on a condition; the deadline above bounds the wait.
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// A blocking HTTP client with a request timeout, trusting the CA of every localnet of this
/// process and signing its requests as the regulator of the localnet it calls (ADR 0014),
/// unless told otherwise ([`Req::signed_by`], [`Req::anonymous`]).
pub fn client() -> Http {
    client_timeout(Duration::from_secs(10))
}

/// [`client`] with a request timeout of `timeout` (event streams).
pub fn client_timeout(timeout: Duration) -> Http {
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .tls_built_in_root_certs(false);
    if let Ok(pem) = fs::read(interpool_tests::ca_bundle()) {
        for certificate in reqwest::Certificate::from_pem_bundle(&pem).expect("CA bundle") {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Http(builder.build().expect("http client"))
}

/// The tests' HTTP client (see [`client`]).
pub struct Http(reqwest::blocking::Client);

impl Http {
    /// `GET url`.
    pub fn get(&self, url: impl AsRef<str>) -> Req {
        self.request(reqwest::Method::GET, url.as_ref())
    }

    /// `POST url`.
    pub fn post(&self, url: impl AsRef<str>) -> Req {
        self.request(reqwest::Method::POST, url.as_ref())
    }

    fn request(&self, method: reqwest::Method, url: &str) -> Req {
        Req {
            http: self.0.clone(),
            builder: self.0.request(method, url),
            url: url.to_string(),
            signer: Signer::Regulator,
        }
    }
}

/// Who signs a [`Req`].
enum Signer {
    /// The regulator of the localnet called.
    Regulator,
    /// This key.
    Key(Box<ed25519_dalek::SigningKey>),
    /// Nobody: an anonymous request.
    Anonymous,
}

/// A request being built; signed when sent.
pub struct Req {
    http: reqwest::blocking::Client,
    builder: reqwest::blocking::RequestBuilder,
    url: String,
    signer: Signer,
}

impl Req {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Req {
        self.builder = self.builder.header(name, value.into());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.builder = self.builder.body(body.into());
        self
    }

    /// Sets the body, sent chunked (no `Content-Length`).
    pub fn chunked(mut self, body: impl Into<Vec<u8>>) -> Req {
        let reader = std::io::Cursor::new(body.into());
        self.builder = self.builder.body(reqwest::blocking::Body::new(reader));
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: &impl serde::Serialize) -> Req {
        self.builder = self.builder.json(body);
        self
    }

    /// Sets the request's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Req {
        self.builder = self.builder.timeout(timeout);
        self
    }

    /// Signs with `key` instead of the regulator's.
    pub fn signed_by(mut self, key: &ed25519_dalek::SigningKey) -> Req {
        self.signer = Signer::Key(Box::new(key.clone()));
        self
    }

    /// Sends no credentials.
    pub fn anonymous(mut self) -> Req {
        self.signer = Signer::Anonymous;
        self
    }

    /// Sends the request, signed as said.
    pub fn send(self) -> reqwest::Result<reqwest::blocking::Response> {
        let mut request = self.builder.build()?;
        let key = match self.signer {
            Signer::Anonymous => None,
            Signer::Key(key) => Some(*key),
            Signer::Regulator => interpool_tests::reach_of(&self.url).map(|reach| {
                let text = fs::read(&reach.reader_key_file).expect("the regulator's key");
                let file: PlainKeyFile = serde_json::from_slice(&text).expect("key json");
                file.signing_key().expect("valid key")
            }),
        };
        if let Some(key) = key {
            let url = request.url();
            let path_and_query = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            let body = request
                .body()
                .and_then(|b| b.as_bytes())
                .unwrap_or_default()
                .to_vec();
            let method = request.method().as_str().to_string();
            for (name, value) in
                sign_headers(&key, &method, &path_and_query, &body, now_ms(), &nonce())
            {
                request
                    .headers_mut()
                    .insert(name, value.parse().expect("header value"));
            }
        }
        self.http.execute(request)
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// A nonce no other request of this process uses.
fn nonce() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The four signed-request headers (ADR 0014) of a request on [`CHAIN_ID`] by `key`.
pub fn sign_headers(
    key: &ed25519_dalek::SigningKey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: u64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    use ed25519_dalek::Signer as _;
    use interpool_contracts::request;
    let message = request::message(CHAIN_ID, method, path_and_query, timestamp_ms, nonce, body);
    vec![
        (request::KEY_HEADER, to_hex(&key.verifying_key().to_bytes())),
        (request::TIMESTAMP_HEADER, timestamp_ms.to_string()),
        (request::NONCE_HEADER, nonce.to_string()),
        (
            request::SIGNATURE_HEADER,
            to_hex(&key.sign(&message).to_bytes()),
        ),
    ]
}

/// `GET {rpc}{route}` as JSON, `None` on any failure (node down, 4xx, bad JSON).
pub fn get<T: serde::de::DeserializeOwned>(rpc: &str, route: &str) -> Option<T> {
    let response = client().get(format!("{rpc}{route}")).send().ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().ok()
}

/// `GET /v1/status`.
pub fn status(rpc: &str) -> Option<StatusView> {
    get(rpc, "/v1/status")
}

/// A sample's value in a node's `/metrics`, by its series (name and labels), e.g.
/// `interpool_blocks_refused_total`; `None` if the node does not answer or lacks it.
pub fn metric(rpc: &str, series: &str) -> Option<u64> {
    let text = client()
        .get(format!("{rpc}/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// `GET /v1/accounts/{id}`.
pub fn account(rpc: &str, id: &AccountId) -> Option<AccountView> {
    get(rpc, &format!("/v1/accounts/{id}"))
}

/// `GET /v1/transactions/{hash}`.
pub fn tx_status(rpc: &str, hash: &Hash) -> Option<TxStatusView> {
    get(rpc, &format!("/v1/transactions/{hash}"))
}

/// `POST` a JSON body; the status code and the JSON answer.
pub fn post(rpc: &str, route: &str, body: String) -> (u16, Value) {
    let response = client()
        .post(format!("{rpc}{route}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("request");
    let code = response.status().as_u16();
    (code, response.json().unwrap_or(Value::Null))
}

/// Submits a batch; returns the hashes accepted (refusals are listed in the panic message
/// when `all_accepted`).
pub fn submit_batch(rpc: &str, txs: &[SignedTransaction], all_accepted: bool) -> Vec<Hash> {
    let hex: Vec<String> = txs.iter().map(|tx| to_hex(&tx.encode())).collect();
    let (code, body) = post(
        rpc,
        "/v1/transactions/batch",
        serde_json::json!({ "txs": hex }).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    if all_accepted {
        let refused: Vec<&Value> = results
            .iter()
            .filter(|r| r.get("error").is_some())
            .collect();
        assert!(refused.is_empty(), "refused: {refused:?}");
    }
    results
        .iter()
        .filter_map(|r| r["hash"].as_str().and_then(|h| h.parse().ok()))
        .collect()
}

/// A signed transfer on [`CHAIN_ID`].
pub fn transfer(
    key: &ed25519_dalek::SigningKey,
    to: AccountId,
    nonce: u64,
    amount: u64,
) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN_ID.into(),
        signer: AccountId(key.verifying_key().to_bytes()),
        nonce,
        // Within the validity horizon (`max_validity_blocks`, 86,400 in a localnet) of every
        // height a test reaches.
        valid_until_height: 50_000,
        body: Body::Transfer {
            to,
            amount: Amount(amount),
            end_to_end_id: format!("NET-{nonce}"),
            reference: String::new(),
            terms: Default::default(),
        },
    }
    .sign(key)
}

/// Runs `interpool-node ARGS`, which must succeed; its stdout.
pub fn run_node_command(args: &[&str]) -> String {
    run("interpool-node", args).success()
}

/// Runs `interpool-node ARGS`, which must fail; its stderr.
pub fn run_node_command_failing(args: &[&str]) -> String {
    let finished = run("interpool-node", args);
    assert_ne!(finished.code, Some(0), "expected a failure: {finished:#?}");
    finished.stderr
}

/// The path as text.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Localnet {
    /// Generates a localnet and starts every node.
    pub fn start(validators: usize, observers: usize, banks: usize) -> Localnet {
        let mut net = Localnet::generate(validators, observers, banks, &Options::default());
        for i in 0..net.nodes.len() {
            net.start_node(i);
        }
        net
    }

    /// Generates a localnet with `options` and starts no node: the test starts them with
    /// [`Localnet::start_node`] (or [`Localnet::start_all`]) when it wants.
    pub fn generate(
        validators: usize,
        observers: usize,
        banks: usize,
        options: &Options,
    ) -> Localnet {
        // A panicking test poisons nothing that matters here: the lock guards no data.
        let turn = if options.exclusive {
            Turn::Exclusive(MACHINE.write().unwrap_or_else(PoisonError::into_inner))
        } else {
            Turn::Shared(MACHINE.read().unwrap_or_else(PoisonError::into_inner))
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("net");
        let base = free_base_port((validators + observers) as u16).to_string();
        let mut args: Vec<String> = [
            "localnet",
            "--out",
            path(&out),
            "--validators",
            &validators.to_string(),
            "--observers",
            &observers.to_string(),
            "--banks",
            &banks.to_string(),
            "--accounts-per-bank",
            "2",
            "--base-port",
            &base,
            "--chain-id",
            CHAIN_ID,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(options.genesis_args.iter().cloned());
        run("interpool-genesis", &args).success();
        let manifest: Value =
            serde_json::from_slice(&fs::read(out.join("localnet.json")).expect("manifest"))
                .expect("json");
        let genesis: Genesis =
            serde_json::from_slice(&fs::read(out.join("genesis.json")).expect("genesis"))
                .expect("genesis json");
        let nodes: Vec<Node> = manifest["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| Node {
                name: node["name"].as_str().expect("name").to_string(),
                rpc: node["rpc_url"].as_str().expect("rpc").to_string(),
                config: out.join(node["config"].as_str().expect("config")),
                child: Mutex::new(None),
            })
            .collect();
        interpool_tests::register(interpool_tests::Reach {
            rpcs: nodes.iter().map(|n| n.rpc.clone()).collect(),
            ca_file: manifest["ca_file"].as_str().map(|ca| out.join(ca)),
            reader_key_file: out.join(
                manifest["regulator_key_file"]
                    .as_str()
                    .expect("regulator key file"),
            ),
        });
        let net = Localnet {
            _turn: turn,
            dir,
            nodes,
            manifest,
            genesis,
        };
        if let Some(interval) = options.empty_block_interval_ms {
            for i in 0..net.nodes.len() {
                net.set_config(
                    i,
                    "empty_block_interval_ms",
                    DEFAULT_EMPTY_BLOCK_INTERVAL_MS,
                    interval,
                );
            }
        }
        net
    }

    /// Changes `key = default` to `key = value` in node `i`'s config.toml (before it starts);
    /// fails if the generated file has no such line.
    pub fn set_config(&self, i: usize, key: &str, default: u64, value: u64) {
        self.set_config_text(i, key, &default.to_string(), &value.to_string());
    }

    /// [`Localnet::set_config`] for any value written as text (`true`, `"name"`).
    pub fn set_config_text(&self, i: usize, key: &str, default: &str, value: &str) {
        let config = &self.nodes[i].config;
        let text = fs::read_to_string(config).expect("config.toml");
        let line = format!("{key} = {default}");
        assert!(
            text.contains(&line),
            "{} has no `{line}` line to change:\n{text}",
            config.display()
        );
        fs::write(config, text.replace(&line, &format!("{key} = {value}")))
            .expect("write config.toml");
    }

    /// Sets (`Some`) or removes (`None`) node `i`'s top-level `halt_height`.
    pub fn set_halt_height(&self, i: usize, halt_height: Option<u64>) {
        let config = &self.nodes[i].config;
        let text = fs::read_to_string(config).expect("config.toml");
        let rest: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with("halt_height"))
            .collect();
        let head = halt_height.map_or(String::new(), |h| format!("halt_height = {h}\n"));
        fs::write(config, format!("{head}{}\n", rest.join("\n"))).expect("write config.toml");
    }

    /// The height stored in node `i`'s database (read while it runs or after it stopped).
    pub fn stored_height(&self, i: usize) -> u64 {
        let data = crate::audit::data_dir(&self.nodes[i].config);
        interpool_node::storage::Store::open_secondary(&data.join("db"))
            .expect("open the node's database")
            .height()
            .expect("height")
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.is_started(i) {
                self.start_node(i);
            }
        }
    }

    /// Index of the node called `name`.
    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The manifest's entry for the node called `name`.
    pub fn manifest_node(&self, name: &str) -> &Value {
        self.manifest["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name} in the manifest"))
    }

    /// Starts node `i` (again) from its config and data directory; its log is appended to.
    pub fn start_node(&mut self, i: usize) {
        self.start_node_with_env(i, &[]);
    }

    /// [`Localnet::start_node`] with extra environment variables (the test-only failpoints:
    /// `INTERPOOL_CRASH_AT`, `INTERPOOL_GOSSIP_DELAY_MS`).
    pub fn start_node_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        self.start_node_with(i, env, &[]);
    }

    /// [`Localnet::start_node_with_env`] with extra `interpool-node run` arguments.
    pub fn start_node_with(&mut self, i: usize, env: &[(&str, &str)], args: &[&str]) {
        let node = &self.nodes[i];
        assert!(!self.is_started(i), "{} is running", node.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join(format!("{}.log", node.name)))
            .expect("log file");
        let child = Command::new(binary("interpool-node"))
            .args(["run", "--config", path(&node.config), "--log-level", "info"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start node");
        *self.child(i) = Some(child);
    }

    /// Node `i`'s process slot.
    fn child(&self, i: usize) -> std::sync::MutexGuard<'_, Option<Child>> {
        // A panic while the lock was held cannot leave the slot inconsistent.
        self.nodes[i]
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The process id of node `i`, which must be started.
    pub fn pid(&self, i: usize) -> u32 {
        self.child(i)
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not started", self.nodes[i].name))
            .id()
    }

    /// Whether node `i` was started and not killed since (it may have exited on its own).
    pub fn is_started(&self, i: usize) -> bool {
        self.child(i).is_some()
    }

    /// Fails the test at once if a started node in `which` has exited: a wait on it could
    /// only run into its deadline.
    pub fn assert_running(&self, which: &[usize]) {
        for &i in which {
            if let Some(child) = self.child(i).as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{} exited ({status}) while the test expected it running",
                        self.nodes[i].name
                    );
                }
            }
        }
    }

    /// Stops node `i` the way an operator does (SIGTERM) and waits for it to exit within
    /// `deadline`; returns its exit status.
    pub fn terminate(&mut self, i: usize, deadline: Duration) -> std::process::ExitStatus {
        let mut child = self.child(i).take().expect("node is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if started.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not stop within {deadline:?} of SIGTERM",
                    self.nodes[i].name
                );
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    /// Node `i`'s exit status if it has exited on its own (then marked stopped).
    pub fn try_exit(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let status = self
            .child(i)
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())?;
        *self.child(i) = None;
        Some(status)
    }

    /// `kill -9` node `i`.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.child(i).take().expect("node is running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// The HTTP URLs of every node.
    pub fn rpcs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.rpc.clone()).collect()
    }

    /// Index of the validator that proposes `height` in round 0 (the rotation is the
    /// genesis order; see `ValidatorSet::proposer`).
    pub fn proposer(&self, height: u64) -> usize {
        let n = self.genesis.validators.len() as u64;
        let name = &self.genesis.validators[(height % n) as usize].name;
        self.nodes
            .iter()
            .position(|node| &node.name == name)
            .expect("validator in manifest")
    }

    /// Waits until every node in `which` is at `height` or above.
    pub fn wait_height(&self, which: &[usize], height: u64, deadline: Duration) {
        wait_for(deadline, &format!("{which:?} at height {height}"), || {
            self.assert_running(which);
            which
                .iter()
                .all(|&i| status(&self.nodes[i].rpc).is_some_and(|s| s.height >= height))
        });
    }

    /// The localnet's folder.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = fs::read_to_string(self.root().join(format!("{}.log", n.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {} ---\n{}",
                    n.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every node's whole log, for asserting on what it logged.
    pub fn logs_full(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                fs::read_to_string(self.root().join(format!("{}.log", n.name))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A key file of the localnet.
    pub fn key(&self, file: &str) -> ed25519_dalek::SigningKey {
        let text = fs::read(self.root().join(file)).expect("key file");
        let key: PlainKeyFile = serde_json::from_slice(&text).expect("key json");
        key.signing_key().expect("valid key")
    }

    /// The consortium CA's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.root()
            .join(self.manifest["ca_file"].as_str().expect("a TLS localnet"))
    }

    /// Sample account `index` of bank number `bank`: its key and id.
    pub fn account_key(&self, bank: usize, index: usize) -> (ed25519_dalek::SigningKey, AccountId) {
        let file = self.manifest["banks"][bank]["accounts"][index]["key_file"]
            .as_str()
            .expect("key file")
            .to_string();
        let key = self.key(&file);
        let id = AccountId(key.verifying_key().to_bytes());
        (key, id)
    }
}
