//! PBFT-style consensus engine for Interpool (see issue 3).
#![forbid(unsafe_code)]
