//! `switchyard wait`: an agent's one call that waits for its change's verdict. The
//! daemon answers when the ledger says so (a long poll woken by the broadcast of
//! committed events, `Service::subscribe`), never by the client polling.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::service::{ApiError, Committed, Result, Service};
use crate::api::{Outcome, WaitOutcome};
use crate::model::{Event, Evidence, TaskId, TaskState};

/// The longest one wait request is held open; a client waiting longer asks again.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(25);

/// How often a held wait looks whether the daemon is stopping.
const STOP_CHECK: Duration = Duration::from_millis(500);

impl Service {
    /// Where the task stands for a waiting executor: `None` while it is still on its
    /// way through the queue (queued, awaiting review, verifying).
    pub fn wait_outcome(&self, id: TaskId) -> Result<Option<WaitOutcome>> {
        self.read(|l| {
            let task = l.task(id)?;
            let outcome = match task.state {
                TaskState::Queued | TaskState::Verifying | TaskState::AwaitingReview => {
                    return Ok(None);
                }
                TaskState::Merged => Outcome::Merged,
                TaskState::Returned => Outcome::Returned,
                TaskState::AwaitingApproval => Outcome::Checkpoint,
                TaskState::Cancelled => Outcome::Cancelled,
                TaskState::Open | TaskState::Claimed => Outcome::NotInQueue,
            };
            let events = l.events(id)?;
            // The event that put it where it is.
            let reason = events.iter().rev().find(|e| e.state.is_some()).cloned();
            let commit = events.iter().rev().find_map(|e| match &e.what {
                Evidence::Merged(m) if outcome == Outcome::Merged => Some(m.commit.clone()),
                _ => None,
            });
            let reason = match outcome {
                Outcome::Merged | Outcome::NotInQueue => None,
                // What sent it back, not the daemon's bookkeeping after it.
                Outcome::Returned => events
                    .iter()
                    .rev()
                    .find(|e| e.state == Some(TaskState::Returned))
                    .cloned(),
                _ => reason,
            };
            let checkpoints = match outcome {
                Outcome::Checkpoint => crate::queue::checkpoints(&task, &events),
                _ => Vec::new(),
            };
            Ok(Some(WaitOutcome {
                id,
                outcome,
                state: task.state,
                attempt: task.attempt,
                commit,
                reason,
                checkpoints,
            }))
        })
    }

    /// Waits at most `limit` (capped at [`MAX_WAIT`]) for the task to leave the queue.
    pub(super) async fn wait_for(
        self: std::sync::Arc<Self>,
        id: TaskId,
        limit: Duration,
    ) -> Result<WaitOutcome> {
        // Subscribed before the first look, so that nothing committed in between is
        // missed.
        let mut committed = self.subscribe();
        let deadline = tokio::time::Instant::now() + limit.min(MAX_WAIT);
        loop {
            let service = std::sync::Arc::clone(&self);
            let now = tokio::task::spawn_blocking(move || service.wait_outcome(id))
                .await
                .map_err(|e| ApiError::internal(format!("wait failed: {e}")))??;
            if let Some(outcome) = now {
                return Ok(outcome);
            }
            tracing::debug!(task = %id, "a client waits for the task to leave the queue");
            loop {
                if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(ApiError::unavailable(
                        "the daemon is stopping; wait again once it is back",
                    ));
                }
                let tick = (tokio::time::Instant::now() + STOP_CHECK).min(deadline);
                match tokio::time::timeout_at(tick, committed.recv()).await {
                    Err(_) if tokio::time::Instant::now() >= deadline => {
                        let task = {
                            let service = std::sync::Arc::clone(&self);
                            tokio::task::spawn_blocking(move || service.read(|l| l.task(id)))
                                .await
                                .map_err(|e| ApiError::internal(format!("wait failed: {e}")))??
                        };
                        return Ok(WaitOutcome {
                            id,
                            outcome: Outcome::Timeout,
                            state: task.state,
                            attempt: task.attempt,
                            commit: None,
                            reason: None,
                            checkpoints: Vec::new(),
                        });
                    }
                    Err(_) => continue,
                    // A change of this task's state: look again.
                    Ok(Ok(Committed::Task(Event {
                        task,
                        state: Some(_),
                        ..
                    }))) if task == id => break,
                    Ok(Ok(_)) => continue,
                    // Fell behind the broadcast: look at the ledger itself.
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => {
                        return Err(ApiError::unavailable("the daemon is stopping"));
                    }
                }
            }
        }
    }
}
