//! The queue's executor: asks the planner (`queue::planner`) what to do, carries each
//! action out on a blocking thread of its own, and asks again whenever one finishes, the
//! queue is woken (a submit, an approval, a retry from GitHub) or a tick passes. Up to
//! `[queue] max_parallel` candidates are in flight, each verified in its own integration
//! worktree; a verify that runs holds neither the ledger, nor the planner, nor another
//! candidate back, and waiting on it pins no async runtime thread. The lander is the
//! planner's rule that only the first candidate lands, one at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::warn;

use super::service::{ApiError, Result, Service};
use crate::model::TaskId;
use crate::queue::planner::Action;

/// How long a task whose step failed rests before its next try.
const REST: Duration = Duration::from_secs(2);

/// A finished action: its task, the integration worktree it held, its outcome.
type Done = (TaskId, Option<PathBuf>, Result<()>);

pub(super) async fn run(
    service: Arc<Service>,
    wanted: Arc<Notify>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let slots = service.config.queue.max_parallel.get() as usize;
    let mut free: Vec<PathBuf> = (0..slots)
        .rev()
        .map(|k| service.integration_dir(k))
        .collect();
    let mut busy: BTreeSet<TaskId> = BTreeSet::new();
    let mut resting: BTreeMap<TaskId, Instant> = BTreeMap::new();
    let mut running: JoinSet<Done> = JoinSet::new();
    loop {
        let now = Instant::now();
        resting.retain(|_, until| *until > now);
        if !*stop.borrow() {
            let held: BTreeSet<TaskId> = busy.iter().chain(resting.keys()).copied().collect();
            let s = Arc::clone(&service);
            match tokio::task::spawn_blocking(move || s.plan_queue(&held)).await {
                Ok(Ok(actions)) => {
                    for action in actions {
                        let dir = match action {
                            Action::Verify { .. } => match free.pop() {
                                Some(dir) => Some(dir),
                                // Cannot happen: the planner's window is as wide as the slots.
                                None => continue,
                            },
                            _ => None,
                        };
                        let task = action.task();
                        busy.insert(task);
                        let s = Arc::clone(&service);
                        running.spawn_blocking(move || {
                            // A panic is one failed step of one task, not the queue's end.
                            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                s.act(&action, dir.as_deref())
                            }))
                            .unwrap_or_else(|_| Err(ApiError::internal("the step panicked")));
                            (task, dir, outcome)
                        });
                    }
                }
                Ok(Err(e)) => warn!(error = %e.message, "planning the queue failed"),
                Err(e) => warn!(error = %e, "planning the queue failed"),
            }
        }
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                match done {
                    Ok((task, dir, outcome)) => {
                        busy.remove(&task);
                        free.extend(dir);
                        if let Err(e) = outcome {
                            resting.insert(task, Instant::now() + REST);
                            let s = Arc::clone(&service);
                            let recorded = tokio::task::spawn_blocking(move || s.step_failed(task, &e)).await;
                            if let Ok(Err(e)) = recorded {
                                warn!(error = %e.message, "could not record a failed step");
                            }
                        }
                    }
                    // Only a cancelled runtime gets here: the daemon is going away.
                    Err(e) => warn!(error = %e, "an integration step was cut short"),
                }
            }
            _ = wanted.notified() => {}
            _ = tokio::time::sleep(every) => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                // Actions see `stopping` (a verify is cancelled and runs again after the
                // restart); the daemon's drain limit bounds the wait.
                while running.join_next().await.is_some() {}
                return;
            }
        }
    }
}
