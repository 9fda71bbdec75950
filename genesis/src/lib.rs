//! # interpool-genesis
//!
//! Everything that turns a consortium's description into files: the genesis, the node
//! configuration format ([`config`]), key files, and for test networks the whole local
//! consortium with its manifest ([`localnet`]). The `interpool-genesis` binary is a thin
//! command line over this library; the node reads [`config::NodeConfig`] from here too.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod files;
pub mod localnet;
pub mod spec;
pub mod tls;
