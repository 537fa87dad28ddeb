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

/// Where remote executors push: the config's `remote` and its URL, without the
/// credentials a URL may hold (`https://user:secret@host/...`): those are the daemon's,
/// and an executor's token must not hand them out.
pub(super) struct Remote {
    pub name: String,
    pub url: String,
}

/// `url` without a user name and password in its authority.
pub(super) fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
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
        Ok(Remote {
            name,
            url: without_credentials(&url),
        })
    }

    /// Where the task's branch stands on the remote, `None` when it is not there.
    pub(super) fn pushed_tip(&self, remote: &Remote, task: &Task) -> Result<Option<String>> {
        gitcli::remote_tip(&self.repo.main_root, &remote.name, &task.branch)
            .map_err(|e| unreachable_remote(remote, &e))
    }

    /// After a remote claim's heartbeat (the conflict checker calls it): brings what its
    /// executor pushed into the task's local branch, so the conflict checks see the work
    /// in progress. Best effort: the remote may be down for a moment.
    pub(super) fn follow_pushed(&self, id: TaskId) {
        // One at a time with the submission's own move of the branch.
        let lock = self.task_lock(id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let task = match self.ledger(|l| l.task(id)) {
            Ok(t) if t.remote_claim && t.state.holds_lease() => t,
            _ => return,
        };
        let followed =
            self.remote_for_claims()
                .and_then(|remote| match self.pushed_tip(&remote, &task)? {
                    Some(tip) => self.bring_in(&remote, &task, &tip).map(Some),
                    None => Ok(None),
                });
        match followed {
            Ok(Some(tip)) => info!(task = %id, tip = %short(&tip), "followed the pushed branch"),
            Ok(None) => {}
            Err(e) => warn!(task = %id, error = %e.message, "could not follow the pushed branch"),
        }
    }

    /// Fetches the branch's `tip` and, when it still starts from the task's base commit
    /// (a branch that rewrote the base is the submit's to refuse), points the local
    /// branch at it.
    fn bring_in(&self, remote: &Remote, task: &Task, tip: &str) -> Result<String> {
        let root = &self.repo.main_root;
        // Followed already (a heartbeat with nothing new pushed): no fetch, no move.
        if crate::git::branch_tip(root, &task.branch)?.as_deref() == Some(tip) {
            return Ok(tip.to_owned());
        }
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
            self.move_branch(task, &fetched)?;
        }
        Ok(fetched)
    }

    /// A remote claim's submission of `commit`: it must be what the task's branch on the
    /// remote points at now. Fetches it unless it is here already, so the submission can
    /// pin it as usual.
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
            // Here already (a heartbeat followed it): nothing to fetch.
            Some(_) if gitcli::rev_parse(&self.repo.main_root, commit).is_ok() => Ok(()),
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
        let lock = self.task_lock(task.id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.move_branch(task, commit) {
            warn!(task = %task.id, error = %e.message, "could not point the local branch at the submission");
        }
    }

    /// Points the task's local branch at `commit`. A worktree kept from an earlier local
    /// claim (uncommitted work) may have it checked out: it is detached first, where it
    /// stands, so its files and index stay as they were and a later commit there cannot
    /// undo the pushed work.
    fn move_branch(&self, task: &Task, commit: &str) -> Result<()> {
        if let Some(wt) = task.worktree.as_deref().map(std::path::Path::new)
            && wt.is_dir()
            && crate::worktree::current_branch(wt)?.as_deref() == Some(task.branch.as_str())
        {
            crate::worktree::git(wt, &["checkout", "-q", "--detach"])?;
        }
        gitcli::git(
            &self.repo.main_root,
            &["update-ref", &format!("refs/heads/{}", task.branch), commit],
        )?;
        Ok(())
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_remote_url_is_shown_without_its_credentials() {
        for (url, shown) in [
            (
                "https://bot:s3cret@git.example/o/r.git",
                "https://git.example/o/r.git",
            ),
            (
                "https://token@git.example:8443/o/r",
                "https://git.example:8443/o/r",
            ),
            ("ssh://git@git.example/o/r.git", "ssh://git.example/o/r.git"),
            (
                "https://git.example/o/r@v2.git",
                "https://git.example/o/r@v2.git",
            ),
            ("git@git.example:o/r.git", "git@git.example:o/r.git"),
            ("/srv/git/r.git", "/srv/git/r.git"),
        ] {
            assert_eq!(super::without_credentials(url), shown, "{url}");
        }
    }
}
