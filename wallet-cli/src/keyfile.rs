//! Key files: the plain format the genesis tool writes for localnets
//! ([`PlainKeyFile`]), and an encrypted one for keys that hold real money.
//!
//! # The encrypted format (JSON)
//!
//! ```text
//! {"format": "interpool-encrypted-key-v1", "label": "...", "public_key": "<hex>",
//!  "kdf": {"algorithm": "argon2id", "version": 19, "memory_kib": 65536, "iterations": 3,
//!          "parallelism": 1, "salt": "<hex, 16 bytes>"},
//!  "cipher": "xchacha20poly1305", "nonce": "<hex, 24 bytes>", "ciphertext": "<hex>"}
//! ```
//!
//! Argon2id (RFC 9106) turns the passphrase and salt into a 32-byte key; XChaCha20-Poly1305
//! seals the 32-byte ed25519 seed under it with a random 24-byte nonce. Every field but the
//! label is bound to the ciphertext as associated data, so changing the public key or
//! weakening the KDF parameters makes decryption fail instead of misleading the reader.
//! The public key is readable without the passphrase (`address` needs no secret).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use interpool_contracts::keys::{KeyFileError, PlainKeyFile};
use interpool_contracts::primitives::{from_hex_array, from_hex_vec, to_hex};
use interpool_contracts::AccountId;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// The `format` tag of an encrypted key file.
pub const ENCRYPTED_FORMAT: &str = "interpool-encrypted-key-v1";
/// The only cipher written and read.
pub const CIPHER: &str = "xchacha20poly1305";
/// The only KDF written and read.
pub const KDF: &str = "argon2id";
/// Environment variable that supplies the passphrase instead of a prompt.
pub const PASSPHRASE_ENV: &str = "INTERPOOL_PASSPHRASE";
/// Largest key file read, in bytes (a key file is well under 1 KiB).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfCost {
    /// What `keygen` uses: RFC 9106's second recommended option (64 MiB, 3 passes), with
    /// one lane. About half a second on a laptop.
    pub const DEFAULT: KdfCost = KdfCost {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// The most a file may ask for: a hostile key file must not make the wallet allocate
    /// gigabytes or spin for minutes.
    const MAX: KdfCost = KdfCost {
        memory_kib: 1024 * 1024,
        iterations: 64,
        parallelism: 16,
    };

    /// The fewest a file may ask for: refuses files whose KDF was weakened to nothing.
    const MIN: KdfCost = KdfCost {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    };
}

/// Why a key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Authentication failed: the passphrase is wrong or the file was changed.
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// A format, cipher or KDF this wallet does not know.
    #[error("unsupported {what} {got:?} (expected {expected:?})")]
    Unsupported {
        /// Which field.
        what: &'static str,
        /// Its value.
        got: String,
        /// What this wallet reads.
        expected: String,
    },
    /// A field that is not what the format requires.
    #[error("{field}: {reason}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The plain format's own checks.
    #[error(transparent)]
    Plain(#[from] KeyFileError),
    /// The operating system's randomness failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The KDF failed.
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// The KDF section of an encrypted key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfSection {
    /// Always [`KDF`].
    pub algorithm: String,
    /// Argon2 version (19 = 0x13).
    pub version: u32,
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Salt, hex (16 to 64 bytes).
    pub salt: String,
}

/// An encrypted key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedKeyFile {
    /// Always [`ENCRYPTED_FORMAT`].
    pub format: String,
    /// Free text (not authenticated, so it may be edited).
    #[serde(default)]
    pub label: String,
    /// The public key (the account id).
    pub public_key: AccountId,
    /// How the encryption key is derived from the passphrase.
    pub kdf: KdfSection,
    /// Always [`CIPHER`].
    pub cipher: String,
    /// The AEAD nonce, hex (24 bytes).
    pub nonce: String,
    /// The sealed 32-byte seed and its 16-byte tag, hex.
    pub ciphertext: String,
}

/// A key file of either format.
#[derive(Debug, Clone)]
pub enum KeyFile {
    /// Unencrypted (localnets).
    Plain(PlainKeyFile),
    /// Passphrase-protected.
    Encrypted(EncryptedKeyFile),
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(out)
}

/// A fresh key from the operating system's randomness.
pub fn generate_key() -> Result<SigningKey, KeyError> {
    let seed = Zeroizing::new(random::<32>()?);
    Ok(SigningKey::from_bytes(&seed))
}

fn derive_key(
    passphrase: &str,
    kdf: &KdfSection,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut out[..])
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
    Ok(out)
}

impl EncryptedKeyFile {
    /// Encrypts `key` under `passphrase`.
    pub fn seal(
        label: &str,
        key: &SigningKey,
        passphrase: &str,
        cost: KdfCost,
    ) -> Result<Self, KeyError> {
        let salt = random::<16>()?;
        let nonce = random::<24>()?;
        let mut file = EncryptedKeyFile {
            format: ENCRYPTED_FORMAT.into(),
            label: label.into(),
            public_key: AccountId(key.verifying_key().to_bytes()),
            kdf: KdfSection {
                algorithm: KDF.into(),
                version: 0x13,
                memory_kib: cost.memory_kib,
                iterations: cost.iterations,
                parallelism: cost.parallelism,
                salt: to_hex(&salt),
            },
            cipher: CIPHER.into(),
            nonce: to_hex(&nonce),
            ciphertext: String::new(),
        };
        let secret = derive_key(passphrase, &file.kdf, &salt)?;
        let aad = file.associated_data();
        let seed = Zeroizing::new(key.to_bytes());
        let sealed = XChaCha20Poly1305::new(Key::from_slice(&secret[..]))
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &seed[..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Kdf("encryption failed".into()))?;
        file.ciphertext = to_hex(&sealed);
        Ok(file)
    }

    /// Everything but the label and the ciphertext, in a fixed layout: the AEAD's
    /// associated data.
    fn associated_data(&self) -> String {
        let k = &self.kdf;
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.public_key,
            k.algorithm,
            k.version,
            k.memory_kib,
            k.iterations,
            k.parallelism,
            k.salt,
            self.cipher,
            self.nonce
        )
    }

    /// Checks every field that can be checked without the passphrase.
    fn check(&self) -> Result<(), KeyError> {
        let unsupported = |what, got: &str, expected: &str| KeyError::Unsupported {
            what,
            got: got.chars().take(40).collect(),
            expected: expected.into(),
        };
        if self.format != ENCRYPTED_FORMAT {
            return Err(unsupported("format", &self.format, ENCRYPTED_FORMAT));
        }
        if self.cipher != CIPHER {
            return Err(unsupported("cipher", &self.cipher, CIPHER));
        }
        if self.kdf.algorithm != KDF {
            return Err(unsupported("kdf", &self.kdf.algorithm, KDF));
        }
        if self.kdf.version != 0x13 {
            return Err(unsupported(
                "argon2 version",
                &self.kdf.version.to_string(),
                "19",
            ));
        }
        let (min, max) = (KdfCost::MIN, KdfCost::MAX);
        let within = |field, value: u32, low: u32, high: u32| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(KeyError::BadField {
                    field,
                    reason: format!("{value} is outside {low}..={high}"),
                })
            }
        };
        within(
            "kdf.memory_kib",
            self.kdf.memory_kib,
            min.memory_kib,
            max.memory_kib,
        )?;
        within(
            "kdf.iterations",
            self.kdf.iterations,
            min.iterations,
            max.iterations,
        )?;
        within(
            "kdf.parallelism",
            self.kdf.parallelism,
            min.parallelism,
            max.parallelism,
        )?;
        Ok(())
    }

    /// Decrypts the key; checks it is the one named by `public_key`.
    pub fn open(&self, passphrase: &str) -> Result<SigningKey, KeyError> {
        self.check()?;
        let bad = |field, e: &dyn std::fmt::Display| KeyError::BadField {
            field,
            reason: e.to_string(),
        };
        let salt = from_hex_vec(&self.kdf.salt, 64).map_err(|e| bad("kdf.salt", &e))?;
        if salt.len() < 16 {
            return Err(bad("kdf.salt", &"shorter than 16 bytes"));
        }
        let nonce = from_hex_array::<24>(&self.nonce).map_err(|e| bad("nonce", &e))?;
        let sealed = from_hex_array::<48>(&self.ciphertext).map_err(|e| bad("ciphertext", &e))?;
        let secret = derive_key(passphrase, &self.kdf, &salt)?;
        let aad = self.associated_data();
        let seed = XChaCha20Poly1305::new(Key::from_slice(&secret[..]))
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyError::WrongPassphrase)?;
        let seed = Zeroizing::new(seed);
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.as_slice()
                .try_into()
                .map_err(|_| bad("ciphertext", &"does not hold a 32-byte seed"))?,
        );
        let key = SigningKey::from_bytes(&seed);
        let derived = AccountId(key.verifying_key().to_bytes());
        if derived != self.public_key {
            return Err(KeyFileError::Mismatch {
                stored: self.public_key,
                derived,
            }
            .into());
        }
        Ok(key)
    }
}

impl KeyFile {
    /// Parses either format (told apart by the encrypted format's `format` field).
    pub fn parse(bytes: &[u8]) -> Result<KeyFile> {
        let value: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
        if value.get("format").is_some() {
            let file: EncryptedKeyFile = serde_json::from_value(value)?;
            file.check()?;
            Ok(KeyFile::Encrypted(file))
        } else {
            Ok(KeyFile::Plain(serde_json::from_value(value)?))
        }
    }

    /// The public key (readable without the passphrase).
    pub fn public_key(&self) -> AccountId {
        match self {
            KeyFile::Plain(file) => file.public_key,
            KeyFile::Encrypted(file) => file.public_key,
        }
    }

    /// True if opening it needs a passphrase.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, KeyFile::Encrypted(_))
    }

    /// The signing key. `passphrase` is asked for only if the file is encrypted.
    pub fn unlock(
        &self,
        passphrase: impl FnOnce() -> Result<Zeroizing<String>>,
    ) -> Result<SigningKey> {
        match self {
            KeyFile::Plain(file) => Ok(file.signing_key()?),
            KeyFile::Encrypted(file) => {
                let passphrase = passphrase()?;
                Ok(file.open(&passphrase)?)
            }
        }
    }
}

/// Reads and parses a key file (either format).
pub fn read(path: &Path) -> Result<KeyFile> {
    let metadata =
        fs::metadata(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    if metadata.len() > MAX_KEY_FILE_BYTES {
        bail!(
            "{} is not a key file: {} bytes, a key file is under {MAX_KEY_FILE_BYTES}",
            path.display(),
            metadata.len()
        );
    }
    let bytes =
        fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    let file =
        KeyFile::parse(&bytes).with_context(|| format!("{} is not a key file", path.display()))?;
    if let Some(warning) = exposure(&file, &metadata, path) {
        eprintln!("warning: {warning}");
    }
    Ok(file)
}

/// What is wrong with where a plain key lies: readable or writable by other users of the
/// machine (anyone who reads it can sign as its owner). An encrypted key is protected by
/// its passphrase.
fn exposure(file: &KeyFile, metadata: &fs::Metadata, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    (matches!(file, KeyFile::Plain(_)) && mode & 0o077 != 0).then(|| {
        format!(
            "the unencrypted key {} can be read or changed by other users (permissions {mode:o}); \
             chmod 600 it, or encrypt it",
            path.display()
        )
    })
}

/// Reads a key file and unlocks it, asking for the passphrase if it is encrypted.
pub fn load_signing_key(path: &Path) -> Result<(SigningKey, AccountId)> {
    let file = read(path)?;
    let key = file
        .unlock(|| passphrase(&format!("Passphrase for {}: ", path.display())))
        .with_context(|| format!("key file {}", path.display()))?;
    Ok((key, file.public_key()))
}

/// The passphrase from [`PASSPHRASE_ENV`] if set and not empty, else from a prompt on the
/// terminal.
pub fn passphrase(prompt: &str) -> Result<Zeroizing<String>> {
    if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
        let value = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSPHRASE_ENV} is not valid UTF-8"))?;
        if !value.is_empty() {
            return Ok(Zeroizing::new(value));
        }
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .with_context(|| {
            format!("cannot read the passphrase from the terminal (or set {PASSPHRASE_ENV})")
        })
}

/// A new passphrase for `keygen`: from the environment, or typed twice.
pub fn new_passphrase(path: &Path) -> Result<Zeroizing<String>> {
    let from_env = std::env::var_os(PASSPHRASE_ENV).is_some_and(|v| !v.is_empty());
    let first = passphrase(&format!("New passphrase for {}: ", path.display()))?;
    if first.is_empty() {
        bail!("the passphrase must not be empty");
    }
    if !from_env {
        let second = passphrase("Repeat the passphrase: ")?;
        if *second != *first {
            bail!("the two passphrases differ");
        }
    }
    Ok(first)
}

/// Creates `path` with owner-only permissions and writes `contents`; refuses to replace an
/// existing file.
pub fn write_new_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists; refusing to overwrite it",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
            }
        })?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(error) = written {
        // Leave no half-written key behind.
        let _ = fs::remove_file(path);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// The JSON of a new key file: encrypted under `passphrase`, or plain if `None`.
pub fn encode_new(
    label: &str,
    key: &SigningKey,
    passphrase: Option<&str>,
    cost: KdfCost,
) -> Result<Vec<u8>> {
    let mut json = match passphrase {
        Some(passphrase) => {
            serde_json::to_vec_pretty(&EncryptedKeyFile::seal(label, key, passphrase, cost)?)?
        }
        None => serde_json::to_vec_pretty(&PlainKeyFile::new(label, key))?,
    };
    json.push(b'\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpool_contracts::testkit::key;
    use std::os::unix::fs::PermissionsExt;

    /// Cheap parameters so the tests run fast (the minimum a file may ask for).
    const TEST_COST: KdfCost = KdfCost::MIN;

    fn sealed() -> EncryptedKeyFile {
        EncryptedKeyFile::seal("test", &key(3), "correct horse", TEST_COST).expect("seal")
    }

    fn no_prompt() -> Result<Zeroizing<String>> {
        panic!("a plain key file must not ask for a passphrase")
    }

    #[test]
    fn encrypted_round_trip_through_json() {
        let file = sealed();
        let json = serde_json::to_vec(&file).expect("json");
        let parsed = KeyFile::parse(&json).expect("parses");
        assert!(parsed.is_encrypted());
        assert_eq!(
            parsed.public_key(),
            AccountId(key(3).verifying_key().to_bytes())
        );
        let opened = parsed
            .unlock(|| Ok(Zeroizing::new("correct horse".into())))
            .expect("opens");
        assert_eq!(opened.to_bytes(), key(3).to_bytes());
        // The seed is not in the file in the clear.
        let text = String::from_utf8(json).expect("utf-8");
        assert!(!text.contains(&to_hex(&key(3).to_bytes())));
    }

    #[test]
    fn wrong_passphrase_is_named() {
        let error = sealed().open("wrong horse").expect_err("wrong passphrase");
        assert!(matches!(error, KeyError::WrongPassphrase), "{error}");
        assert!(error.to_string().contains("wrong passphrase"));
    }

    #[test]
    fn tampering_is_detected() {
        let flip = |hex: &str| {
            let mut bytes = from_hex_vec(hex, 64).expect("hex");
            bytes[0] ^= 1;
            to_hex(&bytes)
        };
        let mut ciphertext = sealed();
        ciphertext.ciphertext = flip(&ciphertext.ciphertext);
        let mut nonce = sealed();
        nonce.nonce = flip(&nonce.nonce);
        let mut public_key = sealed();
        public_key.public_key = AccountId(key(4).verifying_key().to_bytes());
        let mut iterations = sealed();
        iterations.kdf.iterations += 1;
        for file in [ciphertext, nonce, public_key, iterations] {
            assert!(
                matches!(file.open("correct horse"), Err(KeyError::WrongPassphrase)),
                "{file:?}"
            );
        }
        // The label is free text: editing it is harmless.
        let mut label = sealed();
        label.label = "renamed".into();
        assert!(label.open("correct horse").is_ok());
    }

    #[test]
    fn hostile_or_unknown_parameters_are_refused_before_any_work() {
        let mut huge = sealed();
        huge.kdf.memory_kib = u32::MAX;
        assert!(matches!(huge.open("x"), Err(KeyError::BadField { .. })));
        let mut weak = sealed();
        weak.kdf.memory_kib = 8;
        assert!(matches!(weak.open("x"), Err(KeyError::BadField { .. })));
        let mut cipher = sealed();
        cipher.cipher = "rot13".into();
        assert!(matches!(
            cipher.open("x"),
            Err(KeyError::Unsupported { .. })
        ));
        let mut format = sealed();
        format.format = "v2".into();
        let json = serde_json::to_vec(&format).expect("json");
        let error = format!("{:#}", KeyFile::parse(&json).expect_err("unknown format"));
        assert!(error.contains("unsupported format"), "{error}");
    }

    #[test]
    fn plain_format_is_read_as_the_genesis_tool_writes_it() {
        let json =
            serde_json::to_vec_pretty(&PlainKeyFile::new("operator", &key(9))).expect("json");
        let file = KeyFile::parse(&json).expect("parses");
        assert!(!file.is_encrypted());
        assert_eq!(
            file.unlock(no_prompt).expect("valid").to_bytes(),
            key(9).to_bytes()
        );
        // A plain file whose public key does not match its secret is refused.
        let mut wrong = PlainKeyFile::new("x", &key(9));
        wrong.public_key = AccountId(key(10).verifying_key().to_bytes());
        let json = serde_json::to_vec(&wrong).expect("json");
        let file = KeyFile::parse(&json).expect("parses");
        let error = format!("{:#}", file.unlock(no_prompt).expect_err("mismatch"));
        assert!(error.contains("does not match"), "{error}");
        assert!(KeyFile::parse(b"{\"public_key\": 5}").is_err());
        assert!(KeyFile::parse(b"not json").is_err());
    }

    /// A plain key others on the machine may read is named as such; a private one, or an
    /// encrypted one, is not. Before, a world-readable plain key was read without a word.
    #[test]
    fn an_exposed_plain_key_is_warned_about() {
        let dir = tempfile::tempdir().expect("dir");
        let plain = dir.path().join("plain.json");
        let json = serde_json::to_vec(&PlainKeyFile::new("t", &key(1))).expect("json");
        fs::write(&plain, &json).expect("write");
        let encrypted = dir.path().join("encrypted.json");
        let sealed_json = encode_new("t", &key(1), Some("pw"), TEST_COST).expect("encode");
        fs::write(&encrypted, &sealed_json).expect("write");
        let warning = |path: &Path, mode: u32| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
            let file = read(path).expect("reads");
            exposure(&file, &fs::metadata(path).expect("meta"), path)
        };
        let exposed = warning(&plain, 0o644).expect("a warning");
        assert!(
            exposed.contains("644") && exposed.contains("chmod 600"),
            "{exposed}"
        );
        assert!(warning(&plain, 0o600).is_none());
        assert!(warning(&encrypted, 0o644).is_none());
    }

    #[test]
    fn new_files_are_private_and_never_overwritten() {
        let dir =
            std::env::temp_dir().join(format!("interpool-wallet-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("key.json");
        let _ = fs::remove_file(&path);
        let json = encode_new("t", &key(1), Some("pw"), TEST_COST).expect("encode");
        write_new_private(&path, &json).expect("write");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let error = format!(
            "{:#}",
            write_new_private(&path, b"other").expect_err("exists")
        );
        assert!(error.contains("refusing to overwrite"), "{error}");
        assert_eq!(fs::read(&path).expect("read"), json);
        let file = read(&path).expect("reads back");
        assert_eq!(
            file.public_key(),
            AccountId(key(1).verifying_key().to_bytes())
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate_key().expect("key");
        let b = generate_key().expect("key");
        assert_ne!(a.to_bytes(), b.to_bytes());
    }
}
