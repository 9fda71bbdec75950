//! The key file format shared by the genesis tool (which writes keys for a localnet) and
//! the wallet (which signs with them). Only the format lives here; reading and writing
//! files is the callers' job.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::primitives::{from_hex_array, to_hex, AccountId};

/// Why a key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyFileError {
    /// The secret key is not 64 hex characters.
    #[error("secret_key is not 64 hex characters: {0}")]
    SecretKey(String),
    /// The stored public key does not belong to the secret key.
    #[error("public_key {stored} does not match the secret key (which gives {derived})")]
    Mismatch {
        /// The file's public key.
        stored: AccountId,
        /// The secret key's public key.
        derived: AccountId,
    },
}

/// An unencrypted ed25519 key file (JSON). Written with owner-only permissions; meant for
/// localnets and for keys a bank keeps in its own secret store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainKeyFile {
    /// What the key is for (free text, e.g. `operator of BANK_A`).
    #[serde(default)]
    pub label: String,
    /// The public key (the account id).
    pub public_key: AccountId,
    /// The 32-byte secret key seed, hex.
    pub secret_key: String,
}

impl PlainKeyFile {
    /// A key file for `key`.
    pub fn new(label: impl Into<String>, key: &SigningKey) -> Self {
        Self {
            label: label.into(),
            public_key: AccountId(key.verifying_key().to_bytes()),
            secret_key: to_hex(&key.to_bytes()),
        }
    }

    /// The signing key, after checking it matches the stored public key.
    pub fn signing_key(&self) -> Result<SigningKey, KeyFileError> {
        let seed = from_hex_array::<32>(&self.secret_key)
            .map_err(|e| KeyFileError::SecretKey(e.to_string()))?;
        let key = SigningKey::from_bytes(&seed);
        let derived = AccountId(key.verifying_key().to_bytes());
        if derived != self.public_key {
            return Err(KeyFileError::Mismatch {
                stored: self.public_key,
                derived,
            });
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::key;

    #[test]
    fn round_trip_and_mismatch() {
        let file = PlainKeyFile::new("test", &key(5));
        let json = serde_json::to_string(&file).expect("json");
        let back: PlainKeyFile = serde_json::from_str(&json).expect("parse");
        assert_eq!(
            back.signing_key().expect("valid").to_bytes(),
            key(5).to_bytes()
        );
        let mut wrong = back.clone();
        wrong.public_key = AccountId(key(6).verifying_key().to_bytes());
        assert!(matches!(
            wrong.signing_key(),
            Err(KeyFileError::Mismatch { .. })
        ));
        wrong.secret_key = "zz".into();
        assert!(matches!(
            wrong.signing_key(),
            Err(KeyFileError::SecretKey(_))
        ));
    }
}
