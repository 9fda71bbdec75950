//! The network side of the node: libp2p ([`p2p`]), the routing of peer events by kind
//! ([`router`]), block sync ([`sync`]), state sync ([`state_sync`]) and the observers'
//! follower ([`follower`]).

pub mod follower;
pub mod journal;
pub mod p2p;
pub mod router;
pub mod state_sync;
pub mod sync;
