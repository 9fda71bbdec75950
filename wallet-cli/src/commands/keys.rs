//! `address`, `keygen` and the offline `sign`.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use interpool_contracts::primitives::to_hex;
use interpool_contracts::Transaction;
use serde::Serialize;

use crate::cli::SignArgs;
use crate::exit::Exit;
use crate::keyfile::{self, KdfCost, KeyFile};
use crate::output::Output;

#[derive(Serialize)]
struct AddressOutput {
    address: String,
    encrypted: bool,
}

/// `address --key FILE`: the public key; an encrypted file needs no passphrase for it.
pub fn address(out: Output, path: &Path) -> Result<Exit> {
    let file = keyfile::read(path)?;
    if let KeyFile::Plain(plain) = &file {
        // Cheap, and catches a hand-edited file before anyone pays to it.
        plain
            .signing_key()
            .map_err(|e| anyhow!("key file {}: {e}", path.display()))?;
    }
    let address = file.public_key().to_hex();
    out.show(
        &AddressOutput {
            address: address.clone(),
            encrypted: file.is_encrypted(),
        },
        || address,
    )?;
    Ok(Exit::Success)
}

#[derive(Serialize)]
struct KeygenOutput {
    address: String,
    file: String,
    encrypted: bool,
}

/// `keygen --out FILE [--insecure-plaintext]`.
pub fn keygen(out: Output, path: &Path, label: &str, plaintext: bool) -> Result<Exit> {
    // Fail before asking for a passphrase that would be typed for nothing.
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite it",
            path.display()
        );
    }
    let key = keyfile::generate_key()?;
    let passphrase = if plaintext {
        None
    } else {
        Some(keyfile::new_passphrase(path)?)
    };
    let json = keyfile::encode_new(
        label,
        &key,
        passphrase.as_ref().map(|p| p.as_str()),
        KdfCost::DEFAULT,
    )?;
    keyfile::write_new_private(path, &json)?;
    let result = KeygenOutput {
        address: to_hex(&key.verifying_key().to_bytes()),
        file: path.display().to_string(),
        encrypted: !plaintext,
    };
    out.show(&result, || {
        format!(
            "{}\nwrote {} ({})",
            result.address,
            result.file,
            if plaintext {
                "UNENCRYPTED: for localnets only"
            } else {
                "encrypted"
            }
        )
    })?;
    Ok(Exit::Success)
}

/// What `sign` prints: exactly the body `POST /v1/transactions` takes, plus the hash.
#[derive(Serialize)]
struct SignedOutput {
    hash: String,
    tx: String,
}

/// `sign`: builds and signs offline; prints one JSON line whatever `--json` says.
pub fn sign(args: &SignArgs) -> Result<Exit> {
    let (key, signer) = keyfile::load_signing_key(&args.key)?;
    // Arguments that do not fit the chain (`12.345` where it has two decimals) are a usage
    // error, exit code 2, as for `transfer` against a node.
    let body = match args.body.build(args.decimals, &signer, args.nonce) {
        Ok(body) => body,
        Err(error) => {
            eprintln!("error: {}", format!("{error:#}").replace(['\n', '\r'], " "));
            return Ok(Exit::Usage);
        }
    };
    let signed = Transaction {
        chain_id: args.chain_id.clone(),
        signer,
        nonce: args.nonce,
        valid_until_height: args.valid_until,
        body,
    }
    .sign(&key);
    // Refuse to print a transaction every node would reject on sight.
    let verified = signed
        .check_stateless(&args.chain_id)
        .map_err(|e| anyhow!("{} ({})", e, e.code()))?;
    let output = SignedOutput {
        hash: verified.hash().to_hex(),
        tx: to_hex(&verified.signed().encode()),
    };
    Output { json: true }.json(&output)?;
    Ok(Exit::Success)
}
