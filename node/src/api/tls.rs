//! Serving the API, over TLS (rustls with the ring provider; ADR 0014) or, where a
//! deployment chose it, plain HTTP.
//!
//! [`server_config`] reads the certificate chain and key named in `[rpc]`; [`serve`] accepts
//! connections, completes each TLS handshake within [`HANDSHAKE_TIMEOUT`] on its own task,
//! and serves the router over it with the peer's address as [`ConnectInfo`] (the client of
//! the rate limits, and the loopback check of `/metrics`). A client that speaks plain HTTP
//! to the TLS port gets one plain `400` saying so, never the API. On shutdown it stops
//! accepting and lets open connections finish, like `axum::serve`.
//!
//! No client can hold the API: a connection must send each request's headers within
//! [`HEADER_READ_TIMEOUT`] (an idle HTTP/1 connection is closed after as long), at most
//! [`MAX_CONNECTIONS`] are served at once and at most [`MAX_CONNECTIONS_PER_CLIENT`] from
//! one address (more are closed on accept). `axum::serve`, used before for plain HTTP, set
//! no timer at all: a client that opened connections and sent nothing held them forever.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::limits::{CountedSlot, CountedSlots};

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a request's headers, and how long an HTTP/1 connection
/// may wait idle for its next request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Most connections served at once (well below a default limit of 1,024 open files).
pub const MAX_CONNECTIONS: usize = 512;

/// Most connections served at once to one client address.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 128;

/// How long open connections may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The TLS settings of an API with the certificate chain in `cert` and the key in `key`
/// (PEM files).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate (PEM `BEGIN CERTIFICATE`)",
        cert.display()
    );
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the TLS key {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .with_context(|| {
        format!(
            "the TLS key {} does not fit the certificate {}",
            key.display(),
            cert.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One connection's place: among its client address's and in the total.
struct Slot {
    _client: CountedSlot<std::net::IpAddr>,
    _total: tokio::sync::OwnedSemaphorePermit,
}

/// A slot for a connection from `client`, if neither bound is reached.
fn take_slot(
    open: &CountedSlots<std::net::IpAddr>,
    client: std::net::IpAddr,
    total: &Arc<tokio::sync::Semaphore>,
) -> Option<Slot> {
    let permit = Arc::clone(total).try_acquire_owned().ok()?;
    let own = open.take(client, MAX_CONNECTIONS_PER_CLIENT)?;
    Some(Slot {
        _client: own,
        _total: permit,
    })
}

/// Serves `router` on `listener` (over TLS with `config`, else plain HTTP) until
/// `shutdown` completes, then lets open connections finish (at most [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = config.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = CountedSlots::default();
    let total = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, as axum::serve.
                    tracing::debug!(%error, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Over a bound: closed at once (the client may try again, or another node).
        let Some(slot) = take_slot(&open, peer.ip().to_canonical(), &total) else {
            tracing::debug!(%peer, "API connection refused: too many open");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            match &acceptor {
                Some(acceptor) => {
                    let Some(stream) = handshake(acceptor, stream, peer).await else {
                        return;
                    };
                    connection(stream, router, peer, watcher).await;
                }
                None => connection(stream, router, peer, watcher).await,
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTPS connections still open after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    Ok(())
}

/// Serves the router over one connection from `peer` until it ends, with the header
/// timeout; `watcher` lets the shutdown wait for it.
async fn connection<I>(
    io: I,
    router: Router,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut request: axum::extract::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(HEADER_READ_TIMEOUT);
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(error) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(%peer, %error, "API connection ended");
    }
}

/// The TLS session of a new connection, or `None` (said to the client where it can be)
/// for one that speaks plain HTTP, fails its handshake or takes too long.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut byte = [0u8; 1];
        stream
            .peek(&mut byte)
            .await
            .map(|n| (n == 1).then_some(byte[0]))
    })
    .await;
    match first {
        Ok(Ok(Some(TLS_HANDSHAKE_RECORD))) => {}
        Ok(Ok(Some(_))) => {
            // Plain HTTP (or anything else) on the TLS port: one clear answer, then close.
            let body = "{\"error\":{\"code\":\"tls_required\",\"message\":\"this port \
                        serves HTTPS only: use https://\"}}";
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            })
            .await;
            tracing::debug!(%peer, "plain HTTP on the HTTPS port refused");
            return None;
        }
        _ => return None,
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
