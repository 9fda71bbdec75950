//! Black-box tests of the real binaries.

mod dependency_rules;
mod network;
mod offline;
