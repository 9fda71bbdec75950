//! Reading and writing the files this crate produces.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use interpool_contracts::keys::PlainKeyFile;
use interpool_contracts::{AccountId, Genesis};
use rand::RngCore;

/// A new key from the operating system's randomness.
pub fn fresh_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// The public key of `key` as an account id.
pub fn public(key: &SigningKey) -> AccountId {
    AccountId(key.verifying_key().to_bytes())
}

/// Writes `contents` to a file readable and writable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
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

/// Writes a key file (owner-only permissions).
pub fn write_key(path: &Path, label: &str, key: &SigningKey) -> Result<()> {
    let json = serde_json::to_vec_pretty(&PlainKeyFile::new(label, key))?;
    write_private(path, &json)
}

/// Reads a key file and checks that its public key matches its secret key.
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let text =
        fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    let file: PlainKeyFile = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a key file", path.display()))?;
    file.signing_key()
        .with_context(|| format!("key file {}", path.display()))
}

/// Reads and parses a genesis file (not yet validated).
pub fn read_genesis(path: &Path) -> Result<Genesis> {
    let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a genesis file", path.display()))
}
