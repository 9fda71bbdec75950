//! Observers follow the chain by sync: fetch certified blocks from peers, verify each
//! certificate against the genesis validator set (in [`Fetcher::fetch`]), and commit them
//! through the core's one commit path. A block announcement wakes the follower at once;
//! without one it polls every `interval`.

use std::sync::Arc;
use std::time::Duration;

use interpool_consensus::CommitCertificate;
use tokio::sync::Notify;

use super::sync::Fetcher;
use crate::app::{ChainError, Core};

/// Runs the follower until the core reaches its halt height (`Ok`) or a fatal error
/// (storage failure, a broken invariant), which it returns.
pub async fn follow(
    mut core: Core,
    fetcher: Arc<Fetcher>,
    announced: Arc<Notify>,
    interval: Duration,
) -> Result<(), ChainError> {
    let mut poll = tokio::time::interval(interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if core.halted() {
            return Ok(());
        }
        tokio::select! {
            _ = poll.tick() => {}
            () = announced.notified() => {}
        }
        // Fetch while a peer is ahead: a long way behind, that is many requests.
        loop {
            let Some(fetched) = fetcher.fetch(core.tip()).await else {
                break;
            };
            for block in fetched.blocks {
                if block.height != core.next_height() {
                    break;
                }
                // The fetcher verified the certificate; it decodes.
                let Ok(certificate) = CommitCertificate::decode(&block.certificate) else {
                    break;
                };
                let outcome = core.commit(block.height, &block.payload, &certificate)?;
                if core.halted() {
                    return Ok(());
                }
                tracing::debug!(
                    height = block.height,
                    transactions = outcome.receipts.len(),
                    "followed block"
                );
            }
            if fetched.peer_tip <= core.tip().height {
                break;
            }
        }
    }
}
