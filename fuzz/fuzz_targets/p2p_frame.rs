//! The length-prefixed frame codec of the request-response protocols, on arbitrary bytes.
//! See `interpool_node::fuzzing::p2p_frame`; besides its checks, the heap is capped while it
//! runs, so reading a frame can never allocate more than the frame limit (plus a little for
//! an error message), whatever length a prefix announces.
#![no_main]

use std::alloc::System;

use cap::Cap;
use interpool_node::fuzzing::{p2p_frame, MAX_FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Room for an `io::Error` and its message beside the largest frame.
const SLACK_BYTES: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let budget = ALLOCATOR.allocated() + MAX_FRAME_BYTES + SLACK_BYTES;
    ALLOCATOR
        .set_limit(budget)
        .expect("the budget is above what is allocated");
    p2p_frame(data);
    ALLOCATOR
        .set_limit(usize::MAX)
        .expect("no limit is below what is allocated");
});
