//! Harness for black-box tests: find the workspace's binaries and run them with deadlines.
//!
//! The binaries are looked up in the same `target/<profile>/` directory as the running test
//! executable (`target/<profile>/deps/…`), so `scripts/test.sh`, which builds them first,
//! and the tests always use one profile and one build.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use wait_timeout::ChildExt;

/// How long any one command may run before the test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Path of a workspace binary built in this test's profile.
///
/// # Panics
/// If the binary has not been built (run `scripts/test.sh`, or `cargo build --workspace
/// --bins` with the same profile first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh, which builds the binaries before the tests",
        path.display()
    );
    path
}

/// How the tests reach the nodes of one localnet: its CA and the key their reads are signed
/// with unless a test says otherwise (the regulator's, who may read everything).
#[derive(Debug, Clone)]
pub struct Reach {
    /// Base URLs of its nodes' APIs.
    pub rpcs: Vec<String>,
    /// The consortium CA's certificate (none for a plain-HTTP localnet).
    pub ca_file: Option<PathBuf>,
    /// The key file reads are signed with by default.
    pub reader_key_file: PathBuf,
}

/// Every localnet this test process made, with its CA's certificate (read when it is made:
/// its folder goes with its test).
static REACHES: Mutex<Vec<(Reach, Option<String>)>> = Mutex::new(Vec::new());

/// Remembers how to reach a localnet's nodes, for [`reach_of`], [`ca_bundle`] and the
/// wallet's defaults in [`spawn_with_env`].
pub fn register(reach: Reach) {
    let pem = reach
        .ca_file
        .as_ref()
        .map(|ca| std::fs::read_to_string(ca).expect("a localnet's CA"));
    let mut reaches = REACHES.lock().unwrap_or_else(PoisonError::into_inner);
    reaches.push((reach, pem));
    // One PEM bundle of every CA, rewritten whole and renamed into place, so that a wallet
    // started meanwhile reads the old bundle or the new, never half of one.
    let bundle: String = reaches.iter().filter_map(|(_, pem)| pem.clone()).collect();
    let path = ca_bundle();
    std::fs::create_dir_all(path.parent().expect("folder")).expect("bundle folder");
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bundle).expect("write the CA bundle");
    std::fs::rename(&partial, &path).expect("move the CA bundle");
}

/// How to reach the localnet serving `url` (its base or any route under it).
pub fn reach_of(url: &str) -> Option<Reach> {
    REACHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .rev()
        .map(|(reach, _)| reach)
        .find(|r| {
            r.rpcs.iter().any(|rpc| {
                url.strip_prefix(rpc.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        })
        .cloned()
}

/// A PEM file with the CA of every localnet this process made.
pub fn ca_bundle() -> PathBuf {
    std::env::temp_dir()
        .join(format!("interpool-tests-{}", std::process::id()))
        .join("cas.pem")
}

/// What a finished command printed and returned.
#[derive(Debug)]
pub struct Finished {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    /// Asserts exit code 0 and returns stdout.
    pub fn success(self) -> String {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        self.stdout
    }

    /// Asserts the exit code and that stderr contains `needle`.
    pub fn failure(self, code: i32, needle: &str) -> Self {
        assert_eq!(self.code, Some(code), "unexpected exit code: {self:#?}");
        assert!(
            self.stderr.contains(needle),
            "stderr does not mention {needle:?}: {self:#?}"
        );
        self
    }
}

/// Runs workspace binary `name` with `args`, failing the test if it runs past
/// [`COMMAND_DEADLINE`].
pub fn run<I, S>(name: &str, args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_with_env(name, args, &[])
}

/// [`run`] with extra environment variables (e.g. `INTERPOOL_PASSPHRASE`).
pub fn run_with_env<I, S>(name: &str, args: I, env: &[(&str, &str)]) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    spawn_with_env(name, args, env).finish(COMMAND_DEADLINE)
}

/// A workspace binary running in the background, its output collected; killed on drop.
pub struct Background {
    name: String,
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// Starts workspace binary `name` with `args` and extra environment variables, stdin
/// closed, stdout and stderr collected.
pub fn spawn_with_env<I, S>(name: &str, args: I, env: &[(&str, &str)]) -> Background
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    // The wallet trusts the localnets' CAs and signs its queries as the regulator of the
    // node it is pointed at, unless the test sets INTERPOOL_CA / INTERPOOL_KEY itself (empty:
    // none).
    let mut defaults: Vec<(&str, PathBuf)> = Vec::new();
    if name == "interpool-wallet" {
        let given = |var: &str| env.iter().any(|(name, _)| *name == var);
        if !given("INTERPOOL_CA") && ca_bundle().exists() {
            defaults.push(("INTERPOOL_CA", ca_bundle()));
        }
        let node = args
            .iter()
            .position(|a| a == "--node")
            .and_then(|i| args.get(i + 1))
            .and_then(|url| url.to_str())
            .and_then(reach_of);
        if let (false, Some(reach)) = (given("INTERPOOL_KEY"), node) {
            defaults.push(("INTERPOOL_KEY", reach.reader_key_file));
        }
    }
    // An empty INTERPOOL_CA or INTERPOOL_KEY from the test means none at all.
    let unset = |(name, value): &&(&str, &str)| {
        value.is_empty() && matches!(*name, "INTERPOOL_CA" | "INTERPOOL_KEY")
    };
    let mut command = Command::new(binary(name));
    for (name, _) in env.iter().filter(unset) {
        command.env_remove(name);
    }
    let mut child = command
        .args(&args)
        .envs(defaults)
        .envs(env.iter().filter(|var| !unset(var)).copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    Background {
        name: name.to_string(),
        child,
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

impl Background {
    /// True once the process has exited (it is not reaped from the test's point of view:
    /// [`Background::finish`] still returns its output).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the process to end, failing the test if it runs past `deadline` (it is
    /// killed first).
    pub fn finish(mut self, deadline: Duration) -> Finished {
        let status = match self.child.wait_timeout(deadline).expect("wait for child") {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default());
                panic!(
                    "{} did not finish within {deadline:?}; stderr: {stderr:?}",
                    self.name
                );
            }
        };
        Finished {
            code: status.code(),
            stdout: self
                .stdout
                .take()
                .map(|t| t.join().expect("stdout reader"))
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|t| t.join().expect("stderr reader"))
                .unwrap_or_default(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
