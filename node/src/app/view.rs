//! How everything but the core reads chain state: a published [`ChainView`] (the tip and the
//! ledger after the last commit, replaced as a whole by each commit) and the store through a
//! shared handle. Readers never take a lock the consensus driver needs: the view is a
//! `watch` channel's value, RocksDB reads need no lock of ours, and reads that block or
//! decode run on tokio's blocking pool, never on the async workers. Expensive reads have a
//! concurrency limit and are refused at once beyond it ([`Busy`]), so a flood of them
//! cannot queue up work the node cannot do.

use std::sync::Arc;

use interpool_contracts::block::ChainTip;
use interpool_contracts::{Hash, Ledger};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::storage::Store;

/// The chain as of one committed height.
#[derive(Debug)]
pub struct ChainView {
    /// The last committed block.
    pub tip: ChainTip,
    /// The genesis hash.
    pub genesis_hash: Hash,
    /// The ledger after `tip`.
    pub ledger: Arc<Ledger>,
}

/// An expensive read was refused: its concurrency limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// The limit.
    pub limit: usize,
}

/// Limits on concurrent reads, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// History pages, proofs, block reads: refused beyond this many at once.
    pub expensive_reads: usize,
    /// Blocking reads of event streams (each stream reads one block at a time; beyond this
    /// many at once a stream waits its turn).
    pub stream_reads: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            expensive_reads: 64,
            stream_reads: 8,
        }
    }
}

/// A reader's handle: the published view, the store, and the read limits. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    store: Arc<Store>,
    view: watch::Receiver<Arc<ChainView>>,
    expensive: Arc<Semaphore>,
    expensive_limit: usize,
    streams: Arc<Semaphore>,
}

impl Reader {
    /// A reader of `store` and of the views the core publishes.
    pub fn new(
        store: Arc<Store>,
        view: watch::Receiver<Arc<ChainView>>,
        limits: ReadLimits,
    ) -> Self {
        Reader {
            store,
            view,
            expensive: Arc::new(Semaphore::new(limits.expensive_reads)),
            expensive_limit: limits.expensive_reads,
            streams: Arc::new(Semaphore::new(limits.stream_reads)),
        }
    }

    /// The chain as of the last commit.
    pub fn view(&self) -> Arc<ChainView> {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on every commit.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ChainView>> {
        self.view.clone()
    }

    /// The store (for reads only; the core is its one writer).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Runs a cheap blocking read (a few point lookups) on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> T {
        let store = self.store.clone();
        run_blocking(move || read(&store)).await
    }

    /// Runs an expensive read (many lookups, decoding) on the blocking pool, or refuses at
    /// once if the limit of concurrent expensive reads is reached.
    pub async fn read_expensive<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = self
            .expensive
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy {
                limit: self.expensive_limit,
            })?;
        let store = self.store.clone();
        Ok(run_blocking(move || {
            let _permit: OwnedSemaphorePermit = permit;
            read(&store)
        })
        .await)
    }

    /// Runs one read of an event stream, waiting for a turn if many streams read at once.
    pub async fn read_for_stream<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Option<T> {
        let permit = self.streams.clone().acquire_owned().await.ok()?;
        let store = self.store.clone();
        Some(
            run_blocking(move || {
                let _permit: OwnedSemaphorePermit = permit;
                read(&store)
            })
            .await,
        )
    }
}

/// Runs `work` on tokio's blocking pool. A panic in it is a broken invariant of ours: it is
/// propagated rather than turned into an answer.
pub async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Drops `value` on a background thread. A replaced [`ChainView`] is often the last holder of
/// the ledger's nodes that the next block copied on write: freeing them walks thousands of
/// tree nodes (7 % of a validator's CPU at 4,000 transfers/s), work that need not hold up
/// the commit path. At most [`RETIRED_AHEAD`] wait for the thread; beyond that (it fell
/// behind) the caller drops the value itself, as before, so old views never pile up.
pub fn retire<T: Send + 'static>(value: T) {
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::sync::OnceLock;
    type Retired = Box<dyn Send>;
    static RECLAIMER: OnceLock<Option<SyncSender<Retired>>> = OnceLock::new();
    let reclaimer = RECLAIMER.get_or_init(|| {
        let (send, receive) = sync_channel::<Retired>(RETIRED_AHEAD);
        std::thread::Builder::new()
            .name("reclaimer".into())
            .spawn(move || receive.into_iter().for_each(drop))
            .ok()
            .map(|_| send)
    });
    let value: Retired = Box::new(value);
    // Without the thread (it could not be spawned), or with it busy, the value is dropped
    // here.
    if let Some(sender) = reclaimer {
        let _ = sender.try_send(value);
    }
}

/// How many retired values may wait for the reclaimer thread.
pub const RETIRED_AHEAD: usize = 4;
