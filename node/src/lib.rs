//! Interpool node internals, by responsibility:
//!
//! * [`app`]: the application core — the one owner of chain state (ledger, tip, store
//!   writes), the one commit path, the one replay, the one admission pipeline, the mempool,
//!   and the published view readers read;
//! * [`driver`]: the consensus driver, which runs the engine and owns a validator's core;
//! * [`net`]: libp2p, the routing of peer events by kind, block sync, the observers'
//!   follower;
//! * [`storage`]: the RocksDB store;
//! * [`api`]: the HTTP API, one module per resource;
//! * [`audit`]: `interpool-node audit`;
//! * [`metrics`]: Prometheus metrics;
//! * [`service`]: `interpool-node run`, which wires them together.
//!
//! See `ARCHITECTURE.md` for the map and `docs/adr/0008-application-core.md` for who may
//! change chain state.

#![deny(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod api;
pub mod app;
pub mod audit;
pub mod backup;
pub mod driver;
pub mod failpoints;
pub mod metrics;
pub mod net;
pub mod service;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod storage;

// The fuzz targets' entry functions: for `cargo fuzz` (`--cfg fuzzing`) and the corpus
// replay tests only.
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
// The fuzz targets use part of it.
#[cfg(any(test, fuzzing))]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod testkit;
