//! `switchyard.toml`: read in two phases, raw (what the user wrote, with spans) then
//! validated into [`Config`], the type the rest of the program uses. Every problem is
//! reported at once as `FILE:LINE:COL: message`.
//!
//! This module reads only the file it is given; what needs the repository (tracked
//! files, unowned paths) is checked by the caller against [`Config::ownership`].

mod raw;
pub mod scaffold;
mod validate;

use std::num::NonZeroU32;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::diagnostic::{Diagnostic, LineIndex, Location};
use crate::model::SubsystemName;
use crate::ownership::Ownership;

/// The config file's name at the repository root.
pub const FILE_NAME: &str = "switchyard.toml";

/// Larger files are refused before parsing: a config is hand-written and small, and a
/// multi-megabyte one is a mistake (a wrong `--config`), not something to chew through.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The branch the queue integrates into.
    pub base: String,
    /// Where to fetch from and push to; `None` keeps everything local.
    pub remote: Option<String>,
    pub queue: Queue,
    /// In file order.
    pub subsystems: Vec<Subsystem>,
    pub claims: Claims,
    pub worktrees: Worktrees,
    pub commands: Commands,
    pub github: Option<Github>,
    pub review: Review,
    /// `[mcp] listen`: the daemon also serves MCP over streamable HTTP on this loopback
    /// address.
    pub mcp_listen: Option<std::net::SocketAddr>,
    /// `[api]`: the networked API, off unless `listen` is set.
    pub api: Api,
    /// `[dashboard]`: the web page and `/metrics`; `None` (the default) serves neither.
    pub dashboard: Option<Dashboard>,
    /// The subsystems' path rules, compiled.
    pub ownership: Ownership,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Commands run for every change, in order (with [`VerifyOn::Local`]).
    pub verify: Vec<String>,
    /// Where changes are verified.
    pub verify_on: VerifyOn,
    /// Time limit for each verify command.
    pub verify_timeout: Duration,
    /// How many candidates may be built and verified at once (1..=64).
    pub max_parallel: NonZeroU32,
    /// What lands on the base for a task.
    pub land: Land,
    /// How many times a failed verify command runs again on the same candidate before
    /// the task goes back (0..=10); a pass after a failure is recorded as a flake.
    pub retries: u32,
    /// `[queue] lanes = true`: tasks that ownership declares independent integrate in
    /// lanes of their own (`queue::lanes`), none verified again because another landed.
    pub lanes: bool,
    /// A task that came back this many times (conflicts, failed verifies, changes
    /// requested, rejections) goes to a person instead of its executor (1..=100).
    pub max_attempts: u32,
}

/// The most `[queue] max_attempts`, and its default.
pub const MAX_ATTEMPTS: u32 = 100;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// `[review]`: a reviewer reads each change before it enters the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Every change is reviewed (per subsystem: `review = "required"`).
    pub required: bool,
    /// Who may review (agents or people, normalized names); empty: anyone but the
    /// task's executors.
    pub reviewers: Vec<String>,
    /// How long a reviewer holds a review (`review next`) before it is handed out again.
    pub lease: Duration,
}

impl Review {
    /// Whether `name` may review at all.
    pub fn allows(&self, name: &str) -> bool {
        self.reviewers.is_empty() || self.reviewers.iter().any(|r| r == name)
    }
}

/// The most `[queue] retries`.
pub const MAX_RETRIES: u32 = 10;

/// What lands on the base for a task (`[queue] land`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Land {
    /// One commit per task: the task's tree after the rebase, with the task's title,
    /// request and acceptance criteria as the message. Every commit on the base was
    /// verified.
    #[default]
    Squash,
    /// The task's commits replayed one by one; only the last of them was verified.
    Rebase,
}

/// The most candidates `[queue] max_parallel` may keep in flight.
pub const MAX_QUEUE_PARALLEL: u32 = 64;

/// Where the queue verifies a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOn {
    /// The verify commands run here, in the integration worktree.
    Local,
    /// `verify = "github-checks"`: the rebased commit is pushed to
    /// `switchyard/verify/<id>` and these check runs or statuses must succeed on it.
    GithubChecks { required: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// At most this many tasks claimed at once across all subsystems; `None`: no cap.
    pub max_parallel: Option<NonZeroU32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    pub name: SubsystemName,
    /// How many tasks touching this subsystem may be claimed at once; `None`: no cap.
    pub max_parallel: Option<NonZeroU32>,
    /// Commands run for changes that touch this subsystem, after the queue's.
    pub verify: Vec<String>,
    pub approval: Approval,
    /// `review = "required"`: a reviewer reads every change here before the queue.
    pub review: Approval,
    /// Subsystems whose changes are also verified with this one's commands.
    pub depends_on: Vec<SubsystemName>,
    /// The `[[subsystem]]` header.
    pub location: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Changes here land once verified.
    None,
    /// A person approves every change here before it lands.
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktrees {
    /// As written, relative to the repository root; `None`: the default, a sibling
    /// directory `../<repo>.worktrees`. Resolve with [`Worktrees::root_for`].
    pub root: Option<PathBuf>,
    /// Ready worktrees kept for instant claims.
    pub pool: u32,
    /// Files copied from the main checkout into every new worktree.
    pub copy: Vec<String>,
    /// A command run once in every new worktree.
    pub setup: Option<String>,
    pub setup_timeout: Duration,
}

/// How `verify` and `setup` commands run. They run code from submitted branches, so
/// they get an environment of their own, never the daemon's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commands {
    /// Variables passed from the daemon's environment, besides the documented minimum
    /// (`command::MINIMUM_ENV`).
    pub env: Vec<String>,
    /// Run them as this user (the daemon must run as root).
    pub run_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Github {
    /// `owner/name`.
    pub repo: String,
    pub api_url: String,
    /// The name of the environment variable holding the token (never the token).
    pub token_env: String,
    /// Who may approve and give commands on GitHub.
    pub approvers: Vec<Approver>,
    /// Put on every PR switchyard opens.
    pub labels: Vec<String>,
    /// How often GitHub is read.
    pub poll_interval: Duration,
    /// Delete a task's branch on the remote once it merged.
    pub delete_branch: bool,
    pub webhook: Option<Webhook>,
}

/// Someone allowed to decide from GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approver {
    User(String),
    /// `@org/team`: any member of the team.
    Team {
        org: String,
        slug: String,
    },
}

/// `[api]`: the daemon's API on TCP, for clients on other machines, each with a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Api {
    /// Where to listen; `None`: only the Unix socket.
    pub listen: Option<Listen>,
    /// The tokens file (`switchyard token` edits it), resolved against the config's
    /// directory; required with `listen`.
    pub tokens: Option<PathBuf>,
}

/// A TCP listener for the API. Without [`Tls`], `addr` is a loopback address: plain
/// HTTP never leaves the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: std::net::SocketAddr,
    pub tls: Option<Tls>,
    /// The tokens file.
    pub tokens: PathBuf,
}

/// HTTPS: a certificate chain and its private key, PEM files resolved against the
/// config's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The dashboard: a web page of the queue and `/metrics`, served by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    pub listen: std::net::SocketAddr,
    /// The name of the environment variable holding the token every request must carry
    /// (never the token). Without one the page is read-only and only on loopback.
    pub token_env: Option<String>,
}

impl Dashboard {
    /// The page's address, to open in a browser: an address that means "every
    /// interface" is opened on this machine's loopback.
    pub fn url(&self) -> String {
        let ip = match self.listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        format!(
            "http://{}/",
            std::net::SocketAddr::new(ip, self.listen.port())
        )
    }
}

/// Webhook deliveries, as a faster alternative to waiting for the next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub listen: std::net::SocketAddr,
    /// The name of the environment variable holding the webhook secret.
    pub secret_env: String,
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approver::User(login) => f.write_str(login),
            Approver::Team { org, slug } => write!(f, "@{org}/{slug}"),
        }
    }
}

impl Worktrees {
    /// The absolute worktree root for a repository whose main checkout is `repo_root`.
    pub fn root_for(&self, repo_root: &Path) -> PathBuf {
        match &self.root {
            Some(root) => normalize(&repo_root.join(root)),
            None => default_worktree_root(repo_root),
        }
    }
}

fn default_worktree_root(repo_root: &Path) -> PathBuf {
    let name = repo_root
        .file_name()
        .map_or_else(|| "repo".into(), |n| n.to_string_lossy().into_owned());
    repo_root
        .parent()
        .unwrap_or(repo_root)
        .join(format!("{name}.worktrees"))
}

/// Lexical normalization: `a/./b/../c` is `a/c`. The worktree root may not exist yet, so
/// it cannot be canonicalized.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// What validation may know about the repository, for checks that need it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The main checkout's root, absolute.
    pub repo_root: Option<PathBuf>,
    /// Resolves the symlinks of a path that may not exist yet. [`load`] sets it to
    /// [`real_path`] (reading the disk is its job); [`parse`] alone decides by the text.
    pub real_path: Option<fn(&Path) -> PathBuf>,
    /// The config file's directory, which relative file paths in it (`[api] tls_cert`,
    /// `tls_key`, `tokens`) start from. [`load`] sets it from the file's path; without
    /// it they stay as written.
    pub config_dir: Option<PathBuf>,
}

/// `path` with every symlink resolved: the longest prefix that exists, canonicalized,
/// and the rest appended. An "inside or outside" decision made on anything less can be
/// fooled by a symlink.
pub fn real_path(path: &Path) -> PathBuf {
    let path = normalize(path);
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path,
        }
    }
}

/// A loaded config and the warnings found while validating it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no config at {path}: run `switchyard init` to write one, or pass --config")]
    Missing { path: PathBuf },
    #[error("cannot read config {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every error found, each located.
    #[error("{} error(s) in the config", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// Reads and validates the config at `path`; `display` is how the file is named in
/// messages.
pub fn load(path: &Path, display: &str, ctx: &Context) -> Result<Loaded, LoadError> {
    let mut ctx = ctx.clone();
    ctx.real_path.get_or_insert(real_path);
    if ctx.config_dir.is_none() {
        ctx.config_dir = path.parent().map(Path::to_path_buf);
    }
    let ctx = &ctx;
    let file: Arc<str> = display.into();
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LoadError::Missing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    if !meta.is_file() {
        return Err(LoadError::Invalid(vec![Diagnostic::error(
            None,
            format!("{display}: not a regular file"),
        )]));
    }
    if meta.len() > MAX_BYTES {
        return Err(LoadError::Invalid(vec![Diagnostic::error(
            Some(Location {
                file,
                line: 1,
                col: 1,
            }),
            format!(
                "the config is {:.1} MB; switchyard reads at most 1 MB (is this the right file?)",
                meta.len() as f64 / 1e6
            ),
        )]));
    }
    // Bounded even if the file grows between the size check and the read.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, MAX_BYTES + 1),
        &mut bytes,
    )
    .map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(LoadError::Invalid(vec![Diagnostic::error(
            Some(Location {
                file,
                line: 1,
                col: 1,
            }),
            "the config is over 1 MB; switchyard reads at most 1 MB (is this the right file?)",
        )]));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let valid = std::str::from_utf8(valid).expect("valid up to here");
            return Err(LoadError::Invalid(vec![Diagnostic::error(
                Some(Location::of_offset(&file, valid, valid.len())),
                "the config is not valid UTF-8",
            )]));
        }
    };
    parse(&text, display, ctx)
}

/// Parses and validates config text.
pub fn parse(text: &str, display: &str, ctx: &Context) -> Result<Loaded, LoadError> {
    let file: Arc<str> = display.into();
    let (raw, raw_errors) = raw::read(text);
    let lines = LineIndex::new(text);
    let locate = |span: std::ops::Range<usize>| lines.locate(&file, span.start);
    let mut diagnostics: Vec<Diagnostic> = raw_errors
        .into_iter()
        .map(|(span, message)| Diagnostic::error(Some(locate(span)), message))
        .collect();
    let config = validate::validate(raw, ctx, &locate, &mut diagnostics);
    let (mut errors, warnings): (Vec<_>, Vec<_>) = diagnostics
        .into_iter()
        .partition(|d| d.severity == crate::diagnostic::Severity::Error);
    if errors.is_empty() {
        Ok(Loaded { config, warnings })
    } else {
        errors.sort_by_key(|d| d.location.as_ref().map(|l| (l.line, l.col)));
        Err(LoadError::Invalid(errors))
    }
}

/// The longest duration any key takes: beyond it a timestamp (now + a lease) stops
/// being a date anyone can read, and a typo like `4294967295d` is caught.
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// Parses durations like `90s`, `20m`, `1h30m`, `500ms` (humantime's grammar: also
/// `2h 5m`, `1day`), from 1 ms up to [`MAX_DURATION`] (100 years).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: write a number with a unit, like \"90s\", \"20m\" or \
             \"1h30m\" (units: ms, s, m, h, d)"
        )
    };
    let too_long = || format!("duration {text:?} is too long: at most 100 years (36500d)");
    if text.trim().is_empty() || text.trim() != text {
        return Err(bad());
    }
    match humantime::parse_duration(text) {
        Ok(d) if d > MAX_DURATION => Err(too_long()),
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
