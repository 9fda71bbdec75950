//! Interpool ledger.
