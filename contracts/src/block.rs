//! Blocks: what consensus orders (as opaque bytes) and the ledger executes.
//!
//! A block's hash is exactly the digest the consensus engine certifies
//! (`interpool_consensus::Digest::of` of its canonical encoding), so a commit certificate
//! names the block it finalizes. The encoding is framed, header first, and the digest is
//! over the header and the SHA-256 of the transactions ([`Block::hash_of_parts`]): a
//! header can be shown certified without its transactions. Each header carries the state
//! root *after the previous block*, so the certificate of block `h + 1` also certifies the
//! state after block `h` (what account proofs are checked against, with the header alone).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec::{self, DecodeError};
use crate::primitives::{sha256, AccountId, Hash};
use crate::tx::SignedTransaction;

/// A sanity cap on any block this crate decodes, whatever limit the caller passes. The
/// protocol's bound on a block is consensus's payload bound
/// (`interpool_consensus::MAX_PAYLOAD_BYTES`, which this crate cannot name); callers pass it.
const DECODE_CAP_BYTES: u64 = 64 << 20;

/// Tag of a framed payload's digest: `interpool_consensus::types::FRAMED_PAYLOAD_TAG`, which
/// this crate cannot name (the node's tests check that the two digests agree).
const FRAMED_PAYLOAD_TAG: &[u8] = b"interpool/payload/v2/framed";
/// Tag of any other payload's digest (`interpool_consensus::types::RAW_PAYLOAD_TAG`).
const RAW_PAYLOAD_TAG: &[u8] = b"interpool/payload/v2/raw";

/// A block header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: String,
    /// Height (the first block is 1).
    pub height: u64,
    /// Hash of the block at `height − 1` (the genesis hash for block 1).
    pub parent_hash: Hash,
    /// The ledger's state root after block `height − 1` (the genesis state root for
    /// block 1).
    pub previous_state_root: Hash,
    /// The proposer's clock when it built the block, in Unix milliseconds. Informational:
    /// execution never reads it.
    pub timestamp_ms: u64,
    /// The proposing validator's key.
    pub proposer: AccountId,
}

/// A block: header and transactions in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions.
    pub transactions: Vec<SignedTransaction>,
}

/// Why a block does not fit where it is proposed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    /// Not a decodable block.
    #[error("block does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// Header for another chain.
    #[error("block is for chain {got:?}, not {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The header's chain id.
        got: String,
    },
    /// Header height is not the next one.
    #[error("block height {got}, expected {expected}")]
    WrongHeight {
        /// The next height.
        expected: u64,
        /// The header's height.
        got: u64,
    },
    /// Parent hash is not the last block's hash.
    #[error("block's parent {got} is not the last block {expected}")]
    WrongParent {
        /// The last block's hash.
        expected: Hash,
        /// The header's parent hash.
        got: Hash,
    },
    /// The previous state root disagrees with this node's.
    #[error("block says the state root was {got}, this node has {expected}")]
    WrongStateRoot {
        /// This node's state root.
        expected: Hash,
        /// The header's.
        got: Hash,
    },
    /// The timestamp goes backwards.
    #[error("block timestamp {got} is before its parent's {parent}")]
    TimeTravel {
        /// The parent's timestamp.
        parent: u64,
        /// This block's.
        got: u64,
    },
    /// More transactions or bytes than the limit.
    #[error("block exceeds the limit: {0}")]
    TooLarge(String),
}

/// What the next block must build on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    /// The chain id.
    pub chain_id: String,
    /// Height of the last block (0 before the first).
    pub height: u64,
    /// Hash of the last block (the genesis hash before the first).
    pub hash: Hash,
    /// State root after the last block.
    pub state_root: Hash,
    /// Timestamp of the last block (0 before the first).
    pub timestamp_ms: u64,
}

impl ChainTip {
    /// The tip before block 1: the genesis hash and the genesis state root.
    pub fn genesis(genesis: &crate::Genesis, genesis_state_root: Hash) -> ChainTip {
        ChainTip {
            chain_id: genesis.chain_id.clone(),
            height: 0,
            hash: genesis.hash(),
            state_root: genesis_state_root,
            timestamp_ms: 0,
        }
    }
}

impl Block {
    /// The canonical encoding (the consensus payload), framed: the header's canonical
    /// encoding after its length as 4 bytes big-endian (the *head*), then the canonical
    /// encoding of the transactions (the *body*).
    pub fn encode(&self) -> Vec<u8> {
        Self::frame(&self.header, &self.transactions)
    }

    /// [`Self::encode`] of the block of `header` and `transactions` (the same bytes), from
    /// borrowed transactions: a proposer keeps the verified ones it selected.
    pub fn encode_borrowed(header: &BlockHeader, transactions: &[&SignedTransaction]) -> Vec<u8> {
        Self::frame(header, &transactions)
    }

    /// A sequence serializes the same whether it holds values or references to them.
    fn frame<T: Serialize>(header: &BlockHeader, transactions: &T) -> Vec<u8> {
        let header = codec::encode(header);
        let transactions = codec::encode(transactions);
        // A header is a few hundred bytes: its length always fits.
        let length = u32::try_from(header.len()).unwrap_or(u32::MAX);
        [&length.to_be_bytes()[..], &header, &transactions].concat()
    }

    /// Decodes a block of at most `limit` bytes (callers pass the consensus payload bound).
    /// Only the canonical encoding decodes: one frame, canonical header and transactions.
    pub fn decode(bytes: &[u8], limit: u64) -> Result<Block, DecodeError> {
        let (head, body, limit) = Self::framed(bytes, limit)?;
        Ok(Block {
            header: Self::decode_head(head)?,
            transactions: codec::decode(body, limit)?,
        })
    }

    /// The header of an encoded block of at most `limit` bytes, without decoding its
    /// transactions (what links a block to its parent is all in the header; the block hash
    /// covers the transactions' bytes as they are). Only a canonical header decodes.
    pub fn decode_header(bytes: &[u8], limit: u64) -> Result<BlockHeader, DecodeError> {
        let (head, _, _) = Self::framed(bytes, limit)?;
        Self::decode_head(head)
    }

    /// An encoded block's head and body ([`Self::split`]) if it is at most `limit` bytes
    /// (capped), with the limit that applies.
    fn framed(bytes: &[u8], limit: u64) -> Result<(&[u8], &[u8], u64), DecodeError> {
        let limit = limit.min(DECODE_CAP_BYTES);
        if bytes.len() as u64 > limit {
            return Err(DecodeError::TooLarge {
                got: bytes.len(),
                limit,
            });
        }
        let (head, body) = Self::split(bytes).ok_or_else(|| {
            DecodeError::Malformed(
                "no block frame: the header's length is missing or runs past the end".into(),
            )
        })?;
        Ok((head, body, limit))
    }

    /// An encoded block's head (the header's length and encoding) and body (the
    /// transactions' encoding); `None` if the bytes are not framed.
    pub fn split(encoded: &[u8]) -> Option<(&[u8], &[u8])> {
        let prefix: [u8; 4] = encoded.get(..4)?.try_into().ok()?;
        let end = usize::try_from(u32::from_be_bytes(prefix))
            .ok()?
            .checked_add(4)?;
        (end <= encoded.len()).then(|| encoded.split_at(end))
    }

    /// The header in a block's head (as [`Self::split`] gives it), canonical only.
    pub fn decode_head(head: &[u8]) -> Result<BlockHeader, DecodeError> {
        match Self::split(head) {
            Some((_, [])) => {
                let header = head.get(4..).unwrap_or_default();
                codec::decode(header, header.len() as u64)
            }
            _ => Err(DecodeError::Malformed(
                "the head's length prefix does not match the header".into(),
            )),
        }
    }

    /// The block hash of an encoded block: the consensus digest
    /// (`interpool_consensus::Digest::of`), for a framed block
    /// [`Self::hash_of_parts`] of its head and the SHA-256 of its body.
    pub fn hash_of(encoded: &[u8]) -> Hash {
        match Self::split(encoded) {
            Some((head, body)) => Self::hash_of_parts(head, &sha256(&[body])),
            None => sha256(&[RAW_PAYLOAD_TAG, encoded]),
        }
    }

    /// The block hash from the block's head and the SHA-256 of its transactions' encoding:
    /// what an account proof carries instead of the whole block, so that a customer checks
    /// the certified state root without seeing anyone's transfers.
    pub fn hash_of_parts(head: &[u8], transactions_digest: &Hash) -> Hash {
        sha256(&[FRAMED_PAYLOAD_TAG, head, transactions_digest.as_bytes()])
    }

    /// This block's hash.
    pub fn hash(&self) -> Hash {
        Self::hash_of(&self.encode())
    }

    /// Checks the header against the tip it claims to extend. Transactions are checked
    /// separately (their signatures, once per node).
    pub fn check_extends(&self, tip: &ChainTip) -> Result<(), BlockError> {
        self.header.check_extends(tip)
    }
}

impl BlockHeader {
    /// Checks the header against the tip it claims to extend ([`Block::check_extends`]).
    pub fn check_extends(&self, tip: &ChainTip) -> Result<(), BlockError> {
        let header = self;
        if header.chain_id != tip.chain_id {
            return Err(BlockError::WrongChain {
                expected: tip.chain_id.clone(),
                got: header.chain_id.chars().take(64).collect(),
            });
        }
        // The tip's height is a count of executed blocks: it never reaches u64::MAX.
        let expected = tip.height.saturating_add(1);
        if header.height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: header.height,
            });
        }
        if header.parent_hash != tip.hash {
            return Err(BlockError::WrongParent {
                expected: tip.hash,
                got: header.parent_hash,
            });
        }
        if header.previous_state_root != tip.state_root {
            return Err(BlockError::WrongStateRoot {
                expected: tip.state_root,
                got: header.previous_state_root,
            });
        }
        if header.timestamp_ms < tip.timestamp_ms {
            return Err(BlockError::TimeTravel {
                parent: tip.timestamp_ms,
                got: header.timestamp_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{account, key};
    use crate::tx::{Body, Transaction};

    fn tip() -> ChainTip {
        ChainTip {
            chain_id: "test".into(),
            height: 4,
            hash: Hash([4; 32]),
            state_root: Hash([5; 32]),
            timestamp_ms: 1_000,
        }
    }

    fn block() -> Block {
        let tx = Transaction {
            chain_id: "test".into(),
            signer: account(1),
            nonce: 0,
            valid_until_height: 9,
            body: Body::SettleCycle,
        }
        .sign(&key(1));
        Block {
            header: BlockHeader {
                chain_id: "test".into(),
                height: 5,
                parent_hash: Hash([4; 32]),
                previous_state_root: Hash([5; 32]),
                timestamp_ms: 1_000,
                proposer: account(7),
            },
            transactions: vec![tx],
        }
    }

    #[test]
    fn round_trip_and_hash_is_of_the_header_and_the_transactions_digest() {
        let block = block();
        let bytes = block.encode();
        assert_eq!(Block::decode(&bytes, 1 << 20), Ok(block.clone()));
        let (head, body) = Block::split(&bytes).expect("framed");
        assert_eq!(Block::decode_head(head), Ok(block.header.clone()));
        assert_eq!(body, codec::encode(&block.transactions));
        assert_eq!(
            block.hash(),
            Block::hash_of_parts(head, &sha256(&[body])),
            "the hash follows from the head and the body's digest"
        );
        assert_eq!(
            block.hash(),
            sha256(&[
                FRAMED_PAYLOAD_TAG,
                head,
                sha256(&[&codec::encode(&block.transactions)]).as_bytes()
            ])
        );
        assert!(Block::decode(&bytes, 10).is_err());
        assert!(Block::decode(&bytes[..bytes.len() - 1], 1 << 20).is_err());
        // Another frame around the same bytes: refused, and hashed apart.
        let mut reframed = bytes.clone();
        reframed[3] = reframed[3].wrapping_add(1);
        assert!(Block::decode(&reframed, 1 << 20).is_err());
        assert_ne!(Block::hash_of(&reframed), block.hash());
        assert!(Block::decode(&bytes[..3], 1 << 20).is_err());
        assert!(Block::decode_head(&head[..head.len() - 1]).is_err());
        // The old, unframed encoding is not a block.
        assert!(Block::decode(&codec::encode(&block), 1 << 20).is_err());
    }

    #[test]
    fn the_header_decodes_alone_from_the_frame_and_nothing_else_does() {
        let block = block();
        let bytes = block.encode();
        assert_eq!(
            Block::decode_header(&bytes, u64::MAX).expect("header"),
            block.header
        );
        // The transactions are not decoded: a body that is not a transaction list still
        // gives the header (the block hash covers those bytes), and the block refuses.
        let (head, _) = Block::split(&bytes).expect("framed");
        let odd = [head, b"not transactions"].concat();
        assert_eq!(
            Block::decode_header(&odd, u64::MAX).expect("header"),
            block.header
        );
        assert!(Block::decode(&odd, u64::MAX).is_err());
        // No frame, a frame running past the end, a header that is not canonical, too big.
        assert!(Block::decode_header(b"", u64::MAX).is_err());
        assert!(Block::decode_header(b"not a block", u64::MAX).is_err());
        assert!(Block::decode_header(&bytes[..head.len() - 1], u64::MAX).is_err());
        let mut padded = head.to_vec();
        padded[3] = padded[3].wrapping_add(1);
        padded.push(0);
        assert!(Block::decode_header(&padded, u64::MAX).is_err());
        assert!(matches!(
            Block::decode_header(&bytes, 10),
            Err(DecodeError::TooLarge { limit: 10, .. })
        ));
    }

    #[test]
    fn a_block_of_borrowed_transactions_encodes_as_the_block() {
        let mut block = block();
        let second = Transaction {
            chain_id: "test".into(),
            signer: account(2),
            nonce: 3,
            valid_until_height: 7,
            body: Body::SettleCycle,
        }
        .sign(&key(2));
        block.transactions.push(second);
        let borrowed: Vec<&SignedTransaction> = block.transactions.iter().collect();
        assert_eq!(
            Block::encode_borrowed(&block.header, &borrowed),
            block.encode()
        );
        assert_eq!(
            Block::encode_borrowed(&block.header, &[]),
            Block {
                header: block.header.clone(),
                transactions: Vec::new()
            }
            .encode()
        );
    }

    #[test]
    fn header_must_extend_the_tip() {
        assert_eq!(block().check_extends(&tip()), Ok(()));
        let bad = |edit: &dyn Fn(&mut BlockHeader)| {
            let mut b = block();
            edit(&mut b.header);
            b.check_extends(&tip())
        };
        assert!(matches!(
            bad(&|h| h.chain_id = "x".into()),
            Err(BlockError::WrongChain { .. })
        ));
        assert!(matches!(
            bad(&|h| h.height = 6),
            Err(BlockError::WrongHeight {
                expected: 5,
                got: 6
            })
        ));
        assert!(matches!(
            bad(&|h| h.parent_hash = Hash::ZERO),
            Err(BlockError::WrongParent { .. })
        ));
        assert!(matches!(
            bad(&|h| h.previous_state_root = Hash::ZERO),
            Err(BlockError::WrongStateRoot { .. })
        ));
        assert!(matches!(
            bad(&|h| h.timestamp_ms = 999),
            Err(BlockError::TimeTravel { .. })
        ));
    }
}
