//! README first: `scripts/localnet.sh demo`, a newcomer's first command, works again and
//! again on the chain it left running, with the binaries this test run built.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use interpool_tests::binary;

use crate::localnet::{free_base_port, machine_share};

/// The localnet of `scripts/localnet.sh`: where it lives, which ports and binaries it uses.
struct ScriptedNet {
    script: PathBuf,
    dir: PathBuf,
    base_port: u16,
    bin: PathBuf,
}

impl ScriptedNet {
    /// `scripts/localnet.sh COMMAND`, given five minutes.
    fn run(&self, command: &str) -> Output {
        Command::new("timeout")
            .arg("300")
            .arg("bash")
            .arg(&self.script)
            .arg(command)
            .env("INTERPOOL_LOCALNET", &self.dir)
            .env("INTERPOOL_BASE_PORT", self.base_port.to_string())
            .env("INTERPOOL_BIN", &self.bin)
            .env_remove("INTERPOOL_PLAIN_HTTP")
            .env_remove("INTERPOOL_VALIDATORS")
            .env_remove("INTERPOOL_CYCLE_BLOCKS")
            .output()
            .expect("run scripts/localnet.sh")
    }
}

/// The nodes run in the background, outside this process: stop them however the test ends.
impl Drop for ScriptedNet {
    fn drop(&mut self) {
        let _ = self.run("down");
    }
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The demo once spent its sample customers' money: on the same chain its third run was
/// refused `insufficient_funds` at the queued payment. Every run now opens its own
/// customers, and each run tells the whole story: the queued payment, its release, the
/// settlement and the gridlock settled by the liquidity-saving pass.
#[test]
fn the_demo_runs_again_on_the_chain_it_left() {
    let _share = machine_share();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = ScriptedNet {
        script: root.join("scripts/localnet.sh"),
        dir: tmp.path().join("localnet"),
        base_port: free_base_port(5),
        bin: binary("interpool-node")
            .parent()
            .expect("the binaries' directory")
            .to_path_buf(),
    };
    for run in 1..=3 {
        let output = net.run("demo");
        let said = text(&output);
        assert!(output.status.success(), "demo run {run} failed:\n{said}");
        for step in [
            "queued: waiting in the bank's queue",
            "released from the queue",
            "closed by  authority",
            "==> done",
        ] {
            assert!(
                said.contains(step),
                "demo run {run} did not show {step:?}:\n{said}"
            );
        }
    }
    let days = std::fs::read_dir(net.dir.join("demo"))
        .expect("the demo's customers")
        .count();
    assert_eq!(days, 3, "every run has customers of its own");
}
