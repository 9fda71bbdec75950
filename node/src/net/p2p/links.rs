//! Consensus messages on one long-lived stream per peer and direction, each message a
//! length-prefixed frame ([`codec`](super::codec)'s format), with no acknowledgement.
//!
//! A request-response exchange per message opened a yamux stream, negotiated its protocol,
//! wrote, answered and closed it: six to eight small frames and as many system calls on each
//! side, for every proposal, vote and timeout (29 % of a validator's CPU was libp2p at 1,000
//! transfers/s, issue 12). Consensus needs no acknowledgement: the engine retransmits what
//! may have been lost.
//!
//! * **Sending.** Each peer has a writer task fed by a bounded queue
//!   ([`MAX_QUEUED_PER_PEER`]); a peer that does not read fills it, and what does not fit is
//!   dropped and counted (`send_failures`), never waited for. The writer opens its stream on
//!   the first message, writes everything queued at once, and, when a write fails (the peer
//!   dropped the stream, or the connection went), opens a new stream and writes the same
//!   frames once more before it counts them lost. The peer's last connection closing ends
//!   the writer: what it still holds is written on its open stream or counted lost, and it
//!   opens none (that would dial the peer).
//! * **Receiving.** Each allowed peer has at most one reader: a new stream from the same
//!   peer (a reconnection) replaces the previous one. The reader checks each frame's length
//!   before allocating (`frames_refused`, and the stream is dropped), and passes a
//!   validator's messages to the bounded consensus queue (full: dropped and counted);
//!   anyone else's are read and refused (`consensus_refused`) without taking a slot.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::{AsyncWriteExt, StreamExt};
use interpool_contracts::AccountId;
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::codec::read_frame;
use super::{bump, P2pEvent, Shared};
use crate::metrics::LogThrottle;

/// Most consensus messages waiting to be written to one peer.
pub const MAX_QUEUED_PER_PEER: usize = 128;
/// Most bytes one write gathers from the queue (a proposal alone may be larger).
const MAX_WRITE_BYTES: usize = 1 << 20;

/// One warning line per second at most about refused frames.
static REFUSED_LOG: LogThrottle = LogThrottle::new(1_000);

/// The sending side: one writer per peer, created on the first message to it.
pub struct Links {
    control: libp2p_stream::Control,
    protocol: StreamProtocol,
    shared: Arc<Shared>,
    /// Hostile-peer tests only: messages go out as given, without a length prefix.
    unframed: bool,
    writers: HashMap<PeerId, mpsc::Sender<Vec<u8>>>,
}

impl Links {
    pub fn new(
        control: libp2p_stream::Control,
        protocol: StreamProtocol,
        shared: Arc<Shared>,
        unframed: bool,
    ) -> Self {
        Links {
            control,
            protocol,
            shared,
            unframed,
            writers: HashMap::new(),
        }
    }

    /// Queues `message` for `peer` (connected: the caller checks), or drops and counts it
    /// if the peer's queue is full.
    pub fn send(&mut self, peer: PeerId, message: Vec<u8>) {
        // Full is the only failure: a writer runs until its queue closes, and the queue
        // stays open while its sender is in `writers`.
        if self.writer(peer).try_send(message).is_err() {
            tracing::debug!(%peer, "peer is not reading consensus messages; message dropped");
            bump(&self.shared.counters.send_failures);
        }
    }

    /// The peer's last connection closed: its writer stops once its queue is written (or
    /// fails to be).
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.writers.remove(peer);
    }

    fn writer(&mut self, peer: PeerId) -> &mpsc::Sender<Vec<u8>> {
        self.writers.entry(peer).or_insert_with(|| {
            let (sender, queue) = mpsc::channel(MAX_QUEUED_PER_PEER);
            let writer = Writer {
                control: self.control.clone(),
                protocol: self.protocol.clone(),
                peer,
                shared: self.shared.clone(),
                unframed: self.unframed,
                stream: None,
            };
            tokio::spawn(writer.run(queue));
            sender
        })
    }
}

struct Writer {
    control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peer: PeerId,
    shared: Arc<Shared>,
    unframed: bool,
    stream: Option<Stream>,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<Vec<u8>>) {
        let mut buffer = Vec::new();
        while let Some(first) = queue.recv().await {
            buffer.clear();
            let mut count = 1u64;
            self.append(&mut buffer, &first);
            while buffer.len() < MAX_WRITE_BYTES {
                match queue.try_recv() {
                    Ok(message) => {
                        self.append(&mut buffer, &message);
                        count += 1;
                    }
                    Err(_) => break,
                }
            }
            // A stream the peer dropped fails only when written: one more try on a new one,
            // unless the peer is gone (its queue closed): no stream is opened to it then,
            // which would dial it.
            let gone = queue.is_closed();
            let mut written = false;
            for _ in 0..2 {
                match self.write(&buffer, gone).await {
                    Ok(()) => {
                        written = true;
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(peer = %self.peer, %error, "consensus stream failed");
                        self.stream = None;
                    }
                }
            }
            if !written {
                self.shared
                    .counters
                    .send_failures
                    .fetch_add(count, Ordering::Relaxed);
            }
            // A proposal may have grown the buffer to megabytes: not kept per peer.
            buffer.clear();
            buffer.shrink_to(MAX_WRITE_BYTES);
        }
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.close().await;
        }
    }

    fn append(&self, buffer: &mut Vec<u8>, message: &[u8]) {
        if !self.unframed {
            // The handle refuses messages over `max_message_bytes` (at most a u32's worth).
            let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
            buffer.extend_from_slice(&length.to_be_bytes());
        }
        buffer.extend_from_slice(message);
    }

    async fn write(&mut self, bytes: &[u8], gone: bool) -> io::Result<()> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None if gone => {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the peer disconnected",
                ))
            }
            None => {
                let stream = self
                    .control
                    .open_stream(self.peer, self.protocol.clone())
                    .await
                    .map_err(io::Error::other)?;
                self.stream.insert(stream)
            }
        };
        stream.write_all(bytes).await?;
        stream.flush().await
    }
}

/// Accepts consensus streams until the network stops: one reader per peer.
pub async fn accept(
    mut incoming: libp2p_stream::IncomingStreams,
    accounts: HashMap<PeerId, AccountId>,
    consensus_peers: BTreeSet<AccountId>,
    consensus: mpsc::Sender<P2pEvent>,
    shared: Arc<Shared>,
) {
    let mut readers: HashMap<PeerId, tokio::task::AbortHandle> = HashMap::new();
    while let Some((peer, stream)) = incoming.next().await {
        // Only allowed keys connect at all; the lookup cannot fail for them.
        let Some(&from) = accounts.get(&peer) else {
            continue;
        };
        readers.retain(|_, reader| !reader.is_finished());
        let votes = consensus_peers.contains(&from);
        let reader = tokio::spawn(read(from, votes, stream, consensus.clone(), shared.clone()));
        if let Some(previous) = readers.insert(peer, reader.abort_handle()) {
            previous.abort();
        }
    }
    for reader in readers.values() {
        reader.abort();
    }
}

/// Reads one peer's stream until it closes, fails, or sends a frame over the limit.
async fn read(
    from: AccountId,
    votes: bool,
    mut stream: Stream,
    consensus: mpsc::Sender<P2pEvent>,
    shared: Arc<Shared>,
) {
    let counters = &shared.counters;
    loop {
        let bytes = match read_frame(&mut stream, shared.max_message_bytes).await {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                shared.frames_refused.fetch_add(1, Ordering::Relaxed);
                if let Some(held) = REFUSED_LOG.ready() {
                    tracing::warn!(peer = %from, %error, more = held, "refused a frame from a peer");
                }
                return;
            }
            Err(error) => {
                if error.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(peer = %from, %error, "inbound consensus stream failed");
                    bump(&counters.inbound_failures);
                }
                return;
            }
        };
        // Only validators vote: anyone else's message is refused before it takes a slot
        // a validator's message needs.
        if !votes {
            tracing::debug!(peer = %from, "consensus message from a non-validator refused");
            bump(&counters.consensus_refused);
            continue;
        }
        match consensus.try_send(P2pEvent::Consensus { from, bytes }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!(peer = %from, "consensus queue full; consensus message dropped");
                bump(&counters.consensus_dropped);
            }
            Err(TrySendError::Closed(_)) => return,
        }
    }
}
