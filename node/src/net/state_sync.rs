//! State sync: a new node (or one far behind) joins from a peer's state at a certified
//! height instead of replaying every block since the genesis (ADR 0011).
//!
//! What a peer serves is its last checkpoint (the state after block `C`, as state entries
//! ordered by state-tree key), described by an **offer**: the checkpoint, block `C` and block
//! `C + 1` with their commit certificates, and a **manifest**: the summaries of the state
//! tree's `2^d` subtrees at depth `d` ([`smt::Subtree`]), `d` chosen so that each subtree
//! holds about [`CHUNK_TARGET_ENTRIES`] entries. The joining node trusts nothing in it but
//! what it can check against the genesis validator set:
//!
//! 1. both certificates verify, block `C + 1` links to block `C` by hash, and the state root
//!    it names as `previous_state_root` is the checkpoint's (the state root after `C`, now
//!    certified by a quorum);
//! 2. the manifest hashes up to that root ([`smt::root_of`]);
//! 3. each **chunk** (the entries of one subtree, asked for one at a time, from any peer
//!    offering the same checkpoint) hashes to its subtree's summary in the manifest: a wrong
//!    chunk is refused, its peer penalised and the chunk asked of another;
//! 4. the ledger rebuilt from all of them ([`Ledger::from_state_entries`]) has that root
//!    and holds every invariant.
//!
//! The node then writes the entries as its own checkpoint, drops whatever blocks it had,
//! makes `C` its start ([`ChainStore::adopt_checkpoint`]) and follows blocks from `C + 1` as
//! usual. Its `earliest_height` is `C + 1`: it serves blocks from there on.
//!
//! On the wire, state-sync requests share the block-sync protocol, told apart by a prefix
//! ([`STATE_SYNC_MAGIC`]) that no block-sync request can start with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interpool_consensus::{ValidatorSet, MAX_PAYLOAD_BYTES};
use interpool_contracts::block::{Block, ChainTip};
use interpool_contracts::codec::{self, DecodeError};
use interpool_contracts::ledger::{StateEntry, MAX_ENTRY_BYTES};
use interpool_contracts::smt::{self, Subtree};
use interpool_contracts::{AccountId, Genesis, Hash, Ledger};
use serde::{Deserialize, Serialize};

use super::p2p::P2pHandle;
use super::sync::{verify, SyncedBlock, MAX_SYNC_RESPONSE_BYTES};
use crate::app::checkpoint::read_entries;
use crate::metrics::Metrics;
use crate::storage::{ChainStore, CheckpointInfo, StorageError};

/// Every state-sync request starts with these bytes (a block-sync request is a short
/// canonical encoding that never does).
pub const STATE_SYNC_MAGIC: &[u8] = b"interpool/state-sync/v1\0";
/// Entries a chunk holds, about: the manifest's depth is chosen for it.
pub const CHUNK_TARGET_ENTRIES: u64 = 2_000;
/// Bytes a chunk holds, about, and the depth is chosen for this too: an entry of a block's
/// end-to-end ids is up to about 2.7 MB, and a chunk must stay well within a peer's
/// message bound (16 MiB by default) whichever entries its subtree happens to hold.
pub const CHUNK_TARGET_BYTES: u64 = 1 << 20;
/// Deepest manifest (`2^16` subtrees).
pub const MAX_MANIFEST_DEPTH: u8 = 16;
/// A chunk larger than this many entries is not served (nor accepted).
pub const MAX_CHUNK_ENTRIES: usize = 40_000;

/// A state-sync request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateRequest {
    /// "What state can you serve?"
    Offer,
    /// The entries of subtree `index` at `depth` of the checkpoint at `height`.
    Chunk {
        /// The checkpoint's height.
        height: u64,
        /// The manifest's depth.
        depth: u8,
        /// The subtree.
        index: u32,
    },
}

impl StateRequest {
    /// The request on the wire.
    pub fn encode(&self) -> Vec<u8> {
        [STATE_SYNC_MAGIC, &codec::encode(self)].concat()
    }

    /// A state-sync request from a peer (`None`: not one; bounded).
    pub fn decode(bytes: &[u8]) -> Option<Result<StateRequest, DecodeError>> {
        let body = bytes.strip_prefix(STATE_SYNC_MAGIC)?;
        Some(codec::decode(body, 64))
    }
}

/// What a peer can serve: its last checkpoint, certified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateOffer {
    /// The checkpoint (height `C`).
    pub checkpoint: CheckpointInfo,
    /// Block `C` with its certificate.
    pub block: SyncedBlock,
    /// Block `C + 1` with its certificate: its header certifies the state root after `C`.
    pub next: SyncedBlock,
    /// The manifest's depth `d`.
    pub depth: u8,
    /// The summaries of the `2^d` subtrees at depth `d`, in key order.
    pub manifest: Vec<Subtree>,
}

/// The answer to [`StateRequest::Offer`] (`None`: no checkpoint to serve).
type OfferResponse = Option<StateOffer>;
/// The answer to [`StateRequest::Chunk`] (`None`: not that checkpoint any more).
type ChunkResponse = Option<Vec<StateEntry>>;

/// The manifest depth for a state of `entries` entries of `bytes` bytes in all: chunks of
/// about [`CHUNK_TARGET_ENTRIES`] entries and at most about [`CHUNK_TARGET_BYTES`].
fn depth_for(entries: u64, bytes: u64) -> u8 {
    let mut depth = 0;
    while depth < MAX_MANIFEST_DEPTH
        && ((entries >> depth) > CHUNK_TARGET_ENTRIES || (bytes >> depth) > CHUNK_TARGET_BYTES)
    {
        depth += 1;
    }
    depth
}

/// The manifest of sorted entries at `depth`.
fn manifest(entries: &[StateEntry], depth: u8) -> Vec<Subtree> {
    let leaves: Vec<(Hash, Hash)> = entries.iter().map(StateEntry::leaf).collect();
    let mut summaries = Vec::with_capacity(1 << depth);
    let mut rest = leaves.as_slice();
    for index in 0..(1u32 << depth) {
        let (part, after) =
            rest.split_at(rest.partition_point(|(key, _)| smt::prefix(key, depth) == index));
        summaries.push(smt::subtree(part, usize::from(depth)));
        rest = after;
    }
    summaries
}

/// Serves state-sync requests from the store's last checkpoint; the offer (whose manifest
/// costs a pass over the checkpoint) is computed once per checkpoint.
#[derive(Default)]
pub struct StateServer {
    offer: Mutex<Option<Arc<StateOffer>>>,
}

impl StateServer {
    /// Answers `request` (encoded response).
    pub fn serve(
        &self,
        store: &dyn ChainStore,
        request: StateRequest,
    ) -> Result<Vec<u8>, StorageError> {
        match request {
            StateRequest::Offer => Ok(codec::encode(&self.offer(store)?.as_deref().cloned())),
            StateRequest::Chunk {
                height,
                depth,
                index,
            } => {
                // The last checkpoint, or the one before (a join that started on it goes
                // on while the next is written).
                let kept = store.checkpoint()?.is_some_and(|c| c.height == height)
                    || store
                        .previous_checkpoint()?
                        .is_some_and(|c| c.height == height);
                let mut answer: ChunkResponse = if kept && depth <= MAX_MANIFEST_DEPTH {
                    chunk(store, height, depth, index)?
                } else {
                    None
                };
                if let Some(entry) = answer.as_mut().and_then(|entries| entries.first_mut()) {
                    if crate::failpoints::corrupt_state_chunk() {
                        entry.value.push(0);
                    }
                }
                Ok(codec::encode(&answer))
            }
        }
    }

    fn offer(&self, store: &dyn ChainStore) -> Result<Option<Arc<StateOffer>>, StorageError> {
        let Some(info) = store.checkpoint()? else {
            return Ok(None);
        };
        if let Some(offer) = crate::app::lock(&self.offer).as_ref() {
            if offer.checkpoint == info {
                return Ok(Some(offer.clone()));
            }
        }
        let synced = |height: u64| -> Result<Option<SyncedBlock>, StorageError> {
            Ok(match (store.block(height)?, store.certificate(height)?) {
                (Some(payload), Some(certificate)) => Some(SyncedBlock {
                    height,
                    payload,
                    certificate,
                }),
                _ => None,
            })
        };
        let (Some(block), Some(next)) = (synced(info.height)?, synced(info.height + 1)?) else {
            return Ok(None);
        };
        let entries = read_entries(store, info.height)?;
        let bytes = entries
            .iter()
            .map(codec::encoded_len)
            .fold(0u64, u64::saturating_add);
        let depth = depth_for(entries.len() as u64, bytes);
        let offer = Arc::new(StateOffer {
            manifest: manifest(&entries, depth),
            checkpoint: info,
            block,
            next,
            depth,
        });
        *crate::app::lock(&self.offer) = Some(offer.clone());
        Ok(Some(offer))
    }
}

/// The entries of subtree `index` at `depth` of the checkpoint at `height` (`None` if it
/// holds more than [`MAX_CHUNK_ENTRIES`], or more than [`MAX_SYNC_RESPONSE_BYTES`] encoded:
/// no answer could carry it, and a peer asking for a shallow depth must not make this node
/// read and hold the whole state for nothing).
fn chunk(
    store: &dyn ChainStore,
    height: u64,
    depth: u8,
    index: u32,
) -> Result<ChunkResponse, StorageError> {
    let start = smt::prefix_start(index, depth);
    let after = predecessor(&start);
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    loop {
        let from = entries
            .last()
            .map(|e: &StateEntry| e.key.tree_key())
            .or(after);
        // Pages of 128: an entry may be megabytes (a block's end-to-end ids), and the byte
        // budget is checked between pages' entries, not after a page of thousands.
        let page = store.checkpoint_entries(height, from.as_ref(), 128)?;
        let full = page.len() == 128;
        for entry in page {
            if smt::prefix(&entry.key.tree_key(), depth) != index {
                return Ok(Some(entries));
            }
            bytes = bytes.saturating_add(codec::encoded_len(&entry));
            entries.push(entry);
            if entries.len() > MAX_CHUNK_ENTRIES || bytes > MAX_SYNC_RESPONSE_BYTES as u64 {
                return Ok(None);
            }
        }
        if !full {
            return Ok(Some(entries));
        }
    }
}

/// The key just below `key` (`None` for zero).
fn predecessor(key: &Hash) -> Option<Hash> {
    let mut bytes = key.0;
    for byte in bytes.iter_mut().rev() {
        if *byte > 0 {
            *byte -= 1;
            return Some(Hash(bytes));
        }
        *byte = 0xff;
    }
    None
}

/// Why a peer's offer or chunk was refused.
fn check_offer(
    offer: &StateOffer,
    validators: &ValidatorSet,
    chain_id: &str,
) -> Result<ChainTip, String> {
    let info = &offer.checkpoint;
    if offer.block.height != info.height || Some(offer.next.height) != info.height.checked_add(1) {
        return Err("the blocks are not the checkpoint's and the next".into());
    }
    verify(&offer.block, validators).map_err(|e| e.to_string())?;
    verify(&offer.next, validators).map_err(|e| e.to_string())?;
    let block = Block::decode(&offer.block.payload, MAX_PAYLOAD_BYTES as u64)
        .map_err(|e| format!("block {} does not decode: {e}", info.height))?;
    let next = Block::decode(&offer.next.payload, MAX_PAYLOAD_BYTES as u64)
        .map_err(|e| format!("block {} does not decode: {e}", offer.next.height))?;
    let hash = Block::hash_of(&offer.block.payload);
    if block.header.chain_id != chain_id || block.header.height != info.height {
        return Err("the checkpoint's block is not of this chain at its height".into());
    }
    if next.header.parent_hash != hash || hash != info.block_hash {
        return Err("the next block does not link to the checkpoint's block".into());
    }
    if next.header.previous_state_root != info.state_root {
        return Err(format!(
            "the certified state root after {} is {}, the checkpoint says {}",
            info.height, next.header.previous_state_root, info.state_root
        ));
    }
    if offer.depth > MAX_MANIFEST_DEPTH || offer.manifest.len() != 1usize << offer.depth {
        return Err("the manifest has the wrong size".into());
    }
    if smt::root_of(&offer.manifest) != Some(info.state_root) {
        return Err("the manifest does not hash to the certified state root".into());
    }
    Ok(ChainTip {
        chain_id: chain_id.to_string(),
        height: info.height,
        hash,
        state_root: info.state_root,
        timestamp_ms: block.header.timestamp_ms,
    })
}

/// The peers that offered the state `chosen` offers: the same certified height, block and
/// state root, whatever else their offers say (their entry counts and sizes are not
/// certified: a peer's odd figure must not leave it the only source, to serve the state or
/// withhold it).
fn sources_of(offers: &[(AccountId, StateOffer, ChainTip)], chosen: &StateOffer) -> Vec<AccountId> {
    let same = |info: &CheckpointInfo| {
        (info.height, info.block_hash, info.state_root)
            == (
                chosen.checkpoint.height,
                chosen.checkpoint.block_hash,
                chosen.checkpoint.state_root,
            )
    };
    offers
        .iter()
        .filter(|(_, offer, _)| same(&offer.checkpoint))
        .map(|(peer, _, _)| *peer)
        .collect()
}

/// Checks a chunk against its subtree's summary.
fn check_chunk(
    entries: &[StateEntry],
    depth: u8,
    index: u32,
    expected: Subtree,
) -> Result<(), String> {
    let leaves: Vec<(Hash, Hash)> = entries.iter().map(StateEntry::leaf).collect();
    if leaves
        .windows(2)
        .any(|pair| matches!(pair, [a, b] if a.0 >= b.0))
    {
        return Err("entries not in strict key order".into());
    }
    if leaves
        .iter()
        .any(|(key, _)| smt::prefix(key, depth) != index)
    {
        return Err("an entry outside the chunk's subtree".into());
    }
    if smt::subtree(&leaves, usize::from(depth)) != expected {
        return Err("the entries do not hash to the manifest's summary".into());
    }
    Ok(())
}

/// What [`join`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The certified height joined at.
    pub height: u64,
    /// State entries fetched.
    pub entries: u64,
    /// Chunks refused (and fetched again elsewhere).
    pub refused_chunks: u64,
    /// How long it took.
    pub took: Duration,
}

/// Joins from a peer's state if a peer offers a checkpoint more than `behind` blocks above
/// `local` (the stored height); `Ok(None)`: none does (the node replays and follows as
/// usual). Waits up to `wait` for peers to connect.
pub async fn join(
    handle: &P2pHandle,
    validators: &ValidatorSet,
    genesis: &Genesis,
    store: Arc<dyn ChainStore>,
    behind: u64,
    wait: Duration,
    metrics: &Metrics,
) -> anyhow::Result<Option<Joined>> {
    let started = Instant::now();
    let local = store.height()?;
    let deadline = Instant::now() + wait;
    let mut scores: HashMap<AccountId, i64> = HashMap::new();
    loop {
        let peers = handle.connected_now();
        if peers.is_empty() {
            if Instant::now() >= deadline {
                tracing::warn!("state sync: no peer connected; starting from the local chain");
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Every peer's offer; the highest valid one that is far enough ahead wins.
        let mut offers: Vec<(AccountId, StateOffer, ChainTip)> = Vec::new();
        let mut answered = 0;
        for peer in &peers {
            let Ok(bytes) = handle.request(*peer, StateRequest::Offer.encode()).await else {
                continue;
            };
            answered += 1;
            let offer: OfferResponse =
                match codec::decode(&bytes, MAX_SYNC_RESPONSE_BYTES as u64 + 4096) {
                    Ok(offer) => offer,
                    Err(error) => {
                        tracing::warn!(%peer, %error, "state sync: undecodable offer");
                        *scores.entry(*peer).or_default() -= 10;
                        continue;
                    }
                };
            let Some(offer) = offer else { continue };
            match check_offer(&offer, validators, &genesis.chain_id) {
                Ok(tip) => offers.push((*peer, offer, tip)),
                Err(reason) => {
                    tracing::warn!(%peer, %reason, "state sync: offer refused");
                    metrics.block_refused();
                    *scores.entry(*peer).or_default() -= 10;
                }
            }
        }
        let Some(best) = offers.iter().map(|(_, o, _)| o.checkpoint.height).max() else {
            // Peers answered and none has a checkpoint yet (a young chain): block sync
            // from the genesis is short.
            if answered > 0 || Instant::now() >= deadline {
                tracing::info!("state sync: no peer offers a state; starting from the local chain");
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if best <= local.saturating_add(behind) {
            tracing::info!(
                local,
                offered = best,
                "state sync: not far enough behind to join from a peer's state"
            );
            return Ok(None);
        }
        let (_, offer, tip) = offers
            .iter()
            .find(|(_, o, _)| o.checkpoint.height == best)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("state sync: the best offer vanished"))?;
        let mut sources = sources_of(&offers, &offer);
        tracing::info!(
            height = best,
            entries = offer.checkpoint.entries,
            chunks = offer.manifest.len(),
            peers = sources.len(),
            "state sync: joining from a certified state"
        );
        match fetch_chunks(handle, &offer, &mut sources, &mut scores, metrics).await {
            Some((entries, refused_chunks)) => {
                let count = entries.len() as u64;
                let ledger = Ledger::from_state_entries(genesis, best, entries.iter().cloned())?;
                if ledger.state_root() != tip.state_root {
                    anyhow::bail!("state sync: the verified chunks rebuilt another state root");
                }
                install(store.as_ref(), &tip, entries, local)?;
                let joined = Joined {
                    height: best,
                    entries: count,
                    refused_chunks,
                    took: started.elapsed(),
                };
                tracing::info!(
                    height = best,
                    entries = count,
                    refused_chunks,
                    millis = joined.took.as_millis() as u64,
                    "state sync: joined"
                );
                return Ok(Some(joined));
            }
            None => {
                tracing::warn!(
                    height = best,
                    "state sync: no peer served every chunk; asking again"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Fetches and checks every chunk of `offer` from `sources` in turn; `None` if some chunk
/// could not be had from any of them.
async fn fetch_chunks(
    handle: &P2pHandle,
    offer: &StateOffer,
    sources: &mut [AccountId],
    scores: &mut HashMap<AccountId, i64>,
    metrics: &Metrics,
) -> Option<(Vec<StateEntry>, u64)> {
    // Not sized by the offer's `entries`: nothing certifies it (the chunks are checked
    // against the manifest, the manifest against the certified root), and a peer's
    // `u64::MAX` would abort the node here.
    let mut entries = Vec::new();
    let mut refused = 0u64;
    for (index, expected) in offer.manifest.iter().enumerate() {
        if *expected == Subtree::Empty {
            continue;
        }
        let index = u32::try_from(index).ok()?;
        sources.sort_by_key(|peer| std::cmp::Reverse(scores.get(peer).copied().unwrap_or(0)));
        let request = StateRequest::Chunk {
            height: offer.checkpoint.height,
            depth: offer.depth,
            index,
        }
        .encode();
        let mut got = None;
        for peer in sources.iter() {
            let Ok(bytes) = handle.request(*peer, request.clone()).await else {
                continue;
            };
            let limit = (MAX_CHUNK_ENTRIES as u64).saturating_mul(MAX_ENTRY_BYTES.min(4096));
            let chunk: ChunkResponse = match codec::decode(&bytes, limit) {
                Ok(chunk) => chunk,
                Err(error) => {
                    tracing::warn!(%peer, index, %error, "state sync: undecodable chunk refused");
                    refused += 1;
                    metrics.block_refused();
                    *scores.entry(*peer).or_default() -= 10;
                    continue;
                }
            };
            let Some(chunk) = chunk else {
                // It offered this state and does not serve it: ask it last from now on.
                *scores.entry(*peer).or_default() -= 1;
                continue;
            };
            match check_chunk(&chunk, offer.depth, index, *expected) {
                Ok(()) => {
                    *scores.entry(*peer).or_default() += 1;
                    got = Some(chunk);
                    break;
                }
                Err(reason) => {
                    tracing::warn!(%peer, index, %reason, "state sync: wrong chunk refused; peer penalised");
                    refused += 1;
                    metrics.block_refused();
                    *scores.entry(*peer).or_default() -= 10;
                }
            }
        }
        entries.extend(got?);
    }
    Some((entries, refused))
}

/// Makes the verified state this node's start: the entries as its checkpoint, its old
/// blocks dropped, the chain's start moved to the checkpoint.
fn install(
    store: &dyn ChainStore,
    tip: &ChainTip,
    entries: Vec<StateEntry>,
    local: u64,
) -> Result<(), StorageError> {
    store.write_checkpoint(tip, &mut entries.into_iter())?;
    if local > 0 {
        store.prune_below(local + 1)?;
    }
    store.adopt_checkpoint(tip.height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_are_told_apart_from_block_sync() {
        for request in [
            StateRequest::Offer,
            StateRequest::Chunk {
                height: 7,
                depth: 3,
                index: 5,
            },
        ] {
            let bytes = request.encode();
            assert_eq!(
                StateRequest::decode(&bytes).and_then(Result::ok),
                Some(request)
            );
            assert!(StateRequest::decode(&bytes[..bytes.len() - 1])
                .expect("prefixed")
                .is_err());
        }
        let block_sync = codec::encode(&super::super::sync::SyncRequest {
            from: 1,
            max_blocks: 64,
        });
        assert!(StateRequest::decode(&block_sync).is_none());
    }

    #[test]
    fn predecessor_and_depths() {
        assert_eq!(predecessor(&Hash::ZERO), None);
        let mut one = [0; 32];
        one[31] = 1;
        assert_eq!(predecessor(&Hash(one)), Some(Hash::ZERO));
        let mut top = [0; 32];
        top[0] = 0x80;
        let below = predecessor(&Hash(top)).expect("below");
        assert_eq!(below.0[0], 0x7f);
        assert!(below.0[1..].iter().all(|b| *b == 0xff));
        assert_eq!(depth_for(0, 0), 0);
        assert_eq!(depth_for(2_000, 1 << 20), 0);
        assert_eq!(depth_for(2_001, 0), 1);
        assert_eq!(depth_for(100_000, 0), 6);
        assert_eq!(depth_for(u64::MAX, 0), MAX_MANIFEST_DEPTH);
        // Few entries, many bytes (a window of blocks' end-to-end ids): the bytes decide.
        assert_eq!(depth_for(1_000, 1 << 20), 0);
        assert_eq!(depth_for(1_000, (1 << 20) + 1), 1);
        assert_eq!(depth_for(86_400, 86_400 * 32_000), 12);
        assert_eq!(depth_for(1, u64::MAX), MAX_MANIFEST_DEPTH);
    }

    /// An offer as a peer sends it, for a checkpoint at `height` with `entries` entries
    /// (blocks and manifest empty: what is checked here needs none).
    fn offer(height: u64, root: u8, entries: u64) -> StateOffer {
        let block = |height| SyncedBlock {
            height,
            payload: Vec::new(),
            certificate: Vec::new(),
        };
        StateOffer {
            checkpoint: CheckpointInfo {
                height,
                block_hash: Hash([root; 32]),
                state_root: Hash([root; 32]),
                timestamp_ms: 0,
                entries,
                bytes: 0,
            },
            block: block(height),
            next: block(height.wrapping_add(1)),
            depth: 0,
            manifest: Vec::new(),
        }
    }

    /// Nothing a peer says about a state beyond its certified height, block and root
    /// (the entry count, the size) makes it the only source of that state: an offer with
    /// an odd count left its peer the only one asked for the chunks, free to withhold them.
    /// (Its count also sized the entries' vector: `u64::MAX` aborted the joining node.)
    #[test]
    fn a_state_is_fetched_from_every_peer_that_offers_it_whatever_its_counts() {
        let tip = |o: &StateOffer| ChainTip {
            chain_id: "c".into(),
            height: o.checkpoint.height,
            hash: o.checkpoint.block_hash,
            state_root: o.checkpoint.state_root,
            timestamp_ms: 0,
        };
        let peer = |i: u8| AccountId([i; 32]);
        let hostile = offer(100, 7, u64::MAX);
        let offers: Vec<_> = [
            (peer(1), hostile.clone()),
            (peer(2), offer(100, 7, 5_000)),
            (peer(3), offer(100, 7, 5_000)),
            (peer(4), offer(100, 8, 5_000)),
            (peer(5), offer(99, 7, 5_000)),
        ]
        .into_iter()
        .map(|(p, o)| {
            let t = tip(&o);
            (p, o, t)
        })
        .collect();
        assert_eq!(
            sources_of(&offers, &hostile),
            vec![peer(1), peer(2), peer(3)]
        );
        // A checkpoint at the last height has no next block: refused, not an overflow.
        let validators = crate::testkit::validator_set(&crate::testkit::genesis());
        let last = offer(u64::MAX, 7, 0);
        assert!(check_offer(&last, &validators, "c").is_err());
    }

    /// A chunk whose entries will not fit in an answer is refused after reading what
    /// exceeds the bound, whatever depth a peer asks for; one that fits is served whole.
    /// Before, up to 40,000 entries of megabytes each were read and held for a depth-0 ask.
    #[test]
    fn a_chunk_too_large_to_answer_is_refused() {
        use interpool_contracts::ledger::StateKey;
        let store = crate::storage::mem::MemStore::new();
        let tip = ChainTip {
            chain_id: "c".into(),
            height: 5,
            hash: Hash([1; 32]),
            state_root: Hash([2; 32]),
            timestamp_ms: 0,
        };
        let big = |height: u64| StateEntry {
            key: StateKey::EndToEndIds(height),
            value: vec![7; 1 << 20],
        };
        store
            .write_checkpoint(&tip, &mut (0..20).map(big))
            .expect("written");
        assert_eq!(
            chunk(&store, 5, 0, 0).expect("read"),
            None,
            "20 MiB at depth 0"
        );
        let small = crate::storage::mem::MemStore::new();
        small
            .write_checkpoint(&tip, &mut (0..3).map(big))
            .expect("written");
        assert_eq!(
            chunk(&small, 5, 0, 0).expect("read").map(|e| e.len()),
            Some(3)
        );
    }
}
