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
    /// A client of the repository's daemon.
    pub fn client(&self) -> Result<(RepoLocation, Client), CliError> {
        let repo = self.locate()?;
        let client = Client::new(&repo.common_dir, &repo.main_root).with_timeout(self.env.timeout);
        Ok((repo, client))
    }

    /// The task named on the command line, or, inside a task's worktree, that task.
    pub fn task_id(&self, repo: &RepoLocation, given: Option<&str>) -> Result<TaskId, CliError> {
        let text = match given {
            Some(t) => t.to_owned(),
            None => worktree::task_of(&repo.checkout_root).ok_or_else(|| {
                CliError::Usage("no task ID given, and this is not a task's worktree".into())
            })?,
        };
        text.parse().map_err(CliError::Usage)
    }

    /// `--agent`, else `SWITCHYARD_AGENT`, else the user name.
    pub fn agent(&self, given: Option<String>) -> Result<String, CliError> {
        given
            .or_else(|| self.env.agent.clone())
            .or_else(|| self.env.user.clone())
            .ok_or_else(|| {
                CliError::Usage("who is this? pass --agent NAME or set SWITCHYARD_AGENT".into())
            })
    }

    /// `--by`, else `SWITCHYARD_AGENT`, else the user name.
    pub fn person(&self, given: Option<String>) -> Result<String, CliError> {
        given
            .or_else(|| self.env.agent.clone())
            .or_else(|| self.env.user.clone())
            .ok_or_else(|| CliError::Usage("who is this? pass --by NAME".into()))
    }
}
