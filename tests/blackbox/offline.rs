//! The offline pipeline a bank can run today: generate a genesis with keys, sign
//! transactions with the wallet, execute blocks with the node, and get the same state root
//! and settlement report the ledger computes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use interpool_contracts::outcome::{BlockOutcome, Outcome};
use interpool_contracts::{Genesis, TxError};
use interpool_tests::run;

struct Consortium {
    _dir: tempfile::TempDir,
    root: PathBuf,
    genesis: Genesis,
}

impl Consortium {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("net");
        run(
            "interpool-genesis",
            [
                "localnet",
                "--out",
                path(&root),
                "--validators",
                "4",
                "--observers",
                "1",
                "--banks",
                "3",
                "--accounts-per-bank",
                "2",
                "--cap",
                "20.00",
                "--chain-id",
                "bb-test",
                "--base-port",
                "41000",
            ],
        )
        .success();
        let genesis: Genesis =
            serde_json::from_slice(&fs::read(root.join("genesis.json")).expect("genesis.json"))
                .expect("genesis parses");
        Self {
            _dir: dir,
            root,
            genesis,
        }
    }

    fn key(&self, name: &str) -> String {
        path(&self.root.join("keys").join(format!("{name}.json"))).to_string()
    }

    fn address(&self, name: &str) -> String {
        run("interpool-wallet", ["address", "--key", &self.key(name)])
            .success()
            .trim()
            .to_string()
    }

    /// Signs with the wallet; returns its JSON line.
    fn sign(&self, signer: &str, nonce: u64, body: &[&str]) -> String {
        let nonce = nonce.to_string();
        let key = self.key(signer);
        let mut args = vec![
            "sign",
            "--key",
            &key,
            "--chain-id",
            "bb-test",
            "--nonce",
            &nonce,
            "--valid-until",
            "100",
        ];
        args.extend_from_slice(body);
        run("interpool-wallet", args).success()
    }

    fn block_file(&self, name: &str, lines: &[String]) -> String {
        let file = self.root.join(name);
        fs::write(&file, lines.join("")).expect("write block");
        path(&file).to_string()
    }

    fn execute(&self, blocks: &[String]) -> Vec<BlockOutcome> {
        let genesis = path(&self.root.join("genesis.json")).to_string();
        let mut args = vec![
            "execute".to_string(),
            "--json".into(),
            "--genesis".into(),
            genesis,
        ];
        args.extend(blocks.iter().cloned());
        run("interpool-node", args)
            .success()
            .lines()
            .map(|line| serde_json::from_str(line).expect("block outcome JSON"))
            .collect()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn genesis_keys_and_verify() {
    let net = Consortium::new();
    assert_eq!(net.genesis.banks.len(), 3);
    assert_eq!(net.genesis.accounts.len(), 6);
    for entry in fs::read_dir(net.root.join("keys")).expect("keys dir") {
        let mode = entry
            .expect("entry")
            .metadata()
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key files must not be readable by others");
    }
    assert_eq!(
        net.address("customer-BANK_A-0"),
        net.genesis.accounts[0].owner.to_hex()
    );
    let verified = run(
        "interpool-genesis",
        ["verify", path(&net.root.join("genesis.json"))],
    )
    .success();
    assert!(
        verified.contains(&net.genesis.hash().to_hex()),
        "{verified}"
    );
    assert!(verified.contains("banks          3"), "{verified}");
    assert!(verified.contains("validators     4"), "{verified}");
    assert!(verified.contains("observers      1"), "{verified}");
}

#[test]
fn wallet_signs_node_executes_and_settles() {
    let net = Consortium::new();
    let b0 = net.address("customer-BANK_B-0");
    let a1 = net.address("customer-BANK_A-1");
    // Caps are 20.00. Block 1: A0 pays B0 15.00 (A's net debit 15.00: fits); B1 pays A1
    // 40.00 (B's would be 40.00 − 15.00 = 25.00 > 20.00: queued).
    let block1 = net.block_file(
        "block1.txt",
        &[
            net.sign(
                "customer-BANK_A-0",
                0,
                &[
                    "transfer",
                    "--to",
                    &b0,
                    "--amount",
                    "15.00",
                    "--end-to-end-id",
                    "E1",
                ],
            ),
            net.sign(
                "customer-BANK_B-1",
                0,
                &[
                    "transfer",
                    "--to",
                    &a1,
                    "--amount",
                    "40.00",
                    "--end-to-end-id",
                    "E2",
                ],
            ),
        ],
    );
    // Block 2: C0 pays B0 10.00, which makes room for B's queued 40.00 (40 − 25 ≤ 20);
    // C0's second transfer reuses end-to-end id E3 and is a duplicate; the authority settles.
    let block2 = net.block_file(
        "block2.txt",
        &[
            net.sign(
                "customer-BANK_C-0",
                0,
                &[
                    "transfer",
                    "--to",
                    &b0,
                    "--amount",
                    "10.00",
                    "--end-to-end-id",
                    "E3",
                ],
            ),
            net.sign(
                "customer-BANK_C-0",
                1,
                &[
                    "transfer",
                    "--to",
                    &a1,
                    "--amount",
                    "1.00",
                    "--end-to-end-id",
                    "E3",
                ],
            ),
            net.sign("authority", 0, &["settle"]),
        ],
    );
    let outcomes = net.execute(&[block1, block2]);
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].receipts[0].outcome, Outcome::Committed);
    assert!(matches!(
        outcomes[0].receipts[1].outcome,
        Outcome::Queued { .. }
    ));
    assert!(outcomes[0].released.is_empty());
    assert_eq!(outcomes[1].receipts[0].outcome, Outcome::Committed);
    assert_eq!(
        outcomes[1].receipts[1].outcome,
        Outcome::Rejected {
            error: TxError::DuplicateEndToEndId("E3".into())
        }
    );
    assert_eq!(outcomes[1].released.len(), 1);
    assert_eq!(outcomes[1].released[0].amount.0, 4_000);
    let report = outcomes[1].settlement.as_ref().expect("settled");
    // A: sent 15, received 40 → +25; B: sent 40, received 25 → −15; C: sent 10 → −10.
    let nets: Vec<i128> = report.banks.iter().map(|p| p.net).collect();
    assert_eq!(nets, vec![2_500, -1_500, -1_000]);
    assert_eq!(report.gross_total.0, 6_500);
    assert_eq!(report.net_total.0, 2_500);

    // Human output of the same run names the settlement.
    let genesis = path(&net.root.join("genesis.json")).to_string();
    let human = run(
        "interpool-node",
        [
            "execute",
            "--genesis",
            &genesis,
            path(&net.root.join("block1.txt")),
            path(&net.root.join("block2.txt")),
        ],
    )
    .success();
    assert!(
        human.contains("cycle 1 settled: gross 65.00, net 25.00"),
        "{human}"
    );
    assert!(human.contains(&outcomes[1].state_root.to_hex()), "{human}");
}

#[test]
fn bad_input_is_refused_with_a_specific_error() {
    let net = Consortium::new();
    let b0 = net.address("customer-BANK_B-0");
    let genesis = path(&net.root.join("genesis.json")).to_string();
    let good = net.sign(
        "customer-BANK_A-0",
        0,
        &[
            "transfer",
            "--to",
            &b0,
            "--amount",
            "1.00",
            "--end-to-end-id",
            "X",
        ],
    );
    let hex = serde_json::from_str::<serde_json::Value>(&good).expect("json")["tx"]
        .as_str()
        .expect("tx")
        .to_string();

    // Tampered signature.
    let mut tampered = hex.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let file = net.block_file(
        "tampered.txt",
        &[String::from_utf8(tampered).expect("ascii")],
    );
    run("interpool-node", ["execute", "--genesis", &genesis, &file]).failure(1, "bad_signature");

    // Truncated encoding.
    let file = net.block_file("truncated.txt", &[hex[..hex.len() - 10].to_string()]);
    run("interpool-node", ["execute", "--genesis", &genesis, &file])
        .failure(1, "not a transaction");

    // Not hex at all.
    let file = net.block_file("garbage.txt", &["zz-not-hex".to_string()]);
    run("interpool-node", ["execute", "--genesis", &genesis, &file]).failure(1, "bad hex");

    // Another chain's transaction.
    let key = net.key("customer-BANK_A-0");
    let other = run(
        "interpool-wallet",
        [
            "sign",
            "--key",
            &key,
            "--chain-id",
            "other",
            "--nonce",
            "0",
            "--valid-until",
            "9",
            "settle",
        ],
    )
    .success();
    let file = net.block_file("other.txt", &[other]);
    run("interpool-node", ["execute", "--genesis", &genesis, &file]).failure(1, "wrong_chain");

    // Wallet refusals: too many decimals, zero amount, usage errors.
    run(
        "interpool-wallet",
        [
            "sign",
            "--key",
            &key,
            "--chain-id",
            "bb-test",
            "--nonce",
            "0",
            "--valid-until",
            "9",
            "transfer",
            "--to",
            &b0,
            "--amount",
            "1.234",
            "--end-to-end-id",
            "Y",
        ],
    )
    .failure(2, "decimal places");
    run(
        "interpool-wallet",
        [
            "sign",
            "--key",
            &key,
            "--chain-id",
            "bb-test",
            "--nonce",
            "0",
            "--valid-until",
            "9",
            "transfer",
            "--to",
            &b0,
            "--amount",
            "0",
            "--end-to-end-id",
            "Y",
        ],
    )
    .failure(1, "zero_amount");
    run("interpool-wallet", ["sign", "--key", &key]).failure(2, "requires a subcommand");
    run(
        "interpool-wallet",
        ["address", "--key", "/nonexistent/key.json"],
    )
    .failure(1, "cannot read key file");

    // The genesis tool will not overwrite a consortium by accident, and refuses bad files.
    run("interpool-genesis", ["localnet", "--out", path(&net.root)]).failure(1, "not empty");
    let broken = net.root.join("broken.json");
    fs::write(&broken, "{\"chain_id\": 5}").expect("write");
    run("interpool-genesis", ["verify", path(&broken)]).failure(1, "not a genesis file");

    // An empty block changes nothing: its state root is the genesis state root.
    let outcomes = net.execute(&[net.block_file("empty.txt", &[])]);
    assert!(outcomes[0].receipts.is_empty());
    let summary = run("interpool-genesis", ["verify", &genesis]).success();
    assert!(
        summary.contains(&outcomes[0].state_root.to_hex()),
        "{summary}"
    );
}
