//! Harness for black-box tests: find the workspace's binaries and run them with deadlines.
//!
//! The binaries are looked up in the same `target/<profile>/` directory as the running test
//! executable (`target/<profile>/deps/…`), so `scripts/test.sh`, which builds them first,
//! and the tests always use one profile and one build.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
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
    let mut child = Command::new(binary(name))
        .args(args)
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
    let status = match child
        .wait_timeout(COMMAND_DEADLINE)
        .expect("wait for child")
    {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not finish within {COMMAND_DEADLINE:?}");
        }
    };
    Finished {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}
