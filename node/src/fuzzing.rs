//! The entry functions of the node's fuzz targets (`fuzz/fuzz_targets/`): [`sync_response`],
//! [`p2p_frame`] and [`http_body`].
//!
//! Compiled only for `cargo fuzz` (which sets `--cfg fuzzing`) and for this crate's tests,
//! which replay the committed corpora (`fuzz/corpus/<target>/`) and every regression input
//! (`fuzz/regressions/<target>/`) through the same functions.

use std::io;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use futures::executor::block_on;
use futures::io::Cursor;
use interpool_consensus::{CommitCertificate, Digest, ValidatorSet, MAX_PAYLOAD_BYTES};
use interpool_contracts::codec;
use interpool_contracts::Block;
use serde_json::Value;
use tower::ServiceExt;

use crate::api::transactions::{BatchRequest, SubmitRequest};
use crate::api::{self, parse_json};
use crate::app::{lock, Core, Mempool, MempoolLimits, SharedMempool};
use crate::net::p2p::codec::{read_frame, write_frame, LENGTH_PREFIX_BYTES};
use crate::net::sync::{check_response, SyncResponse};
use crate::testkit;

/// The height the `sync_response` target's node asked for blocks from (a follower at
/// genesis).
pub const SYNC_FROM_HEIGHT: u64 = 1;

/// The validator set sync responses are checked against ([`testkit::validator_set`]).
fn validators() -> &'static ValidatorSet {
    static SET: OnceLock<ValidatorSet> = OnceLock::new();
    SET.get_or_init(|| testkit::validator_set(&testkit::genesis()))
}

/// Decodes `data` as a sync response and checks that:
///
/// * a response that decodes re-encodes to exactly `data`;
/// * checking it as the answer to a request from [`SYNC_FROM_HEIGHT`] (consecutive heights,
///   each certificate verified against the fixed 4-validator set) never panics, and what
///   passes really is consecutive from there, each block certified at its height for its
///   payload by a quorum;
/// * decoding each payload as a block (what the node does next, and what a validator does
///   with a proposal's payload) never panics, and a block that decodes re-encodes to it.
pub fn sync_response(data: &[u8]) {
    let Ok(response) = SyncResponse::decode(data) else {
        return;
    };
    assert_eq!(
        codec::encode(&response),
        data,
        "decoded, but not from its encoding"
    );
    let validators = validators();
    if check_response(&response, SYNC_FROM_HEIGHT, validators).is_ok() {
        for (index, block) in response.blocks.iter().enumerate() {
            assert_eq!(
                Some(block.height),
                SYNC_FROM_HEIGHT.checked_add(index as u64)
            );
            let certificate =
                CommitCertificate::decode(&block.certificate).expect("a verified certificate");
            assert_eq!(certificate.vote.height, block.height);
            assert_eq!(certificate.vote.digest, Digest::of(&block.payload));
            assert!(certificate.signatures.len() >= validators.quorum());
        }
    }
    for block in &response.blocks {
        if let Ok(decoded) = Block::decode(&block.payload, MAX_PAYLOAD_BYTES as u64) {
            assert_eq!(
                decoded.encode(),
                block.payload,
                "block decoded, not from its encoding"
            );
        }
    }
}

/// The frame limit of the `p2p_frame` target: small, so that the fuzzer reaches it.
pub const MAX_FRAME_BYTES: usize = 256;

/// Reads `data` as a stream of length-prefixed frames (limit [`MAX_FRAME_BYTES`]) until it
/// ends or a read fails, and checks that:
///
/// * every frame read is within the limit and consumed exactly its prefix and its bytes,
///   which are what writing the frame again produces;
/// * a frame announced over the limit is refused after reading only its prefix (nothing of
///   what it announced is read, let alone allocated), as `InvalidData`;
/// * any other failure is a stream that ends inside a prefix or a frame (`UnexpectedEof`);
/// * writing `data` as one frame succeeds exactly when it fits, writes nothing otherwise,
///   and reads back as `data`.
///
/// The fuzz target also caps the heap at the limit while this runs (a capped global
/// allocator), which the replay test cannot do.
pub fn p2p_frame(data: &[u8]) {
    let mut wire = Cursor::new(data);
    while (wire.position() as usize) < data.len() {
        let start = wire.position() as usize;
        let remaining = &data[start..];
        let announced = remaining
            .get(..LENGTH_PREFIX_BYTES)
            .map(|prefix| u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]));
        match block_on(read_frame(&mut wire, MAX_FRAME_BYTES)) {
            Ok(frame) => {
                assert!(frame.len() <= MAX_FRAME_BYTES);
                assert_eq!(announced, u32::try_from(frame.len()).ok());
                let consumed = &data[start..wire.position() as usize];
                let mut buffer = [0u8; LENGTH_PREFIX_BYTES + MAX_FRAME_BYTES];
                let mut out = Cursor::new(&mut buffer[..]);
                block_on(write_frame(&mut out, &frame, MAX_FRAME_BYTES))
                    .expect("a frame that was read can be written");
                let written = out.position() as usize;
                assert_eq!(&buffer[..written], consumed, "frame does not round-trip");
            }
            Err(error) => {
                match error.kind() {
                    io::ErrorKind::InvalidData => {
                        let announced = announced.expect("refused after a whole prefix");
                        assert!(announced as usize > MAX_FRAME_BYTES, "{error}");
                        assert_eq!(wire.position() as usize, start + LENGTH_PREFIX_BYTES);
                    }
                    io::ErrorKind::UnexpectedEof => {
                        if let Some(announced) = announced {
                            assert!(remaining.len() - LENGTH_PREFIX_BYTES < announced as usize);
                        }
                    }
                    other => panic!("read_frame failed with {other:?}: {error}"),
                }
                break;
            }
        }
    }

    let mut buffer = [0u8; LENGTH_PREFIX_BYTES + MAX_FRAME_BYTES];
    let mut out = Cursor::new(&mut buffer[..]);
    match block_on(write_frame(&mut out, data, MAX_FRAME_BYTES)) {
        Ok(()) => {
            assert!(data.len() <= MAX_FRAME_BYTES);
            let written = out.position() as usize;
            let mut back = Cursor::new(&buffer[..written]);
            let frame = block_on(read_frame(&mut back, MAX_FRAME_BYTES)).expect("read back");
            assert_eq!(frame, data);
        }
        Err(error) => {
            assert!(data.len() > MAX_FRAME_BYTES, "{error}");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            assert_eq!(out.position(), 0, "a refused frame wrote something");
        }
    }
}

/// The request body limit of the `http_body` target's router (the node's default is
/// 4 MiB; a small one lets the fuzzer reach it).
pub const HTTP_MAX_BODY_BYTES: usize = 8 << 10;

/// The real API router over a temporary core (genesis of [`testkit`]: chain `test`, two
/// banks with two customers each), with a runtime to drive it. Every request starts from an
/// empty mempool, so that the answer to a body depends on the body alone.
pub struct HttpHarness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    mempool: SharedMempool,
    _core: Core,
    _dir: tempfile::TempDir,
}

/// The mempool limits the harness starts each request with ([`testkit::mempool`]'s).
const MEMPOOL_LIMITS: MempoolLimits = MempoolLimits {
    max_transactions: 10_000,
    max_per_signer: 1_000,
    client_backlog: None,
};

impl HttpHarness {
    /// Opens a core on a fresh temporary store and builds the router over it.
    pub fn new() -> HttpHarness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let genesis = interpool_contracts::testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000);
        let (core, store) = testkit::core_and_store(&genesis, dir.path(), testkit::limits());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let router = {
            let _context = runtime.enter();
            api::router(
                testkit::api_state(&core, store, &genesis),
                HTTP_MAX_BODY_BYTES,
            )
        };
        HttpHarness {
            runtime,
            router,
            mempool: core.mempool().clone(),
            _core: core,
            _dir: dir,
        }
    }

    /// POSTs `body` to `path` on an empty mempool; returns the status and the JSON answer,
    /// after checking what every answer must be: not a 5xx, JSON, and on a 4xx exactly
    /// `{"error": {"code", "message"}}`.
    fn post(&self, path: &str, body: &[u8]) -> (StatusCode, Value) {
        *lock(&self.mempool) = Mempool::new(MEMPOOL_LIMITS);
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_vec()))
            .expect("request");
        let (status, content_type, bytes) = self.runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("answer body");
            (status, content_type, bytes)
        });
        let answer = String::from_utf8_lossy(&bytes);
        assert!(!status.is_server_error(), "POST {path}: {status} {answer}");
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "POST {path}: {status} {answer}"
        );
        let json: Value = serde_json::from_slice(&bytes).expect("the answer is JSON");
        if status.is_client_error() {
            assert_error_shape(&json);
        } else {
            assert!(status.is_success(), "POST {path}: {status} {answer}");
        }
        (status, json)
    }

    /// Posts `data` to `POST /v1/transactions` and `POST /v1/transactions/batch`, and checks
    /// their answers ([`http_body`]).
    pub fn check(&self, data: &[u8]) {
        let (single_status, single) = self.post("/v1/transactions", data);
        if single_status.is_success() {
            assert_eq!(single_status, StatusCode::ACCEPTED);
            assert_hash(&single);
        }

        let (batch_status, batch) = self.post("/v1/transactions/batch", data);
        if batch_status.is_success() {
            assert_eq!(batch_status, StatusCode::OK);
            let request: BatchRequest = parse_json(data).expect("the router parsed it");
            let results = batch_results(&batch);
            assert_eq!(
                results.len(),
                request.txs.len(),
                "one result per transaction"
            );
            for item in results {
                if item.get("error").is_some() {
                    assert_error_shape(item);
                } else {
                    assert_hash(item);
                }
            }
        }

        // The same transaction alone and as a batch of one gets one answer.
        let Ok(request) = parse_json::<SubmitRequest>(data) else {
            return;
        };
        if single_status == StatusCode::PAYLOAD_TOO_LARGE {
            return;
        }
        let body = serde_json::to_vec(&serde_json::json!({ "txs": [request.tx] })).expect("JSON");
        let (status, batch) = self.post("/v1/transactions/batch", &body);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return;
        }
        assert_eq!(status, StatusCode::OK, "{batch}");
        assert_eq!(
            batch_results(&batch),
            [single],
            "a batch of one answers otherwise than a single submission"
        );
    }
}

impl Default for HttpHarness {
    fn default() -> Self {
        HttpHarness::new()
    }
}

/// `{"error": {"code": "<snake_case>", "message": "..."}}` and nothing else.
fn assert_error_shape(json: &Value) {
    let error = json
        .as_object()
        .filter(|outer| outer.len() == 1)
        .and_then(|outer| outer.get("error"))
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("not an error body: {json}"));
    assert_eq!(error.len(), 2, "{json}");
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "bad error code in {json}"
    );
    assert!(error.get("message").is_some_and(Value::is_string), "{json}");
}

/// `{"hash": "<64 hex digits>"}` and nothing else.
fn assert_hash(json: &Value) {
    let hash = json
        .as_object()
        .filter(|object| object.len() == 1)
        .and_then(|object| object.get("hash"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("not a hash: {json}"));
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{json}"
    );
}

/// The `results` of a batch answer.
fn batch_results(json: &Value) -> &[Value] {
    json.get("results")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("not a batch answer: {json}"))
}

/// POSTs `data` as the body of `POST /v1/transactions` and of `POST /v1/transactions/batch`
/// through the real router, over a temporary core built once per thread, and checks that:
///
/// * nothing panics and no answer is a 5xx: bad input is the client's fault;
/// * every answer is JSON; every 4xx is exactly `{"error": {"code", "message"}}`;
/// * an accepted single submission answers 202 `{"hash"}`, a batch 200 with one result
///   (`{"hash"}` or an error body) per transaction;
/// * a body that is a single submission gets the same answer as a batch of its one
///   transaction (the batch "answers a bad entry in place with the error a single
///   submission would have got").
pub fn http_body(data: &[u8]) {
    thread_local! {
        static HARNESS: HttpHarness = HttpHarness::new();
    }
    HARNESS.with(|harness| harness.check(data));
}

#[cfg(test)]
mod seeds;

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::{Path, PathBuf};

    use interpool_contracts::primitives::to_hex;

    use super::*;

    /// `fuzz/<kind>/<target>/` of the repository.
    pub(super) fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz")
            .join(kind)
            .join(target)
    }

    /// Feeds every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` to
    /// `entry`, naming the file that fails; returns how many were replayed.
    fn replay(target: &str, entry: &dyn Fn(&[u8])) -> usize {
        let mut replayed = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(listing) = std::fs::read_dir(fuzz_dir(kind, target)) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = listing.map(|e| e.expect("entry").path()).collect();
            paths.sort();
            for path in paths {
                let bytes = std::fs::read(&path).expect("read corpus file");
                if catch_unwind(AssertUnwindSafe(|| entry(&bytes))).is_err() {
                    panic!("{} fails the {target} target", path.display());
                }
                replayed += 1;
            }
        }
        replayed
    }

    #[test]
    fn sync_response_corpus_replays() {
        assert!(replay("sync_response", &sync_response) > 0, "empty corpus");
    }

    #[test]
    fn p2p_frame_corpus_replays() {
        assert!(replay("p2p_frame", &p2p_frame) > 0, "empty corpus");
    }

    #[test]
    fn http_body_corpus_replays() {
        let harness = HttpHarness::new();
        assert!(
            replay("http_body", &|data| harness.check(data)) > 0,
            "empty corpus"
        );
    }

    /// The harness has teeth: it sees the answers a client would, and each request starts
    /// from an empty mempool.
    #[test]
    fn the_http_harness_answers_as_the_node_does() {
        let harness = HttpHarness::new();
        let valid = seeds::single(&to_hex(&seeds::transfer(0, 0, 100).encode()));
        for _ in 0..2 {
            let (status, json) = harness.post("/v1/transactions", &valid);
            assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        }
        let too_much = seeds::single(&to_hex(&seeds::transfer(0, 0, 100_000_000).encode()));
        let oversized = vec![b' '; HTTP_MAX_BODY_BYTES + 1];
        for (body, status, code) in [
            (&b"{"[..], StatusCode::BAD_REQUEST, "bad_json"),
            (&seeds::single("zz"), StatusCode::BAD_REQUEST, "bad_hex"),
            (
                &seeds::single("00"),
                StatusCode::BAD_REQUEST,
                "malformed_transaction",
            ),
            (
                &too_much,
                StatusCode::UNPROCESSABLE_ENTITY,
                "insufficient_funds",
            ),
            (&oversized, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        ] {
            let (got, json) = harness.post("/v1/transactions", body);
            assert_eq!(
                (got, json["error"]["code"].as_str()),
                (status, Some(code)),
                "{json}"
            );
        }
        harness.check(&valid);
    }

    #[test]
    fn seeds_pass_their_targets() {
        for seed in seeds::sync_response() {
            sync_response(&seed);
        }
        for seed in seeds::p2p_frame() {
            p2p_frame(&seed);
        }
        let harness = HttpHarness::new();
        for seed in seeds::http_body() {
            harness.check(&seed);
        }
    }

    /// Writes the seeds into `fuzz/corpus/<target>/` (named by content):
    /// `cargo test --workspace -- --ignored write_fuzz_seeds`.
    #[test]
    #[ignore = "writes the seed corpora into fuzz/corpus; run by hand"]
    fn write_fuzz_seeds() {
        for (target, seeds) in [
            ("sync_response", seeds::sync_response()),
            ("p2p_frame", seeds::p2p_frame()),
            ("http_body", seeds::http_body()),
        ] {
            let dir = fuzz_dir("corpus", target);
            std::fs::create_dir_all(&dir).expect("corpus directory");
            for seed in seeds {
                let hash = interpool_contracts::primitives::sha256(&[&seed]).to_hex();
                std::fs::write(dir.join(format!("seed-{}", &hash[..16])), seed).expect("write");
            }
        }
    }
}
