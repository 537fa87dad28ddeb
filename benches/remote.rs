//! What a remote executor's round trip costs against a local one, in one run: the real
//! daemon (the binary Cargo builds for this bench) on a generated repository (default
//! 20k files) with a bare repository as its remote, `verify = ["true"]`, and the
//! networked API on loopback over HTTPS with a token.
//!
//!     cargo bench --bench remote
//!
//! One round trip is what an executor does for one task, through the `switchyard` CLI,
//! timed from the claim to the answer that it merged:
//! - local: `claim` (a worktree from the pool), a commit in the worktree, `submit
//!   --wait`, over the Unix socket;
//! - remote: `claim --remote`, then in the executor's own clone (kept between rounds, as
//!   a sandbox that lives for a session would) `git fetch` and a branch at the claim's
//!   base, a commit, `git push`, `submit --commit HEAD --wait`, over HTTPS with a token.
//!
//! Both land the same way (the base is pushed to the remote after each landing), so the
//! difference is what working elsewhere adds: TLS per request, the fetch and the push,
//! the daemon fetching the pushed branch. Rounds alternate between the two; medians of
//! each, and the ratio. SWITCHYARD_BENCH_FILES sets the repository size,
//! SWITCHYARD_BENCH_ROUNDS the rounds per side (default 7).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{file_count, generate, git, median, path, switchyard_with as cli};

mod support;

fn rounds() -> usize {
    std::env::var("SWITCHYARD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
}

fn add(repo: &Path, k: usize) -> String {
    let title = format!("round {k}");
    let added = cli(
        repo,
        &[],
        &["task", "add", &title, "--scope", "src", "--by", "bench"],
    );
    added["id"].as_str().unwrap().to_owned()
}

/// Task `k` changes a file no other task touches.
fn change(dir: &Path, k: usize, files: usize) {
    let file = path((k * 7 + 3) % files);
    std::fs::write(dir.join(&file), format!("changed in round {k}\n")).unwrap();
    git(dir, &["commit", "-qam", &format!("round {k}")]);
}

fn local_round(repo: &Path, k: usize, files: usize) -> Duration {
    let id = add(repo, k);
    let started = Instant::now();
    let claimed = cli(repo, &[], &["claim", &id, "--agent", "near"]);
    let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
    change(&wt, k, files);
    let done = cli(repo, &[], &["submit", &id, "--agent", "near", "--wait"]);
    let took = started.elapsed();
    assert_eq!(done["outcome"], "merged", "{done}");
    took
}

fn remote_round(
    repo: &Path,
    clone: &Path,
    env: &[(&str, &str)],
    k: usize,
    files: usize,
) -> Duration {
    let id = add(repo, k);
    let started = Instant::now();
    let claimed = cli(clone, env, &["claim", &id, "--remote"]);
    let branch = claimed["branch"].as_str().unwrap();
    let base = claimed["base_sha"].as_str().unwrap();
    git(clone, &["fetch", "-q", "origin", "main"]);
    git(clone, &["switch", "-q", "-C", branch, base]);
    change(clone, k, files);
    git(
        clone,
        &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
    );
    let done = cli(clone, env, &["submit", &id, "--commit", "HEAD", "--wait"]);
    let took = started.elapsed();
    assert_eq!(done["outcome"], "merged", "{done}");
    took
}

fn main() {
    let files = file_count();
    let tmp = tempfile::tempdir().unwrap();
    let repo = generate(tmp.path(), files, &[]);
    let bare = tmp.path().join("origin.git");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    git(&repo, &["remote", "add", "origin", bare.to_str().unwrap()]);
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(tmp.path().join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(tmp.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        repo.join("switchyard.toml"),
        format!(
            "remote = \"origin\"\n[queue]\nverify = [\"true\"]\n\
             [[subsystem]]\nname = \"src\"\npaths = [\"src/\"]\n\
             [worktrees]\npool = 2\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntokens = \"../tokens\"\n\
             tls_cert = \"../cert.pem\"\ntls_key = \"../key.pem\"\n"
        ),
    )
    .unwrap();
    git(&repo, &["add", "switchyard.toml"]);
    git(&repo, &["commit", "-qm", "config"]);
    git(&repo, &["push", "-q", "origin", "main"]);
    let token = cli(&repo, &[], &["token", "add", "far"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut daemon, _client) = support::start_daemon(&repo);

    let clone = tmp.path().join("far");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let url = format!("https://127.0.0.1:{port}");
    let ca = tmp.path().join("cert.pem");
    let env = [
        ("SWITCHYARD_DAEMON", url.as_str()),
        ("SWITCHYARD_TOKEN", token.as_str()),
        ("SWITCHYARD_CA_CERT", ca.to_str().unwrap()),
    ];

    // One of each first, not counted: the first clone's fetch and the pool's first
    // worktrees are set-up, not a round trip.
    local_round(&repo, 0, files);
    remote_round(&repo, &clone, &env, 1, files);
    let n = rounds();
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for r in 0..n {
        let k = 2 + 2 * r;
        // Alternating which goes first, so neither always follows the other's landing.
        if r % 2 == 0 {
            local.push(local_round(&repo, k, files));
            remote.push(remote_round(&repo, &clone, &env, k + 1, files));
        } else {
            remote.push(remote_round(&repo, &clone, &env, k + 1, files));
            local.push(local_round(&repo, k, files));
        }
        eprintln!(
            "round {}/{n}: local {:?}, remote {:?}",
            r + 1,
            local[r],
            remote[r]
        );
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let (l, rm) = (median(local), median(remote));
    println!("round trip, claim to merged, {files} files, median of {n} rounds each:");
    println!("  local  (socket, worktree from the pool):                 {l:?}");
    println!("  remote (HTTPS + token, own clone, fetch, push, submit):  {rm:?}");
    println!(
        "  ratio remote / local: {:.2}x",
        rm.as_secs_f64() / l.as_secs_f64()
    );
}
