//! Everything switchyard asks of git. git2 serves reads of refs, objects and trees; the
//! `git` CLI will serve what it does much faster or with the user's credentials
//! (merge machinery, fetch, push). No other module imports git2.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("not a git repository: {0} (nor any of its parents)")]
    NotARepository(PathBuf),
    #[error("{0} is a bare repository; switchyard needs one with a checkout")]
    Bare(PathBuf),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Where a repository lives, found from any directory inside any of its checkouts.
#[derive(Debug, Clone)]
pub struct RepoLocation {
    /// The main checkout's root (where `switchyard.toml` lives). Canonical.
    pub main_root: PathBuf,
    /// The git directory shared by all worktrees (`<main>/.git`). Canonical.
    pub common_dir: PathBuf,
    /// The root of the checkout the search started in: the main one, or a task's
    /// worktree. Canonical.
    pub checkout_root: PathBuf,
}

impl RepoLocation {
    /// Finds the repository containing `start`. From inside a linked worktree (a task's
    /// worktree), the main repository is found through the shared git directory.
    pub fn discover(start: &Path) -> Result<RepoLocation, GitError> {
        let repo = Repository::discover(start).map_err(|e| match e.code() {
            git2::ErrorCode::NotFound => GitError::NotARepository(start.to_owned()),
            _ => GitError::Git(e),
        })?;
        let checkout_root = repo
            .workdir()
            .ok_or_else(|| GitError::Bare(repo.path().to_owned()))?
            .to_owned();
        let common_dir = repo.commondir().to_owned();
        let main_root = if repo.is_worktree() {
            let main = Repository::open(&common_dir)?;
            main.workdir()
                .ok_or_else(|| GitError::Bare(common_dir.clone()))?
                .to_owned()
        } else {
            checkout_root.clone()
        };
        let canonical = |p: PathBuf| p.canonicalize().unwrap_or(p);
        Ok(RepoLocation {
            main_root: canonical(main_root),
            common_dir: canonical(common_dir),
            checkout_root: canonical(checkout_root),
        })
    }
}

/// The files tracked at HEAD of the checkout at `root`, in git's order.
#[derive(Debug, Default)]
pub struct Tracked {
    pub files: Vec<String>,
    /// Paths git holds that are not UTF-8: they are listed lossily in `files` too, but
    /// globs cannot be trusted to match them as written.
    pub non_utf8: Vec<String>,
}

pub fn tracked_files(root: &Path) -> Result<Tracked, GitError> {
    let repo = Repository::open(root)?;
    let head = match repo.head() {
        Ok(head) => head,
        // No commit yet: nothing is tracked at HEAD.
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => return Ok(Tracked::default()),
        Err(e) => return Err(e.into()),
    };
    files_in(&repo, &head.peel_to_tree()?)
}

/// The files at the tip of `branch` in the repository at `root`.
pub fn files_at_branch(root: &Path, branch: &str) -> Result<Tracked, GitError> {
    let repo = Repository::open(root)?;
    let reference = repo.find_reference(&format!("refs/heads/{branch}"))?;
    files_in(&repo, &reference.peel_to_tree()?)
}

fn files_in(repo: &Repository, tree: &git2::Tree<'_>) -> Result<Tracked, GitError> {
    let mut tracked = Tracked::default();
    walk(repo, tree, &mut Vec::new(), &mut tracked)?;
    Ok(tracked)
}

/// Depth-first, in git's order, with names as bytes: git2's own walk gives up on a
/// directory whose name is not UTF-8.
fn walk(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    prefix: &mut Vec<u8>,
    out: &mut Tracked,
) -> Result<(), GitError> {
    for entry in tree.iter() {
        let len = prefix.len();
        prefix.extend_from_slice(entry.name_bytes());
        if entry.kind() == Some(ObjectType::Tree) {
            prefix.push(b'/');
            let subtree = repo.find_tree(entry.id())?;
            walk(repo, &subtree, prefix, out)?;
        } else {
            match std::str::from_utf8(prefix) {
                Ok(path) => out.files.push(path.to_owned()),
                Err(_) => {
                    let lossy = String::from_utf8_lossy(prefix).into_owned();
                    out.non_utf8.push(lossy.clone());
                    out.files.push(lossy);
                }
            }
        }
        prefix.truncate(len);
    }
    Ok(())
}

/// The commit at the tip of a local branch, or `None` when there is no such branch.
pub fn branch_tip(root: &Path, branch: &str) -> Result<Option<String>, GitError> {
    let repo = Repository::open(root)?;
    match repo.find_reference(&format!("refs/heads/{branch}")) {
        Ok(r) => Ok(Some(r.peel_to_commit()?.id().to_string())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The full names of the refs matching any of `globs` (`refs/heads/switchyard/*`), in
/// no particular order.
pub fn ref_names(root: &Path, globs: &[&str]) -> Result<Vec<String>, GitError> {
    let repo = Repository::open(root)?;
    let mut names = Vec::new();
    for glob in globs {
        for r in repo.references_glob(glob)? {
            // A ref whose name is not UTF-8 is not one of switchyard's.
            if let Ok(name) = r?.name() {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

/// Creates `branch` at `commit` unless it exists; an existing branch (with the task's
/// commits) is never moved. Returns the branch's tip.
pub fn ensure_branch(root: &Path, branch: &str, commit: &str) -> Result<String, GitError> {
    if let Some(tip) = branch_tip(root, branch)? {
        return Ok(tip);
    }
    let repo = Repository::open(root)?;
    let target = repo.find_commit(git2::Oid::from_str(commit)?)?;
    repo.branch(branch, &target, false)?;
    Ok(commit.to_owned())
}

/// The branch checked out at `root`, if HEAD is on one.
pub fn current_branch(root: &Path) -> Result<Option<String>, GitError> {
    let repo = Repository::open(root)?;
    let head = match repo.find_reference("HEAD") {
        Ok(head) => head,
        Err(_) => return Ok(None),
    };
    Ok(head
        .symbolic_target()
        .ok()
        .flatten()
        .and_then(|t| t.strip_prefix("refs/heads/"))
        .map(str::to_owned))
}

/// One changed path between two commits. A rename is reported with both paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    /// The path before a rename (or copy).
    pub old_path: Option<String>,
    /// For a symlink added or changed: where it points.
    pub symlink_target: Option<String>,
    /// The path is not UTF-8; `path` is a lossy rendering.
    pub non_utf8: bool,
}

/// The paths changed from `from` to `to`, with renames detected.
pub fn changes(root: &Path, from: &str, to: &str) -> Result<Vec<Change>, GitError> {
    let repo = Repository::open(root)?;
    // Commits or trees alike: a candidate's tree is judged before it is committed.
    let tree = |rev: &str| -> Result<git2::Tree<'_>, GitError> {
        Ok(repo
            .find_object(git2::Oid::from_str(rev)?, None)?
            .peel_to_tree()?)
    };
    let (old, new) = (tree(from)?, tree(to)?);
    let mut diff = repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
    diff.find_similar(Some(git2::DiffFindOptions::new().renames(true)))?;
    let mut out = Vec::new();
    for delta in diff.deltas() {
        let path_of = |f: &git2::DiffFile<'_>| {
            f.path_bytes().map(|b| {
                (
                    String::from_utf8_lossy(b).into_owned(),
                    std::str::from_utf8(b).is_err(),
                )
            })
        };
        let new_file = delta.new_file();
        let old_file = delta.old_file();
        let (path, non_utf8) = path_of(&new_file)
            .or_else(|| path_of(&old_file))
            .unwrap_or_default();
        let old_path = match delta.status() {
            git2::Delta::Renamed | git2::Delta::Copied => path_of(&old_file).map(|(p, _)| p),
            _ => None,
        };
        let symlink_target = if new_file.mode() == git2::FileMode::Link && !new_file.id().is_zero()
        {
            repo.find_blob(new_file.id())
                .ok()
                .map(|b| String::from_utf8_lossy(b.content()).into_owned())
        } else {
            None
        };
        let old_non_utf8 = path_of(&old_file).is_some_and(|(_, bad)| bad);
        out.push(Change {
            path,
            old_path,
            symlink_target,
            non_utf8: non_utf8 || old_non_utf8,
        });
    }
    Ok(out)
}

/// The best common ancestor of two commits.
pub fn merge_base(root: &Path, a: &str, b: &str) -> Result<Option<String>, GitError> {
    let repo = Repository::open(root)?;
    match repo.merge_base(git2::Oid::from_str(a)?, git2::Oid::from_str(b)?) {
        Ok(oid) => Ok(Some(oid.to_string())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `ancestor` is `descendant` or one of its ancestors.
pub fn is_ancestor(root: &Path, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
    if ancestor == descendant {
        return Ok(true);
    }
    let repo = Repository::open(root)?;
    Ok(repo.graph_descendant_of(
        git2::Oid::from_str(descendant)?,
        git2::Oid::from_str(ancestor)?,
    )?)
}

/// The tree of a commit.
pub fn tree_of(root: &Path, commit: &str) -> Result<String, GitError> {
    let repo = Repository::open(root)?;
    Ok(repo
        .find_commit(git2::Oid::from_str(commit)?)?
        .tree_id()
        .to_string())
}
