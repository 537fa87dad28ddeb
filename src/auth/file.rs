//! The tokens file (`[api] tokens`): one token per line, `NAME:SHA256:ROLES`.
//!
//! ```text
//! # comments and blank lines are ignored
//! alice:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08:executor
//! bob:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752:admin,reviewer
//! ```
//!
//! `ROLES` is a comma-separated list of executor, reviewer, planner, admin; a line of
//! only `NAME:SHA256` means the default, executor. The daemon reads it; `switchyard token`
//! rewrites it whole (a temporary file renamed over it, mode 0600, under a lock beside
//! it), so a reader never sees half a file and comments are not kept.
//!
//! The file must be this user's and private (no access for group or others): the daemon
//! refuses to start otherwise, and refuses remote requests while it is not.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Entry, Role, TokenHash, Tokens, roles_or_default, token_name};
use crate::diagnostic::{Diagnostic, Location};

/// A tokens file larger than this is refused: a line is about 100 bytes.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

const HEADER: &str = "# switchyard API tokens: NAME:SHA256:ROLES, one per line. Written by \
                      `switchyard token add` and `token revoke`; keep it private (mode 0600).\n";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(
        "the tokens file {0} does not exist; make it with `switchyard token add NAME` ([api] tokens names it)"
    )]
    Missing(PathBuf),
    #[error(
        "the tokens file {path} is open to other users (mode {mode:04o}); it must be private: chmod 600 {path}"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the tokens file {path} belongs to uid {owner}, not to this user (uid {me}); refusing to trust it"
    )]
    NotOwned { path: PathBuf, owner: u32, me: u32 },
    #[error("the tokens file {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// Every bad line, each as `FILE:LINE:COL: message`.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// Parses the file's text; `display` names it in the errors.
pub fn parse(text: &str, display: &str) -> Result<Tokens, FileError> {
    let file: Arc<str> = display.into();
    let mut errors = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |col: usize| {
            Some(Location {
                file: Arc::clone(&file),
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                col: u32::try_from(col + 1).unwrap_or(u32::MAX),
            })
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let fields: Vec<&str> = trimmed.split(':').collect();
        if !(2..=3).contains(&fields.len()) {
            errors.push(Diagnostic::error(
                at(indent),
                "a line must be NAME:SHA256 or NAME:SHA256:ROLES",
            ));
            continue;
        }
        let name = match token_name(fields[0]) {
            Ok(name) => name,
            Err(e) => {
                errors.push(Diagnostic::error(at(indent), e));
                continue;
            }
        };
        let hash_at = indent + fields[0].len() + 1;
        // Never quoted: a token pasted here by mistake must not reach a log.
        let Some(hash) = TokenHash::parse(fields[1]) else {
            errors.push(Diagnostic::error(
                at(hash_at),
                "the second field must be a token's SHA-256 in 64 hex digits (`switchyard token \
                 add` writes it); the token itself never goes in this file",
            ));
            continue;
        };
        let mut roles = Vec::new();
        if let Some(list) = fields.get(2) {
            let mut col = hash_at + fields[1].len() + 1;
            for word in list.split(',') {
                match word.trim().parse::<Role>() {
                    Ok(role) => roles.push(role),
                    Err(e) => errors.push(Diagnostic::error(at(col), e)),
                }
                col += word.len() + 1;
            }
        }
        if let Some(first) = entries.iter().position(|e| e.name == name) {
            errors.push(Diagnostic::error(
                at(indent),
                format!(
                    "{name} has a token already (entry {} of the file)",
                    first + 1
                ),
            ));
            continue;
        }
        entries.push(Entry {
            name,
            hash,
            roles: roles_or_default(roles),
        });
    }
    match errors.is_empty() {
        true => Ok(Tokens::new(entries)),
        false => Err(FileError::Invalid(errors)),
    }
}

/// The file's text for `tokens`.
pub fn render(tokens: &Tokens) -> String {
    let mut out = HEADER.to_owned();
    for e in tokens.entries() {
        out.push_str(&format!(
            "{}:{}:{}\n",
            e.name,
            e.hash.to_hex(),
            e.roles_text()
        ));
    }
    out
}

/// What identifies one version of the file on disk: a rewrite (a new inode, by
/// rename) or an edit in place (its time or size) changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    len: u64,
    mode: u32,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            len: meta.len(),
            mode: meta.mode(),
        }
    }

    /// The stamp of the file at `path` now (following a symlink, as reading does).
    pub fn now(path: &Path) -> Result<Stamp, FileError> {
        std::fs::metadata(path)
            .map(|m| Stamp::of(&m))
            .map_err(|e| io_error(path, e))
    }
}

fn io_error(path: &Path, e: std::io::Error) -> FileError {
    match e.kind() {
        std::io::ErrorKind::NotFound => FileError::Missing(path.to_owned()),
        _ => FileError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        },
    }
}

/// Reads the file for the daemon: it must be a regular file of this user's, closed to
/// group and others. Returns the version read with what it holds.
pub fn read(path: &Path) -> Result<(Stamp, Tokens), FileError> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    // Judged on the open file, so a swap after the check cannot slip another one in.
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    check_private(path, &meta)?;
    let text = read_bounded(path, &mut file, &meta)?;
    Ok((Stamp::of(&meta), parse(&text, &path.display().to_string())?))
}

fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), FileError> {
    if !meta.is_file() {
        return Err(FileError::Io {
            path: path.to_owned(),
            message: "not a regular file".into(),
        });
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(FileError::NotOwned {
            path: path.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(FileError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

fn read_bounded(
    path: &Path,
    file: &mut File,
    meta: &std::fs::Metadata,
) -> Result<String, FileError> {
    let too_big = || FileError::Io {
        path: path.to_owned(),
        message: format!("over {MAX_BYTES} bytes; is this the right file?"),
    };
    if meta.len() > MAX_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| FileError::Io {
        path: path.to_owned(),
        message: "not UTF-8 text".into(),
    })
}

/// Reads the file for a listing: missing is empty; a file open to others is read
/// anyway (the next [`update`] makes it private again).
pub fn read_for_listing(path: &Path) -> Result<Tokens, FileError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tokens::default()),
        Err(e) => return Err(io_error(path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let text = read_bounded(path, &mut file, &meta)?;
    parse(&text, &path.display().to_string())
}

/// Changes the file with `change`, atomically: under a lock file beside it (so two
/// `token` commands at once do not lose one's change), the new text goes to a private
/// temporary file that is then renamed over it. A file that does not parse is left
/// alone: its lines would be lost.
pub fn update<T>(
    path: &Path,
    change: impl FnOnce(&mut Tokens) -> Result<T, String>,
) -> Result<T, UpdateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tokens".into());
    let io = |e: std::io::Error| UpdateError::File(io_error(path, e));
    let lock_path = dir.join(format!(".{name}.lock"));
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| {
            UpdateError::File(FileError::Io {
                path: lock_path.clone(),
                message: e.to_string(),
            })
        })?;
    lock.lock().map_err(io)?;
    let mut tokens = read_for_listing(path).map_err(UpdateError::File)?;
    let value = change(&mut tokens).map_err(UpdateError::Refused)?;
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        // The mode above is cut by the umask; a private file needs no more than this.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(render(&tokens).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(e));
    }
    drop(lock);
    Ok(value)
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    File(FileError),
    /// The change itself was refused (a name that has a token, one that has none).
    #[error("{0}")]
    Refused(String),
}
