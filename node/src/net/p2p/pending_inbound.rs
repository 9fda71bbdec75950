//! A bound on the inbound connections one source may hold in their handshake.
//!
//! An inbound connection is *pending* from the moment the listener accepts it until its
//! Noise and Yamux upgrades complete, or until the connection setup deadline
//! ([`CONNECTION_SETUP_TIMEOUT`](super::CONNECTION_SETUP_TIMEOUT)) ends it. Only then is the
//! dialer's key known and can the allow-list refuse it. `connection_limits` bounds the
//! pending connections in total ([`MAX_PENDING_INCOMING`](super::MAX_PENDING_INCOMING)); on
//! its own, one host that opens that many TCP connections and never completes a handshake
//! holds every slot, and the validators and observers that must dial in are refused for as
//! long as it keeps doing so. This behaviour refuses a source's next connection once it has
//! [`MAX_PENDING_PER_SOURCE`] pending: filling the total then takes
//! `MAX_PENDING_INCOMING / MAX_PENDING_PER_SOURCE` sources.
//!
//! A *source* is an IPv4 address, or an IPv6 /64 (one host's usual allocation, in which it
//! could otherwise pick a fresh address for every connection); an IPv4-mapped IPv6 address
//! counts as its IPv4 address. A remote address without an IP (none of our transports
//! produces one) is not counted.
//!
//! **Counting cannot leak.** In libp2p-swarm 0.47 (`Swarm::handle_transport_event` and
//! `Swarm::handle_pool_event`), a pending inbound connection ends in exactly one of:
//! * refused by a behaviour's `handle_pending_inbound_connection` (ours or another's):
//!   `FromSwarm::ListenFailure` goes to every behaviour;
//! * its upgrade failing or timing out, or resolving to our own peer id:
//!   `FromSwarm::ListenFailure`;
//! * established: every behaviour's `handle_established_inbound_connection` is called in
//!   order until one refuses; if one does, `FromSwarm::ListenFailure` follows (so a
//!   behaviour placed after the refusing one, whose handler was never called, still hears
//!   of it).
//!
//! A slot is freed on the first of these that names the connection; later ones, and
//! those for connections never counted (refused here, or by a behaviour consulted
//! earlier), find nothing and change nothing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Most inbound connections one source may have in their handshake at once.
///
/// A quarter of [`MAX_PENDING_INCOMING`](super::MAX_PENDING_INCOMING) (64): a single host
/// can no longer hold them all, and a whole localnet on 127.0.0.1 still fits. There a node
/// has at most one pending inbound connection per peer dialing it, each pending for the
/// milliseconds a loopback handshake takes, so up to 16 peers dialing it at the same
/// instant are all accepted, and a 17th (a localnet of 18 nodes or more started at once)
/// is refused and redials after `REDIAL_BACKOFF_MIN`. Loopback is not exempted: tests and
/// localnets are the only ones on it, and they fit.
pub const MAX_PENDING_PER_SOURCE: usize = 16;

/// Why an inbound connection was refused: its source already has the most pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPending {
    /// The IPv4 address, or the first address of the IPv6 /64.
    pub source: IpAddr,
    pub limit: usize,
}

impl fmt::Display for TooManyPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} already has {} inbound connections in their handshake",
            self.source, self.limit
        )
    }
}

impl std::error::Error for TooManyPending {}

/// The behaviour: refuses pending inbound connections over the per-source limit. It has no
/// protocol and emits no event.
pub struct PendingInbound {
    limit: usize,
    /// Each pending inbound connection counted, and its source.
    sources: HashMap<ConnectionId, IpAddr>,
    /// How many pending inbound connections each source has (never zero: emptied entries
    /// are removed, so the map holds only sources with connections in their handshake).
    counts: HashMap<IpAddr, usize>,
}

impl PendingInbound {
    pub fn new(limit: usize) -> Self {
        PendingInbound {
            limit,
            sources: HashMap::new(),
            counts: HashMap::new(),
        }
    }

    /// Frees the slot of a counted connection; nothing for any other.
    fn release(&mut self, connection_id: ConnectionId) {
        let Some(source) = self.sources.remove(&connection_id) else {
            return;
        };
        if let Some(count) = self.counts.get_mut(&source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(&source);
            }
        }
    }

    /// Pending inbound connections counted for the source of `address`.
    #[cfg(test)]
    fn pending(&self, address: &Multiaddr) -> usize {
        source(address)
            .and_then(|source| self.counts.get(&source).copied())
            .unwrap_or(0)
    }
}

/// The source an inbound connection is counted under (see the module documentation).
fn source(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(match ip.to_ipv4_mapped() {
            Some(ip) => IpAddr::V4(ip),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(ip) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        }),
        _ => None,
    })
}

impl NetworkBehaviour for PendingInbound {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // Connection ids are never reused; should one be, it is counted once.
        self.release(connection_id);
        let Some(source) = source(remote_addr) else {
            return Ok(());
        };
        let count = self.counts.get(&source).copied().unwrap_or(0);
        if count >= self.limit {
            return Err(ConnectionDenied::new(TooManyPending {
                source,
                limit: self.limit,
            }));
        }
        self.counts.insert(source, count.saturating_add(1));
        self.sources.insert(connection_id, source);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(connection_id)
            }
            // Already released in `handle_established_inbound_connection`; this only
            // guards against that call being skipped.
            FromSwarm::ConnectionEstablished(established) => {
                self.release(established.connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;
    use libp2p::swarm::ListenError;

    use super::*;

    fn address(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    fn local() -> Multiaddr {
        address("/ip4/10.0.0.254/tcp/26000")
    }

    fn id(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    fn peer() -> PeerId {
        Keypair::ed25519_from_bytes([7u8; 32])
            .expect("valid ed25519 secret")
            .public()
            .to_peer_id()
    }

    fn pend(b: &mut PendingInbound, n: usize, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        b.handle_pending_inbound_connection(id(n), &local(), remote)
    }

    fn listen_failure(b: &mut PendingInbound, n: usize, remote: &Multiaddr) {
        let local = local();
        let error = ListenError::Aborted;
        b.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local,
            send_back_addr: remote,
            error: &error,
            connection_id: id(n),
            peer_id: None,
        }));
    }

    fn established(b: &mut PendingInbound, n: usize, remote: &Multiaddr) {
        assert!(b
            .handle_established_inbound_connection(id(n), peer(), &local(), remote)
            .is_ok());
    }

    fn refusal(result: Result<(), ConnectionDenied>) -> TooManyPending {
        let denied = match result {
            Ok(()) => panic!("connection accepted over the limit"),
            Err(denied) => denied,
        };
        *denied
            .downcast_ref::<TooManyPending>()
            .expect("refused for too many pending connections")
    }

    #[test]
    fn a_source_over_its_limit_is_refused() {
        let mut b = PendingInbound::new(2);
        let a = address("/ip4/192.0.2.1/tcp/40001");
        assert!(pend(&mut b, 1, &a).is_ok());
        // Another port of the same host is the same source.
        assert!(pend(&mut b, 2, &address("/ip4/192.0.2.1/tcp/40002")).is_ok());
        let refused = refusal(pend(&mut b, 3, &a));
        assert_eq!(refused.source, "192.0.2.1".parse::<IpAddr>().expect("ip"));
        assert_eq!(refused.limit, 2);
        assert_eq!(b.pending(&a), 2);
    }

    #[test]
    fn other_sources_are_unaffected() {
        let mut b = PendingInbound::new(2);
        let a = address("/ip4/192.0.2.1/tcp/40001");
        let other = address("/ip4/192.0.2.2/tcp/40001");
        assert!(pend(&mut b, 1, &a).is_ok());
        assert!(pend(&mut b, 2, &a).is_ok());
        assert!(pend(&mut b, 3, &a).is_err());
        assert!(pend(&mut b, 4, &other).is_ok());
        assert!(pend(&mut b, 5, &other).is_ok());
        assert!(pend(&mut b, 6, &other).is_err());
        assert_eq!(b.pending(&a), 2);
        assert_eq!(b.pending(&other), 2);
    }

    #[test]
    fn a_failed_handshake_frees_its_slot() {
        let mut b = PendingInbound::new(2);
        let a = address("/ip4/192.0.2.1/tcp/40001");
        assert!(pend(&mut b, 1, &a).is_ok());
        assert!(pend(&mut b, 2, &a).is_ok());
        assert!(pend(&mut b, 3, &a).is_err());
        listen_failure(&mut b, 1, &a);
        assert_eq!(b.pending(&a), 1);
        assert!(pend(&mut b, 4, &a).is_ok());
        assert!(pend(&mut b, 5, &a).is_err());
    }

    #[test]
    fn an_established_connection_frees_its_slot() {
        let mut b = PendingInbound::new(2);
        let a = address("/ip4/192.0.2.1/tcp/40001");
        assert!(pend(&mut b, 1, &a).is_ok());
        assert!(pend(&mut b, 2, &a).is_ok());
        established(&mut b, 2, &a);
        assert_eq!(b.pending(&a), 1);
        assert!(pend(&mut b, 3, &a).is_ok());
        assert!(pend(&mut b, 4, &a).is_err());
    }

    #[test]
    fn a_slot_is_freed_once_and_only_for_counted_connections() {
        let mut b = PendingInbound::new(2);
        let a = address("/ip4/192.0.2.1/tcp/40001");
        assert!(pend(&mut b, 1, &a).is_ok());
        assert!(pend(&mut b, 2, &a).is_ok());
        // Refused here: the swarm then reports a ListenFailure for it, which frees nothing.
        assert!(pend(&mut b, 3, &a).is_err());
        listen_failure(&mut b, 3, &a);
        // Refused by a behaviour consulted before this one: never counted here.
        listen_failure(&mut b, 99, &a);
        assert_eq!(b.pending(&a), 2);
        // Established here, then refused by a behaviour consulted after this one: the
        // ListenFailure that follows frees nothing more.
        established(&mut b, 1, &a);
        listen_failure(&mut b, 1, &a);
        assert_eq!(b.pending(&a), 1);
        assert!(pend(&mut b, 4, &a).is_ok());
        assert!(pend(&mut b, 5, &a).is_err());
    }

    #[test]
    fn everything_pending_released_leaves_nothing_behind() {
        let mut b = PendingInbound::new(3);
        let a = address("/ip4/192.0.2.1/tcp/40001");
        let other = address("/ip6/2001:db8::1/tcp/40001");
        for n in 0..3 {
            assert!(pend(&mut b, n, &a).is_ok());
            assert!(pend(&mut b, 10 + n, &other).is_ok());
        }
        for n in 0..3 {
            listen_failure(&mut b, n, &a);
            established(&mut b, 10 + n, &other);
        }
        assert!(b.sources.is_empty());
        assert!(b.counts.is_empty());
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let mut b = PendingInbound::new(2);
        assert!(pend(&mut b, 1, &address("/ip6/2001:db8:0:1::1/tcp/1")).is_ok());
        assert!(pend(&mut b, 2, &address("/ip6/2001:db8:0:1:ffff::2/tcp/1")).is_ok());
        let refused = refusal(pend(&mut b, 3, &address("/ip6/2001:db8:0:1::3/tcp/1")));
        assert_eq!(
            refused.source,
            "2001:db8:0:1::".parse::<IpAddr>().expect("ip")
        );
        // The next /64 is another source.
        assert!(pend(&mut b, 4, &address("/ip6/2001:db8:0:2::1/tcp/1")).is_ok());
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let mut b = PendingInbound::new(1);
        assert!(pend(&mut b, 1, &address("/ip4/192.0.2.1/tcp/1")).is_ok());
        let refused = refusal(pend(&mut b, 2, &address("/ip6/::ffff:192.0.2.1/tcp/1")));
        assert_eq!(refused.source, "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn an_address_without_an_ip_is_not_counted() {
        let mut b = PendingInbound::new(1);
        let named = address("/dns4/example.com/tcp/1");
        for n in 0..4 {
            assert!(pend(&mut b, n, &named).is_ok());
        }
        assert!(b.sources.is_empty());
        listen_failure(&mut b, 0, &named);
        assert!(b.counts.is_empty());
    }
}
