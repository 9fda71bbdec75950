//! Accounts and signers: `GET /v1/accounts/{id}`, its history and proof, and
//! `GET /v1/signers/{id}`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use interpool_consensus::CommitCertificate;
use interpool_contracts::block::Block;
use interpool_contracts::primitives::{sha256, to_hex};
use interpool_contracts::views::{AccountHistoryView, AccountProofView, AccountView, SignerView};
use interpool_contracts::{AccountId, BlockOutcome};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::blocks::stored_block;
use super::limits::{ExpensiveReads, WithinRate};
use super::transactions::stored_status;
use super::{
    parse_account, parse_cursor, path_text, ApiError, ApiResult, ApiState, Code, ErrorBody,
};
use crate::app::lock;

#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    summary = "An account's balance, reservation, nonce and bank",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The account id")),
    responses(
        (status = 200, description = "The account's balance, reservation, nonce and bank",
            body = AccountView),
        (status = 400, description = "`bad_account_id`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
    )
)]
pub(crate) async fn account(
    caller: Caller,
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<AccountView>> {
    let id = parse_account(&path_text(id, Code::BadAccountId, "account id")?)?;
    let view = state.reader.view();
    caller.may_read_account(&view.ledger, &id)?;
    let account = view
        .ledger
        .account(&id)
        .ok_or_else(|| ApiError::new(Code::UnknownAccount, format!("no account {id}")))?;
    Ok(Json(AccountView::new(id, account, state.decimals)))
}

/// Which bank holds an account: the payment directory.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccountBankView {
    /// The account id.
    pub account: AccountId,
    /// The bank that holds it.
    pub bank: interpool_contracts::BankId,
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/bank",
    summary = "The bank that holds an account (the payment directory)",
    description = "What a payer needs to address a payment (a pacs.008's creditor agent), \
        and nothing else about the account.",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The account id")),
    responses(
        (status = 200, description = "The account's bank", body = AccountBankView),
        (status = 400, description = "`bad_account_id`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
    )
)]
pub(crate) async fn account_bank(
    caller: Caller,
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<AccountBankView>> {
    let id = parse_account(&path_text(id, Code::BadAccountId, "account id")?)?;
    caller.known()?;
    let view = state.reader.view();
    let account = view
        .ledger
        .account(&id)
        .ok_or_else(|| ApiError::new(Code::UnknownAccount, format!("no account {id}")))?;
    Ok(Json(AccountBankView {
        account: id,
        bank: account.bank.clone(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/signers/{id}",
    summary = "A signer's role, bank and next nonce",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The signer's key")),
    responses(
        (status = 200, description = "The signer's role, bank and next nonce", body = SignerView),
        (status = 400, description = "`bad_account_id`", body = ErrorBody),
        (status = 404, description = "`unknown_signer`: neither an account nor an official \
            key", body = ErrorBody),
    )
)]
pub(crate) async fn signer(
    caller: Caller,
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<SignerView>> {
    let id = parse_account(&path_text(id, Code::BadAccountId, "signer")?)?;
    let view = state.reader.view();
    caller.may_read_signer(&view.ledger, &id)?;
    let signer = SignerView::new(&view.ledger, id).ok_or_else(|| {
        ApiError::new(
            Code::UnknownSigner,
            format!("{id} is neither an account nor an official key"),
        )
    })?;
    let pending = lock(&state.mempool).next_nonce(&id, signer.nonce);
    Ok(Json(signer.with_pending_nonce(pending)))
}

/// Most entries of one history page, and the default.
pub(crate) const MAX_HISTORY_PAGE: usize = 200;
const DEFAULT_HISTORY_PAGE: usize = 20;

/// `GET /v1/accounts/{id}/transactions` query (unknown parameters are answered 400).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    /// Most entries in the page (1 to 200; default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// Only entries older than this cursor `HEIGHT:INDEX` (the `next` of the previous page).
    #[param(pattern = "^[0-9]{1,19}:[0-9]{1,9}$")]
    before: Option<String>,
}

/// Most digits of a page size: 200 has three (leading zeros are not refused, but nobody
/// needs more than three of them).
const MAX_LIMIT_DIGITS: usize = 3;

#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/transactions",
    summary = "An account's transactions, newest first, one page at a time",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The account id"), HistoryQuery),
    responses(
        (status = 200, description = "One page of the account's transactions, newest first",
            body = AccountHistoryView),
        (status = 400, description = "`bad_account_id`, `bad_query`, `bad_limit` or \
            `bad_cursor`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 410, description = "`pruned`: the cursor is below the blocks this node \
            keeps (`earliest_height` in /v1/status)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client is over its rate of \
            expensive reads", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`busy` (too many expensive reads at once; retry) or \
            `unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn account_history(
    _rate: WithinRate<ExpensiveReads>,
    caller: Caller,
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<AccountHistoryView>> {
    let id = parse_account(&path_text(id, Code::BadAccountId, "account id")?)?;
    caller.may_read_account(&state.reader.view().ledger, &id)?;
    let Query(query) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_HISTORY_PAGE,
        // Digits only, as the document's integer: no sign, no blank.
        Some(text) => super::decimal::<usize>(text, MAX_LIMIT_DIGITS)
            .filter(|limit| (1..=MAX_HISTORY_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadLimit,
                    format!("limit must be a number from 1 to {MAX_HISTORY_PAGE}, not {text:?}"),
                )
            })?,
    };
    let before = query.before.as_deref().map(parse_cursor).transpose()?;
    // Before height 0 there is nothing (an empty page), pruned or not.
    if let Some((height, _)) = before.filter(|(height, _)| *height > 0) {
        state.keeps(height, || format!("the history before block {height}"))?;
    }
    if state.reader.view().ledger.account(&id).is_none() {
        return Err(ApiError::new(
            Code::UnknownAccount,
            format!("no account {id}"),
        ));
    }
    // A rejected entry is cut to what the caller may read (`transactions::cut_rejection`:
    // the error names what the payer lacked, or another bank's pool).
    let shown_to = (caller.clone(), state.reader.view().ledger.clone());
    let page = state
        .read_expensive(move |store| {
            // One more than asked tells whether there is a next page.
            let mut locations = store
                .account_history(&id, before, limit + 1)
                .map_err(ApiError::internal)?;
            let next = (locations.len() > limit).then(|| {
                locations.truncate(limit);
                locations
                    .last()
                    .map(|(height, index)| format!("{height}:{index}"))
            });
            let mut transactions = Vec::with_capacity(locations.len());
            let mut outcome: Option<BlockOutcome> = None;
            for (height, index) in locations {
                if outcome.as_ref().map(|o| o.height) != Some(height) {
                    outcome = store.outcome(height).map_err(ApiError::internal)?;
                }
                let receipts = outcome
                    .as_ref()
                    .map(|o| o.receipts.as_slice())
                    .unwrap_or(&[]);
                let hash = receipts
                    .get(index as usize)
                    .map(|r| r.tx_hash)
                    .ok_or_else(|| ApiError::internal(format!("no receipt {height}:{index}")))?;
                transactions.push(
                    stored_status(store, hash, Some((height, receipts)))?.ok_or_else(|| {
                        ApiError::internal(format!("{hash} is not in the transaction index"))
                    })?,
                );
            }
            let mut decoded = None;
            for view in &mut transactions {
                let (caller, ledger) = &shown_to;
                let signer = match super::transactions::signer_to_look_up(caller, view) {
                    Some(location) => {
                        super::transactions::signer_at(store, location, &mut decoded)?
                    }
                    None => None,
                };
                super::transactions::cut_rejection(caller, ledger, signer.as_ref(), view);
            }
            Ok::<_, ApiError>(AccountHistoryView {
                account: id,
                transactions,
                next: next.flatten(),
            })
        })
        .await??;
    Ok(Json(page))
}

/// How long a proof request waits for the block that certifies the current state.
const PROOF_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/proof",
    summary = "An account's state with a Merkle proof and the certificate of its root",
    tag = "accounts",
    params(("id" = inline(AccountId), Path, description = "The account id")),
    responses(
        (status = 200, description = "The account's state (or its absence) with a Merkle \
            proof against the state root after block `height`, and block `height + 1`'s \
            header and transactions' digest with its commit certificate, which certify that \
            root (no transaction is shown). Waits up to 10 s for that block",
            body = AccountProofView<CommitCertificate>),
        (status = 400, description = "`bad_account_id`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client is over its rate of \
            expensive reads", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`not_certified_yet` (the certifying block did not \
            commit in time), `busy` (too many expensive reads at once; retry) or \
            `unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub(crate) async fn account_proof(
    _rate: WithinRate<ExpensiveReads>,
    caller: Caller,
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<AccountProofView<CommitCertificate>>> {
    let id = parse_account(&path_text(id, Code::BadAccountId, "account id")?)?;
    // Subscribe before reading the state, so the commit of the next block cannot slip by.
    // The certifying block goes out as its header and its transactions' digest, no
    // transfer of it shown: whoever may read the account may have its proof (ADR 0014).
    let mut commits = state.reader.subscribe();
    let view = commits.borrow_and_update().clone();
    caller.may_read_account(&view.ledger, &id)?;
    let height = view.tip.height;
    let proof = state
        .read_expensive(move |_| view.ledger.account_proof(&id))
        .await?;
    // The state after `height` is certified by block `height + 1`'s header: wait for it.
    let deadline = tokio::time::Instant::now() + PROOF_WAIT;
    let certifying = loop {
        let next = height + 1;
        if commits.borrow().tip.height >= next {
            let stored = state
                .reader
                .read(move |store| stored_block(store, next))
                .await?;
            if let Some(stored) = stored {
                break stored;
            }
        }
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => {
                return Err(ApiError::new(
                    Code::NotCertifiedYet,
                    format!(
                        "block {next} that certifies the state after block {height} has not \
                         committed within {PROOF_WAIT:?}; try again"
                    ),
                ))
            }
        }
    };
    let (head, transactions) = Block::split(&certifying.encoded)
        .ok_or_else(|| ApiError::internal(format!("stored block {} is not framed", height + 1)))?;
    Ok(Json(AccountProofView {
        proof,
        height,
        certifying_header: to_hex(head),
        certifying_transactions_digest: sha256(&[transactions]),
        certificate: certifying.certificate,
    }))
}
