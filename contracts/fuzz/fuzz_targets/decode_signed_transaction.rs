//! `cargo fuzz run decode_signed_transaction` (from `contracts/`; needs a nightly toolchain
//! and `cargo install cargo-fuzz`). Not run in CI.
//!
//! Decoding arbitrary bytes must never panic or allocate without bound, and whatever
//! decodes must re-encode to the same bytes and survive the stateless checks without
//! panicking.
#![no_main]

use interpool_contracts::SignedTransaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTransaction::decode(data) {
        assert_eq!(tx.encode(), data);
        let _ = tx.check_stateless("fuzz");
    }
});
