//! Where the read commands (`task list`, `task show`, `log`, `queue`) get their answers:
//! the running daemon, or, when none runs, the ledger itself, opened read-only and
//! answered through the very functions the daemon answers with (`crate::view`), so the
//! two agree to the byte. The first request that finds no daemon switches to the ledger
//! and says so in one line on stderr; the rest of the command reads the ledger too, so
//! one command's answers come from one place.

use serde::de::DeserializeOwned;

use super::{CliError, Ctx};
use crate::api::{self, ApiError, QueueEntry, TaskDetail};
use crate::client::{Client, ClientError, ledger_path};
use crate::git::RepoLocation;
use crate::model::{Event, Pause, QueueEvent, Stop, Task, TaskId, Timestamp};
use crate::store::{Ledger, LedgerError};
use crate::view;

/// The answers of one read command, from the daemon or from the ledger.
pub struct Reads {
    /// `None` with a daemon elsewhere (`--daemon`): nothing to read without it.
    pub repo: Option<RepoLocation>,
    source: Source,
}

enum Source {
    Daemon(Client),
    /// No daemon runs: the ledger, read-only.
    Ledger(Ledger),
}

impl Ctx<'_> {
    /// Reads for this repository: from its daemon while one runs.
    pub fn reads(&self) -> Result<Reads, CliError> {
        let (repo, client) = self.client()?;
        Ok(Reads {
            repo,
            source: Source::Daemon(client),
        })
    }
}

impl Reads {
    /// `GET /v1/tasks`, with the same filters.
    pub fn tasks(
        &mut self,
        ctx: &mut Ctx<'_>,
        filter: api::TaskFilter,
    ) -> Result<Vec<Task>, CliError> {
        if let Some(tasks) = self.daemon(ctx, &filter.path())? {
            return Ok(tasks);
        }
        self.ledger(|l| view::tasks(l, &filter))
    }

    /// `GET /v1/tasks/{id}`.
    pub fn task(&mut self, ctx: &mut Ctx<'_>, id: TaskId) -> Result<TaskDetail, CliError> {
        if let Some(detail) = self.daemon(ctx, &format!("/v1/tasks/{id}"))? {
            return Ok(detail);
        }
        self.ledger(|l| view::task(l, id))
    }

    /// `GET /v1/tasks/{id}/events`.
    pub fn events(&mut self, ctx: &mut Ctx<'_>, id: TaskId) -> Result<Vec<Event>, CliError> {
        if let Some(events) = self.daemon(ctx, &format!("/v1/tasks/{id}/events"))? {
            return Ok(events);
        }
        self.ledger(|l| view::events(l, id))
    }

    /// `GET /v1/events`.
    pub fn queue_events(&mut self, ctx: &mut Ctx<'_>) -> Result<Vec<QueueEvent>, CliError> {
        if let Some(events) = self.daemon(ctx, "/v1/events")? {
            return Ok(events);
        }
        self.ledger(view::queue_events)
    }

    /// `GET /v1/queue`. From the ledger it needs the config (lanes, slots) as the
    /// daemon does: the one in the repository now.
    pub fn queue(&mut self, ctx: &mut Ctx<'_>) -> Result<Vec<QueueEntry>, CliError> {
        if let Some(entries) = self.daemon(ctx, "/v1/queue")? {
            return Ok(entries);
        }
        let repo = self.local()?;
        let config = ctx.load_config(&repo)?.0.config;
        let root = repo.main_root.clone();
        let base_tip = || view::base_tip(&root, &config.base);
        self.ledger(|l| view::queue(l, &config, &base_tip, Timestamp::now()))
    }

    /// What holds the queue or the hand-outs (the `paused` and `stop` of `GET
    /// /v1/status`).
    pub fn held(&mut self, ctx: &mut Ctx<'_>) -> Result<(Option<Pause>, Option<Stop>), CliError> {
        if let Some(status) = self.daemon::<api::Status>(ctx, "/v1/status")? {
            return Ok((status.paused, status.stop));
        }
        self.ledger(view::held)
    }

    /// The daemon's answer, or `None` when no daemon runs: then the ledger is opened
    /// (saying so on stderr) and answers from here on.
    fn daemon<T: DeserializeOwned>(
        &mut self,
        ctx: &mut Ctx<'_>,
        path: &str,
    ) -> Result<Option<T>, CliError> {
        let client = match &self.source {
            Source::Daemon(client) => client,
            Source::Ledger(_) => return Ok(None),
        };
        match client.get(path) {
            Ok(answer) => Ok(Some(answer)),
            Err(ClientError::NoDaemon(_)) if self.repo.is_some() => {
                let repo = self.local()?;
                let path = ledger_path(&repo.common_dir);
                let ledger = Ledger::open_offline(&path).map_err(|e| match e {
                    LedgerError::Missing(_) => CliError::NoDaemon(format!(
                        "no switchyard daemon is running for {}, and it has no ledger yet ({}): start one with `switchyard daemon`",
                        repo.main_root.display(),
                        path.display()
                    )),
                    e => CliError::Failed(format!(
                        "no daemon is running, and the ledger at {} cannot be read: {e}",
                        path.display()
                    )),
                })?;
                writeln!(
                    ctx.err,
                    "no daemon is running; read from the ledger at {}",
                    path.display()
                )
                .map_err(CliError::output)?;
                self.source = Source::Ledger(ledger);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The repository, for answers from its ledger (only ever read for a local one).
    fn local(&self) -> Result<RepoLocation, CliError> {
        self.repo
            .clone()
            .ok_or_else(|| CliError::Bug("read the ledger of a daemon elsewhere".into()))
    }

    /// Answers from the ledger, in one read transaction; a refusal is reported as the
    /// daemon's would be (same code, same message, same exit status).
    fn ledger<T>(&self, f: impl FnOnce(&Ledger) -> Result<T, ApiError>) -> Result<T, CliError> {
        let Source::Ledger(ledger) = &self.source else {
            return Err(CliError::Bug(
                "read the ledger while a daemon answers".into(),
            ));
        };
        ledger.snapshot(f).map_err(|e| CliError::Api {
            code: e.code,
            message: e.message,
        })
    }
}
