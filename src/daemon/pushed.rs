//! Executors on other machines (`claim --remote`): they work in clones of their own and
//! push the task's branch to the configured remote; the daemon makes no worktree for
//! them. What the daemon does instead: it names the remote in the claim's reply, follows
//! the pushed branch on every heartbeat (so conflict warnings see the work in progress),
//! and takes a submission only of the commit the holder names, and only when the branch
//! on the remote points at exactly it: a push by anyone else is never taken for the
//! holder's work.
//!
//! The remote is read with the `git` CLI (`ls-remote`, `fetch`), under the daemon's own
//! credentials, like every push the queue makes.

use tracing::{info, warn};

use super::service::{ApiError, Result, Service};
use crate::api::ErrorCode;
use crate::gitcli;
use crate::model::short_sha as short;
use crate::model::{Task, TaskId};

/// Where remote executors push: the config's `remote` and its URL.
pub(super) struct Remote {
    pub name: String,
    pub url: String,
}

impl Service {
    /// The remote of `claim --remote`, or why there is none.
    pub(super) fn remote_for_claims(&self) -> Result<Remote> {
        let Some(name) = self.config.remote.clone() else {
            return Err(ApiError::refused(
                "a remote claim needs a remote to push to: set `remote` in switchyard.toml \
                 (e.g. remote = \"origin\") and restart the daemon",
            ));
        };
        let url = gitcli::git(&self.repo.main_root, &["remote", "get-url", "--", &name])
            .map_err(|e| {
                ApiError::refused(format!(
                    "the remote {name:?} in switchyard.toml is not a remote of the repository: {e}"
                ))
            })?
            .trim()
            .to_owned();
        Ok(Remote { name, url })
    }

    /// Where the task's branch stands on the remote, `None` when it is not there.
    pub(super) fn pushed_tip(&self, remote: &Remote, task: &Task) -> Result<Option<String>> {
        gitcli::remote_tip(&self.repo.main_root, &remote.name, &task.branch)
            .map_err(|e| unreachable_remote(remote, &e))
    }

    /// A remote claim's heartbeat: brings what its executor pushed into the task's local
    /// branch, so the conflict checker sees the work in progress. Best effort: the
    /// heartbeat itself never fails for it (the remote may be down for a moment).
    pub(super) fn follow_pushed(&self, task: &Task) {
        let followed =
            self.remote_for_claims()
                .and_then(|remote| match self.pushed_tip(&remote, task)? {
                    Some(tip) => self.bring_in(&remote, task, &tip).map(Some),
                    None => Ok(None),
                });
        match followed {
            Ok(Some(tip)) => {
                info!(task = %task.id, tip = %short(&tip), "followed the pushed branch")
            }
            Ok(None) => {}
            Err(e) => {
                warn!(task = %task.id, error = %e.message, "could not follow the pushed branch")
            }
        }
    }

    /// Fetches the branch's `tip` and, when it still starts from the task's base commit
    /// (a branch that rewrote the base is the submit's to refuse), points the local
    /// branch at it. No worktree holds a remote claim's branch, so moving it is safe.
    fn bring_in(&self, remote: &Remote, task: &Task, tip: &str) -> Result<String> {
        let root = &self.repo.main_root;
        let fetched = gitcli::fetch(root, &remote.name, &task.branch)
            .map_err(|e| unreachable_remote(remote, &e))?;
        if fetched != tip {
            // Pushed again between the two looks: the newer one is followed next time.
            return Ok(fetched);
        }
        let starts_from_base = match &task.base_sha {
            Some(base) => crate::git::is_ancestor(root, base, &fetched)?,
            None => true,
        };
        if starts_from_base {
            gitcli::git(
                root,
                &[
                    "update-ref",
                    &format!("refs/heads/{}", task.branch),
                    &fetched,
                ],
            )?;
        }
        Ok(fetched)
    }

    /// A remote claim's submission of `commit`: it must be what the task's branch on the
    /// remote points at now. Fetches it, so the submission can pin it as usual.
    pub(super) fn take_pushed(&self, task: &Task, commit: &str) -> Result<()> {
        let remote = self.remote_for_claims()?;
        let id = task.id;
        match self.pushed_tip(&remote, task)? {
            None => Err(ApiError::new(
                ErrorCode::NothingToSubmit,
                format!(
                    "{id}'s branch {} is not on {}: push it first (git push {} HEAD:refs/heads/{})",
                    task.branch, remote.url, remote.url, task.branch
                ),
            )),
            Some(tip) if tip != commit => Err(pushed_elsewhere(id, task, &remote, &tip, commit)),
            Some(_) => {
                let fetched = gitcli::fetch(&self.repo.main_root, &remote.name, &task.branch)
                    .map_err(|e| unreachable_remote(&remote, &e))?;
                if fetched != commit {
                    return Err(pushed_elsewhere(id, task, &remote, &fetched, commit));
                }
                Ok(())
            }
        }
    }

    /// After a remote claim's submission: its local branch follows what was submitted.
    pub(super) fn point_branch_at(&self, task: &Task, commit: &str) {
        let moved = gitcli::git(
            &self.repo.main_root,
            &["update-ref", &format!("refs/heads/{}", task.branch), commit],
        );
        if let Err(e) = moved {
            warn!(task = %task.id, error = %e, "could not point the local branch at the submission");
        }
    }
}

fn pushed_elsewhere(id: TaskId, task: &Task, remote: &Remote, tip: &str, commit: &str) -> ApiError {
    ApiError::new(
        ErrorCode::StaleCommit,
        format!(
            "{id}'s branch {} on {} points at {}, not at {}, the commit you submitted: push \
             your commit there and submit again (a branch someone else pushed is never taken \
             for the claim holder's work)",
            task.branch,
            remote.url,
            short(tip),
            short(commit)
        ),
    )
}

fn unreachable_remote(remote: &Remote, e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!(
            "cannot read the remote {} ({}): {e}",
            remote.name, remote.url
        ),
    )
}
