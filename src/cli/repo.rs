//! Finding the repository and its config from the global options.

use std::path::{Path, PathBuf};

use super::{CliError, Ctx};
use crate::client::Client;
use crate::config::{self, Context, Loaded};
use crate::git::RepoLocation;
use crate::model::TaskId;
use crate::worktree;

impl Ctx<'_> {
    /// The repository named by `--repo`, or the one containing the current directory.
    pub fn locate(&self) -> Result<RepoLocation, CliError> {
        let start = match &self.repo {
            Some(dir) => {
                let dir = self.env.cwd.join(dir);
                if !dir.is_dir() {
                    return Err(CliError::Usage(format!(
                        "--repo {}: no such directory",
                        dir.display()
                    )));
                }
                dir
            }
            None => self.env.cwd.clone(),
        };
        Ok(RepoLocation::discover(&start)?)
    }

    /// The config file's path, and how to name it in messages: relative to the current
    /// directory when it is below it, as compilers do, so `FILE:LINE:COL` is clickable.
    pub fn config_path(&self, repo: &RepoLocation) -> (PathBuf, String) {
        let path = match &self.config {
            Some(p) => self.env.cwd.join(p),
            None => repo.main_root.join(config::FILE_NAME),
        };
        let cwd = self
            .env
            .cwd
            .canonicalize()
            .unwrap_or_else(|_| self.env.cwd.clone());
        let display = path
            .strip_prefix(&cwd)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string();
        (path, display)
    }

    pub fn load_config(&self, repo: &RepoLocation) -> Result<(Loaded, String), CliError> {
        let (path, display) = self.config_path(repo);
        let ctx = Context {
            repo_root: Some(repo.main_root.clone()),
            ..Default::default()
        };
        Ok((config::load(&path, &display, &ctx)?, display))
    }
}

impl Ctx<'_> {
    /// A client of the daemon: the one given by URL (`--daemon`, `SWITCHYARD_DAEMON`),
    /// or the repository's, on its socket. The repository comes along for the local one
    /// only: a daemon elsewhere has its own.
    pub fn client(&self) -> Result<(Option<RepoLocation>, Client), CliError> {
        if let Some((url, source)) = &self.daemon {
            if self.repo.is_some() {
                return Err(CliError::Usage(format!(
                    "--repo names a repository on this machine; it does not go with a daemon \
                     elsewhere ({source} {url})"
                )));
            }
            let ca = self.env.ca_cert.as_ref().map(|p| self.env.cwd.join(p));
            let client = Client::remote(url, self.env.token.clone(), ca.as_deref())
                .map_err(|e| CliError::Usage(format!("{source}: {e}")))?
                .with_timeout(self.env.timeout);
            return Ok((None, client));
        }
        let repo = self.locate()?;
        let client = Client::new(&repo.common_dir, &repo.main_root).with_timeout(self.env.timeout);
        Ok((Some(repo), client))
    }

    /// The task named on the command line, or, inside a task's worktree of the local
    /// daemon, that task.
    pub fn task_id(
        &self,
        repo: &Option<RepoLocation>,
        given: Option<&str>,
    ) -> Result<TaskId, CliError> {
        let text = match (given, repo) {
            (Some(t), _) => t.to_owned(),
            (None, Some(repo)) => worktree::task_of(&repo.checkout_root).ok_or_else(|| {
                CliError::Usage("no task ID given, and this is not a task's worktree".into())
            })?,
            (None, None) => {
                return Err(CliError::Usage(
                    "no task ID given: with a daemon elsewhere, name the task".into(),
                ));
            }
        };
        text.parse().map_err(CliError::Usage)
    }

    /// `--agent`, else `SWITCHYARD_AGENT`, else the user name. With a daemon elsewhere,
    /// the token says who this is: empty (the daemon fills in the token's name) unless
    /// given.
    pub fn agent(&self, given: Option<String>) -> Result<String, CliError> {
        if self.daemon.is_some() {
            return Ok(given.or_else(|| self.env.agent.clone()).unwrap_or_default());
        }
        given
            .or_else(|| self.env.agent.clone())
            .or_else(|| self.env.user.clone())
            .ok_or_else(|| {
                CliError::Usage("who is this? pass --agent NAME or set SWITCHYARD_AGENT".into())
            })
    }

    /// `--by`, else `SWITCHYARD_AGENT`, else the user name; with a daemon elsewhere, as
    /// [`Ctx::agent`].
    pub fn person(&self, given: Option<String>) -> Result<String, CliError> {
        if self.daemon.is_some() {
            return Ok(given.or_else(|| self.env.agent.clone()).unwrap_or_default());
        }
        given
            .or_else(|| self.env.agent.clone())
            .or_else(|| self.env.user.clone())
            .ok_or_else(|| CliError::Usage("who is this? pass --by NAME".into()))
    }
}
