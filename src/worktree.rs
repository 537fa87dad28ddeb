//! Task worktrees and the pool of ready ones, through the `git` CLI.
//!
//! Measured on a 20k-file repository, `git worktree add` costs seconds (it writes every
//! file), while moving an existing worktree to another commit with `git checkout` costs
//! tens of milliseconds, and git2 can neither create a detached worktree nor beat the CLI
//! at checkout. So switchyard keeps a pool of detached worktrees under
//! `<root>/.pool/`, and a claim renames one to `<root>/<task id>` and checks the task's
//! branch out in it. A fresh `git worktree add` is the fallback when the pool is empty.
//!
//! Every function here blocks; callers run them off the async runtime.

use crate::gitcli::GitCliError;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The file in each task worktree that holds its environment (`KEY='value'` lines).
/// Git ignores it through the repository's `info/exclude`.
pub const ENV_FILE: &str = ".switchyard.env";

#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    #[error(transparent)]
    Git(#[from] GitCliError),
    #[error("{0}")]
    Io(String),
}

type Result<T, E = WorktreeError> = std::result::Result<T, E>;

fn io(what: &str, path: &Path, e: std::io::Error) -> WorktreeError {
    WorktreeError::Io(format!("cannot {what} {}: {e}", path.display()))
}

pub fn git<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Result<String> {
    Ok(crate::gitcli::git(dir, args)?)
}

/// Git's worktree bookkeeping (`.git/worktrees/`) is not safe against concurrent
/// changes: a `worktree add` reads every other entry and fails on a half-made one. Every
/// change to it, and every listing, takes this lock; the slow part of making a worktree
/// (writing its files) runs outside it.
static REGISTRY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn registry() -> std::sync::MutexGuard<'static, ()> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// One entry of `git worktree list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: PathBuf,
    pub head: Option<String>,
    /// `None` when detached.
    pub branch: Option<String>,
    /// Git's own note that the directory is gone.
    pub prunable: bool,
}

/// The worktrees of one repository, under one root.
#[derive(Debug, Clone)]
pub struct Worktrees {
    pub main_root: PathBuf,
    pub root: PathBuf,
}

impl Worktrees {
    pub fn new(main_root: PathBuf, root: PathBuf) -> Worktrees {
        Worktrees { main_root, root }
    }

    /// Creates the root (and the pool directory) and checks it is writable.
    pub fn ensure_root(&self) -> Result<()> {
        let pool = self.pool_dir();
        std::fs::create_dir_all(&pool).map_err(|e| io("create the worktree root", &pool, e))?;
        let probe = pool.join(".write-test");
        std::fs::write(&probe, b"").map_err(|e| io("write in the worktree root", &self.root, e))?;
        let _ = std::fs::remove_file(probe);
        Ok(())
    }

    pub fn pool_dir(&self) -> PathBuf {
        self.root.join(".pool")
    }

    /// Where `--new-ledger` puts the worktrees of the tasks the old ledger knew.
    pub fn archive_dir(&self) -> PathBuf {
        self.root.join(".archive")
    }

    /// Where review checkouts someone changed files in are set aside, never touched again.
    pub fn kept_dir(&self) -> PathBuf {
        self.root.join(".kept")
    }

    /// Where worktrees being deleted wait for their files to go (see `discard`).
    pub fn trash_dir(&self) -> PathBuf {
        self.root.join(".trash")
    }

    pub fn task_path(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn is_pool_path(&self, path: &Path) -> bool {
        path.parent() == Some(self.pool_dir().as_path())
    }

    pub fn list(&self) -> Result<Vec<Listed>> {
        let out = {
            let _registry = registry();
            git(&self.main_root, &["worktree", "list", "--porcelain", "-z"])?
        };
        let mut listed = Vec::new();
        let mut current: Option<Listed> = None;
        for field in out.split('\0') {
            if field.is_empty() {
                listed.extend(current.take());
                continue;
            }
            let (key, value) = field.split_once(' ').unwrap_or((field, ""));
            match key {
                "worktree" => {
                    listed.extend(current.take());
                    current = Some(Listed {
                        path: PathBuf::from(value),
                        head: None,
                        branch: None,
                        prunable: false,
                    });
                }
                "HEAD" => current
                    .iter_mut()
                    .for_each(|c| c.head = Some(value.to_owned())),
                "branch" => current.iter_mut().for_each(|c| {
                    c.branch = Some(value.trim_start_matches("refs/heads/").to_owned())
                }),
                "prunable" => current.iter_mut().for_each(|c| c.prunable = true),
                _ => {}
            }
        }
        listed.extend(current);
        Ok(listed)
    }

    /// Removes the entries of `worktree add`s that were cut short (by a `kill -9`): git
    /// marks an entry "initializing" until it is complete, and an incomplete one (no
    /// `gitdir` or `commondir` yet) makes every `git worktree` command fail. Returns what
    /// it removed.
    pub fn repair(&self, common_dir: &Path) -> Vec<PathBuf> {
        let _registry = registry();
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(common_dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let admin = entry.path();
            // git writes, in order: the directory, `locked`, `gitdir`, `commondir`, `HEAD`,
            // and removes `locked` last; a kill can stop it between any two, or between
            // creating a file and writing it.
            let written = |f: &str| std::fs::metadata(admin.join(f)).is_ok_and(|m| m.len() > 0);
            let complete = written("gitdir") && written("commondir") && written("HEAD");
            let initializing = match std::fs::read_to_string(admin.join("locked")) {
                Ok(reason) => reason.trim().is_empty() || reason.trim() == "initializing",
                Err(_) => !admin.join("gitdir").exists(),
            };
            if !complete && initializing && std::fs::remove_dir_all(&admin).is_ok() {
                removed.push(admin);
            }
        }
        removed
    }

    /// Forgets worktrees whose directories are gone.
    pub fn prune(&self) -> Result<()> {
        let _registry = registry();
        git(&self.main_root, &["worktree", "prune"]).map(|_| ())
    }

    /// A new worktree detached at `commit`.
    pub fn add_detached(&self, path: &Path, commit: &str) -> Result<()> {
        self.add(
            path,
            &["--detach".as_ref(), path.as_os_str(), commit.as_ref()],
        )
    }

    /// A new worktree on an existing branch.
    pub fn add_on_branch(&self, path: &Path, branch: &str) -> Result<()> {
        self.add(path, &[path.as_os_str(), branch.as_ref()])
    }

    /// Registers the worktree under the lock (fast: no files written), then checks its
    /// files out outside it (slow on a large repository).
    fn add(&self, path: &Path, args: &[&OsStr]) -> Result<()> {
        {
            let _registry = registry();
            let mut all = vec![
                OsStr::new("worktree"),
                "add".as_ref(),
                "-q".as_ref(),
                "--no-checkout".as_ref(),
            ];
            all.extend_from_slice(args);
            git(&self.main_root, &all)?;
        }
        git(path, &["reset", "-q", "--hard"]).map(|_| ())
    }

    pub fn move_to(&self, from: &Path, to: &Path) -> Result<()> {
        let _registry = registry();
        git(
            &self.main_root,
            &[
                OsStr::new("worktree"),
                "move".as_ref(),
                from.as_os_str(),
                to.as_os_str(),
            ],
        )
        .map(|_| ())
    }

    /// Deletes a worktree that holds nobody's work (a pool member). Deleting a large
    /// checkout's files takes from half a second to several seconds on a busy disk, and
    /// `git worktree remove` would hold the registry lock all along, so that every claim
    /// and the integration worktree's listing would wait for it. Instead the directory is
    /// renamed into the trash and git forgets it (both quick, under the lock), and its
    /// files are deleted after, outside the lock. What a crash leaves in the trash goes
    /// later (`empty_trash`).
    pub fn discard(&self, path: &Path) -> Result<()> {
        let trash = self.trash_dir();
        std::fs::create_dir_all(&trash).map_err(|e| io("create", &trash, e))?;
        static DISCARDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = DISCARDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let to = trash.join(format!("{name}-{}-{n}", std::process::id()));
        {
            let _registry = registry();
            std::fs::rename(path, &to).map_err(|e| io("move into the trash", path, e))?;
            git(&self.main_root, &["worktree", "prune"])?;
        }
        std::fs::remove_dir_all(&to).map_err(|e| io("delete", &to, e))
    }

    /// Deletes what is left in the trash (by a crash in the middle of `discard`).
    pub fn empty_trash(&self) -> Result<()> {
        match std::fs::remove_dir_all(self.trash_dir()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("delete", &self.trash_dir(), e))
            }
            _ => Ok(()),
        }
    }

    /// Removes a worktree; `force` also discards its changes, so callers only force
    /// worktrees that hold no one's work.
    pub fn remove(&self, path: &Path, force: bool) -> Result<()> {
        let _registry = registry();
        let mut args = vec![OsStr::new("worktree"), "remove".as_ref()];
        if force {
            // Twice: also a worktree left locked by a `worktree add` that was cut short.
            args.push("--force".as_ref());
            args.push("--force".as_ref());
        }
        args.push(path.as_os_str());
        git(&self.main_root, &args).map(|_| ())
    }
}

/// Checks `branch` out in the worktree at `dir`. `force` discards local changes: only
/// for worktrees nobody has worked in yet.
pub fn switch(dir: &Path, branch: &str, force: bool) -> Result<()> {
    let mut args = vec!["checkout", "-q"];
    if force {
        args.push("-f");
    }
    args.push(branch);
    args.push("--");
    git(dir, &args).map(|_| ())
}

/// Puts the worktree at `dir` on `branch`. When HEAD is already at the branch's commit
/// (a pool worktree made at the base tip, claimed for a new branch there), the files are
/// right as they are and only HEAD is repointed: on a 20k-file repository that is a few
/// milliseconds instead of the tens a checkout spends refreshing the index. Otherwise a
/// forced checkout: only for worktrees nobody has worked in yet.
pub fn attach(dir: &Path, branch: &str, branch_tip: &str) -> Result<()> {
    let head = git(dir, &["rev-parse", "-q", "--verify", "HEAD"]).unwrap_or_default();
    if head.trim() == branch_tip {
        let target = format!("refs/heads/{branch}");
        git(dir, &["symbolic-ref", "HEAD", &target]).map(|_| ())
    } else {
        switch(dir, branch, true)
    }
}

/// Detaches HEAD where it is, freeing the branch for other worktrees. Only HEAD is
/// rewritten (to the commit it names): the files and the index stay as they are, which
/// they would with `git checkout --detach` too, but that also refreshes the whole index,
/// tens of milliseconds on a 20k-file worktree, on the queue's path after every landing.
pub fn detach(dir: &Path) -> Result<()> {
    git(
        dir,
        &[
            "update-ref",
            "--no-deref",
            "-m",
            "switchyard: detach",
            "HEAD",
            "HEAD",
        ],
    )
    .map(|_| ())
}

/// Whether the worktree has no uncommitted changes and no untracked files, apart from
/// `ignore` (the files switchyard copied in itself).
pub fn is_clean(dir: &Path, ignore: &[String]) -> Result<bool> {
    let out = git(
        dir,
        &["status", "--porcelain", "-z", "--untracked-files=all"],
    )?;
    // Entries are "XY path"; a rename carries its old path as the next field.
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    while let Some(entry) = fields.next() {
        let (status, path) = entry.split_at(entry.len().min(3));
        if status.starts_with('R') || status.starts_with('C') {
            fields.next();
        }
        if !ignore.iter().any(|i| i == path) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The branch checked out in the worktree, or `None` when detached.
pub fn current_branch(dir: &Path) -> Result<Option<String>> {
    match git(dir, &["symbolic-ref", "-q", "--short", "HEAD"]) {
        Ok(out) => Ok(Some(out.trim().to_owned())),
        Err(WorktreeError::Git(GitCliError::Failed { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes git ignore the environment file in every worktree, through the shared
/// `info/exclude` (never the user's `.gitignore`).
pub fn exclude_env_file(common_dir: &Path) -> Result<()> {
    let path = common_dir.join("info/exclude");
    let line = format!("/{ENV_FILE}");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# switchyard: per-task environment\n");
    text.push_str(&line);
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| io("write", &path, e))
}

/// Writes the task's environment file: `KEY='value'` lines, loadable by `set -a; .`
/// and by dotenv readers.
pub fn write_env(dir: &Path, env: &[(String, String)]) -> Result<()> {
    let mut text = String::new();
    for (k, v) in env {
        text.push_str(&format!("{k}='{}'\n", v.replace('\'', r"'\''")));
    }
    let path = dir.join(ENV_FILE);
    write_replacing(&path, text.as_bytes())
}

/// Writes `bytes` to `path` by way of a new file beside it, renamed over it: whatever
/// stood at `path` (a symlink a branch put there, pointing at the ledger or at
/// `~/.bashrc`) is replaced, never written through.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.switchyard-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| io("write", &tmp, e))?;
    file.write_all(bytes).map_err(|e| io("write", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("write", path, e)
    })
}

/// Reads `SWITCHYARD_TASK` from a worktree's environment file, if it has one.
pub fn task_of(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(ENV_FILE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("SWITCHYARD_TASK="))
        .map(|v| v.trim_matches('\'').to_owned())
}

/// Makes every file under `dir` belong to `uid`:`gid`, so that a command run as that
/// user can write in its worktree (and gives it back after). The walk goes by
/// descriptors and never follows a symlink: each entry is opened with `O_PATH |
/// O_NOFOLLOW`, checked on that descriptor and changed through it, so an entry swapped
/// for a link (to `/etc`, say) mid-walk is never touched. Files with other hard links
/// (which could be anyone's), devices and other filesystems keep their owner. It walks
/// with a stack, not recursion, at most [`MAX_DEPTH`] deep, and goes on past an entry it
/// cannot change; returns how many it left as they were.
pub fn give_to(dir: &Path, uid: u32, gid: u32) -> Result<usize> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| WorktreeError::Io(format!("bad path {}", dir.display())))?;
    // SAFETY: open(2) with a NUL-terminated path; the descriptor is owned below.
    let fd = unsafe {
        libc::open(
            c_dir.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io("open", dir, std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    let device = fstat(root.as_raw_fd())
        .map(|st| st.st_dev)
        .ok_or_else(|| io("read", dir, std::io::Error::last_os_error()))?;
    let mut skipped = 0;
    if !chown_fd(root.as_raw_fd(), uid, gid) {
        skipped += 1;
    }
    // Each level: its directory, and the names of its subdirectories still to visit.
    let mut stack: Vec<(OwnedFd, Vec<CString>)> = Vec::new();
    let names =
        subdirectories_after_changing_files(root.as_raw_fd(), device, uid, gid, &mut skipped);
    stack.push((root, names));
    loop {
        let depth = stack.len();
        let Some((parent, names)) = stack.last_mut() else {
            break;
        };
        let Some(name) = names.pop() else {
            stack.pop();
            continue;
        };
        if depth >= MAX_DEPTH {
            skipped += 1;
            continue;
        }
        // SAFETY: openat relative to our descriptor; O_NOFOLLOW refuses a symlink that
        // replaced the directory since it was listed.
        let child = unsafe {
            libc::openat(
                parent.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if child < 0 {
            skipped += 1;
            continue;
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let child = unsafe { OwnedFd::from_raw_fd(child) };
        if fstat(child.as_raw_fd()).is_none_or(|st| st.st_dev != device) {
            skipped += 1;
            continue;
        }
        if !chown_fd(child.as_raw_fd(), uid, gid) {
            skipped += 1;
        }
        let names =
            subdirectories_after_changing_files(child.as_raw_fd(), device, uid, gid, &mut skipped);
        stack.push((child, names));
    }
    Ok(skipped)
}

/// How deep `give_to` goes: a tree deeper than this (made to be) is left as it is.
pub const MAX_DEPTH: usize = 256;

fn fstat(fd: i32) -> Option<libc::stat> {
    // SAFETY: fstat fills the struct we pass.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

fn chown_fd(fd: i32, uid: u32, gid: u32) -> bool {
    // SAFETY: fchown on a descriptor we hold.
    unsafe { libc::fchown(fd, uid, gid) == 0 }
}

/// Changes the owner of the regular files and symlinks in the directory `fd` (each
/// through an `O_PATH` descriptor of its own), and returns the names of its
/// subdirectories, read whole before any is entered.
fn subdirectories_after_changing_files(
    fd: i32,
    device: libc::dev_t,
    uid: u32,
    gid: u32,
    skipped: &mut usize,
) -> Vec<std::ffi::CString> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let mut subdirectories = Vec::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{fd}")) else {
        *skipped += 1;
        return subdirectories;
    };
    for entry in entries.flatten() {
        let Ok(name) = CString::new(entry.file_name().as_bytes()) else {
            *skipped += 1;
            continue;
        };
        // SAFETY: openat relative to our descriptor, on the entry itself, never a
        // symlink's target.
        let path = unsafe {
            libc::openat(
                fd,
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if path < 0 {
            *skipped += 1;
            continue;
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let path = unsafe { OwnedFd::from_raw_fd(path) };
        let Some(st) = fstat(path.as_raw_fd()) else {
            *skipped += 1;
            continue;
        };
        let kind = st.st_mode & libc::S_IFMT;
        let ours = st.st_dev == device
            && (kind == libc::S_IFLNK || (kind == libc::S_IFREG && st.st_nlink == 1));
        if kind == libc::S_IFDIR {
            subdirectories.push(name);
        } else if ours {
            let empty = c"";
            // SAFETY: fchownat on the O_PATH descriptor itself (AT_EMPTY_PATH), so what
            // is changed is what was checked.
            let rc = unsafe {
                libc::fchownat(
                    path.as_raw_fd(),
                    empty.as_ptr(),
                    uid,
                    gid,
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if rc != 0 {
                *skipped += 1;
            }
        } else {
            *skipped += 1;
        }
    }
    subdirectories
}

/// Why a file in `[worktrees] copy` was not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCopied {
    /// No such file in the main checkout.
    Missing,
    /// It is a symlink (or under one) that leads outside the checkout, or into `.git`:
    /// copying it would hand any file on the machine to every task.
    LeadsOutside(PathBuf),
    /// Its place in the worktree is under a symlink that leads out of the worktree.
    TargetOutside(PathBuf),
}

impl std::fmt::Display for NotCopied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotCopied::Missing => f.write_str("does not exist in the main checkout"),
            NotCopied::LeadsOutside(to) => write!(
                f,
                "leads outside the checkout through a symlink (to {})",
                to.display()
            ),
            NotCopied::TargetOutside(to) => write!(
                f,
                "would be written outside the worktree through a symlink (to {})",
                to.display()
            ),
        }
    }
}

/// Copies `files` (paths relative to the checkout) from the main checkout into the
/// worktree at `dir`. Every "inside or outside" decision is made on real paths: a source
/// that is a symlink out of the checkout (or into `.git`) is not copied, nor is a target
/// under a symlink out of the worktree; a symlink at the target itself is replaced by
/// the file. Returns what was not copied, and why.
pub fn copy_files(
    main_root: &Path,
    dir: &Path,
    files: &[String],
) -> Result<Vec<(String, NotCopied)>> {
    let real_root = main_root
        .canonicalize()
        .map_err(|e| io("resolve", main_root, e))?;
    let real_dir = dir.canonicalize().map_err(|e| io("resolve", dir, e))?;
    let git_dir = real_root.join(".git");
    let mut skipped = Vec::new();
    for file in files {
        let from = main_root.join(file);
        let real = match from.canonicalize() {
            Ok(real) if real.is_file() => real,
            _ => {
                skipped.push((file.clone(), NotCopied::Missing));
                continue;
            }
        };
        if !real.starts_with(&real_root) || real.starts_with(&git_dir) {
            skipped.push((file.clone(), NotCopied::LeadsOutside(real)));
            continue;
        }
        let to = dir.join(file);
        let Some(parent) = to.parent() else { continue };
        // Judged before anything is made: the deepest part of the target's directory
        // that exists must be inside the worktree once its symlinks are resolved.
        let real_parent = crate::config::real_path(parent);
        if !real_parent.starts_with(&real_dir) {
            skipped.push((file.clone(), NotCopied::TargetOutside(real_parent)));
            continue;
        }
        std::fs::create_dir_all(&real_parent).map_err(|e| io("create", parent, e))?;
        let bytes = std::fs::read(&real).map_err(|e| io("copy", &from, e))?;
        write_replacing(
            &real_parent.join(to.file_name().unwrap_or_default()),
            &bytes,
        )?;
        let mode = std::fs::metadata(&real)
            .map_err(|e| io("copy", &from, e))?
            .permissions();
        let _ =
            std::fs::set_permissions(real_parent.join(to.file_name().unwrap_or_default()), mode);
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn owner(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().uid()
    }

    #[test]
    fn giving_a_tree_away_never_follows_a_link_nor_touches_shared_files() {
        let tmp = tempfile::TempDir::new().unwrap();
        let tree = tmp.path().join("tree");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(tree.join("a/b/file"), "x").unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link-to-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), tree.join("link-to-file")).unwrap();
        std::fs::hard_link(outside.join("secret"), tree.join("hard")).unwrap();
        let mut deep = tree.join("deep");
        for _ in 0..MAX_DEPTH + 5 {
            deep = deep.join("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        // As root the tree goes to another user; otherwise to this one (a no-op that
        // still walks it all).
        let to = if me == 0 { 65534 } else { me };
        let kept = give_to(&tree, to, to).unwrap();
        assert_eq!(
            kept, 2,
            "the hard link and the directory past the depth limit stay"
        );
        assert_eq!(owner(&tree.join("a/b/file")), to);
        assert_eq!(owner(&tree.join("a/link-to-dir")), to);
        assert_eq!(owner(&tree.join("link-to-file")), to);
        assert_eq!(owner(&outside), me, "a symlinked directory is not entered");
        assert_eq!(
            owner(&outside.join("secret")),
            me,
            "nor a symlinked or hard-linked file"
        );
        assert_eq!(owner(&deep), me, "too deep: left as it was");
        give_to(&tree, me, me).unwrap();
        assert_eq!(owner(&tree.join("a/b/file")), me);
    }
}
