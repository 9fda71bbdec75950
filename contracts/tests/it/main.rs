//! Integration tests of the ledger through its public API.

mod decoding;
mod netting;
mod props;
