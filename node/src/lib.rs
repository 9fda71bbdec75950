//! Interpool node internals: storage, mempool, networking, the consensus driver, the API.

pub mod api;
pub mod audit;
pub mod chain;
pub mod driver;
pub mod events;
pub mod mempool;
pub mod metrics;
pub mod p2p;
pub mod service;
pub mod storage;
pub mod sync;
