//! Black-box tests of the real binaries.

mod access;
mod audit;
mod demo;
mod dependency_rules;
mod durability;
mod events;
mod faults;
mod hostile;
mod intruder;
mod iso20022;
mod journey;
mod liquidity;
mod load;
mod localnet;
mod network;
mod observer;
mod offline;
mod operations;
mod reads;
