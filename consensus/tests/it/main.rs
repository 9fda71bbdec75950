//! Integration tests of `interpool-consensus` (one binary, as malachite does).
//!
//! * `simulation`: thousands of seeded runs of the simulator with mixed faults and the
//!   stall scenarios, for n = 4 and n = 7;
//! * `teeth`: the simulator catches a deliberately broken quorum;
//! * `hygiene`: the dependency rule of the house.

mod hygiene;
mod simulation;
mod teeth;
