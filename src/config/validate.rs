//! Phase two: raw values into a typed [`Config`], every problem located.
//!
//! Validation goes on after an error so that all of them are reported in one run; the
//! returned `Config` is only used when no error was recorded.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{OneOrList, Raw, RawApi, RawDashboard, RawReview, Str, StrList};
use super::{
    Api, Approval, Approver, Claims, Commands, Config, Context, DEFAULT_MAX_ATTEMPTS, Dashboard,
    Github, Land, Listen, MAX_ATTEMPTS, MAX_QUEUE_PARALLEL, MAX_RETRIES, Queue, Review, Subsystem,
    Tls, VerifyOn, Webhook, Worktrees, normalize,
};
use crate::diagnostic::{Diagnostic, Location};
use crate::model::{SubsystemName, is_valid_branch_name};
use crate::ownership::{Ownership, Pattern, Rule};

pub(crate) const DEFAULT_BASE: &str = "main";
pub(crate) const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(20 * 60);
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30 * 60);
pub(crate) const DEFAULT_POOL: u32 = 2;
pub(crate) const MAX_POOL: i64 = 256;
/// The largest `max_parallel`: more parallel claims than this is no cap at all.
pub(crate) const MAX_CAP: i64 = 1000;
/// GitHub is read at most this often: faster polling only burns the rate limit (a fake
/// GitHub in tests is read every 150 ms).
pub(crate) const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
pub(crate) const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub(crate) const DEFAULT_API_URL: &str = "https://api.github.com";
pub(crate) const DEFAULT_TOKEN_ENV: &str = "GITHUB_TOKEN";
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// The remote a `[github]` section implies when `remote` is not set.
pub(crate) const DEFAULT_GITHUB_REMOTE: &str = "origin";
/// The word that makes `[queue] verify` wait for GitHub's checks.
pub(crate) const GITHUB_CHECKS: &str = "github-checks";

/// Prefixes of GitHub's token formats: a value like this in `token_env` is a leaked
/// token, not a variable name.
const TOKEN_PREFIXES: [&str; 6] = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];

struct Validator<'a> {
    locate: &'a dyn Fn(Range<usize>) -> Location,
    out: &'a mut Vec<Diagnostic>,
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let location = (self.locate)(span);
        self.out.push(Diagnostic::error(Some(location), message));
    }

    fn warning(&mut self, location: Location, message: impl Into<String>) {
        self.out.push(Diagnostic::warning(Some(location), message));
    }

    fn duration(&mut self, value: Option<&Str>, key: &str, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match super::parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.error(value.span(), format!("`{key}` must be longer than zero"));
                default
            }
            Ok(d) => d,
            Err(message) => {
                self.error(value.span(), message);
                default
            }
        }
    }

    fn commands(&mut self, list: Option<&StrList>, key: &str) -> Vec<String> {
        let Some(list) = list else { return Vec::new() };
        let mut out = Vec::new();
        for command in list.get_ref() {
            if command.get_ref().trim().is_empty() {
                self.error(command.span(), format!("empty command in `{key}`"));
            } else {
                out.push(command.get_ref().clone());
            }
        }
        out
    }

    /// A cap: absent is no cap; present must be from 1 to [`MAX_CAP`].
    fn cap(&mut self, value: Option<&Spanned<i64>>) -> Option<NonZeroU32> {
        let value = value?;
        let n = *value.get_ref();
        match u32::try_from(n).ok().and_then(NonZeroU32::new) {
            Some(c) if i64::from(c.get()) <= MAX_CAP => Some(c),
            Some(_) => {
                self.error(
                    value.span(),
                    format!("`max_parallel` must be at most {MAX_CAP}, found {n} (leave it out for no cap)"),
                );
                None
            }
            None => {
                self.error(
                    value.span(),
                    format!(
                        "`max_parallel` must be at least 1, found {n} (leave it out for no cap)"
                    ),
                );
                None
            }
        }
    }

    fn missing(&mut self, header: Range<usize>, key: &str, section: &str) {
        self.error(header, format!("missing key `{key}` in {section}"));
    }
}

pub(crate) fn validate(
    raw: Raw,
    ctx: &Context,
    locate: &dyn Fn(Range<usize>) -> Location,
    out: &mut Vec<Diagnostic>,
) -> Config {
    let mut v = Validator { locate, out };

    let base = match &raw.base {
        Some(base) if !is_valid_branch_name(base.get_ref()) => {
            v.error(
                base.span(),
                format!("`base` {:?} is not a valid branch name", base.get_ref()),
            );
            DEFAULT_BASE.to_owned()
        }
        Some(base) => base.get_ref().clone(),
        None => DEFAULT_BASE.to_owned(),
    };
    let remote = raw.remote.as_ref().and_then(|remote| {
        if is_valid_branch_name(remote.get_ref()) && !remote.get_ref().contains('/') {
            Some(remote.get_ref().clone())
        } else {
            v.error(
                remote.span(),
                format!("`remote` {:?} is not a valid remote name", remote.get_ref()),
            );
            None
        }
    });

    let raw_queue = raw.queue.unwrap_or_default();
    let (verify, verify_on) = verify(&mut v, &raw_queue, raw.github.is_some());
    let queue = Queue {
        verify,
        verify_on,
        verify_timeout: v.duration(
            raw_queue.verify_timeout.as_ref(),
            "verify_timeout",
            DEFAULT_VERIFY_TIMEOUT,
        ),
        max_parallel: queue_parallel(&mut v, raw_queue.max_parallel.as_ref()),
        land: land(&mut v, raw_queue.land.as_ref()),
        retries: retries(&mut v, raw_queue.retries.as_ref()),
        lanes: raw_queue.lanes.as_ref().is_some_and(|l| *l.get_ref()),
        max_attempts: max_attempts(&mut v, raw_queue.max_attempts.as_ref()),
    };

    let (subsystems, ownership) = subsystems(&mut v, &raw.subsystems);
    if let Some(lanes) = &raw_queue.lanes
        && *lanes.get_ref()
        && subsystems.is_empty()
    {
        v.error(
            lanes.span(),
            "[queue] `lanes = true` needs [[subsystem]] entries: lanes come from what each subsystem owns and `depends_on`",
        );
    }
    let raw_claims = raw.claims.unwrap_or_default();
    let claims = Claims {
        lease: v.duration(raw_claims.lease.as_ref(), "lease", DEFAULT_LEASE),
        max_parallel: v.cap(raw_claims.max_parallel.as_ref()),
    };
    let worktrees = worktrees(&mut v, raw.worktrees.unwrap_or_default(), ctx);
    let github = raw.github.map(|g| github(&mut v, g));
    let dashboard = raw.dashboard.map(|d| dashboard(&mut v, d));
    let commands = commands(
        &mut v,
        raw.commands.unwrap_or_default(),
        github.as_ref(),
        dashboard.as_ref(),
    );
    // GitHub's side of a task lives on the remote its PRs come from.
    let remote = remote.or_else(|| {
        (github.is_some() && raw.remote.is_none()).then(|| DEFAULT_GITHUB_REMOTE.to_owned())
    });
    if queue.verify_on != VerifyOn::Local {
        for s in subsystems.iter().filter(|s| !s.verify.is_empty()) {
            v.warning(
                s.location.clone(),
                format!(
                    "subsystem {:?} has `verify` commands, which are not run when [queue] verify = \"{GITHUB_CHECKS}\" (CI runs what it runs)",
                    s.name.as_str()
                ),
            );
        }
    }

    let review = review(&mut v, raw.review.unwrap_or_default());
    let mcp_listen = raw
        .mcp
        .and_then(|m| m.listen)
        .and_then(|listen| mcp_listen(&mut v, &listen));
    let api = api(&mut v, raw.api.unwrap_or_default(), ctx);
    Config {
        base,
        remote,
        queue,
        subsystems,
        claims,
        worktrees,
        commands,
        github,
        review,
        mcp_listen,
        api,
        dashboard,
        ownership,
    }
}

/// `[mcp] listen`: a loopback address with a port. MCP over HTTP is for agents on this
/// machine; it is guarded by a token, but a listener on a network interface would put
/// every tool in reach of anyone who gets hold of it.
fn mcp_listen(v: &mut Validator, listen: &Str) -> Option<std::net::SocketAddr> {
    match listen.get_ref().parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Some(addr),
        Ok(addr) => {
            v.error(
                listen.span(),
                format!(
                    "[mcp] `listen` must be a loopback address (127.0.0.1 or [::1]), found {addr}: MCP over HTTP serves agents on this machine"
                ),
            );
            None
        }
        Err(_) => {
            v.error(
                listen.span(),
                format!(
                    "[mcp] `listen` must be an address with a port, like \"127.0.0.1:8791\", found {:?}",
                    listen.get_ref()
                ),
            );
            None
        }
    }
}

/// `[api]`: the TCP listener, its certificate, and the tokens file. Plain HTTP only on
/// a loopback address; a listener always has tokens.
fn api(v: &mut Validator, raw: RawApi, ctx: &Context) -> Api {
    let mut file = |value: &Option<Str>, key: &str| -> Option<PathBuf> {
        let value = value.as_ref()?;
        if value.get_ref().trim().is_empty() {
            v.error(value.span(), format!("[api] `{key}` must not be empty"));
            return None;
        }
        let path = PathBuf::from(value.get_ref());
        Some(match &ctx.config_dir {
            Some(dir) => normalize(&dir.join(path)),
            None => path,
        })
    };
    let tokens = file(&raw.tokens, "tokens");
    let cert = file(&raw.tls_cert, "tls_cert");
    let key = file(&raw.tls_key, "tls_key");
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(Tls { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            let at = raw.tls_cert.as_ref().map(|c| c.span()).unwrap_or_default();
            v.error(
                at,
                "[api] `tls_cert` needs `tls_key`, the certificate's private key",
            );
            None
        }
        (None, Some(_)) => {
            let at = raw.tls_key.as_ref().map(|k| k.span()).unwrap_or_default();
            v.error(
                at,
                "[api] `tls_key` needs `tls_cert`, the certificate it belongs to",
            );
            None
        }
    };
    let Some(listen) = &raw.listen else {
        for (value, key) in [(&raw.tls_cert, "tls_cert"), (&raw.tls_key, "tls_key")] {
            if let Some(value) = value {
                v.error(
                    value.span(),
                    format!("[api] `{key}` applies only with `listen`, the address to serve on"),
                );
            }
        }
        return Api {
            listen: None,
            tokens,
        };
    };
    let Ok(addr) = listen.get_ref().parse::<std::net::SocketAddr>() else {
        v.error(
            listen.span(),
            format!(
                "[api] `listen` must be an address with a port, like \"127.0.0.1:7878\" or \"0.0.0.0:7878\", found {:?}",
                listen.get_ref()
            ),
        );
        return Api {
            listen: None,
            tokens,
        };
    };
    if tls.is_none() && raw.tls_cert.is_none() && raw.tls_key.is_none() && !addr.ip().is_loopback()
    {
        v.error(
            listen.span(),
            format!(
                "[api] `listen` = \"{addr}\" is not a loopback address, so it needs HTTPS: set \
                 `tls_cert` and `tls_key` (plain HTTP is only for 127.0.0.1 or ::1)"
            ),
        );
    }
    let Some(tokens_file) = tokens.clone() else {
        if raw.tokens.is_none() {
            v.error(
                listen.span(),
                "[api] `listen` needs `tokens`: the file of the tokens clients present (make it \
                 with `switchyard token add NAME`)",
            );
        }
        return Api {
            listen: None,
            tokens,
        };
    };
    Api {
        listen: Some(Listen {
            addr,
            tls,
            tokens: tokens_file,
        }),
        tokens,
    }
}

/// `[review]`: whether every change is reviewed, and who may review.
fn review(v: &mut Validator, raw: RawReview) -> Review {
    let mut reviewers = Vec::new();
    for r in raw.reviewers.iter().flat_map(|l| l.get_ref()) {
        match crate::model::normalize_name(r.get_ref()) {
            Ok(name) if !reviewers.contains(&name) => reviewers.push(name),
            Ok(_) => {}
            Err(why) => v.error(
                r.span(),
                format!("[review] reviewer {:?} {why}", r.get_ref()),
            ),
        }
    }
    Review {
        required: raw.required.is_some_and(|r| *r.get_ref()),
        reviewers,
        lease: v.duration(raw.lease.as_ref(), "lease", DEFAULT_LEASE),
    }
}

/// `[queue] max_attempts`: how many times a task may come back before a person decides.
fn max_attempts(v: &mut Validator, value: Option<&Spanned<i64>>) -> u32 {
    let Some(value) = value else {
        return DEFAULT_MAX_ATTEMPTS;
    };
    let n = *value.get_ref();
    match u32::try_from(n) {
        Ok(r) if (1..=MAX_ATTEMPTS).contains(&r) => r,
        _ => {
            v.error(
                value.span(),
                format!("[queue] `max_attempts` must be between 1 and {MAX_ATTEMPTS}, found {n}"),
            );
            DEFAULT_MAX_ATTEMPTS
        }
    }
}

/// A subsystem's `approval` or `review`: `"required"` or `"none"` (the default).
fn required_or_none(v: &mut Validator, value: Option<&Str>, key: &str) -> Approval {
    match value.map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "none")) => Approval::None,
        Some((_, "required")) => Approval::Required,
        Some((a, other)) => {
            v.error(
                a.span(),
                format!("`{key}` must be \"required\" or \"none\", found {other:?}"),
            );
            Approval::None
        }
    }
}

/// `[queue] max_parallel`: how many candidates are built and verified at once.
fn queue_parallel(v: &mut Validator, value: Option<&Spanned<i64>>) -> NonZeroU32 {
    let Some(value) = value else {
        return NonZeroU32::MIN;
    };
    let n = *value.get_ref();
    match u32::try_from(n).ok().and_then(NonZeroU32::new) {
        Some(c) if c.get() <= MAX_QUEUE_PARALLEL => c,
        _ => {
            v.error(
                value.span(),
                format!(
                    "[queue] `max_parallel` must be between 1 and {MAX_QUEUE_PARALLEL}, found {n}"
                ),
            );
            NonZeroU32::MIN
        }
    }
}

/// `[queue] retries`: how often a failed verify command runs again.
fn retries(v: &mut Validator, value: Option<&Spanned<i64>>) -> u32 {
    let Some(value) = value else {
        return 0;
    };
    let n = *value.get_ref();
    match u32::try_from(n) {
        Ok(r) if r <= MAX_RETRIES => r,
        _ => {
            v.error(
                value.span(),
                format!("[queue] `retries` must be between 0 and {MAX_RETRIES}, found {n}"),
            );
            0
        }
    }
}

/// `[queue] land`: `"squash"` (the default) or `"rebase"`.
fn land(v: &mut Validator, value: Option<&Str>) -> Land {
    match value.map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("squash", _)) => Land::Squash,
        Some(("rebase", _)) => Land::Rebase,
        Some((other, span)) => {
            v.error(
                span,
                format!("[queue] `land` must be \"squash\" or \"rebase\", found {other:?}"),
            );
            Land::Squash
        }
    }
}

/// `[commands]`: the variables verify and setup may see, and the user they run as.
fn commands(
    v: &mut Validator<'_>,
    raw: super::raw::RawCommands,
    github: Option<&Github>,
    dashboard: Option<&Dashboard>,
) -> Commands {
    let mut secrets: Vec<(&str, &str)> = Vec::new();
    if let Some(g) = github {
        secrets.push((g.token_env.as_str(), "[github]"));
        secrets.extend(
            g.webhook
                .as_ref()
                .map(|w| (w.secret_env.as_str(), "[github]")),
        );
    }
    secrets.extend(
        dashboard
            .and_then(|d| d.token_env.as_deref())
            .map(|t| (t, "[dashboard]")),
    );
    let mut env = Vec::new();
    for name in raw.env.iter().flat_map(|l| l.get_ref()) {
        let n = name.get_ref();
        if !is_env_name(n) {
            v.error(
                name.span(),
                format!(
                    "`env` entry {n:?} must be an environment variable name, like \"DATABASE_URL\""
                ),
            );
        } else if n == crate::auth::TOKEN_ENV {
            v.error(
                name.span(),
                format!("`env` must not pass {n} to commands: it holds a client's API token"),
            );
        } else if let Some((_, section)) = secrets.iter().find(|(s, _)| s == n) {
            v.error(
                name.span(),
                format!("`env` must not pass {n} to commands: it holds a secret of {section}"),
            );
        } else {
            env.push(n.clone());
        }
    }
    let run_as = raw.run_as.and_then(|user| {
        let u = user.get_ref();
        let valid = !u.is_empty()
            && u.len() <= 32
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !u.starts_with('-');
        if valid {
            Some(u.clone())
        } else {
            v.error(
                user.span(),
                format!("`run_as` {u:?} must be a user name, like \"switchyard-ci\""),
            );
            None
        }
    });
    Commands { env, run_as }
}

fn subsystems(
    v: &mut Validator<'_>,
    raw: &[super::raw::RawSubsystem],
) -> (Vec<Subsystem>, Ownership) {
    let mut subsystems = Vec::new();
    let mut rules: Vec<(usize, Rule)> = Vec::new();
    let mut first_seen: HashMap<SubsystemName, u32> = HashMap::new();
    // Declared dependencies, checked once every name is known.
    let mut deps: Vec<(Option<usize>, Vec<Str>)> = Vec::new();

    for s in raw {
        let location = (v.locate)(s.header.clone());
        let name = match &s.name {
            None => {
                if !s.keys.iter().any(|k| k == "name") {
                    v.missing(s.header.clone(), "name", "[[subsystem]]");
                }
                None
            }
            Some(name) => match SubsystemName::new(name.get_ref()) {
                Err(message) => {
                    v.error(name.span(), message);
                    None
                }
                Ok(parsed) => {
                    let line = (v.locate)(name.span()).line;
                    if let Some(first) = first_seen.get(&parsed) {
                        v.error(
                            name.span(),
                            format!(
                                "duplicate subsystem name {:?} (first defined on line {first})",
                                parsed.as_str()
                            ),
                        );
                        None
                    } else {
                        first_seen.insert(parsed.clone(), line);
                        Some(parsed)
                    }
                }
            },
        };

        let max_parallel = v.cap(s.max_parallel.as_ref());
        let approval = required_or_none(v, s.approval.as_ref(), "approval");
        let review = required_or_none(v, s.review.as_ref(), "review");
        let verify = v.commands(s.verify.as_ref(), "verify");

        match &s.paths {
            None if s.keys.iter().any(|k| k == "paths") => {}
            None => v.missing(s.header.clone(), "paths", "[[subsystem]]"),
            Some(paths) => {
                if paths.get_ref().is_empty()
                    && let Some(name) = &name
                {
                    let at = (v.locate)(paths.span());
                    v.warning(
                        at,
                        format!(
                            "subsystem {:?} has an empty `paths` list; it owns nothing",
                            name.as_str()
                        ),
                    );
                }
                for path in paths.get_ref() {
                    match Pattern::parse(path.get_ref()) {
                        Err(e) => v.error(path.span(), e.to_string()),
                        Ok(pattern) => {
                            if let Some(name) = &name {
                                rules.push((
                                    path.span().start,
                                    Rule {
                                        subsystem: name.clone(),
                                        pattern,
                                        origin: (v.locate)(path.span()),
                                    },
                                ));
                            }
                        }
                    }
                }
            }
        }

        // Dependencies are checked even for a subsystem whose own name is wrong, so that
        // every problem shows at once; only valid ones become edges.
        if let Some(d) = &s.depends_on {
            let from = name.as_ref().map(|_| subsystems.len());
            deps.push((from, d.get_ref().clone()));
        }
        if let Some(name) = name {
            subsystems.push(Subsystem {
                name,
                max_parallel,
                verify,
                approval,
                review,
                depends_on: Vec::new(),
                location,
            });
        }
    }

    // Dependencies: known names, no cycles.
    let index: HashMap<SubsystemName, usize> = subsystems
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let mut edges: Vec<Vec<(usize, Range<usize>)>> = vec![Vec::new(); subsystems.len()];
    for (from, names) in deps {
        for dep in names {
            match SubsystemName::new(dep.get_ref())
                .ok()
                .and_then(|n| index.get(&n).map(|&i| (n, i)))
            {
                Some((name, to)) => {
                    if let Some(from) = from {
                        subsystems[from].depends_on.push(name);
                        edges[from].push((to, dep.span()));
                    }
                }
                None => v.error(
                    dep.span(),
                    format!("`depends_on` names unknown subsystem {:?}", dep.get_ref()),
                ),
            }
        }
    }
    for (cycle, span) in cycles(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&i| subsystems[i].name.as_str()).collect();
        v.error(
            span,
            format!("`depends_on` forms a cycle: {}", names.join(" -> ")),
        );
    }

    // Rules in file order: the position of each pattern in the text.
    rules.sort_by_key(|(start, _)| *start);
    let ownership = Ownership::new(rules.into_iter().map(|(_, r)| r).collect());
    for s in ownership.shadowed() {
        v.warning(
            s.rule.origin.clone(),
            format!(
                "rule {:?} of subsystem {} can never win: the later rule {:?} of subsystem {} \
                 ({}) matches every path it matches",
                s.rule.pattern.written(),
                s.rule.subsystem,
                s.by.pattern.written(),
                s.by.subsystem,
                s.by.origin.file_line(),
            ),
        );
    }
    (subsystems, ownership)
}

/// Each dependency cycle once, as the path of subsystems and the span of the entry that
/// closes it.
fn cycles(edges: &[Vec<(usize, Range<usize>)>]) -> Vec<(Vec<usize>, Range<usize>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    fn visit(
        node: usize,
        edges: &[Vec<(usize, Range<usize>)>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        found: &mut Vec<(Vec<usize>, Range<usize>)>,
    ) {
        marks[node] = Mark::OnStack;
        stack.push(node);
        for (to, span) in &edges[node] {
            match marks[*to] {
                Mark::OnStack => {
                    let start = stack.iter().position(|n| n == to).expect("on stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(*to);
                    found.push((cycle, span.clone()));
                }
                Mark::New => visit(*to, edges, marks, stack, found),
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[node] = Mark::Done;
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut found = Vec::new();
    for node in 0..edges.len() {
        if marks[node] == Mark::New {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

fn worktrees(v: &mut Validator<'_>, raw: super::raw::RawWorktrees, ctx: &Context) -> Worktrees {
    let root = raw.root.as_ref().and_then(|root| {
        let path = PathBuf::from(root.get_ref());
        if root.get_ref().trim().is_empty() {
            v.error(root.span(), "`root` must not be empty");
            return None;
        }
        if let Some(repo) = &ctx.repo_root {
            let resolved = normalize(&repo.join(&path));
            if resolved.starts_with(normalize(repo)) {
                v.error(
                    root.span(),
                    format!(
                        "`root` {:?} is inside the repository's checkout ({}); task worktrees \
                         must live outside it, for example \"../{}.worktrees\"",
                        root.get_ref(),
                        repo.display(),
                        repo.file_name()
                            .map_or("repo".into(), |n| n.to_string_lossy()),
                    ),
                );
                return None;
            }
            if let Some(real_path) = ctx.real_path {
                let real = real_path(&repo.join(&path));
                let real_repo = real_path(repo);
                if real.starts_with(&real_repo) {
                    v.error(
                        root.span(),
                        format!(
                            "`root` {:?} leads into the repository's checkout through a symlink \
                             (it resolves to {}); task worktrees must live outside it",
                            root.get_ref(),
                            real.display()
                        ),
                    );
                    return None;
                }
            }
        }
        Some(path)
    });
    let pool = match &raw.pool {
        None => DEFAULT_POOL,
        Some(p) => match u32::try_from(*p.get_ref()) {
            Ok(n) if i64::from(n) <= MAX_POOL => n,
            _ => {
                v.error(
                    p.span(),
                    format!(
                        "`pool` must be between 0 and {MAX_POOL}, found {}",
                        p.get_ref()
                    ),
                );
                DEFAULT_POOL
            }
        },
    };
    let mut copy = Vec::new();
    for file in raw.copy.iter().flat_map(|c| c.get_ref()) {
        let path = Path::new(file.get_ref());
        let escapes = path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
        let in_git_dir = path
            .components()
            .any(|c| c.as_os_str().eq_ignore_ascii_case(".git"));
        if file.get_ref().is_empty() || escapes {
            v.error(
                file.span(),
                format!(
                    "`copy` entry {:?} must be a relative path inside the repository",
                    file.get_ref()
                ),
            );
        } else if in_git_dir {
            v.error(
                file.span(),
                format!(
                    "`copy` entry {:?} is inside .git; only files of the checkout can be copied",
                    file.get_ref()
                ),
            );
        } else {
            copy.push(file.get_ref().clone());
        }
    }
    let setup = raw.setup.as_ref().and_then(|s| {
        if s.get_ref().trim().is_empty() {
            v.error(
                s.span(),
                "`setup` must not be empty (leave it out for none)",
            );
            None
        } else {
            Some(s.get_ref().clone())
        }
    });
    let setup_timeout = v.duration(
        raw.setup_timeout.as_ref(),
        "setup_timeout",
        DEFAULT_SETUP_TIMEOUT,
    );
    Worktrees {
        root,
        pool,
        copy,
        setup,
        setup_timeout,
    }
}

/// `[queue] verify`: a list of commands, or `"github-checks"` with `required_checks`.
fn verify(
    v: &mut Validator<'_>,
    raw: &super::raw::RawQueue,
    has_github: bool,
) -> (Vec<String>, VerifyOn) {
    match &raw.verify {
        Some(OneOrList::One(word)) if word.get_ref() == GITHUB_CHECKS => {
            let required = v.commands(raw.required_checks.as_ref(), "required_checks");
            if !has_github {
                v.error(
                    word.span(),
                    format!("`verify = \"{GITHUB_CHECKS}\"` needs a [github] section"),
                );
            }
            if required.is_empty() {
                v.error(
                    word.span(),
                    format!(
                        "`verify = \"{GITHUB_CHECKS}\"` needs `required_checks`: the names of the check runs or statuses that must pass"
                    ),
                );
            }
            (Vec::new(), VerifyOn::GithubChecks { required })
        }
        Some(OneOrList::One(word)) => {
            v.error(
                word.span(),
                format!(
                    "`verify` must be a list of commands or \"{GITHUB_CHECKS}\", found {:?}",
                    word.get_ref()
                ),
            );
            (Vec::new(), VerifyOn::Local)
        }
        other => {
            if let Some(checks) = &raw.required_checks {
                v.error(
                    checks.span(),
                    format!("`required_checks` applies only with verify = \"{GITHUB_CHECKS}\""),
                );
            }
            let list = match other {
                Some(OneOrList::List(list)) => Some(list),
                _ => None,
            };
            (v.commands(list, "verify"), VerifyOn::Local)
        }
    }
}

fn github(v: &mut Validator<'_>, raw: super::raw::RawGithub) -> Github {
    let repo = match &raw.repo {
        None => {
            if !raw.keys.iter().any(|k| k == "repo") {
                v.missing(raw.header.clone(), "repo", "[github]");
            }
            String::new()
        }
        Some(repo) => {
            let valid = repo.get_ref().split_once('/').is_some_and(|(owner, name)| {
                let ok = |s: &str, extra: &[char]| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || extra.contains(&c))
                };
                ok(owner, &[]) && ok(name, &['.', '_'])
            });
            if !valid {
                // Never echo what may be a pasted token.
                let shown = if looks_like_token(repo.get_ref()) {
                    "what looks like a token".to_owned()
                } else {
                    format!("{:?}", repo.get_ref())
                };
                v.error(
                    repo.span(),
                    format!("`repo` must be \"owner/name\", found {shown}"),
                );
            }
            repo.get_ref().clone()
        }
    };
    let api_url = match &raw.api_url {
        None => DEFAULT_API_URL.to_owned(),
        Some(url) => {
            let u = url.get_ref();
            let has_host = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !has_host || u.contains(char::is_whitespace) {
                v.error(
                    url.span(),
                    format!("`api_url` must be an http(s) URL, found {u:?}"),
                );
            }
            u.trim_end_matches('/').to_owned()
        }
    };
    let token_env = match &raw.token_env {
        None => DEFAULT_TOKEN_ENV.to_owned(),
        Some(name) => {
            let n = name.get_ref();
            // Never echo the value: it may be the token itself.
            if looks_like_token(n) {
                v.error(
                    name.span(),
                    "`token_env` holds what looks like a GitHub token; it must name the \
                     environment variable that holds the token (like \"GITHUB_TOKEN\"). \
                     Remove the token from this file and revoke it",
                );
            } else if !is_env_name(n) {
                v.error(
                    name.span(),
                    "`token_env` must be an environment variable name (letters, digits and \
                     '_', not starting with a digit), like \"GITHUB_TOKEN\"",
                );
            }
            n.clone()
        }
    };
    let mut approvers = Vec::new();
    for a in raw.approvers.iter().flat_map(|l| l.get_ref()) {
        match approver(a.get_ref()) {
            Some(parsed) => approvers.push(parsed),
            None => v.error(
                a.span(),
                format!(
                    "approver {:?} must be a GitHub login (\"alice\") or a team (\"@org/team\")",
                    a.get_ref()
                ),
            ),
        }
    }
    let mut labels = Vec::new();
    for l in raw.labels.iter().flat_map(|l| l.get_ref()) {
        if l.get_ref().trim().is_empty() || l.get_ref().len() > 50 {
            v.error(l.span(), "a label must be 1 to 50 characters");
        } else {
            labels.push(l.get_ref().clone());
        }
    }
    let mut poll_interval = v.duration(
        raw.poll_interval.as_ref(),
        "poll_interval",
        DEFAULT_POLL_INTERVAL,
    );
    if let Some(raw_interval) = &raw.poll_interval
        && poll_interval < MIN_POLL_INTERVAL
    {
        v.error(
            raw_interval.span(),
            "`poll_interval` must be at least 100ms",
        );
        poll_interval = DEFAULT_POLL_INTERVAL;
    }
    let webhook = match (&raw.webhook_listen, &raw.webhook_secret_env) {
        (None, None) => None,
        (None, Some(secret)) => {
            v.error(
                secret.span(),
                "`webhook_secret_env` needs `webhook_listen`, the address to receive deliveries on",
            );
            None
        }
        (Some(listen), secret) => {
            let addr = listen.get_ref().parse::<std::net::SocketAddr>();
            if addr.is_err() {
                v.error(
                    listen.span(),
                    format!(
                        "`webhook_listen` must be an address with a port, like \"127.0.0.1:8787\", found {:?}",
                        listen.get_ref()
                    ),
                );
            }
            let secret_env = match secret {
                None => {
                    v.error(
                        listen.span(),
                        "webhooks need `webhook_secret_env`: the environment variable holding the secret their signatures are checked with",
                    );
                    String::new()
                }
                Some(name) if !is_env_name(name.get_ref()) => {
                    v.error(
                        name.span(),
                        "`webhook_secret_env` must be an environment variable name, like \"SWITCHYARD_WEBHOOK_SECRET\"",
                    );
                    String::new()
                }
                Some(name) => name.get_ref().clone(),
            };
            addr.ok().map(|listen| Webhook { listen, secret_env })
        }
    };
    Github {
        repo,
        api_url,
        token_env,
        approvers,
        labels,
        poll_interval,
        delete_branch: raw.delete_branch.is_some_and(|b| *b.get_ref()),
        webhook,
    }
}

/// `[dashboard]`: where the page and `/metrics` are served, and the token that guards
/// them. Anything but a loopback address needs the token: the page shows the queue's
/// work to whoever reaches the port.
fn dashboard(v: &mut Validator<'_>, raw: RawDashboard) -> Dashboard {
    let token_env = raw.token_env.as_ref().and_then(|name| {
        let n = name.get_ref();
        // Never echo the value: it may be the token itself.
        if looks_like_token(n) || !is_env_name(n) {
            v.error(
                name.span(),
                "`token_env` must be an environment variable name (letters, digits and '_', \
                 not starting with a digit), like \"SWITCHYARD_DASHBOARD_TOKEN\", never the token",
            );
            return None;
        }
        Some(n.clone())
    });
    let listen = match &raw.listen {
        None => {
            v.missing(raw.header.clone(), "listen", "[dashboard]");
            None
        }
        Some(listen) => match listen.get_ref().parse::<std::net::SocketAddr>() {
            Err(_) => {
                v.error(
                    listen.span(),
                    format!(
                        "`listen` must be an address with a port, like \"127.0.0.1:8790\", found {:?}",
                        listen.get_ref()
                    ),
                );
                None
            }
            Ok(addr) if addr.port() == 0 => {
                v.error(
                    listen.span(),
                    "`listen` needs a port of its own (not 0), so that the page has an address to open",
                );
                None
            }
            Ok(addr) if !addr.ip().is_loopback() && raw.token_env.is_none() => {
                v.error(
                    listen.span(),
                    format!(
                        "`listen` = \"{addr}\" is not a loopback address: set `token_env` too, so that \
                         every request needs the token (or listen on 127.0.0.1)"
                    ),
                );
                None
            }
            Ok(addr) => Some(addr),
        },
    };
    Dashboard {
        listen: listen.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        token_env,
    }
}

/// `alice` or `@org/team` (GitHub's login and team-slug characters).
fn approver(text: &str) -> Option<Approver> {
    let login = |s: &str| {
        !s.is_empty()
            && s.len() <= 39
            && !s.starts_with('-')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    match text.strip_prefix('@') {
        Some(team) => {
            let (org, slug) = team.split_once('/')?;
            let slug_ok = !slug.is_empty()
                && slug
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            (login(org) && slug_ok).then(|| Approver::Team {
                org: org.to_owned(),
                slug: slug.to_owned(),
            })
        }
        None => login(text).then(|| Approver::User(text.to_owned())),
    }
}

fn looks_like_token(text: &str) -> bool {
    TOKEN_PREFIXES.iter().any(|p| text.starts_with(p))
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
