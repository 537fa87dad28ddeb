//! Who may use the networked API (`[api] listen`), decided without I/O: tokens and their
//! roles, which role may call which route ([`permit`], the one table), whose name a
//! request may use ([`Acts`]), and how failed authentications are limited
//! ([`limit::Limiter`]). The tokens file's format and its safe reading and writing are
//! in [`file`].
//!
//! A token is 256 random bits, shown once when it is made; only its SHA-256 is kept.
//! Random tokens need no slow hash: nobody can guess one from its hash, and the hash is
//! what is compared, over every entry, in constant time.
//!
//! The Unix socket has none of this: only the daemon's own user can open it, and that
//! user is trusted to act as anyone.

pub mod file;
pub mod limit;

use std::fmt;

use crate::api::{self, Endpoint};
use crate::model::normalize_name;

/// What a token may do. Every token may read (tasks, the queue, status, events, wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Claims tasks and works on them: claim, heartbeat, release, submit.
    Executor,
    /// Reviews submitted changes: review next, approve, changes.
    Reviewer,
    /// Adds tasks: task add, plan.
    Planner,
    /// Everything, including a person's decisions: approve, reject, cancel, pause,
    /// resume, and releasing a task from its executor.
    Admin,
}

/// The roles of a token made without `--role`: an executor, the remote client a fleet
/// has most of, and the one that can do least harm.
pub const DEFAULT_ROLES: [Role; 1] = [Role::Executor];

impl Role {
    pub const ALL: [Role; 4] = [Role::Executor, Role::Reviewer, Role::Planner, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Executor => "executor",
            Role::Reviewer => "reviewer",
            Role::Planner => "planner",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (roles: executor, reviewer, planner, admin)")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret bearer token. It is never formatted: `Debug` hides it and there is no
/// `Display`, so it cannot slip into a log line or an error; [`Token::expose`] is the
/// one way to its text (for the `Authorization` header, and printing it once).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// The variable a client's token comes in. Named here because nothing but the client
/// may see it: the daemon drops it from its own environment (`daemon::harden`) and the
/// config may not pass it to commands.
pub const TOKEN_ENV: &str = "SWITCHYARD_TOKEN";

/// What every token starts with: it tells a leaked string for what it is.
pub const TOKEN_PREFIX: &str = "sy_";

impl Token {
    /// A token as the client was given it (`SWITCHYARD_TOKEN`).
    pub fn new(text: String) -> Token {
        Token(text)
    }

    /// A new token: [`TOKEN_PREFIX`] and 256 random bits in hex.
    pub fn generate() -> Result<Token, String> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "the system's random number generator failed".to_owned())?;
        Ok(Token(format!("{TOKEN_PREFIX}{}", hex(&bytes))))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The SHA-256 of a token: what the tokens file keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        TokenHash(out)
    }

    /// From 64 hex digits.
    pub fn parse(text: &str) -> Option<TokenHash> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(out))
    }

    pub fn to_hex(self) -> String {
        hex(&self.0)
    }

    /// Whether `token` is the one this is the hash of, in constant time.
    pub fn matches(&self, token: &str) -> bool {
        self.same(&TokenHash::of(token))
    }

    /// Equal, in time that does not depend on where the two differ.
    fn same(&self, other: &TokenHash) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of the tokens file: whose token, its hash, its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name the daemon records for whatever this token does (normalized).
    pub name: String,
    pub hash: TokenHash,
    /// Sorted, without repeats, never empty.
    pub roles: Vec<Role>,
}

impl Entry {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// `executor,reviewer`
    pub fn roles_text(&self) -> String {
        roles_text(&self.roles)
    }
}

pub fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Roles as given (`--role`, or a file's third field): sorted, without repeats; the
/// default when none is given.
pub fn roles_or_default(mut roles: Vec<Role>) -> Vec<Role> {
    if roles.is_empty() {
        roles = DEFAULT_ROLES.to_vec();
    }
    roles.sort_unstable();
    roles.dedup();
    roles
}

/// The most characters a token's name may have.
pub const MAX_TOKEN_NAME: usize = 64;

/// A token's name as the daemon records it: lower-case ASCII letters, digits and
/// `.`, `_`, `-`, `@`, starting with a letter or digit. Narrower than the names the
/// ledger takes, so that the tokens file needs no quoting and a name reads the same
/// everywhere.
pub fn token_name(raw: &str) -> Result<String, String> {
    let name = raw.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= MAX_TOKEN_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    match ok {
        // The ledger's own rule must give the same name, or comparisons would differ.
        true if normalize_name(&name).as_deref() == Ok(name.as_str()) => Ok(name),
        _ => Err(format!(
            "a token's name must be 1 to {MAX_TOKEN_NAME} of a-z, 0-9, '.', '_', '-', '@', \
             starting with a letter or digit, found {raw:?}"
        )),
    }
}

/// Every token the daemon accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl Tokens {
    pub fn new(entries: Vec<Entry>) -> Tokens {
        Tokens { entries }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry whose hash is the presented token's. Every entry is compared, in
    /// constant time each, so the answer's timing says nothing about the others.
    pub fn find(&self, presented: &str) -> Option<&Entry> {
        let hash = TokenHash::of(presented);
        let mut found = None;
        for entry in &self.entries {
            if entry.hash.same(&hash) && found.is_none() {
                found = Some(entry);
            }
        }
        found
    }

    /// Adds a new entry; refuses a name that has one.
    pub fn add(&mut self, entry: Entry) -> Result<(), String> {
        if self.get(&entry.name).is_some() {
            return Err(format!(
                "{} already has a token; `switchyard token revoke {}` first to replace it",
                entry.name, entry.name
            ));
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Removes `name`'s entry; `false` when there was none.
    pub fn revoke(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        self.entries.len() != before
    }
}

/// What a token must hold for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Any valid token: reads.
    AnyToken,
    /// This role, or admin.
    Role(Role),
}

/// What a request does, as far as its permission goes: its route, except that a
/// release by a person (`by`: taking a task from its executor) is a decision of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Route(Endpoint),
    TakeBack,
}

/// The one table of who may call what over TCP (README, "The networked API").
pub fn permit(call: Call) -> Permit {
    match call {
        Call::TakeBack => Permit::Role(Role::Admin),
        Call::Route(e) => match e {
            Endpoint::Status
            | Endpoint::ListTasks
            | Endpoint::ShowTask
            | Endpoint::TaskEvents
            | Endpoint::Wait
            | Endpoint::Conflicts
            | Endpoint::Queue
            | Endpoint::QueueEvents => Permit::AnyToken,
            Endpoint::Claim | Endpoint::Heartbeat | Endpoint::Release | Endpoint::Submit => {
                Permit::Role(Role::Executor)
            }
            Endpoint::ReviewNext | Endpoint::ReviewApprove | Endpoint::ReviewChanges => {
                Permit::Role(Role::Reviewer)
            }
            Endpoint::AddTask | Endpoint::Plan => Permit::Role(Role::Planner),
            Endpoint::Approve
            | Endpoint::Reject
            | Endpoint::Cancel
            | Endpoint::Pause
            | Endpoint::Resume => Permit::Role(Role::Admin),
        },
    }
}

/// Whether `entry`'s roles allow `call`; `Err` is the refusal's message.
pub fn allowed(entry: &Entry, call: Call) -> Result<(), String> {
    match permit(call) {
        Permit::AnyToken => Ok(()),
        Permit::Role(role) if entry.has(role) || entry.has(Role::Admin) => Ok(()),
        Permit::Role(role) => Err(format!(
            "the token of {} ({}) may not {}: that needs the {role} role{}",
            entry.name,
            entry.roles_text(),
            what(call),
            if role == Role::Admin {
                ""
            } else {
                " (or admin)"
            }
        )),
    }
}

/// A call in words, for refusals.
fn what(call: Call) -> &'static str {
    match call {
        Call::TakeBack => "release a task from its executor",
        Call::Route(e) => match e {
            Endpoint::Status => "read the status",
            Endpoint::ListTasks => "list tasks",
            Endpoint::AddTask => "add tasks",
            Endpoint::ShowTask => "show tasks",
            Endpoint::TaskEvents => "read a task's events",
            Endpoint::Wait => "wait for tasks",
            Endpoint::Conflicts => "read conflicts",
            Endpoint::Heartbeat => "heartbeat claims",
            Endpoint::Release => "release claims",
            Endpoint::Cancel => "cancel tasks",
            Endpoint::Submit => "submit tasks",
            Endpoint::Approve => "approve tasks",
            Endpoint::Reject => "reject tasks",
            Endpoint::Claim => "claim tasks",
            Endpoint::Queue => "read the queue",
            Endpoint::QueueEvents => "read the queue's events",
            Endpoint::Resume => "resume the queue",
            Endpoint::Pause => "pause the queue",
            Endpoint::Plan => "plan tasks",
            Endpoint::ReviewNext => "take reviews",
            Endpoint::ReviewApprove => "approve reviews",
            Endpoint::ReviewChanges => "ask for changes",
        },
    }
}

/// Why a request may not use the name it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Impersonation {
    /// It names someone else.
    Someone { named: String, owner: String },
    /// The name is no name at all (the ledger's own message).
    BadName(String),
}

impl Impersonation {
    pub fn code(&self) -> api::ErrorCode {
        match self {
            Impersonation::Someone { .. } => api::ErrorCode::NotAllowed,
            Impersonation::BadName(_) => api::ErrorCode::BadRequest,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Impersonation::Someone { named, owner } => format!(
                "this token belongs to {owner}; it cannot act as {named} (leave --agent and \
                 --by out, or give {owner})"
            ),
            Impersonation::BadName(m) => m.clone(),
        }
    }
}

/// A request that names who makes it. Over TCP the name must be the token's owner's;
/// left empty, it becomes that name. The service then records it, and its own checks
/// (the claim holder, a reviewer who executed the task) apply to the token's owner.
pub trait Acts {
    fn act_as(&mut self, owner: &str) -> Result<(), Impersonation>;
}

/// One name field: empty becomes `owner`; anything else must normalize to it.
fn as_owner(field: &mut String, flag: &str, owner: &str) -> Result<(), Impersonation> {
    if field.trim().is_empty() {
        *field = owner.to_owned();
        return Ok(());
    }
    match normalize_name(field) {
        Ok(name) if name == owner => {
            *field = owner.to_owned();
            Ok(())
        }
        Ok(named) => Err(Impersonation::Someone {
            named,
            owner: owner.to_owned(),
        }),
        Err(e) => Err(Impersonation::BadName(format!("{flag} {e}"))),
    }
}

/// An optional name field: absent stays absent; given, it must be `owner`'s.
fn optional_owner(
    field: &mut Option<String>,
    flag: &str,
    owner: &str,
) -> Result<(), Impersonation> {
    match field {
        Some(name) => as_owner(name, flag, owner),
        None => Ok(()),
    }
}

macro_rules! acts_by {
    ($($t:ty),*) => {$(
        impl Acts for $t {
            fn act_as(&mut self, owner: &str) -> Result<(), Impersonation> {
                as_owner(&mut self.by, "--by", owner)
            }
        }
    )*};
}

acts_by!(
    api::AddTask,
    api::Plan,
    api::Cancel,
    api::Decision,
    api::Resume,
    api::PauseRequest
);

impl Acts for api::Claim {
    fn act_as(&mut self, owner: &str) -> Result<(), Impersonation> {
        as_owner(&mut self.agent, "--agent", owner)
    }
}

impl Acts for api::ByAgent {
    fn act_as(&mut self, owner: &str) -> Result<(), Impersonation> {
        // A person's release (`by`) leaves `agent` unused; otherwise the agent acts.
        match self.by {
            Some(_) if self.agent.trim().is_empty() => {}
            _ => as_owner(&mut self.agent, "--agent", owner)?,
        }
        optional_owner(&mut self.by, "--by", owner)
    }
}

impl Acts for api::Submit {
    fn act_as(&mut self, owner: &str) -> Result<(), Impersonation> {
        as_owner(&mut self.agent, "--agent", owner)
    }
}

impl Acts for api::Reviewer {
    fn act_as(&mut self, owner: &str) -> Result<(), Impersonation> {
        if self.agent.is_none() && self.by.is_none() {
            self.agent = Some(owner.to_owned());
        }
        optional_owner(&mut self.agent, "--agent", owner)?;
        optional_owner(&mut self.by, "--by", owner)
    }
}

impl Acts for api::ReviewNext {
    fn act_as(&mut self, owner: &str) -> Result<(), Impersonation> {
        self.reviewer.act_as(owner)
    }
}

impl Acts for api::ReviewVerdict {
    fn act_as(&mut self, owner: &str) -> Result<(), Impersonation> {
        self.reviewer.act_as(owner)
    }
}

#[cfg(test)]
mod tests;
