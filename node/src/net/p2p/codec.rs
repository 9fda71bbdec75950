//! The wire format of Interpool's peer protocols: a frame is a 4-byte big-endian length
//! followed by that many opaque bytes. Sync is request-response, one frame per request and
//! one per response; the consensus streams ([`links`](super::links)) carry one frame per
//! message.
//!
//! The length is checked against the configured maximum before anything is allocated, so a
//! peer announcing a 4 GiB frame costs us 4 bytes of reading, not 4 GiB of memory.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;

use crate::metrics::LogThrottle;

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// A length-prefixed, size-bounded frame codec for `request_response` (requests and
/// responses are both opaque byte vectors).
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_bytes: usize,
    /// Counts frames refused for their announced size.
    refused: Arc<AtomicU64>,
    /// Hostile-peer tests only: requests go out as given, prefix and all.
    unframed_writes: bool,
}

/// One warning line per second at most about refused frames.
static REFUSED_LOG: LogThrottle = LogThrottle::new(1_000);

impl FrameCodec {
    /// A codec that refuses (in both directions) frames longer than `max_frame_bytes`,
    /// counting inbound refusals in `refused`.
    pub fn new(max_frame_bytes: usize, refused: Arc<AtomicU64>) -> Self {
        Self {
            max_frame_bytes,
            refused,
            unframed_writes: false,
        }
    }

    /// Writes requests without a length prefix (a hostile peer in tests).
    pub fn with_unframed_writes(mut self, unframed: bool) -> Self {
        self.unframed_writes = unframed;
        self
    }

    /// Reads a frame, counting and logging one refused for its size.
    async fn read<T>(&self, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let result = read_frame(io, self.max_frame_bytes).await;
        if let Err(error) = &result {
            if error.kind() == io::ErrorKind::InvalidData {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(held) = REFUSED_LOG.ready() {
                    tracing::warn!(%error, more = held, "refused a frame from a peer");
                }
            }
        }
        result
    }
}

/// Reads one frame, refusing it before allocating if it is longer than `max_frame_bytes`.
pub async fn read_frame<T>(io: &mut T, max_frame_bytes: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    io.read_exact(&mut prefix).await?;
    let announced = u32::from_be_bytes(prefix);
    let length = usize::try_from(announced).unwrap_or(usize::MAX);
    if length > max_frame_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {announced} bytes exceeds the limit of {max_frame_bytes}"),
        ));
    }
    let mut frame = vec![0u8; length];
    io.read_exact(&mut frame).await?;
    Ok(frame)
}

/// Writes one frame; a frame longer than `max_frame_bytes` (or than a `u32` can say) is an
/// error and nothing is written.
pub async fn write_frame<T>(io: &mut T, frame: &[u8], max_frame_bytes: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let length = u32::try_from(frame.len())
        .ok()
        .filter(|_| frame.len() <= max_frame_bytes)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the limit of {max_frame_bytes}",
                    frame.len()
                ),
            )
        })?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(frame).await?;
    io.flush().await
}

#[async_trait]
impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if self.unframed_writes {
            io.write_all(&request).await?;
            return io.flush().await;
        }
        write_frame(io, &request, self.max_frame_bytes).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.max_frame_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;

    use super::*;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    #[test]
    fn frames_round_trip() {
        let mut wire = Cursor::new(Vec::new());
        run(write_frame(&mut wire, b"prepare", 16)).expect("write");
        run(write_frame(&mut wire, b"", 16)).expect("write empty");
        assert_eq!(wire.get_ref()[..LENGTH_PREFIX_BYTES], 7u32.to_be_bytes());
        wire.set_position(0);
        assert_eq!(run(read_frame(&mut wire, 16)).expect("read"), b"prepare");
        assert_eq!(run(read_frame(&mut wire, 16)).expect("read empty"), b"");
    }

    #[test]
    fn oversized_frame_is_refused_after_reading_only_the_prefix() {
        // A peer announces u32::MAX bytes and sends a few: we must stop after the prefix,
        // without allocating what it announced.
        let mut bytes = u32::MAX.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[7; 64]);
        let mut wire = Cursor::new(bytes);
        let error = run(read_frame(&mut wire, 1024)).expect_err("must refuse");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(wire.position(), LENGTH_PREFIX_BYTES as u64);

        // One byte over the limit is refused too; exactly the limit is fine.
        let mut over = Cursor::new(Vec::new());
        run(write_frame(&mut over, &[1; 17], 32)).expect("write");
        over.set_position(0);
        assert!(run(read_frame(&mut over, 16)).is_err());
        let mut exact = Cursor::new(Vec::new());
        run(write_frame(&mut exact, &[1; 16], 16)).expect("write");
        exact.set_position(0);
        assert_eq!(run(read_frame(&mut exact, 16)).expect("read").len(), 16);
    }

    #[test]
    fn oversized_frame_is_not_written() {
        let mut wire = Cursor::new(Vec::new());
        let error = run(write_frame(&mut wire, &[0; 17], 16)).expect_err("must refuse");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(wire.get_ref().is_empty());
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        assert!(run(read_frame(&mut Cursor::new(bytes), 16)).is_err());
        assert!(run(read_frame(&mut Cursor::new(vec![0, 0]), 16)).is_err());
    }
}
