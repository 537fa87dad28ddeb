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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::github::Hub;
use super::service::{ApiError, Committed, Result, Service};
use crate::model::{EventKind, QueueEventKind, TaskId, TaskState};
use crate::queue::planner::Action;

/// How long a task whose step failed rests before its next try.
const REST: Duration = Duration::from_secs(2);

/// A finished action: its task, the integration worktree it held, its outcome.
type Done = (TaskId, Option<PathBuf>, Result<()>);

pub(super) async fn run(
    service: Arc<Service>,
    github: Option<Arc<Hub>>,
    every: Duration,
    stop: CancellationToken,
) {
    // Woken by what the ledger commits: a task entering the queue (a submit, an approval,
    // a retry, through any door), a priority changed, the queue resumed.
    let mut committed = service.subscribe();
    let slots = service.config.queue.max_parallel.get() as usize;
    let mut free: Vec<PathBuf> = (0..slots)
        .rev()
        .map(|k| service.integration_dir(k))
        .collect();
    let mut busy: BTreeSet<TaskId> = BTreeSet::new();
    let mut resting: BTreeMap<TaskId, Instant> = BTreeMap::new();
    let mut running: JoinSet<Done> = JoinSet::new();
    // What cuts each running action short: a stale candidate, or the daemon stopping.
    let mut cancels: BTreeMap<TaskId, Arc<AtomicBool>> = BTreeMap::new();
    loop {
        let now = Instant::now();
        resting.retain(|_, until| *until > now);
        if !stop.is_cancelled() {
            let held: BTreeSet<TaskId> = busy.iter().chain(resting.keys()).copied().collect();
            let s = Arc::clone(&service);
            match tokio::task::spawn_blocking(move || s.plan_queue(&held)).await {
                // Stopping meanwhile: nothing new starts.
                Ok(Ok(_)) if stop.is_cancelled() => {}
                Ok(Ok(actions)) => {
                    for action in actions {
                        let task = action.task();
                        if let Action::Abandon { .. } = action {
                            if let Some(cancel) = cancels.get(&task) {
                                info!(task = %task, "cutting short the work on a stale candidate");
                                cancel.store(true, Ordering::Relaxed);
                            }
                            continue;
                        }
                        let dir = match action {
                            Action::Verify { .. } => match free.pop() {
                                Some(dir) => Some(dir),
                                // Every slot is held by a verify that fell out of the
                                // window (a priority changed): this one waits for a slot.
                                None => continue,
                            },
                            _ => None,
                        };
                        busy.insert(task);
                        let cancel = Arc::new(AtomicBool::new(false));
                        cancels.insert(task, Arc::clone(&cancel));
                        let s = Arc::clone(&service);
                        let gh = github.clone();
                        running.spawn_blocking(move || {
                            // A panic is one failed step of one task, not the queue's end.
                            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                s.act(&action, dir.as_deref(), gh.as_deref(), &cancel)
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
        // Wait for a reason to plan again: a step done, an event, the tick, or the end of
        // a failed task's rest.
        let wait = resting
            .values()
            .map(|until| until.saturating_duration_since(Instant::now()))
            .fold(every, Duration::min);
        let tick = tokio::time::sleep(wait);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                Some(done) = running.join_next(), if !running.is_empty() => {
                    match done {
                        Ok((task, dir, outcome)) => {
                            busy.remove(&task);
                            cancels.remove(&task);
                            // Slots are handed out oldest-freed first: the one just
                            // used is being cleaned, or its worktree just failed.
                            if let Some(dir) = dir {
                                free.insert(0, dir);
                            }
                            if let Err(e) = outcome {
                                resting.insert(task, Instant::now() + REST);
                                let s = Arc::clone(&service);
                                let recorded =
                                    tokio::task::spawn_blocking(move || s.step_failed(task, &e)).await;
                                if let Ok(Err(e)) = recorded {
                                    warn!(error = %e.message, "could not record a failed step");
                                }
                            }
                        }
                        // Only a runtime shutting down gets here: the daemon is going away.
                        Err(e) => warn!(error = %e, "an integration step was cut short"),
                    }
                    break;
                }
                event = committed.recv() => match event {
                    Ok(event) if !wakes_the_queue(&event) => continue,
                    // Lagged behind: something happened, look.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    // Cannot happen while the service lives; the tick still runs.
                    Err(broadcast::error::RecvError::Closed) => {
                        (&mut tick).await;
                        break;
                    }
                },
                () = &mut tick => break,
                () = stop.cancelled() => {
                    // A verify is cut short and runs again after the restart; the
                    // daemon's drain limit bounds the wait for the rest.
                    for cancel in cancels.values() {
                        cancel.store(true, Ordering::Relaxed);
                    }
                    while running.join_next().await.is_some() {}
                    return;
                }
            }
        }
    }
}

/// Whether a committed event may give the planner something new to do. The engine's
/// own steps do not count: it plans again after each of them anyway.
fn wakes_the_queue(event: &Committed) -> bool {
    match event {
        Committed::Task(e) => {
            e.state == Some(TaskState::Queued) || e.what.kind() == EventKind::PriorityChanged
        }
        Committed::Queue(e) => e.what.kind() == QueueEventKind::Resumed,
    }
}
