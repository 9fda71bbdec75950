//! The application core: the one owner of chain state, and the ways into it.
//!
//! * [`core`]: the one writer — ledger, tip, store writes; build, validate, commit.
//! * [`replay`]: the one replay (start-up, audit) and the one block executor.
//! * [`admission`]: the one admission pipeline, for the API and gossip alike.
//! * [`checkpoint`]: the ledger state written every interval, and read back at start.
//! * [`statements`]: each closed cycle's statements, written by a thread of its own.
//! * [`mempool`]: the pending transactions.
//! * [`view`]: what readers read — the published view and the store, never the core.
//!
//! Who may change chain state and how readers read is in
//! `docs/adr/0008-application-core.md`.

pub mod admission;
pub mod checkpoint;
pub mod core;
pub mod mempool;
pub mod replay;
pub mod statements;
pub mod view;

pub use self::admission::{Admission, AdmissionSettings, Origin};
pub use self::checkpoint::{Checkpointer, StartReport};
pub use self::core::{BlockLimits, ChainError, Core, InvalidBlock, ProposalContext};
pub use self::mempool::{ClientBacklog, Mempool, MempoolLimits, SharedMempool};
pub use self::view::{ChainView, ReadLimits, Reader};

/// Locks a mutex of the node's shared state. A poisoned lock means another thread panicked
/// on a broken invariant while holding it, and continuing would be worse (STYLE.md §3).
#[allow(clippy::expect_used)]
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("a thread panicked while holding node state; stopping")
}
