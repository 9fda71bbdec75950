//! `GET /v1/health`: 200 while the node commits, 503 with a diagnosis when it does not.
//!
//! A load balancer or a monitor asks one question ("is this node making progress?") and an
//! operator the next one ("why not?"). The answer says both: `status` and the HTTP code for
//! the first, `reasons` (one sentence each: "no quorum: 2 of 4 validators reachable, 3
//! needed", "no commit for 7 s") and the numbers behind them for the second.
//!
//! A node is `stalled` when it has not committed for `stall_after` (two round timeouts plus
//! the empty-block interval, so a stall is reported within three round timeouts of the last
//! commit), or, as a validator, when it reaches fewer validators than a quorum (at once: no
//! block can commit without one), or, as an observer, no validator at all. It is `halted`
//! at its configured halt height.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use interpool_contracts::views::HealthView;
use interpool_contracts::AccountId;

use super::ApiState;
use crate::app::lock;

/// What the health check needs to know about the consortium and this node.
pub struct Health {
    /// The genesis validators.
    pub validators: Vec<AccountId>,
    /// Validators needed for a quorum.
    pub quorum: usize,
    /// This node's key.
    pub me: AccountId,
    /// Whether this node is a validator.
    pub validator: bool,
    /// No commit for this long is a stall.
    pub stall_after: Duration,
    /// The peers connected now.
    pub connected: Arc<dyn Fn() -> Vec<AccountId> + Send + Sync>,
}

impl Health {
    /// A consortium of this node alone (tests of the API without a network).
    pub fn alone(me: AccountId) -> Health {
        Health {
            validators: vec![me],
            quorum: 1,
            me,
            validator: true,
            stall_after: Duration::from_secs(5),
            connected: Arc::new(Vec::new),
        }
    }

    /// Validators this node reaches now, itself included if it is one.
    pub fn reachable(&self) -> usize {
        let connected = (self.connected)();
        self.validators
            .iter()
            .filter(|v| (self.validator && **v == self.me) || connected.contains(v))
            .count()
    }

    /// Validators this node needs to reach to make progress.
    pub fn needed(&self) -> usize {
        if self.validator {
            self.quorum
        } else {
            1
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/health",
    summary = "Whether the node commits blocks, and if not, why",
    tag = "node",
    responses(
        (status = 200, description = "The node commits blocks", body = HealthView),
        (status = 503, description = "The node does not commit: stalled (no recent commit, or \
            no quorum of validators reachable) or halted (at its configured halt height); \
            `reasons` says why", body = HealthView),
    )
)]
pub(crate) async fn health(caller: super::auth::Caller, State(state): State<ApiState>) -> Response {
    // The queues' figures are network-wide: with few banks they tell one bank another's
    // liquidity. They go to the callers who may read the node's metrics.
    let queues_visible = caller
        .may_read_metrics(state.auth.metrics_from_loopback)
        .is_ok();
    let (view, healthy) = diagnose(&state, queues_visible);
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(view)).into_response()
}

/// The diagnosis, and whether the node is healthy; the queues' figures only if
/// `queues_visible`.
pub(crate) fn diagnose(state: &ApiState, queues_visible: bool) -> (HealthView, bool) {
    let health = &state.health;
    let view = state.reader.view();
    let height = view.tip.height;
    let reachable = health.reachable();
    let needed = health.needed();
    state.metrics.reachability(reachable, health.quorum);
    let since = state.metrics.since_last_commit();
    let ledger = &view.ledger;
    let lengths: Vec<usize> = if queues_visible {
        ledger
            .banks()
            .map(|(id, _)| ledger.queue(id).count())
            .collect()
    } else {
        Vec::new()
    };
    let (mempool_size, mempool_capacity) = {
        let mempool = lock(&state.mempool);
        (mempool.len(), mempool.capacity())
    };
    let mut reasons = Vec::new();
    let halted = state.halt_height.is_some_and(|halt| height >= halt);
    if halted {
        reasons.push(format!(
            "halted at height {height}: the configured halt_height; raise or remove it and \
             restart to go on"
        ));
    } else {
        if reachable < needed {
            reasons.push(if health.validator {
                format!(
                    "no quorum: {reachable} of {} validators reachable, {needed} needed",
                    health.validators.len()
                )
            } else {
                format!(
                    "no validator reachable of {}: nothing to follow",
                    health.validators.len()
                )
            });
        }
        if since > health.stall_after {
            reasons.push(format!(
                "no commit for {:.1} s (stalled after {:.1} s){}",
                since.as_secs_f64(),
                health.stall_after.as_secs_f64(),
                if health.validator {
                    format!("; consensus is in round {}", state.metrics.current_round())
                } else {
                    String::new()
                }
            ));
        }
    }
    let status = if halted {
        "halted"
    } else if reasons.is_empty() {
        "ok"
    } else {
        "stalled"
    };
    let healthy = reasons.is_empty();
    (
        HealthView {
            status: status.into(),
            reasons,
            role: if health.validator {
                "validator"
            } else {
                "observer"
            }
            .into(),
            height,
            seconds_since_last_commit: since.as_secs_f64(),
            stall_after_seconds: health.stall_after.as_secs_f64(),
            round: state.metrics.current_round(),
            validators_reachable: reachable,
            validators: health.validators.len(),
            validators_needed: needed,
            mempool_size,
            mempool_capacity,
            queued: queues_visible.then(|| lengths.iter().sum()),
            longest_queue: queues_visible.then(|| lengths.iter().copied().max().unwrap_or(0)),
            queue_capacity: u64::from(ledger.params().max_queue_per_bank),
        },
        healthy,
    )
}
