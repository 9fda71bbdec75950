//! Signed API requests (ADR 0014): what a client signs to prove who is calling, one
//! definition for the node that checks and the wallet that signs.
//!
//! A signed request carries four headers ([`KEY_HEADER`], [`TIMESTAMP_HEADER`],
//! [`NONCE_HEADER`], [`SIGNATURE_HEADER`]); the signature is the caller's ed25519 signature
//! over [`message`].

use crate::primitives::{sha256, to_hex};

/// The caller's public key (64 hex characters).
pub const KEY_HEADER: &str = "x-interpool-key";
/// Unix time in milliseconds when the request was signed.
pub const TIMESTAMP_HEADER: &str = "x-interpool-timestamp";
/// A value the caller never uses twice: 16 to 64 of `[0-9A-Za-z_-]`.
pub const NONCE_HEADER: &str = "x-interpool-nonce";
/// The ed25519 signature over [`message`] (128 hex characters).
pub const SIGNATURE_HEADER: &str = "x-interpool-signature";
/// The first line of every signed request message: nothing else the keys sign (32-byte
/// transaction hashes, consensus votes) can be taken for a request, or the reverse.
pub const DOMAIN: &str = "interpool-request-v1";

/// The bytes a client signs: [`DOMAIN`], the chain id, the method, the path and query
/// exactly as on the request line, the timestamp, the nonce and the hex SHA-256 of the body,
/// one per line (no newline at the end).
pub fn message(
    chain_id: &str,
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    format!(
        "{DOMAIN}\n{chain_id}\n{method}\n{path_and_query}\n{timestamp_ms}\n{nonce}\n{}",
        to_hex(sha256(&[body]).as_bytes())
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_binds_every_part() {
        let base = message("c", "GET", "/v1/x?a=1", 5, "n", b"");
        for other in [
            message("d", "GET", "/v1/x?a=1", 5, "n", b""),
            message("c", "POST", "/v1/x?a=1", 5, "n", b""),
            message("c", "GET", "/v1/x?a=2", 5, "n", b""),
            message("c", "GET", "/v1/x?a=1", 6, "n", b""),
            message("c", "GET", "/v1/x?a=1", 5, "m", b""),
            message("c", "GET", "/v1/x?a=1", 5, "n", b"{}"),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(
            String::from_utf8(base).expect("text"),
            "interpool-request-v1\nc\nGET\n/v1/x?a=1\n5\nn\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
