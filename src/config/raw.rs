//! Phase one: the TOML document into raw structs that keep what the user wrote and where.
//!
//! Walking toml's span-keeping `DeTable` by hand (instead of serde with
//! `deny_unknown_fields`) lets one pass report every syntax error, unknown key and wrong
//! type at once, each at its own place. Nothing here judges values; that is phase two.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::closest;

/// A problem found while reading: the byte range it concerns and the message.
pub(crate) type RawError = (Range<usize>, String);

pub(crate) type Str = Spanned<String>;
pub(crate) type StrList = Spanned<Vec<Str>>;

#[derive(Debug, Default)]
pub(crate) struct Raw {
    pub base: Option<Str>,
    pub remote: Option<Str>,
    pub queue: Option<RawQueue>,
    pub subsystems: Vec<RawSubsystem>,
    pub claims: Option<RawClaims>,
    pub worktrees: Option<RawWorktrees>,
    pub commands: Option<RawCommands>,
    pub github: Option<RawGithub>,
    pub review: Option<RawReview>,
    pub mcp: Option<RawMcp>,
    pub api: Option<RawApi>,
    pub dashboard: Option<RawDashboard>,
}

#[derive(Debug, Default)]
pub(crate) struct RawMcp {
    pub listen: Option<Str>,
}

#[derive(Debug, Default)]
pub(crate) struct RawApi {
    pub listen: Option<Str>,
    pub tls_cert: Option<Str>,
    pub tls_key: Option<Str>,
    pub tokens: Option<Str>,
}

#[derive(Debug)]
pub(crate) struct RawDashboard {
    pub header: Range<usize>,
    pub listen: Option<Str>,
    pub token_env: Option<Str>,
}

#[derive(Debug, Default)]
pub(crate) struct RawReview {
    pub required: Option<Spanned<bool>>,
    pub reviewers: Option<StrList>,
    pub lease: Option<Str>,
}

#[derive(Debug, Default)]
pub(crate) struct RawCommands {
    pub env: Option<StrList>,
    pub run_as: Option<Str>,
}

#[derive(Debug, Default)]
pub(crate) struct RawClaims {
    pub lease: Option<Str>,
    pub max_parallel: Option<Spanned<i64>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawQueue {
    pub verify: Option<OneOrList>,
    pub verify_timeout: Option<Str>,
    pub required_checks: Option<StrList>,
    pub max_parallel: Option<Spanned<i64>>,
    pub land: Option<Str>,
    pub retries: Option<Spanned<i64>>,
    pub lanes: Option<Spanned<bool>>,
    pub max_attempts: Option<Spanned<i64>>,
}

/// A key that takes either a word or a list of strings (`verify`).
#[derive(Debug)]
pub(crate) enum OneOrList {
    One(Str),
    List(StrList),
}

#[derive(Debug)]
pub(crate) struct RawSubsystem {
    /// The `[[subsystem]]` header.
    pub header: Range<usize>,
    /// The keys written, valid or not: a key of the wrong type is not "missing".
    pub keys: Vec<String>,
    pub name: Option<Str>,
    pub paths: Option<StrList>,
    pub max_parallel: Option<Spanned<i64>>,
    pub verify: Option<StrList>,
    pub approval: Option<Str>,
    pub review: Option<Str>,
    pub depends_on: Option<StrList>,
}

#[derive(Debug, Default)]
pub(crate) struct RawWorktrees {
    pub root: Option<Str>,
    pub pool: Option<Spanned<i64>>,
    pub copy: Option<StrList>,
    pub setup: Option<Str>,
    pub setup_timeout: Option<Str>,
}

#[derive(Debug)]
pub(crate) struct RawGithub {
    pub header: Range<usize>,
    pub keys: Vec<String>,
    pub repo: Option<Str>,
    pub api_url: Option<Str>,
    pub token_env: Option<Str>,
    pub approvers: Option<StrList>,
    pub labels: Option<StrList>,
    pub poll_interval: Option<Str>,
    pub delete_branch: Option<Spanned<bool>>,
    pub webhook_listen: Option<Str>,
    pub webhook_secret_env: Option<Str>,
}

/// Reads a whole document. Syntax errors do not stop the walk: toml recovers what it
/// can, so a typo on line 3 and an unknown key on line 40 are reported together.
pub(crate) fn read(text: &str) -> (Raw, Vec<RawError>) {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // What the parser recovered around a syntax error is a guess; judging its keys
        // and types would report phantom problems. One error per line: the rest of a
        // broken line is usually a consequence of its first error.
        let mut errors: Vec<RawError> = Vec::new();
        let mut lines_seen = Vec::new();
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            let line = text[..span.start.min(text.len())].matches('\n').count();
            if !lines_seen.contains(&line) {
                lines_seen.push(line);
                errors.push((span, e.message().to_owned()));
            }
        }
        return (Raw::default(), errors);
    }
    let mut errors: Vec<RawError> = Vec::new();
    let raw = {
        let mut r = Reader::new(doc.get_ref(), "the top level", &mut errors);
        let raw = Raw {
            base: r.string("base"),
            remote: r.string("remote"),
            queue: r.table("queue").map(|(t, _)| {
                let mut q = r.nested(t, "[queue]");
                let queue = RawQueue {
                    verify: q.string_or_strings("verify"),
                    verify_timeout: q.string("verify_timeout"),
                    required_checks: q.strings("required_checks"),
                    max_parallel: q.integer("max_parallel"),
                    land: q.string("land"),
                    retries: q.integer("retries"),
                    lanes: q.boolean("lanes"),
                    max_attempts: q.integer("max_attempts"),
                };
                q.finish(QUEUE_KEYS);
                queue
            }),
            subsystems: r
                .array_of_tables("subsystem")
                .into_iter()
                .map(|(t, header)| {
                    let mut s = r.nested(t, "[[subsystem]]");
                    let sub = RawSubsystem {
                        header,
                        keys: s.keys(),
                        name: s.string("name"),
                        paths: s.strings("paths"),
                        max_parallel: s.integer("max_parallel"),
                        verify: s.strings("verify"),
                        approval: s.string("approval"),
                        review: s.string("review"),
                        depends_on: s.strings("depends_on"),
                    };
                    s.finish(SUBSYSTEM_KEYS);
                    sub
                })
                .collect(),
            claims: r.table("claims").map(|(t, _)| {
                let mut c = r.nested(t, "[claims]");
                let claims = RawClaims {
                    lease: c.string("lease"),
                    max_parallel: c.integer("max_parallel"),
                };
                c.finish(CLAIMS_KEYS);
                claims
            }),
            worktrees: r.table("worktrees").map(|(t, _)| {
                let mut w = r.nested(t, "[worktrees]");
                let wt = RawWorktrees {
                    root: w.string("root"),
                    pool: w.integer("pool"),
                    copy: w.strings("copy"),
                    setup: w.string("setup"),
                    setup_timeout: w.string("setup_timeout"),
                };
                w.finish(WORKTREES_KEYS);
                wt
            }),
            commands: r.table("commands").map(|(t, _)| {
                let mut c = r.nested(t, "[commands]");
                let commands = RawCommands {
                    env: c.strings("env"),
                    run_as: c.string("run_as"),
                };
                c.finish(COMMANDS_KEYS);
                commands
            }),
            github: r.table("github").map(|(t, header)| {
                let mut g = r.nested(t, "[github]");
                let gh = RawGithub {
                    header,
                    keys: g.keys(),
                    repo: g.string("repo"),
                    api_url: g.string("api_url"),
                    token_env: g.string("token_env"),
                    approvers: g.strings("approvers"),
                    labels: g.strings("labels"),
                    poll_interval: g.string("poll_interval"),
                    delete_branch: g.boolean("delete_branch"),
                    webhook_listen: g.string("webhook_listen"),
                    webhook_secret_env: g.string("webhook_secret_env"),
                };
                g.finish(GITHUB_KEYS);
                gh
            }),
            review: r.table("review").map(|(t, _)| {
                let mut rv = r.nested(t, "[review]");
                let review = RawReview {
                    required: rv.boolean("required"),
                    reviewers: rv.strings("reviewers"),
                    lease: rv.string("lease"),
                };
                rv.finish(REVIEW_KEYS);
                review
            }),
            mcp: r.table("mcp").map(|(t, _)| {
                let mut m = r.nested(t, "[mcp]");
                let mcp = RawMcp {
                    listen: m.string("listen"),
                };
                m.finish(MCP_KEYS);
                mcp
            }),
            api: r.table("api").map(|(t, _)| {
                let mut a = r.nested(t, "[api]");
                let api = RawApi {
                    listen: a.string("listen"),
                    tls_cert: a.string("tls_cert"),
                    tls_key: a.string("tls_key"),
                    tokens: a.string("tokens"),
                };
                a.finish(API_KEYS);
                api
            }),
            dashboard: r.table("dashboard").map(|(t, header)| {
                let mut d = r.nested(t, "[dashboard]");
                let dashboard = RawDashboard {
                    header,
                    listen: d.string("listen"),
                    token_env: d.string("token_env"),
                };
                d.finish(DASHBOARD_KEYS);
                dashboard
            }),
        };
        r.finish(TOP_KEYS);
        raw
    };
    (raw, errors)
}

const TOP_KEYS: &[&str] = &[
    "base",
    "remote",
    "queue",
    "subsystem",
    "claims",
    "worktrees",
    "commands",
    "github",
    "review",
    "mcp",
    "api",
    "dashboard",
];
const QUEUE_KEYS: &[&str] = &[
    "verify",
    "verify_timeout",
    "required_checks",
    "max_parallel",
    "land",
    "retries",
    "lanes",
    "max_attempts",
];
const CLAIMS_KEYS: &[&str] = &["lease", "max_parallel"];
const SUBSYSTEM_KEYS: &[&str] = &[
    "name",
    "paths",
    "max_parallel",
    "verify",
    "approval",
    "review",
    "depends_on",
];
const WORKTREES_KEYS: &[&str] = &["root", "pool", "copy", "setup", "setup_timeout"];
const COMMANDS_KEYS: &[&str] = &["env", "run_as"];
const REVIEW_KEYS: &[&str] = &["required", "reviewers", "lease"];
const MCP_KEYS: &[&str] = &["listen"];
const API_KEYS: &[&str] = &["listen", "tls_cert", "tls_key", "tokens"];
const DASHBOARD_KEYS: &[&str] = &["listen", "token_env"];
const GITHUB_KEYS: &[&str] = &[
    "repo",
    "api_url",
    "token_env",
    "approvers",
    "labels",
    "poll_interval",
    "delete_branch",
    "webhook_listen",
    "webhook_secret_env",
];

/// Every section's keys, so that a key written in the wrong section can be pointed home.
const KEY_HOMES: [(&str, &[&str]); 10] = [
    ("[queue]", QUEUE_KEYS),
    ("[claims]", CLAIMS_KEYS),
    ("[[subsystem]]", SUBSYSTEM_KEYS),
    ("[worktrees]", WORKTREES_KEYS),
    ("[commands]", COMMANDS_KEYS),
    ("[github]", GITHUB_KEYS),
    ("[review]", REVIEW_KEYS),
    ("[mcp]", MCP_KEYS),
    ("[api]", API_KEYS),
    ("[dashboard]", DASHBOARD_KEYS),
];

/// Typed access to one table's keys, recording type errors and, at the end, the keys
/// nobody asked for.
struct Reader<'t, 'i, 'e> {
    table: &'t DeTable<'i>,
    section: &'static str,
    errors: &'e mut Vec<RawError>,
}

impl<'t, 'i, 'e> Reader<'t, 'i, 'e> {
    fn new(table: &'t DeTable<'i>, section: &'static str, errors: &'e mut Vec<RawError>) -> Self {
        Reader {
            table,
            section,
            errors,
        }
    }

    fn nested<'u>(
        &'u mut self,
        table: &'u DeTable<'i>,
        section: &'static str,
    ) -> Reader<'u, 'i, 'u> {
        Reader {
            table,
            section,
            errors: self.errors,
        }
    }

    fn keys(&self) -> Vec<String> {
        self.table
            .iter()
            .map(|(k, _)| k.get_ref().to_string())
            .collect()
    }

    fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    fn wrong_type(&mut self, key: &str, value: &Spanned<DeValue<'_>>, expected: &str) {
        self.errors.push((
            value.span(),
            format!(
                "`{key}` must be {expected}, found {}",
                article(value.get_ref().type_str())
            ),
        ));
    }

    fn string(&mut self, key: &str) -> Option<Str> {
        let value = self.get(key)?;
        match value.get_ref().as_str() {
            Some(s) => Some(Spanned::new(value.span(), s.to_owned())),
            None => {
                self.wrong_type(key, value, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> Option<Spanned<bool>> {
        let value = self.get(key)?;
        match value.get_ref().as_bool() {
            Some(b) => Some(Spanned::new(value.span(), b)),
            None => {
                self.wrong_type(key, value, "true or false");
                None
            }
        }
    }

    fn string_or_strings(&mut self, key: &str) -> Option<OneOrList> {
        let value = self.get(key)?;
        match value.get_ref().as_str() {
            Some(s) => Some(OneOrList::One(Spanned::new(value.span(), s.to_owned()))),
            None => self.strings(key).map(OneOrList::List),
        }
    }

    fn integer(&mut self, key: &str) -> Option<Spanned<i64>> {
        let value = self.get(key)?;
        let parsed = value
            .get_ref()
            .as_integer()
            .map(|i| i64::from_str_radix(i.as_str(), i.radix()));
        match parsed {
            Some(Ok(n)) => Some(Spanned::new(value.span(), n)),
            Some(Err(_)) => {
                self.errors
                    .push((value.span(), format!("`{key}` is out of range")));
                None
            }
            None => {
                self.wrong_type(key, value, "an integer");
                None
            }
        }
    }

    fn strings(&mut self, key: &str) -> Option<StrList> {
        let value = self.get(key)?;
        let Some(array) = value.get_ref().as_array() else {
            self.wrong_type(key, value, "a list of strings");
            return None;
        };
        let mut out = Vec::new();
        for item in array.iter() {
            match item.get_ref().as_str() {
                Some(s) => out.push(Spanned::new(item.span(), s.to_owned())),
                None => self.errors.push((
                    item.span(),
                    format!(
                        "`{key}` must be a list of strings, but this element is {}",
                        article(item.get_ref().type_str())
                    ),
                )),
            }
        }
        Some(Spanned::new(value.span(), out))
    }

    fn table(&mut self, key: &str) -> Option<(&'t DeTable<'i>, Range<usize>)> {
        let value = self.get(key)?;
        match value.get_ref().as_table() {
            Some(t) => Some((t, value.span())),
            None => {
                self.wrong_type(key, value, &format!("a table ([{key}])"));
                None
            }
        }
    }

    fn array_of_tables(&mut self, key: &str) -> Vec<(&'t DeTable<'i>, Range<usize>)> {
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let Some(array) = value.get_ref().as_array() else {
            self.wrong_type(key, value, &format!("an array of tables ([[{key}]])"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in array.iter() {
            match item.get_ref().as_table() {
                Some(t) => out.push((t, item.span())),
                None => self.wrong_type(key, item, &format!("an array of tables ([[{key}]])")),
            }
        }
        out
    }

    /// Reports every key of this table that is not in `known`.
    fn finish(self, known: &[&str]) {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let elsewhere = KEY_HOMES
                .iter()
                .filter(|(section, _)| *section != self.section)
                .find_map(|(section, keys)| closest(name, keys).map(|k| (k, section)));
            let hint = match (closest(name, known), elsewhere) {
                (Some(k), _) => format!("; did you mean `{k}`?"),
                (None, Some((k, section))) => format!("; did you mean `{k}` in {section}?"),
                (None, None) => format!(" (known keys: {})", known.join(", ")),
            };
            self.errors.push((
                key.span(),
                format!("unknown key `{name}` in {}{hint}", self.section),
            ));
        }
    }
}

fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}
