//! Block sync: a node that is behind asks a peer for committed blocks with their commit
//! certificates, verifies each certificate against the genesis validator set, and executes
//! the blocks in order. Validators use it to catch up; observers use nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use interpool_consensus::{CommitCertificate, Digest, ValidatorSet, MAX_PAYLOAD_BYTES};
use interpool_contracts::block::{Block, ChainTip};
use interpool_contracts::codec::{self, DecodeError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use interpool_contracts::AccountId;
use tokio::sync::mpsc;

use super::p2p::{P2pEvent, P2pHandle};
use crate::metrics::Metrics;
use crate::storage::{ChainStore, StorageError, Store};

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
    /// The encoded block (one byte string: `byte_string`).
    #[serde(with = "interpool_consensus::types::byte_string")]
    pub payload: Vec<u8>,
    /// The encoded commit certificate.
    #[serde(with = "interpool_consensus::types::byte_string")]
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
    /// Undecodable certificate.
    #[error("undecodable certificate: {0}")]
    Decode(#[from] interpool_consensus::DecodeError),
    /// The certificate does not prove this block at this height.
    #[error("certificate for height {height} does not verify: {message}")]
    Certificate {
        /// Height.
        height: u64,
        /// Why.
        message: String,
    },
    /// The blocks are not consecutive from the height asked for.
    #[error("heights not consecutive: block {index} is at height {got}")]
    NotConsecutive {
        /// Position of the first block out of place.
        index: usize,
        /// Its height.
        got: u64,
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
pub fn serve(store: &dyn ChainStore, request: SyncRequest) -> Result<SyncResponse, StorageError> {
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
    let certificate = CommitCertificate::decode(&block.certificate)?;
    certificate
        .verify(validators, block.height, &Digest::of(&block.payload))
        .map_err(|e| SyncError::Certificate {
            height: block.height,
            message: e.to_string(),
        })?;
    Ok(certificate)
}

/// Certified blocks from one peer.
#[derive(Debug)]
pub struct Fetched {
    /// The peer that sent them.
    pub peer: AccountId,
    /// The blocks, consecutive, each certified, linked to the tip they were asked after.
    pub blocks: Vec<SyncedBlock>,
    /// The peer's height when it answered (more may follow).
    pub peer_tip: u64,
}

/// Checks that `blocks` extend `tip` link by link: chain id, heights, parent hashes and
/// timestamps (a certified block of another chain or fork never reaches the commit path).
///
/// Only the headers are decoded: the links are in them and the block hash covers the
/// transactions' bytes as they are. The commit path decodes the transactions once, and
/// refuses a certified block whose transactions do not decode (decoding them here too was
/// 6 % of an observer's CPU at 7,000 transfers/s).
pub fn check_links(tip: &ChainTip, blocks: &[SyncedBlock]) -> Result<(), String> {
    let mut parent = tip.clone();
    for synced in blocks {
        let header = Block::decode_header(&synced.payload, MAX_PAYLOAD_BYTES as u64)
            .map_err(|e| format!("block {}'s header does not decode: {e}", synced.height))?;
        // The state root can only be checked by executing the parent; take the header's.
        parent.state_root = header.previous_state_root;
        header
            .check_extends(&parent)
            .map_err(|e| format!("block {} does not extend the chain: {e}", synced.height))?;
        parent = ChainTip {
            chain_id: parent.chain_id,
            height: header.height,
            hash: Block::hash_of(&synced.payload),
            state_root: parent.state_root,
            timestamp_ms: header.timestamp_ms,
        };
    }
    Ok(())
}

/// Checks a peer's answer to a request for blocks from `from`: the blocks are consecutive
/// from `from` and each one's certificate proves it ([`verify`]). Nothing in a response is
/// applied unless this passes.
pub fn check_response(
    response: &SyncResponse,
    from: u64,
    validators: &ValidatorSet,
) -> Result<(), SyncError> {
    for (index, block) in response.blocks.iter().enumerate() {
        if Some(block.height) != from.checked_add(index as u64) {
            return Err(SyncError::NotConsecutive {
                index,
                got: block.height,
            });
        }
    }
    for block in &response.blocks {
        verify(block, validators)?;
    }
    Ok(())
}

/// Most a peer's sync score grows by serving well: credit enough to outweigh an honest
/// peer's rare bad answer, too little for a byzantine one to bank against many.
const MAX_SCORE: i64 = 10;

/// The order to ask `peers` in on call number `turn`: in rotation, so that each peer in turn
/// is asked first, with those whose score is negative (more bad answers than good) after the
/// others. Serving well earns no place ahead of the others: a byzantine peer that answered
/// with one valid block just before the request timed out, every time, was asked first for
/// good (each answer scored), and a follower behind it advanced a block per timeout.
fn ask_order(
    mut peers: Vec<AccountId>,
    turn: usize,
    scores: &HashMap<AccountId, i64>,
) -> Vec<AccountId> {
    if peers.is_empty() {
        return peers;
    }
    let first = turn % peers.len();
    peers.rotate_left(first);
    peers.sort_by_key(|peer| scores.get(peer).copied().unwrap_or(0) < 0);
    peers
}

/// How a follower or a lagging validator fetches certified blocks from its peers: peers in
/// turn, starting from a different one each time; every block's certificate is verified
/// before anything is returned, and a peer that sent blocks that do not verify loses score
/// (and is asked last until good answers make up for it).
pub struct Fetcher {
    handle: P2pHandle,
    validators: ValidatorSet,
    metrics: Arc<Metrics>,
    /// Rotates the first peer asked.
    turn: AtomicUsize,
    /// Per peer: served well (+1) or sent what does not verify (−10), at most
    /// [`MAX_SCORE`]; bounded by the allowed set (only genesis keys connect).
    scores: Mutex<HashMap<AccountId, i64>>,
}

impl Fetcher {
    /// A fetcher over `handle` that verifies certificates against `validators`.
    pub fn new(handle: P2pHandle, validators: ValidatorSet, metrics: Arc<Metrics>) -> Self {
        Fetcher {
            handle,
            validators,
            metrics,
            turn: AtomicUsize::new(0),
            scores: Mutex::new(HashMap::new()),
        }
    }

    fn score(&self, peer: &AccountId, change: i64) {
        let mut scores = crate::app::lock(&self.scores);
        let score = scores.entry(*peer).or_insert(0);
        *score = score.saturating_add(change).clamp(-1_000, MAX_SCORE);
    }

    /// Connected peers in the order to ask them: best score first, ties broken by a
    /// rotation that moves on every call.
    async fn order(&self) -> Vec<AccountId> {
        let peers = self.handle.connected_peers().await;
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        ask_order(peers, turn, &crate::app::lock(&self.scores))
    }

    /// Asks peers for the blocks after `tip`; returns the first non-empty answer whose
    /// certificates all verify and whose blocks extend `tip` link by link (chain id,
    /// heights, parent hashes, timestamps; the state roots are checked by executing them).
    /// A peer whose answer does not is penalised and the next one asked.
    pub async fn fetch(&self, tip: &ChainTip) -> Option<Fetched> {
        let height = tip.height.saturating_add(1);
        let request = codec::encode(&SyncRequest {
            from: height,
            max_blocks: MAX_SYNC_BLOCKS,
        });
        for peer in self.order().await {
            let Ok(bytes) = self.handle.request(peer, request.clone()).await else {
                continue;
            };
            let Ok(response) = SyncResponse::decode(&bytes) else {
                tracing::warn!(%peer, "undecodable sync response");
                self.score(&peer, -10);
                continue;
            };
            let checked = check_response(&response, height, &self.validators)
                .map_err(|e| e.to_string())
                .and_then(|()| check_links(tip, &response.blocks));
            if let Err(reason) = checked {
                tracing::warn!(%peer, height, %reason, "peer sent blocks that do not verify; nothing applied");
                self.metrics.block_refused();
                self.score(&peer, -10);
                continue;
            }
            if !response.blocks.is_empty() {
                self.score(&peer, 1);
                return Some(Fetched {
                    peer,
                    blocks: response.blocks,
                    peer_tip: response.tip,
                });
            }
        }
        None
    }

    /// Penalises `peer` for a certified block that nonetheless cannot be applied here.
    pub fn penalise(&self, peer: &AccountId) {
        self.score(peer, -10);
    }
}

/// Serves sync requests (block sync, and state sync: [`super::state_sync`]) from the
/// store, on the blocking pool, at most `concurrency` at once; a request beyond that is
/// answered "unavailable" at once (the peer asks another).
pub async fn serve_requests(
    mut requests: mpsc::Receiver<P2pEvent>,
    store: Arc<Store>,
    concurrency: usize,
) {
    let state = Arc::new(super::state_sync::StateServer::default());
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    while let Some(event) = requests.recv().await {
        let P2pEvent::SyncRequest {
            from,
            bytes,
            respond,
        } = event
        else {
            continue;
        };
        let request = match super::state_sync::StateRequest::decode(&bytes) {
            Some(Ok(state)) => Err(state),
            Some(Err(error)) => {
                tracing::debug!(%from, %error, "bad state-sync request");
                continue;
            }
            None => match SyncRequest::decode(&bytes) {
                Ok(request) => Ok(request),
                Err(error) => {
                    tracing::debug!(%from, %error, "bad sync request");
                    continue; // dropping `respond` answers "unavailable"
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%from, "sync requests at their limit; answered unavailable");
            continue;
        };
        let store = store.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let answer = crate::app::view::run_blocking(move || {
                let _permit = permit;
                match request {
                    Ok(blocks) => {
                        serve(store.as_ref(), blocks).map(|response| codec::encode(&response))
                    }
                    Err(request) => state.serve(store.as_ref(), request),
                }
            })
            .await;
            match answer {
                Ok(bytes) => {
                    let _ = respond.send(bytes);
                }
                Err(error) => tracing::warn!(%error, "cannot serve a sync request"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use interpool_contracts::testkit::customer_seed;
    use interpool_contracts::Hash;

    /// A chain of three committed blocks in a temporary store; its blocks as sync serves them.
    fn served_chain() -> (tempfile::TempDir, ChainTip, Vec<SyncedBlock>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = testkit::genesis();
        let mut core = testkit::core(&genesis, dir.path(), testkit::limits());
        let start = core.tip().clone();
        for nonce in 0..3 {
            testkit::commit_block(
                &mut core,
                vec![testkit::transfer(customer_seed(0, 0), nonce)],
                1_000 + nonce,
            );
        }
        let response = serve(
            core.store().as_ref(),
            SyncRequest {
                from: 1,
                max_blocks: 10,
            },
        )
        .expect("serve");
        assert_eq!(response.tip, 3);
        (dir, start, response.blocks)
    }

    #[test]
    fn synced_blocks_must_extend_the_tip_link_by_link() {
        let (_dir, genesis_tip, blocks) = served_chain();
        check_links(&genesis_tip, &blocks).expect("the chain links");
        check_links(&genesis_tip, &blocks[..1]).expect("a prefix links");
        // Not after this tip: a gap, or the blocks of another chain.
        assert!(check_links(&genesis_tip, &blocks[1..]).is_err());
        let mut elsewhere = genesis_tip.clone();
        elsewhere.hash = Hash([9; 32]);
        assert!(check_links(&elsewhere, &blocks)
            .expect_err("another parent")
            .contains("does not extend"));
        let mut other_chain = genesis_tip.clone();
        other_chain.chain_id = "another".into();
        assert!(check_links(&other_chain, &blocks).is_err());
        // A middle block replaced by one that links to nothing here.
        let mut forked = blocks.clone();
        let mut block = Block::decode(&forked[1].payload, u64::MAX).expect("decode");
        block.header.parent_hash = Hash([7; 32]);
        forked[1].payload = block.encode();
        assert!(check_links(&genesis_tip, &forked).is_err());
        // Garbage is refused, not a panic.
        let mut garbage = blocks;
        garbage[2].payload = b"not a block".to_vec();
        assert!(check_links(&genesis_tip, &garbage).is_err());
    }

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

    /// Each peer in turn is asked first, however well one of them served; a peer with more
    /// bad answers than good is asked last. Before, the best-scored peer came first on
    /// every call, and a slow peer that answered a block at a time kept that place.
    #[test]
    fn peers_are_asked_first_in_turn_and_the_penalised_last() {
        let peers: Vec<AccountId> = (1..=4).map(|i| AccountId([i; 32])).collect();
        let mut scores = HashMap::new();
        scores.insert(peers[0], MAX_SCORE);
        scores.insert(peers[2], -10);
        let firsts: Vec<AccountId> = (0..4)
            .map(|turn| ask_order(peers.clone(), turn, &scores)[0])
            .collect();
        for peer in [peers[0], peers[1], peers[3]] {
            assert!(firsts.contains(&peer), "{peer} is asked first in its turn");
        }
        for turn in 0..4 {
            let order = ask_order(peers.clone(), turn, &scores);
            assert_eq!(order.len(), 4);
            assert_eq!(order[3], peers[2], "the penalised peer is asked last");
        }
        assert!(ask_order(Vec::new(), 3, &scores).is_empty());
    }
}
