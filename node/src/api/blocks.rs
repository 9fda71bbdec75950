//! Blocks: `GET /v1/blocks/{height}`, and the one reader of a stored block with everything
//! that belongs to it (the event stream and proofs read through it too).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use interpool_consensus::CommitCertificate;
use interpool_contracts::views::BlockView;
use interpool_contracts::{Block, BlockOutcome};

use super::limits::{ExpensiveReads, WithinRate};
use super::{parse_number, path_text, ApiError, ApiResult, ApiState, Code, ErrorBody};
use crate::storage::Store;

/// A stored block, decoded, with its certificate and outcome.
pub(crate) struct StoredBlock {
    pub encoded: Vec<u8>,
    pub block: Block,
    pub certificate: CommitCertificate,
    pub outcome: BlockOutcome,
}

/// Reads block `height` and all that belongs to it (`None` if not committed yet). A
/// blocking read.
pub(crate) fn stored_block(store: &Store, height: u64) -> ApiResult<Option<StoredBlock>> {
    let Some(encoded) = store.block(height).map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let corrupt = |what: &str| ApiError::internal(format!("stored {what} {height} is unreadable"));
    let block = Block::decode(&encoded, u64::MAX).map_err(|_| corrupt("block"))?;
    let certificate = store
        .certificate(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| corrupt("certificate"))?;
    let certificate =
        CommitCertificate::decode(&certificate).map_err(|_| corrupt("certificate"))?;
    let outcome = store
        .outcome(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| corrupt("outcome"))?;
    Ok(Some(StoredBlock {
        encoded,
        block,
        certificate,
        outcome,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/blocks/{height}",
    summary = "A committed block with its commit certificate",
    tag = "blocks",
    params(("height" = String, Path, pattern = "^([0-9]{1,19}|latest)$",
        description = "A height (the first block is 1) or `latest`")),
    responses(
        (status = 200, description = "The block's header, transaction hashes, resulting state \
            root and commit certificate", body = BlockView<CommitCertificate>),
        (status = 400, description = "`bad_height`", body = ErrorBody),
        (status = 404, description = "`unknown_block`: not committed yet", body = ErrorBody),
        (status = 410, description = "`pruned`: below the blocks this node keeps \
            (`[storage] retain_blocks`; `earliest_height` in /v1/status)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client is over its rate of \
            expensive reads", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`busy` (too many expensive reads at once; retry) or \
            `unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn block(
    _rate: WithinRate<ExpensiveReads>,
    caller: super::auth::Caller,
    State(state): State<ApiState>,
    height: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<BlockView<CommitCertificate>>> {
    // A block lists every transfer in it: whole blocks are for those who see everything.
    caller.require_all_seeing("blocks")?;
    let height = path_text(height, Code::BadHeight, "height")?;
    let wanted = parse_number(&height, Code::BadHeight, "height")?;
    let tip = state.reader.view().tip.height;
    let height = wanted.unwrap_or(tip);
    let not_found = || {
        ApiError::new(
            Code::UnknownBlock,
            format!("no block at height {height}; the last is {tip}"),
        )
    };
    if height == 0 || height > tip {
        return Err(not_found());
    }
    state.keeps(height, || format!("block {height}"))?;
    let stored = state
        .read_expensive(move |store| stored_block(store, height))
        .await??
        .ok_or_else(not_found)?;
    Ok(Json(BlockView {
        hash: Block::hash_of(&stored.encoded),
        transactions: stored
            .block
            .transactions
            .iter()
            .map(|tx| tx.hash())
            .collect(),
        header: stored.block.header,
        state_root: stored.outcome.state_root,
        certificate: stored.certificate,
    }))
}
