//! Bounds on the inbound connections still in their handshake, per source and in total.
//!
//! An inbound connection is *pending* from the moment the listener accepts it until its
//! Noise and Yamux upgrades complete, or until the connection setup deadline
//! ([`CONNECTION_SETUP_TIMEOUT`](super::CONNECTION_SETUP_TIMEOUT)) ends it. Only then is the
//! dialer's key known and can the allow-list refuse it. With one total bound on pending
//! connections (`connection_limits`' `max_pending_incoming`, which we used before), one host
//! that opens that many TCP connections and never completes a handshake holds every slot,
//! and the validators and observers that must dial in are refused for as long as it keeps
//! doing so. This behaviour bounds them itself, in two ways:
//! * a source's next connection is refused once it has [`MAX_PENDING_PER_SOURCE`] pending;
//! * sources that are not *listed* share [`MAX_PENDING_UNLISTED`] slots, while each listed
//!   source has its own [`MAX_PENDING_PER_SOURCE`] that nobody else can take. Listed are
//!   the addresses of the configured peers (`p2p.peers`), and every address from which a
//!   genesis member (validator or observer) has completed a connection with us, either
//!   way (at most [`MAX_LEARNED_SOURCES`] of those).
//!
//! So a few hosts flooding us with handshakes (four of them filled every slot when one
//! total bounded all sources) can delay only unlisted dialers, observers and validators
//! and members not yet seen; the validators we know by address, and every member once it
//! has connected, still get in, and our own dials to them never depended on these slots.
//! In total at most `MAX_PENDING_UNLISTED + MAX_PENDING_PER_SOURCE × (listed sources)`
//! connections are pending. A member not listed by a configured address (an observer, a
//! validator configured by name) dials in from the shared slots until its first connection
//! to us lists its address. The learned addresses are never forgotten: a member that keeps
//! changing its address can take all [`MAX_LEARNED_SOURCES`], raising the total to at most
//! `MAX_PENDING_UNLISTED + MAX_PENDING_PER_SOURCE × (configured peers' sources +
//! MAX_LEARNED_SOURCES)`, after which members' new addresses share the unlisted slots.
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

use std::collections::{HashMap, HashSet};
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
/// A third of [`MAX_PENDING_UNLISTED`]: a single host can no longer hold them all, and a
/// whole localnet on 127.0.0.1 still fits. There a node
/// has at most one pending inbound connection per peer dialing it, each pending for the
/// milliseconds a loopback handshake takes, so up to 16 peers dialing it at the same
/// instant are all accepted, and a 17th (a localnet of 18 nodes or more started at once)
/// is refused and redials after `REDIAL_BACKOFF_MIN`. Loopback is not exempted: tests and
/// localnets are the only ones on it, and they fit.
pub const MAX_PENDING_PER_SOURCE: usize = 16;

/// Most inbound connections in their handshake from every source that is not listed,
/// together (the module documentation says why they are apart).
pub const MAX_PENDING_UNLISTED: usize = 48;

/// Most sources listed because a genesis member connected from them (beyond the configured
/// peers' addresses): a member that keeps changing its address cannot grow the list, or
/// the total of pending connections, without bound.
pub const MAX_LEARNED_SOURCES: usize = 1_024;

/// Which bound refused a connection ([`TooManyPending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingBound {
    /// Its source's own ([`MAX_PENDING_PER_SOURCE`]).
    Source,
    /// The one all unlisted sources share ([`MAX_PENDING_UNLISTED`]).
    Unlisted,
}

/// Why an inbound connection was refused: its source, or the unlisted sources together,
/// already have the most pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPending {
    /// The IPv4 address, or the first address of the IPv6 /64.
    pub source: IpAddr,
    pub bound: PendingBound,
    pub limit: usize,
}

impl fmt::Display for TooManyPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bound {
            PendingBound::Source => write!(
                f,
                "{} already has {} inbound connections in their handshake",
                self.source, self.limit
            ),
            PendingBound::Unlisted => write!(
                f,
                "{} is not a known member's address, and such sources already have {} \
                 inbound connections in their handshake",
                self.source, self.limit
            ),
        }
    }
}

impl std::error::Error for TooManyPending {}

/// The behaviour: refuses pending inbound connections over the per-source bound or, from
/// unlisted sources, over their shared bound. It has no protocol and emits no event.
pub struct PendingInbound {
    per_source: usize,
    unlisted_limit: usize,
    /// The sources of the configured peers' addresses, and those members connected from.
    listed: HashSet<IpAddr>,
    /// How many of `listed` were learned from connections ([`MAX_LEARNED_SOURCES`]).
    learned: usize,
    /// Each pending inbound connection counted: its source, and whether it holds one of the
    /// unlisted sources' shared slots (decided when it came, so that a source listed
    /// meanwhile frees exactly what it took).
    sources: HashMap<ConnectionId, (IpAddr, bool)>,
    /// How many pending inbound connections each source has (never zero: emptied entries
    /// are removed, so the map holds only sources with connections in their handshake).
    counts: HashMap<IpAddr, usize>,
    /// How many of them come from sources not in `listed`.
    unlisted: usize,
}

impl PendingInbound {
    /// `per_source` pending connections for each source, `unlisted_limit` for all sources
    /// not among those of `listed` (the configured peers' addresses) or learned from
    /// members' connections, together.
    pub fn new<'a>(
        per_source: usize,
        unlisted_limit: usize,
        listed: impl IntoIterator<Item = &'a Multiaddr>,
    ) -> Self {
        PendingInbound {
            per_source,
            unlisted_limit,
            listed: listed.into_iter().filter_map(source).collect(),
            learned: 0,
            sources: HashMap::new(),
            counts: HashMap::new(),
            unlisted: 0,
        }
    }

    /// Frees the slot of a counted connection; nothing for any other.
    fn release(&mut self, connection_id: ConnectionId) {
        let Some((source, shared)) = self.sources.remove(&connection_id) else {
            return;
        };
        if shared {
            self.unlisted = self.unlisted.saturating_sub(1);
        }
        if let Some(count) = self.counts.get_mut(&source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(&source);
            }
        }
    }

    /// Lists the source of `address`, where a genesis member connected from (within
    /// [`MAX_LEARNED_SOURCES`]).
    fn learn(&mut self, address: &Multiaddr) {
        let Some(source) = source(address) else {
            return;
        };
        if self.learned < MAX_LEARNED_SOURCES && self.listed.insert(source) {
            self.learned += 1;
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
        if count >= self.per_source {
            return Err(ConnectionDenied::new(TooManyPending {
                source,
                bound: PendingBound::Source,
                limit: self.per_source,
            }));
        }
        let shared = !self.listed.contains(&source);
        if shared {
            if self.unlisted >= self.unlisted_limit {
                return Err(ConnectionDenied::new(TooManyPending {
                    source,
                    bound: PendingBound::Unlisted,
                    limit: self.unlisted_limit,
                }));
            }
            self.unlisted += 1;
        }
        self.counts.insert(source, count.saturating_add(1));
        self.sources.insert(connection_id, (source, shared));
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
            // guards against that call being skipped. Every behaviour accepted the
            // connection, the allow-list too: a genesis member is at that address.
            FromSwarm::ConnectionEstablished(established) => {
                self.release(established.connection_id);
                self.learn(established.endpoint.get_remote_address());
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

    /// Only the per-source bound matters: the unlisted sources' is out of reach.
    fn per_source(limit: usize) -> PendingInbound {
        PendingInbound::new(limit, usize::MAX, [])
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
        let mut b = per_source(2);
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
        let mut b = per_source(2);
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
        let mut b = per_source(2);
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
        let mut b = per_source(2);
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
        let mut b = per_source(2);
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
        let mut b = per_source(3);
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
        let mut b = per_source(2);
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
        let mut b = per_source(1);
        assert!(pend(&mut b, 1, &address("/ip4/192.0.2.1/tcp/1")).is_ok());
        let refused = refusal(pend(&mut b, 2, &address("/ip6/::ffff:192.0.2.1/tcp/1")));
        assert_eq!(refused.source, "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn an_address_without_an_ip_is_not_counted() {
        let mut b = per_source(1);
        let named = address("/dns4/example.com/tcp/1");
        for n in 0..4 {
            assert!(pend(&mut b, n, &named).is_ok());
        }
        assert!(b.sources.is_empty());
        listen_failure(&mut b, 0, &named);
        assert!(b.counts.is_empty());
    }

    #[test]
    fn unlisted_sources_share_their_slots_and_cannot_take_a_listed_peers() {
        let peer = address("/ip4/192.0.2.10/tcp/26000");
        let mut b = PendingInbound::new(2, 3, [&peer]);
        let flooders: Vec<Multiaddr> = (1..=3)
            .map(|n| address(&format!("/ip4/198.51.100.{n}/tcp/40000")))
            .collect();
        // Three unlisted hosts fill the shared slots, each within its own bound.
        for (n, flooder) in flooders.iter().enumerate() {
            assert!(pend(&mut b, n, flooder).is_ok());
        }
        let refused = refusal(pend(&mut b, 10, &address("/ip4/198.51.100.4/tcp/1")));
        assert_eq!(refused.bound, PendingBound::Unlisted);
        assert_eq!(refused.limit, 3);
        assert!(refused.to_string().contains("not a known member"));
        assert!(pend(&mut b, 11, &flooders[0]).is_err());
        // The configured peer still gets in from another port, up to its own bound.
        assert!(pend(&mut b, 20, &address("/ip4/192.0.2.10/tcp/51000")).is_ok());
        assert!(pend(&mut b, 21, &address("/ip4/192.0.2.10/tcp/51001")).is_ok());
        assert_eq!(refusal(pend(&mut b, 22, &peer)).bound, PendingBound::Source);
        // A listed peer's slots are not the shared ones: freeing one of its slots lets no
        // unlisted host in, freeing an unlisted one does.
        established(&mut b, 20, &peer);
        assert!(pend(&mut b, 12, &address("/ip4/198.51.100.4/tcp/1")).is_err());
        listen_failure(&mut b, 0, &flooders[0]);
        assert!(pend(&mut b, 13, &address("/ip4/198.51.100.4/tcp/1")).is_ok());
        for n in [1, 2, 13] {
            listen_failure(&mut b, n, &flooders[0]);
        }
        listen_failure(&mut b, 21, &peer);
        assert_eq!(b.unlisted, 0);
        assert!(b.counts.is_empty());
    }

    #[test]
    fn a_listed_ipv6_peer_reserves_its_64() {
        let peer = address("/ip6/2001:db8:0:1::10/tcp/26000");
        let mut b = PendingInbound::new(2, 0, [&peer]);
        assert!(pend(&mut b, 1, &address("/ip6/2001:db8:0:1::99/tcp/1")).is_ok());
        assert_eq!(
            refusal(pend(&mut b, 2, &address("/ip6/2001:db8:0:2::1/tcp/1"))).bound,
            PendingBound::Unlisted
        );
    }

    fn connected(b: &mut PendingInbound, n: usize, remote: &Multiaddr) {
        let endpoint = libp2p::core::ConnectedPoint::Listener {
            local_addr: local(),
            send_back_addr: remote.clone(),
        };
        b.on_swarm_event(FromSwarm::ConnectionEstablished(
            libp2p::swarm::behaviour::ConnectionEstablished {
                peer_id: peer(),
                connection_id: id(n),
                endpoint: &endpoint,
                failed_addresses: &[],
                other_established: 0,
            },
        ));
    }

    #[test]
    fn a_member_that_connected_is_listed_and_what_it_took_before_is_freed_exactly() {
        let mut b = PendingInbound::new(2, 1, []);
        let member = address("/ip4/198.51.100.7/tcp/40000");
        let flooder = address("/ip4/203.0.113.9/tcp/40000");
        // Unlisted at first: the member holds the one shared slot, the flooder is refused.
        assert!(pend(&mut b, 1, &member).is_ok());
        assert_eq!(
            refusal(pend(&mut b, 2, &flooder)).bound,
            PendingBound::Unlisted
        );
        // Another of its connections completes its handshake: its address is listed.
        connected(&mut b, 3, &member);
        assert!(pend(&mut b, 4, &member).is_ok());
        // Its first connection still holds the shared slot, and frees it.
        assert!(pend(&mut b, 5, &flooder).is_err());
        listen_failure(&mut b, 1, &member);
        assert_eq!(b.unlisted, 0);
        assert!(pend(&mut b, 6, &flooder).is_ok());
        listen_failure(&mut b, 4, &member);
        listen_failure(&mut b, 6, &flooder);
        assert_eq!(b.unlisted, 0);
        assert!(b.counts.is_empty());
    }

    #[test]
    fn learned_sources_are_bounded() {
        let mut b = PendingInbound::new(1, 0, []);
        for n in 0..MAX_LEARNED_SOURCES + 10 {
            let n = u32::try_from(n).expect("small");
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n);
            connected(&mut b, 0, &address(&format!("/ip4/{ip}/tcp/1")));
        }
        assert_eq!(b.listed.len(), MAX_LEARNED_SOURCES);
        let late = address(&format!(
            "/ip4/{}/tcp/1",
            std::net::Ipv4Addr::from(0x0a00_0000 + 5_000)
        ));
        assert!(pend(&mut b, 1, &late).is_err());
    }
}
