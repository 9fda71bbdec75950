//! The API's own limits on what clients may ask of the node: per client, a rate (a token
//! bucket per kind of request, [`RateLimiter`]); node-wide, how many writes run at once. The
//! node-wide limits on expensive reads and event streams live with the readers
//! ([`crate::app::Reader`]) and the stream handler; this module holds their sizes.
//!
//! Beyond any limit a request is refused at once, never queued: 429 `rate_limited` with
//! `Retry-After` for a client over its rate, 503 `busy` (or `too_many_streams`) when the
//! node as a whole is at its limit.
//!
//! Which client a request comes from is its peer's IP address (an IPv6 client by its /64
//! network, which one subscriber usually holds whole). Headers such as `X-Forwarded-For`
//! are not trusted: anyone can write them.

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use interpool_contracts::AccountId;
use interpool_genesis::config::RpcConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, ApiState, Code};

/// Who a request comes from, for rate limits: an IPv4 address, or an IPv6 address's /64
/// network (IPv4-mapped IPv6 addresses count as the IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a peer at `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => ClientKey(IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())),
            },
        }
    }

    /// The client of a request: its peer address as the server recorded it. A request
    /// without one (only in-process tests build such requests) counts as one unknown client.
    fn of_request(parts: &Parts) -> Self {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(ClientKey(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), |info| {
                ClientKey::of(info.0.ip())
            })
    }
}

/// A rate: `burst` requests at once, refilled at one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time to earn one request.
    pub interval: Duration,
    /// Requests a client that has been idle long enough may make at once (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `per_second` requests a second (at least 1), `burst` at once (at least 1).
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Rate {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst: burst.max(1),
        }
    }

    /// How far ahead of now a client's account may run: `burst - 1` intervals.
    fn tolerance(&self) -> Duration {
        self.interval.saturating_mul(self.burst - 1)
    }
}

/// Per-client token buckets with a bounded memory.
///
/// Each client's state is one instant, its *theoretical arrival time* (the generic cell
/// rate algorithm, equivalent to a token bucket): each allowed request moves it one
/// `interval` later, and a request is refused while it lies more than `burst - 1` intervals
/// ahead of now. A client whose instant is in the past has a full bucket, exactly as if it
/// had never been seen, so forgetting it loses nothing.
///
/// At most `capacity` clients are remembered. When a new client would exceed that, the
/// clients with full buckets are forgotten first; if that is not enough, those nearest to a
/// full bucket, down to 7/8 of the capacity (so that each sweep, which costs one pass over
/// the map, frees room for many new clients). A forgotten client gets a full burst back:
/// an attacker who controls many addresses can buy that for others, but with many
/// addresses it has many buckets of its own anyway.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    capacity: usize,
    clients: Mutex<HashMap<ClientKey, Instant>>,
}

/// A request refused by a [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRate {
    /// How long until the client may make one more request.
    pub retry_after: Duration,
}

impl RateLimiter {
    /// A limiter at `rate` that remembers at most `capacity` clients (at least 1).
    pub fn new(rate: Rate, capacity: usize) -> Self {
        RateLimiter {
            rate,
            capacity: capacity.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `client` at `now`, or refuses it if the client is over its rate.
    pub fn check(&self, client: ClientKey, now: Instant) -> Result<(), OverRate> {
        // The map stays consistent across a panic elsewhere: every update is one insert.
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let arrival = self.arrival(&mut clients, client, now);
        let ahead = arrival.saturating_duration_since(now);
        if ahead > self.rate.tolerance() {
            return Err(OverRate {
                retry_after: ahead - self.rate.tolerance(),
            });
        }
        clients.insert(client, arrival + self.rate.interval);
        Ok(())
    }

    /// Charges `client` for `requests` more requests at `now`, as if it had made them,
    /// without refusing anything: its next requests wait that much longer. For a cost
    /// known only after a request was served (the forged entries of a batch).
    pub fn charge(&self, client: ClientKey, requests: u32, now: Instant) {
        if requests == 0 {
            return;
        }
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let arrival = self.arrival(&mut clients, client, now);
        let cost = self.rate.interval.saturating_mul(requests);
        // An instant beyond what the clock can hold would be a wait of centuries anyway.
        let later = arrival.checked_add(cost).unwrap_or(arrival);
        clients.insert(client, later);
    }

    /// `client`'s theoretical arrival time, not before `now`; a new client's is `now`, after
    /// room is made for it.
    fn arrival(
        &self,
        clients: &mut HashMap<ClientKey, Instant>,
        client: ClientKey,
        now: Instant,
    ) -> Instant {
        match clients.get(&client) {
            Some(&arrival) => arrival.max(now),
            None => {
                if clients.len() >= self.capacity {
                    self.evict(clients, now);
                }
                now
            }
        }
    }

    /// Clients remembered now.
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True if no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for at least one new client (see the type's documentation).
    fn evict(&self, clients: &mut HashMap<ClientKey, Instant>, now: Instant) {
        clients.retain(|_, arrival| *arrival > now);
        let target = self.capacity - self.capacity / 8 - 1;
        if clients.len() <= target {
            return;
        }
        let mut by_arrival: Vec<(Instant, ClientKey)> =
            clients.iter().map(|(key, at)| (*at, *key)).collect();
        let excess = by_arrival.len() - target;
        by_arrival.select_nth_unstable_by_key(excess - 1, |(at, _)| *at);
        for (_, key) in by_arrival.iter().take(excess) {
            clients.remove(key);
        }
    }
}

/// Every limit of the API, shared by the handlers.
#[derive(Debug)]
pub struct ApiLimits {
    /// Per-client rate of writes.
    pub write_rate: RateLimiter,
    /// Per-client rate of expensive reads (histories, proofs, blocks, event streams).
    pub read_rate: RateLimiter,
    writes: Arc<Semaphore>,
    max_concurrent_writes: usize,
    /// Writes in flight per client, each held to `max_writes_per_client`.
    writes_by_client: CountedSlots<ClientKey>,
    max_writes_per_client: usize,
    /// Open event streams.
    pub event_streams: Arc<Semaphore>,
    /// Most event streams open at once.
    pub max_event_streams: usize,
    /// Event streams open per key (those held to [`MAX_EVENT_STREAMS_PER_KEY`]).
    streams_by_key: CountedSlots<AccountId>,
}

/// Most event streams one customer's or operator's key may hold open: one key cannot take
/// every slot from the others (before, one customer opened the node's 256 in a second, and
/// every bank was refused). Nodes, regulators and the authority are not held to it.
pub const MAX_EVENT_STREAMS_PER_KEY: usize = 16;

/// Holders counted per key, each key held to a most given when taking: a
/// [`CountedSlot`] holds one place until dropped. The per-client and per-key bounds of the
/// API (connections, writes in flight, event streams) are all this.
pub(crate) struct CountedSlots<K: Eq + Hash>(Arc<Mutex<HashMap<K, usize>>>);

impl<K: Eq + Hash> Default for CountedSlots<K> {
    fn default() -> Self {
        CountedSlots(Arc::default())
    }
}

impl<K: Eq + Hash> std::fmt::Debug for CountedSlots<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedSlots")
            .field("keys", &crate::app::lock(&self.0).len())
            .finish()
    }
}

impl<K: Eq + Hash + Clone> CountedSlots<K> {
    /// A place for `key` if it holds fewer than `most`.
    pub(crate) fn take(&self, key: K, most: usize) -> Option<CountedSlot<K>> {
        let mut held = crate::app::lock(&self.0);
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= most {
            if *count == 0 {
                held.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(CountedSlot {
            key,
            held: Arc::clone(&self.0),
        })
    }

    /// Places `key` holds now.
    pub(crate) fn held(&self, key: &K) -> usize {
        crate::app::lock(&self.0).get(key).copied().unwrap_or(0)
    }
}

/// One place in a [`CountedSlots`], given back when dropped.
pub(crate) struct CountedSlot<K: Eq + Hash> {
    key: K,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Eq + Hash> Drop for CountedSlot<K> {
    fn drop(&mut self) {
        let mut held = crate::app::lock(&self.held);
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// One key's hold on an event stream (with [`ApiLimits::stream_slot`]).
pub(crate) type StreamSlot = CountedSlot<AccountId>;

/// A write's turn ([`ApiLimits::write_permit`]): one of the node's writes and one of its
/// client's, both given back when dropped.
pub(crate) struct WriteTurn {
    _client: CountedSlot<ClientKey>,
    _node: OwnedSemaphorePermit,
}

impl ApiLimits {
    /// The limits of an `[rpc]` config section (the expensive-read limit goes to the
    /// [`crate::app::Reader`]).
    pub fn from_config(config: &RpcConfig) -> Self {
        let rate = Rate::per_second(config.rate_limit_per_second, config.rate_limit_burst);
        Self::new(
            rate,
            config.rate_limit_clients,
            config.max_concurrent_writes,
            config.max_event_streams,
        )
        .with_writes_per_client(config.max_concurrent_writes_per_client)
    }

    /// Limits with these values; one client may have a quarter of the writes in flight (at
    /// least one; [`Self::with_writes_per_client`]).
    pub fn new(
        rate: Rate,
        clients: usize,
        max_concurrent_writes: usize,
        max_event_streams: usize,
    ) -> Self {
        ApiLimits {
            write_rate: RateLimiter::new(rate, clients),
            read_rate: RateLimiter::new(rate, clients),
            writes: Arc::new(Semaphore::new(max_concurrent_writes)),
            max_concurrent_writes,
            writes_by_client: CountedSlots::default(),
            max_writes_per_client: (max_concurrent_writes / 4).max(1),
            event_streams: Arc::new(Semaphore::new(max_event_streams)),
            max_event_streams,
            streams_by_key: Default::default(),
        }
    }

    /// The same limits with at most `most` writes in flight per client (at least one, at
    /// most every write of the node).
    pub fn with_writes_per_client(mut self, most: usize) -> Self {
        self.max_writes_per_client = most.clamp(1, self.max_concurrent_writes.max(1));
        self
    }

    /// A stream slot of `key`, if it holds fewer than [`MAX_EVENT_STREAMS_PER_KEY`].
    pub(crate) fn stream_slot(&self, key: AccountId) -> Result<StreamSlot, ApiError> {
        self.streams_by_key
            .take(key, MAX_EVENT_STREAMS_PER_KEY)
            .ok_or_else(|| {
                ApiError::new(
                    Code::TooManyStreams,
                    format!(
                        "this key holds {MAX_EVENT_STREAMS_PER_KEY} event streams, the most \
                         one key may; close one first"
                    ),
                )
            })
    }

    /// A write's turn for `client`, held until the write is answered: 429 `rate_limited`
    /// at once if the client has its most writes in flight (one client cannot take every
    /// turn from the others), 503 `busy` if the node handles its maximum of writes.
    pub(crate) fn write_permit(&self, client: ClientKey) -> Result<WriteTurn, ApiError> {
        let Some(own) = self
            .writes_by_client
            .take(client, self.max_writes_per_client)
        else {
            return Err(ApiError::new(
                Code::RateLimited,
                format!(
                    "this client has {} writes in flight, the most one client may; wait \
                     for their answers",
                    self.max_writes_per_client
                ),
            )
            .retry_after(1));
        };
        let node = self.writes.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                Code::Busy,
                format!(
                    "this node is handling its maximum of {} writes; try again shortly",
                    self.max_concurrent_writes
                ),
            )
        })?;
        Ok(WriteTurn {
            _client: own,
            _node: node,
        })
    }

    /// Writes `client` has in flight now.
    pub fn writes_in_flight(&self, client: ClientKey) -> usize {
        self.writes_by_client.held(&client)
    }

    /// Open event streams now.
    pub fn open_event_streams(&self) -> usize {
        self.max_event_streams
            .saturating_sub(self.event_streams.available_permits())
    }
}

/// A kind of request with its own per-client rate.
pub(crate) trait Limited {
    /// Its name in messages and metrics.
    const NAME: &'static str;
    /// Its limiter.
    fn limiter(limits: &ApiLimits) -> &RateLimiter;
}

/// Writes: `POST /v1/transactions`, `POST /v1/transactions/batch`.
pub(crate) struct Writes;

impl Limited for Writes {
    const NAME: &'static str = "writes";
    fn limiter(limits: &ApiLimits) -> &RateLimiter {
        &limits.write_rate
    }
}

/// Expensive reads: account histories and proofs, blocks, event streams.
pub(crate) struct ExpensiveReads;

impl Limited for ExpensiveReads {
    const NAME: &'static str = "expensive reads";
    fn limiter(limits: &ApiLimits) -> &RateLimiter {
        &limits.read_rate
    }
}

/// An extractor that admits a request of kind `K` only if its client is within its rate,
/// and answers 429 `rate_limited` otherwise. Being a parts extractor it runs before the
/// body is read, so a client over its rate costs the node no body.
pub(crate) struct WithinRate<K> {
    client: ClientKey,
    kind: PhantomData<K>,
}

impl<K> WithinRate<K> {
    /// The client the request comes from.
    pub(crate) fn client(&self) -> ClientKey {
        self.client
    }
}

impl<K: Limited> FromRequestParts<ApiState> for WithinRate<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let client = ClientKey::of_request(parts);
        match K::limiter(&state.limits).check(client, Instant::now()) {
            Ok(()) => Ok(WithinRate {
                client,
                kind: PhantomData,
            }),
            Err(over) => {
                state.metrics.api_refused("rate_limited", K::NAME);
                Err(ApiError::rate_limited(K::NAME, over.retry_after))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn client(n: u32) -> ClientKey {
        ClientKey::of(IpAddr::V4(Ipv4Addr::from(n)))
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_charge_uses_up_tokens_without_refusing_and_never_overflows() {
        let limiter = RateLimiter::new(Rate::per_second(10, 5), 100);
        let now = Instant::now();
        limiter.check(client(1), now).expect("first");
        limiter.charge(client(1), 2, now);
        // 1 + 2 of 5 used: two more, then refused.
        limiter.check(client(1), now).expect("fourth");
        limiter.check(client(1), now).expect("fifth");
        assert!(limiter.check(client(1), now).is_err());
        // A charge beyond anything the clock holds saturates instead of panicking.
        limiter.charge(client(2), u32::MAX, now);
        limiter.charge(client(2), u32::MAX, now);
        let over = limiter.check(client(2), now).expect_err("charged");
        assert!(over.retry_after > Duration::from_secs(3_600));
        limiter.check(client(3), now).expect("others untouched");
    }

    #[test]
    fn one_client_holds_at_most_its_share_of_the_writes_and_gives_them_back() {
        let limits = ApiLimits::new(Rate::per_second(100, 200), 100, 16, 16);
        let own: Vec<WriteTurn> = (0..4)
            .map(|_| limits.write_permit(client(1)).expect("its share"))
            .collect();
        let Err(refused) = limits.write_permit(client(1)) else {
            panic!("a fifth write of one client");
        };
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.view.code, "rate_limited");
        assert_eq!(limits.writes_in_flight(client(1)), 4);
        // The others share the rest, up to the node's limit.
        let others: Vec<WriteTurn> = (2..=4)
            .flat_map(|n| (0..4).map(move |_| n))
            .map(|n| limits.write_permit(client(n)).expect("the rest"))
            .collect();
        let Err(busy) = limits.write_permit(client(5)) else {
            panic!("past the node's 16");
        };
        assert_eq!(busy.view.code, "busy");
        assert_eq!(
            limits.writes_in_flight(client(5)),
            0,
            "a refusal holds nothing"
        );
        drop(own);
        assert_eq!(limits.writes_in_flight(client(1)), 0);
        let again = limits
            .write_permit(client(5))
            .expect("a write was given back");
        drop((others, again));
        // The configured share, bounded by the node's writes.
        let limits =
            ApiLimits::new(Rate::per_second(100, 200), 100, 2, 16).with_writes_per_client(9);
        let _both = [
            limits.write_permit(client(1)).expect("one"),
            limits.write_permit(client(1)).expect("two"),
        ];
        assert!(limits.write_permit(client(2)).is_err());
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_the_wait_until_the_next_token() {
        let limiter = RateLimiter::new(Rate::per_second(10, 3), 100);
        let now = Instant::now();
        for _ in 0..3 {
            limiter.check(client(1), now).expect("within the burst");
        }
        let over = limiter.check(client(1), now).expect_err("over the burst");
        assert_eq!(over.retry_after, SECOND / 10);
        // Refusals cost nothing: the wait does not grow with more attempts.
        let again = limiter.check(client(1), now).expect_err("still over");
        assert_eq!(again, over);
        // Another client has its own bucket.
        limiter.check(client(2), now).expect("another client");
    }

    #[test]
    fn tokens_refill_at_the_rate_and_never_beyond_the_burst() {
        let limiter = RateLimiter::new(Rate::per_second(10, 3), 100);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.check(client(1), start).expect("burst");
        }
        // One token a tenth of a second.
        let later = start + SECOND / 10;
        limiter.check(client(1), later).expect("refilled one");
        assert!(limiter.check(client(1), later).is_err());
        // A long idle time refills the burst, not more.
        let idle = later + 60 * SECOND;
        for _ in 0..3 {
            limiter.check(client(1), idle).expect("full burst again");
        }
        assert!(limiter.check(client(1), idle).is_err());
        // Sustained: exactly one request per interval.
        let mut now = idle;
        for _ in 0..50 {
            now += SECOND / 10;
            limiter.check(client(1), now).expect("one per interval");
            assert!(limiter.check(client(1), now).is_err());
        }
    }

    #[test]
    fn a_burst_of_one_allows_one_request_per_interval() {
        let limiter = RateLimiter::new(Rate::per_second(1, 1), 10);
        let now = Instant::now();
        limiter.check(client(1), now).expect("first");
        let over = limiter.check(client(1), now).expect_err("second at once");
        assert_eq!(over.retry_after, SECOND);
        limiter
            .check(client(1), now + SECOND)
            .expect("a second later");
    }

    #[test]
    fn memory_is_bounded_and_idle_clients_go_first() {
        let capacity = 64;
        let limiter = RateLimiter::new(Rate::per_second(1, 2), capacity);
        let start = Instant::now();
        for n in 1..=64 {
            limiter.check(client(n), start).expect("a client seen once");
        }
        assert_eq!(limiter.len(), capacity);
        // Five seconds later all of them are idle (full buckets). A new client drains its
        // burst: making room for it forgets every idle client, and nothing is lost by that.
        let later = start + 5 * SECOND;
        limiter.check(client(0), later).expect("first");
        assert_eq!(limiter.len(), 1, "the idle clients are forgotten first");
        limiter.check(client(0), later).expect("second");
        assert!(limiter.check(client(0), later).is_err());
        // Ten thousand newcomers, a microsecond apart: the map never outgrows its capacity,
        // and the drained client, the furthest ahead of its rate, is never the one forgotten.
        for n in 1..10_000 {
            let now = later + Duration::from_micros(u64::from(n));
            limiter.check(client(100 + n), now).expect("a new client");
            assert!(limiter.len() <= capacity, "{} clients", limiter.len());
        }
        assert!(limiter.check(client(0), later + SECOND / 2).is_err());
        // Once its rate allows it again, it is served.
        limiter.check(client(0), later + SECOND).expect("refilled");
    }

    #[test]
    fn eviction_under_pressure_keeps_the_most_drained_clients() {
        let capacity = 16;
        let limiter = RateLimiter::new(Rate::per_second(1, 1_000), capacity);
        let now = Instant::now();
        // Client 0 drains its whole burst; the others make one request each, all at the
        // same instant, so nobody's bucket is full and eviction must choose.
        for _ in 0..1_000 {
            limiter.check(client(0), now).expect("burst");
        }
        assert!(limiter.check(client(0), now).is_err());
        for n in 1..1_000 {
            limiter.check(client(n), now).expect("new client");
            assert!(limiter.len() <= capacity);
        }
        // Client 0, the furthest ahead of its rate, was never the one forgotten.
        assert!(limiter.check(client(0), now).is_err());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_network_and_mapped_ipv4_by_the_address() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ClientKey::of(a.into()), ClientKey::of(b.into()));
        assert_ne!(ClientKey::of(a.into()), ClientKey::of(c.into()));
        let v4 = Ipv4Addr::new(192, 0, 2, 7);
        assert_eq!(
            ClientKey::of(v4.to_ipv6_mapped().into()),
            ClientKey::of(v4.into())
        );
        assert_ne!(
            ClientKey::of(Ipv4Addr::new(192, 0, 2, 8).into()),
            ClientKey::of(v4.into())
        );
    }

    #[test]
    fn rates_from_the_config_units() {
        assert_eq!(
            Rate::per_second(100, 200),
            Rate {
                interval: Duration::from_millis(10),
                burst: 200
            }
        );
        // Zero is refused by the config; here it is clamped rather than divided by.
        assert_eq!(Rate::per_second(0, 0).burst, 1);
        assert_eq!(Rate::per_second(0, 0).interval, SECOND);
    }
}
