//! Black-box tests of the real binaries.

mod offline;
