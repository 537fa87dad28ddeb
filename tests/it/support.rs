//! Test repositories and a way to run the real binary against them.
//!
//! Git runs hermetically: global and system config are ignored, author, committer and
//! dates are fixed, so commit ids are stable and no user setting leaks in.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The environment every git and switchyard process in the tests gets.
pub fn hermetic<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
}

pub struct TestRepo {
    /// Holds the repository and anything beside it (worktrees, other dirs).
    pub tmp: TempDir,
    pub root: PathBuf,
}

impl TestRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> TestRepo {
        let tmp = TempDir::new().unwrap();
        let root = tmp.path().canonicalize().unwrap().join("repo");
        std::fs::create_dir(&root).unwrap();
        let repo = TestRepo { tmp, root };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// The example shop from `fixtures/example-repo.sh`, config included.
    pub fn example() -> TestRepo {
        let tmp = TempDir::new().unwrap();
        let root = tmp.path().canonicalize().unwrap().join("repo");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example-repo.sh");
        let out = hermetic(&mut Command::new(script), tmp.path())
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestRepo { tmp, root }
    }

    pub fn home(&self) -> PathBuf {
        self.tmp.path().to_owned()
    }

    pub fn file(&self, path: &str, content: &str) -> &TestRepo {
        let p = self.root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn files(&self, paths: &[&str]) -> &TestRepo {
        for p in paths {
            self.file(p, &format!("{p}\n"));
        }
        self
    }

    pub fn commit(&self, message: &str) -> &TestRepo {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self
    }

    pub fn config(&self, toml: &str) -> &TestRepo {
        self.file("switchyard.toml", toml)
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = hermetic(&mut Command::new("git"), &self.home())
            .args(args)
            .current_dir(&self.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs switchyard in the repository root.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_in(&self.root, args)
    }

    pub fn run_in<I, S>(&self, dir: &Path, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = hermetic(&mut Command::new(BIN), &self.home())
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        Run(out)
    }
}

/// A finished switchyard process.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("exited")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    /// Asserts the exit status, showing the output when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// Asserts a refusal: the exit status, and exactly one line on stderr holding `text`.
    pub fn refused(self, code: i32, text: &str) -> Run {
        let run = self.expect(code);
        let err = run.stderr();
        assert_eq!(
            err.lines().count(),
            1,
            "want one line on stderr, got:\n{err}"
        );
        assert!(err.contains(text), "stderr {err:?} lacks {text:?}");
        run
    }
}
