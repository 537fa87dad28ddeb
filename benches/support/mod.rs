//! What the benchmarks share: git with a fixed identity, and a generated repository of
//! many files in 200 directories.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The repository size: SWITCHYARD_BENCH_FILES, default 20000.
pub fn file_count() -> usize {
    std::env::var("SWITCHYARD_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// The path of generated file `i`.
pub fn path(i: usize) -> String {
    format!("src/mod{:03}/f{i}.rs", i % 200)
}

/// A repository at `<tmp>/repo` with `files` files of about 1.3 kB, `extra` written
/// beside them, all committed on `main`.
pub fn generate(tmp: &Path, files: usize, extra: &[(&str, &str)]) -> PathBuf {
    let repo = tmp.join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..files {
        let p = repo.join(path(i));
        if i < 200 {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        }
        let line = format!("// file {i}: some source text to give the file a realistic size\n");
        std::fs::write(p, line.repeat(20)).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(repo.join(name), text).unwrap();
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "generated"]);
    repo
}

/// Runs `switchyard --json ARGS` (the binary Cargo built for the benchmarks) in `repo`
/// and returns its answer.
#[allow(dead_code)] // not every benchmark runs the CLI
pub fn switchyard(repo: &Path, args: &[&str]) -> serde_json::Value {
    switchyard_with(repo, &[], args)
}

/// `switchyard`, with more environment variables (a daemon elsewhere and its token).
#[allow(dead_code)] // not every benchmark runs the CLI
pub fn switchyard_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--json")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "switchyard {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts `switchyard daemon` (the binary `bin`) in `repo`, quietly.
#[allow(dead_code)] // not every benchmark starts a daemon
pub fn spawn_daemon(bin: &str, repo: &Path) -> std::process::Child {
    Command::new(bin)
        .arg("daemon")
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the daemon starts")
}

/// Starts the daemon in `repo` and waits until it answers: the process and a client.
#[allow(dead_code)] // not every benchmark starts a daemon
pub fn start_daemon(repo: &Path) -> (std::process::Child, switchyard::client::Client) {
    let daemon = spawn_daemon(env!("CARGO_BIN_EXE_switchyard"), repo);
    let client = switchyard::client::Client::new(&repo.join(".git"), repo);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while client.get::<switchyard::api::Status>("/v1/status").is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, client)
}

pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}
