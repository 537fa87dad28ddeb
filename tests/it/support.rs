//! Test repositories and a way to run the real binary against them.
//!
//! Git runs hermetically: global and system config are ignored, author, committer and
//! dates are fixed, so commit ids are stable and no user setting leaks in.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
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

    /// Runs switchyard in the repository root with extra environment variables.
    pub fn run_env<I, S>(&self, env: &[(&str, &str)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = hermetic(&mut Command::new(BIN), &self.home())
            .envs(env.iter().copied())
            .args(args)
            .current_dir(&self.root)
            .output()
            .unwrap();
        Run(out)
    }

    /// Runs switchyard in the repository root, failing the test (not hanging it) when
    /// it has not exited after `secs`: for a command that should refuse at once, like a
    /// daemon that must not start.
    pub fn run_within<I, S>(&self, secs: u64, env: &[(&str, &str)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::process::Stdio;
        let mut child = hermetic(&mut Command::new(BIN), &self.home())
            .envs(env.iter().copied())
            .args(args)
            .current_dir(&self.root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "still running after {secs}s; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Run(child.wait_with_output().unwrap())
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

/// A running `switchyard daemon` for a test repository. Killed when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub pid: u32,
    pub log: PathBuf,
    /// The line it printed when it was ready (its socket, its TCP URL with `[api]`).
    pub ready: String,
}

impl TestRepo {
    /// Starts the daemon and waits until it says it listens.
    pub fn start_daemon(&self) -> Daemon {
        self.try_start_daemon()
            .unwrap_or_else(|e| panic!("daemon did not start: {e}"))
    }

    /// Starts the daemon; `Err` holds what it printed if it exited instead of listening.
    pub fn try_start_daemon(&self) -> Result<Daemon, String> {
        self.try_start_daemon_with(&[])
    }

    /// Starts the daemon with extra environment variables.
    pub fn try_start_daemon_with(&self, env: &[(&str, &str)]) -> Result<Daemon, String> {
        self.try_start_daemon_args(&[], env)
    }

    /// Starts `switchyard daemon ARGS...` with extra environment variables.
    pub fn try_start_daemon_args(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        self.try_start_daemon_limited(args, env, None)
    }

    /// Starts the daemon, optionally with a low soft limit on open files (as a
    /// distribution's default may be), to see what it does about it.
    pub fn try_start_daemon_limited(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u64>,
    ) -> Result<Daemon, String> {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        use std::process::Stdio;
        let log = self.tmp.path().join(format!("daemon-{}.log", unique()));
        let mut command = Command::new(BIN);
        if let Some(soft) = open_files {
            // SAFETY: setrlimit in the child before exec touches only the child.
            unsafe {
                command.pre_exec(move || {
                    let mut l = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
                    l.rlim_cur = soft.min(l.rlim_max);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &l);
                    Ok(())
                });
            }
        }
        let mut child = hermetic(&mut command, &self.home())
            .arg("daemon")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&self.root)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_default();
        if line.contains("ready on") {
            let pid = child.id();
            Ok(Daemon {
                child,
                pid,
                log,
                ready: line,
            })
        } else {
            let _ = child.kill();
            let status = child.wait().unwrap();
            Err(format!(
                "{status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
fn unique() -> u64 {
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Daemon {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid as i32, sig);
        }
    }

    /// SIGTERM, then the exit status and how long it took to exit.
    pub fn stop(mut self) -> (std::process::ExitStatus, std::time::Duration) {
        let start = std::time::Instant::now();
        self.signal(libc::SIGTERM);
        let deadline = start + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the daemon: a hung daemon, on demand.
    pub fn freeze(&self, frozen: bool) {
        self.signal(if frozen { libc::SIGSTOP } else { libc::SIGCONT });
    }

    /// `kill -9`: no chance to clean anything up.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` until it holds or `secs` pass; waiting for time-based behaviour
/// (a lease running out) without guessing a sleep.
pub fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// ---- driving tasks through the CLI ----

pub fn add(repo: &TestRepo, title: &str, scope: &[&str]) -> String {
    let mut args = vec!["--json", "task", "add", title, "--by", "planner"];
    for s in scope {
        args.push("--scope");
        args.push(s);
    }
    let task = repo.run(args).expect(0).json();
    assert_eq!(task["state"], "open");
    task["id"].as_str().unwrap().to_owned()
}

pub fn claim(repo: &TestRepo, id: Option<&str>, agent: &str) -> Value {
    let mut args = vec!["--json", "claim", "--agent", agent];
    args.extend(id);
    repo.run(args).expect(0).json()
}

pub fn show(repo: &TestRepo, id: &str) -> Value {
    repo.run(["--json", "task", "show", id]).expect(0).json()
}

pub fn events(repo: &TestRepo, id: &str) -> Vec<String> {
    let log = repo.run(["--json", "log", id]).expect(0).json();
    log.as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// Writes `files` in the worktree `wt` and commits them all.
pub fn commit_in(wt: &Path, message: &str, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = wt.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    git_in(wt, &["add", "-A"]);
    git_in(wt, &["commit", "-qm", message]);
}

pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = hermetic(&mut std::process::Command::new("git"), dir)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Sends raw bytes to the daemon's socket and returns the whole reply as text: for
/// requests the CLI would never make.
pub fn raw_http(repo: &TestRepo, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::os::unix::net::UnixStream::connect(repo.root.join(".git/switchyard/daemon.sock"))
            .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // A server may answer (413, say) and close before it read everything: the reply
    // is what counts.
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// A POST with a JSON body, as raw HTTP.
pub fn raw_post(repo: &TestRepo, path: &str, body: &str) -> String {
    raw_http(
        repo,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// Everything the ledger holds on disk, as text: the database file and its write-ahead
/// log, where the newest writes sit until a checkpoint. A string that is in neither was
/// never written to the ledger.
pub fn ledger_bytes(repo: &TestRepo) -> String {
    let dir = repo.root.join(".git/switchyard");
    let mut all = Vec::new();
    for f in ["ledger.db", "ledger.db-wal"] {
        all.extend(std::fs::read(dir.join(f)).unwrap_or_default());
    }
    assert!(!all.is_empty(), "no ledger at {}", dir.display());
    String::from_utf8_lossy(&all).into_owned()
}

/// Every file under `dir`, read as text and joined (logs, say).
pub fn all_text_under(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push_str(&String::from_utf8_lossy(
                    &std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// The queue's own events (`log --queue`), oldest first.
pub fn queue_events(repo: &TestRepo) -> Vec<Value> {
    repo.run(["--json", "log", "--queue"])
        .expect(0)
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// Every task, as `task list --json` shows them.
pub fn tasks(repo: &TestRepo) -> Vec<Value> {
    repo.run(["--json", "task", "list"])
        .expect(0)
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// A TCP port on loopback that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether process `pid` runs (a zombie waiting to be reaped is dead).
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !matches!(
        stat.rsplit(") ").next().and_then(|r| r.chars().next()),
        Some('Z') | None
    )
}
