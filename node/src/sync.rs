//! Block sync: a node that is behind asks a peer for committed blocks with their commit
//! certificates, verifies each certificate against the genesis validator set, and executes
//! the blocks in order. Validators use it to catch up; observers use nothing else.

use interpool_consensus::{CommitCertificate, Digest, ValidatorSet};
use interpool_contracts::codec::{self, DecodeError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::driver::MAX_CERTIFICATE_BYTES;
use crate::storage::{StorageError, Store};

/// Most blocks one sync response carries.
pub const MAX_SYNC_BLOCKS: u32 = 64;
/// Most bytes one sync response carries (a response stops early rather than exceed it).
pub const MAX_SYNC_RESPONSE_BYTES: usize = 12 << 20;

/// Asks for committed blocks from `from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// First height wanted.
    pub from: u64,
    /// Most blocks wanted (capped at [`MAX_SYNC_BLOCKS`]).
    pub max_blocks: u32,
}

/// One committed block as sent by sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedBlock {
    /// Height.
    pub height: u64,
    /// The encoded block.
    pub payload: Vec<u8>,
    /// The encoded commit certificate.
    pub certificate: Vec<u8>,
}

/// The answer: consecutive blocks from the requested height (possibly none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The blocks, in height order.
    pub blocks: Vec<SyncedBlock>,
    /// The responder's height.
    pub tip: u64,
}

/// "Block `height` is committed": what a validator gossips to followers after each commit,
/// so that an observer syncs at once rather than at its next poll. Only a hint: nothing is
/// applied without a verified certificate, so a false announcement costs one sync request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAnnouncement {
    /// The height just committed.
    pub height: u64,
}

impl BlockAnnouncement {
    /// Decodes an announcement from a peer (bounded; trailing bytes refused).
    pub fn decode(bytes: &[u8]) -> Result<BlockAnnouncement, DecodeError> {
        codec::decode(bytes, 16)
    }
}

/// Why a synced block is refused.
#[derive(Debug, Error)]
pub enum SyncError {
    /// Undecodable response or certificate.
    #[error("undecodable: {0}")]
    Decode(#[from] DecodeError),
    /// The certificate does not prove this block at this height.
    #[error("certificate for height {height} does not verify: {message}")]
    Certificate {
        /// Height.
        height: u64,
        /// Why.
        message: String,
    },
}

impl SyncRequest {
    /// Decodes a request from a peer (bounded).
    pub fn decode(bytes: &[u8]) -> Result<SyncRequest, DecodeError> {
        codec::decode(bytes, 64)
    }
}

impl SyncResponse {
    /// Decodes a response from a peer (bounded).
    pub fn decode(bytes: &[u8]) -> Result<SyncResponse, DecodeError> {
        codec::decode(bytes, MAX_SYNC_RESPONSE_BYTES as u64 + 4096)
    }
}

/// Serves a sync request from the store.
pub fn serve(store: &Store, request: SyncRequest) -> Result<SyncResponse, StorageError> {
    let tip = store.height()?;
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    let last = request
        .from
        .saturating_add(u64::from(request.max_blocks.min(MAX_SYNC_BLOCKS)))
        .min(tip.saturating_add(1));
    for height in request.from.max(1)..last {
        let (Some(payload), Some(certificate)) = (store.block(height)?, store.certificate(height)?)
        else {
            break;
        };
        bytes += payload.len() + certificate.len();
        if bytes > MAX_SYNC_RESPONSE_BYTES && !blocks.is_empty() {
            break;
        }
        blocks.push(SyncedBlock {
            height,
            payload,
            certificate,
        });
    }
    Ok(SyncResponse { blocks, tip })
}

/// Verifies that `block`'s certificate proves its payload final at its height.
pub fn verify(
    block: &SyncedBlock,
    validators: &ValidatorSet,
) -> Result<CommitCertificate, SyncError> {
    let certificate: CommitCertificate = codec::decode(&block.certificate, MAX_CERTIFICATE_BYTES)?;
    certificate
        .verify(validators, block.height, &Digest::of(&block.payload))
        .map_err(|e| SyncError::Certificate {
            height: block.height,
            message: e.to_string(),
        })?;
    Ok(certificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_garbage_is_refused() {
        let announcement = BlockAnnouncement { height: 1_234 };
        let bytes = codec::encode(&announcement);
        assert_eq!(BlockAnnouncement::decode(&bytes).ok(), Some(announcement));
        assert!(BlockAnnouncement::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(BlockAnnouncement::decode(&longer).is_err());
        assert!(BlockAnnouncement::decode(&[]).is_err());
    }
}
