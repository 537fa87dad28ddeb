//! A fake GitHub: an in-memory, stateful model of repositories, pull requests, reviews,
//! comments, check runs and statuses, served over HTTP on loopback. A local bare
//! repository plays the git remote; the fake reads branch tips from it the way GitHub
//! reacts to pushes (a PR follows its branch, closes when the branch is deleted, and
//! shows merged once its head is in the base).
//!
//! GitHub's official OpenAPI description judges both sides: every request goes through
//! Prism's validating proxy (`prism proxy --errors`) loaded with the operations
//! switchyard uses, cut from `@octokit/openapi` by `tests/github/cut-spec.js`. A request
//! GitHub would reject, or a response GitHub would never send, is an error in Prism's
//! log; [`FakeGitHub::assert_contract_clean`] fails the test on it. Answers the fake
//! builds start from the examples in that same description.
//!
//! One fake server and one Prism serve the whole test binary; each test gets its own
//! owner (`acme-N/shop`), token and bare remote. Switchyard never calls an operation
//! whose path parameters hold a `/` (such as `git/ref/heads/main`, which Prism cannot
//! route): it moves branches with git itself, so nothing needs to go around Prism.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::{Value, json};

use super::support::git_in;

pub const TOKEN_ENV: &str = "GITHUB_TOKEN";

struct Shared {
    prism_url: String,
    prism_log: PathBuf,
    world: Arc<Mutex<World>>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static NEXT_OWNER: AtomicU32 = AtomicU32::new(1);

#[derive(Default)]
struct World {
    templates: Templates,
    repos: HashMap<String, Repo>,
}

/// Example answers from GitHub's description, by operation.
#[derive(Default)]
struct Templates {
    repo: Value,
    pull: Value,
    pull_simple: Value,
    review: Value,
    comment: Value,
    check_run: Value,
    check_runs: Value,
    combined: Value,
    membership: Value,
}

#[derive(Default)]
struct Repo {
    name: String,
    bare: PathBuf,
    token: String,
    next_id: u64,
    pulls: Vec<Pull>,
    reviews: Vec<ReviewRec>,
    comments: Vec<CommentRec>,
    checks: Vec<CheckRec>,
    statuses: Vec<StatusRec>,
    teams: HashMap<String, Vec<String>>,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub open: bool,
    pub head: String,
    pub head_sha: String,
    pub base: String,
    pub author: String,
    pub labels: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
    pub merge_commit: Option<String>,
}

#[derive(Debug, Clone)]
struct ReviewRec {
    id: u64,
    pull: u64,
    login: String,
    state: String,
    commit: String,
}

#[derive(Debug, Clone)]
pub struct CommentRec {
    pub id: u64,
    pub pull: u64,
    pub login: String,
    pub body: String,
}

/// A check run with every state it went through.
#[derive(Debug, Clone)]
pub struct CheckRec {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub title: String,
    pub summary: String,
    pub details_url: Option<String>,
    /// (status, conclusion, title) after each write.
    pub history: Vec<(String, Option<String>, String)>,
}

#[derive(Debug, Clone)]
struct StatusRec {
    id: u64,
    sha: String,
    context: String,
    state: String,
    description: String,
    target_url: Option<String>,
}

/// An answer to give instead of the real one.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Status(u16),
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// 403 with `X-RateLimit-Remaining: 0` and a reset a second away.
    RateLimited,
}

/// One test's view of the fake: its own repository on it.
pub struct FakeGitHub {
    pub owner: String,
    pub repo: String,
    pub token: String,
    pub url: String,
    prism_log: PathBuf,
    world: Arc<Mutex<World>>,
}

impl FakeGitHub {
    /// A repository `acme-N/shop` whose git remote is the bare repository `bare`.
    pub fn start(bare: &Path) -> FakeGitHub {
        let shared = SHARED.get_or_init(start_servers);
        let n = NEXT_OWNER.fetch_add(1, Ordering::SeqCst);
        let owner = format!("acme-{n}");
        let token = format!("test-token-{n}-{}", std::process::id());
        shared.world.lock().unwrap().repos.insert(
            owner.clone(),
            Repo {
                name: "shop".into(),
                bare: bare.to_owned(),
                token: token.clone(),
                next_id: 1000,
                ..Repo::default()
            },
        );
        FakeGitHub {
            repo: format!("{owner}/shop"),
            owner,
            token,
            url: shared.prism_url.clone(),
            prism_log: shared.prism_log.clone(),
            world: Arc::clone(&shared.world),
        }
    }

    /// The `[github]` section for this repository, plus `extra` lines.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[github]\nrepo = \"{}\"\napi_url = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\npoll_interval = \"150ms\"\n{extra}\n",
            self.repo, self.url
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Repo, &Templates) -> T) -> T {
        let mut world = self.world.lock().unwrap();
        let World { templates, repos } = &mut *world;
        let repo = repos.get_mut(&self.owner).unwrap();
        refresh(repo);
        f(repo, templates)
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.with(|r, _| r.pulls.clone())
    }

    pub fn pull_for(&self, branch: &str) -> Option<Pull> {
        self.pulls().into_iter().find(|p| p.head == branch)
    }

    pub fn comments(&self, number: u64) -> Vec<CommentRec> {
        self.with(|r, _| {
            r.comments
                .iter()
                .filter(|c| c.pull == number)
                .cloned()
                .collect()
        })
    }

    pub fn checks_on(&self, sha: &str) -> Vec<CheckRec> {
        self.with(|r, _| {
            r.checks
                .iter()
                .filter(|c| c.head_sha == sha && c.name == "switchyard")
                .cloned()
                .collect()
        })
    }

    pub fn requests(&self) -> Vec<String> {
        self.with(|r, _| r.requests.clone())
    }

    /// A person reviews the PR's current head.
    pub fn review(&self, number: u64, login: &str, state: &str) {
        self.review_at(number, login, state, None)
    }

    /// A person reviews the PR at `commit` (a review left on an earlier push).
    pub fn review_at(&self, number: u64, login: &str, state: &str, commit: Option<&str>) {
        self.with(|r, _| {
            let pull = r.pulls.iter_mut().find(|p| p.number == number).unwrap();
            pull.updated_at = now();
            let commit = commit.map_or_else(|| pull.head_sha.clone(), str::to_owned);
            let id = next(r);
            r.reviews.push(ReviewRec {
                id,
                pull: number,
                login: login.into(),
                state: state.into(),
                commit,
            });
        })
    }

    /// A person comments on the PR.
    pub fn comment(&self, number: u64, login: &str, body: &str) {
        self.with(|r, _| {
            add_comment(r, number, login, body);
        })
    }

    /// A person edits the PR on GitHub.
    pub fn edit(&self, number: u64, f: impl FnOnce(&mut Pull)) {
        self.with(|r, _| {
            let pull = r.pulls.iter_mut().find(|p| p.number == number).unwrap();
            f(pull);
            if !pull.open && pull.closed_at.is_none() {
                pull.closed_at = Some(now());
            }
            pull.updated_at = now();
        })
    }

    pub fn add_team(&self, slug: &str, members: &[&str]) {
        self.with(|r, _| {
            r.teams
                .insert(slug.into(), members.iter().map(|m| m.to_string()).collect())
        });
    }

    /// CI reports a check run on `sha`.
    pub fn ci_check(&self, sha: &str, name: &str, conclusion: &str, summary: &str) {
        self.with(|r, _| {
            let id = next(r);
            r.checks.push(CheckRec {
                id,
                name: name.into(),
                head_sha: sha.into(),
                status: "completed".into(),
                conclusion: Some(conclusion.into()),
                title: format!("{name}: {conclusion}"),
                summary: summary.into(),
                details_url: Some(format!("https://ci.example.com/runs/{id}")),
                history: Vec::new(),
            });
        })
    }

    /// CI reports a commit status on `sha`.
    pub fn ci_status(&self, sha: &str, context: &str, state: &str) {
        self.with(|r, _| {
            let id = next(r);
            r.statuses.push(StatusRec {
                id,
                sha: sha.into(),
                context: context.into(),
                state: state.into(),
                description: format!("{context} is {state}"),
                target_url: Some(format!("https://ci.example.com/status/{id}")),
            });
        })
    }

    /// The next answers are these faults instead.
    pub fn inject(&self, faults: &[Fault]) {
        self.with(|r, _| r.faults.extend(faults.iter().copied()));
    }

    pub fn faults_left(&self) -> usize {
        self.with(|r, _| r.faults.len())
    }

    /// Fails the test if Prism judged any request or response of this repository
    /// against GitHub's description.
    pub fn assert_contract_clean(&self) {
        // Prism writes its log asynchronously, in order: once a last request of our own
        // has been logged as answered, everything before it is in the log too.
        let sentinel = format!(
            "/repos/{}/sentinel-{}",
            self.owner,
            NEXT_OWNER.fetch_add(1, Ordering::SeqCst)
        );
        let answered = format!("The upstream call to {sentinel} has returned");
        let reply = self.get_through_prism(&sentinel);
        assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let log = loop {
            let log = std::fs::read_to_string(&self.prism_log).unwrap_or_default();
            if log.contains(&answered) {
                break log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prism never logged the sentinel request"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let log: String = log
            .lines()
            .filter(|l| !l.contains(&sentinel))
            .map(|l| format!("{l}\n"))
            .collect();
        let mine = [
            format!(" /repos/{}/", self.owner),
            format!(" /repos/{} ", self.owner),
            format!(" /orgs/{}/", self.owner),
        ];
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains('✖') && mine.iter().any(|m| l.contains(m.as_str())))
            .collect();
        assert!(
            bad.is_empty(),
            "GitHub's OpenAPI description rejects these requests or answers:\n{}",
            bad.join("\n")
        );
        let seen = log
            .lines()
            .filter(|l| mine.iter().any(|m| l.contains(m.as_str())))
            .count();
        assert!(seen > 0, "no request of {} went through Prism", self.owner);
    }
}

impl FakeGitHub {
    /// A GET through Prism, as the daemon makes them; the whole reply as text.
    fn get_through_prism(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = self
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.github+json\r\nUser-Agent: switchyard-tests\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    }
}

// ---- the servers ------------------------------------------------------------------------

fn start_servers() -> Shared {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/github");
    ensure_node_modules(&dir);
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("github-contract");
    std::fs::create_dir_all(&tmp).unwrap();
    let spec = tmp.join(format!("api-{}.json", std::process::id()));
    let out = Command::new("node")
        .arg(dir.join("cut-spec.js"))
        .arg(&spec)
        .output()
        .expect("node is needed for the GitHub contract tests (see the README)");
    assert!(
        out.status.success(),
        "cut-spec.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let templates = templates(&serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap());
    let world = Arc::new(Mutex::new(World {
        templates,
        repos: HashMap::new(),
    }));

    // Both servers live on threads that never end: Prism is tied to its thread's life
    // (PDEATHSIG), so it dies with the test binary and never before.
    let (tx, rx) = std::sync::mpsc::channel();
    let w = Arc::clone(&world);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().fallback(move |m, u, h, b| {
                let w = Arc::clone(&w);
                async move { serve(&w, m, u, h, b) }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    let fake = rx.recv().unwrap();
    let log = tmp.join(format!("prism-{}.log", std::process::id()));
    let (tx, rx) = std::sync::mpsc::channel();
    let prism_dir = dir.clone();
    let log_path = log.clone();
    std::thread::spawn(move || {
        let port = free_port();
        let mut cmd = Command::new("node");
        cmd.arg(prism_dir.join("node_modules/@stoplight/prism-cli/dist/index.js"))
            .args([
                "proxy",
                "--errors",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .arg(&spec)
            .arg(format!("http://{fake}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_this_thread(&mut cmd);
        let mut child = cmd.spawn().expect("cannot start Prism");
        let stdout = child.stdout.take().unwrap();
        let mut file = std::fs::File::create(&log_path).unwrap();
        let mut ready = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            use std::io::Write;
            let _ = writeln!(file, "{line}");
            let _ = file.flush();
            if line.contains("Prism is listening")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(port);
            }
        }
        let _ = child.wait();
        // Keep the thread alive: Prism must not be killed by PDEATHSIG while the tests run.
        loop {
            std::thread::park();
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("Prism did not start within 60 s");
    Shared {
        prism_url: format!("http://127.0.0.1:{port}"),
        prism_log: log,
        world,
    }
}

fn ensure_node_modules(dir: &Path) {
    if dir.join("node_modules/@stoplight/prism-cli").is_dir()
        && dir.join("node_modules/@octokit/openapi").is_dir()
    {
        return;
    }
    // One process installs; others wait for it (nextest runs tests as processes).
    let lock = std::fs::File::create(std::env::temp_dir().join("switchyard-npm.lock")).unwrap();
    lock.lock().unwrap();
    if dir.join("node_modules/@octokit/openapi").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(dir)
        .status()
        .expect("npm is needed for the GitHub contract tests: install Node.js and npm");
    assert!(status.success(), "npm ci in tests/github failed");
}

fn die_with_this_thread(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn templates(spec: &Value) -> Templates {
    let example = |path: &str, method: &str, code: &str| -> Value {
        let op = &spec["paths"][path][method]["responses"][code]["content"]["application/json"];
        let ex = op["examples"]
            .as_object()
            .and_then(|m| m.values().next())
            .map(|e| e["value"].clone())
            .unwrap_or_else(|| op["example"].clone());
        assert!(!ex.is_null(), "no example for {method} {path} {code}");
        ex
    };
    let first = |v: Value| v.as_array().and_then(|a| a.first().cloned()).unwrap();
    let mut pull = example("/repos/{owner}/{repo}/pulls/{pull_number}", "get", "200");
    let mut pull_simple = first(example("/repos/{owner}/{repo}/pulls", "get", "200"));
    for p in [&mut pull, &mut pull_simple] {
        // The examples' team objects lack fields the schema requires.
        p["requested_teams"] = json!([]);
        p["labels"] = json!([]);
    }
    // The example lacks `language`, which the schema requires; and a repository that
    // is not a fork has no `source` or `parent`.
    let mut repo = example("/repos/{owner}/{repo}", "get", "200");
    repo["language"] = json!("Rust");
    if let Some(r) = repo.as_object_mut() {
        r.remove("source");
        r.remove("parent");
    }
    Templates {
        repo,
        pull,
        pull_simple,
        review: first(example(
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            "get",
            "200",
        )),
        comment: example(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            "post",
            "201",
        ),
        check_run: example("/repos/{owner}/{repo}/check-runs", "post", "201"),
        check_runs: example(
            "/repos/{owner}/{repo}/commits/{ref}/check-runs",
            "get",
            "200",
        ),
        combined: example("/repos/{owner}/{repo}/commits/{ref}/status", "get", "200"),
        membership: example(
            "/orgs/{org}/teams/{team_slug}/memberships/{username}",
            "get",
            "200",
        ),
    }
}

// ---- the model ------------------------------------------------------------------------

/// GitHub's timestamps: UTC, to the second.
fn now() -> String {
    let ms = switchyard::model::Timestamp::now().to_string();
    format!("{}Z", &ms[..19])
}

fn next(r: &mut Repo) -> u64 {
    r.next_id += 1;
    r.next_id
}

fn add_comment(r: &mut Repo, number: u64, login: &str, body: &str) -> CommentRec {
    let id = next(r);
    let c = CommentRec {
        id,
        pull: number,
        login: login.into(),
        body: body.into(),
    };
    r.comments.push(c.clone());
    if let Some(p) = r.pulls.iter_mut().find(|p| p.number == number) {
        p.updated_at = now();
    }
    c
}

/// The tip of `branch` in the bare repository, if it exists.
pub fn tip(bare: &Path, branch: &str) -> Option<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn is_ancestor(bare: &Path, a: &str, b: &str) -> bool {
    Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["merge-base", "--is-ancestor", a, b])
        .status()
        .is_ok_and(|s| s.success())
}

/// What GitHub does on pushes: a PR follows its branch, closes when the branch is gone,
/// and is merged once its head is in its base.
fn refresh(r: &mut Repo) {
    for p in r.pulls.iter_mut().filter(|p| p.open) {
        match tip(&r.bare, &p.head) {
            None => {
                p.open = false;
                p.closed_at = Some(now());
                p.updated_at = now();
                continue;
            }
            Some(t) if t != p.head_sha => {
                p.head_sha = t;
                p.updated_at = now();
            }
            Some(_) => {}
        }
        if let Some(base) = tip(&r.bare, &p.base)
            && is_ancestor(&r.bare, &p.head_sha, &base)
        {
            p.open = false;
            p.merged_at = Some(now());
            p.closed_at = p.merged_at.clone();
            p.merge_commit = Some(p.head_sha.clone());
            p.updated_at = now();
        }
    }
}

// ---- HTTP -----------------------------------------------------------------------------

type Answer = (StatusCode, HeaderMap, String);

fn answer(status: u16, body: Value) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    (
        StatusCode::from_u16(status).unwrap(),
        headers,
        body.to_string(),
    )
}

fn error(status: u16, message: &str) -> Answer {
    answer(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
    )
}

fn serve(
    world: &Mutex<World>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let mut world = world.lock().unwrap();
    let World { templates, repos } = &mut *world;
    let path = uri.path().to_owned();
    let query: HashMap<String, String> = uri.query().map(url_decode_pairs).unwrap_or_default();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let owner = match segs.as_slice() {
        ["repos", owner, ..] | ["orgs", owner, ..] => owner.to_string(),
        _ => return error(404, "Not Found"),
    };
    let Some(repo) = repos.get_mut(&owner) else {
        return error(404, "Not Found");
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let given = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or("");
    let (status, headers, text) = if given != repo.token {
        error(401, "Bad credentials")
    } else if let Some(fault) = repo.faults.pop_front() {
        fault_answer(fault)
    } else {
        refresh(repo);
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut a = route(repo, templates, &method, &segs, &query, &body, &headers);
        if a.0 == StatusCode::OK && method == Method::GET {
            let tag = format!("\"{:x}\"", fnv(a.2.as_bytes()));
            let matches = headers_if_none_match(&headers) == Some(tag.clone());
            a.1.insert("etag", HeaderValue::from_str(&tag).unwrap());
            if matches {
                a.1.remove("content-type");
                a = (StatusCode::NOT_MODIFIED, a.1, String::new());
            }
        }
        a
    };
    repo.requests
        .push(format!("{method} {path} {}", status.as_u16()));
    (status, headers, text)
}

fn headers_if_none_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn fault_answer(fault: Fault) -> Answer {
    match fault {
        Fault::Status(s) => error(s, "Server Error"),
        Fault::TooMany => {
            let mut a = error(429, "API rate limit exceeded");
            a.1.insert("retry-after", HeaderValue::from_static("1"));
            a
        }
        Fault::RateLimited => {
            let mut a = error(403, "API rate limit exceeded");
            let reset = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 1;
            a.1.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            a.1.insert(
                "x-ratelimit-reset",
                HeaderValue::from_str(&reset.to_string()).unwrap(),
            );
            a
        }
    }
}

fn route(
    r: &mut Repo,
    t: &Templates,
    method: &Method,
    segs: &[&str],
    query: &HashMap<String, String>,
    body: &Value,
    _headers: &HeaderMap,
) -> Answer {
    let m = method.as_str();
    match (m, segs) {
        ("GET", ["repos", o, name]) if *name == r.name => {
            let mut v = t.repo.clone();
            v["name"] = json!(name);
            v["full_name"] = json!(format!("{o}/{name}"));
            v["owner"]["login"] = json!(o);
            answer(200, v)
        }
        (_, ["repos", _, name, ..]) if *name != r.name => error(404, "Not Found"),
        ("GET", ["repos", o, _, "pulls"]) => {
            let state = query.get("state").map_or("open", String::as_str);
            let head = query.get("head").cloned();
            let mut list: Vec<&Pull> = r
                .pulls
                .iter()
                .filter(|p| match state {
                    "all" => true,
                    "closed" => !p.open,
                    _ => p.open,
                })
                .filter(|p| {
                    head.as_ref()
                        .is_none_or(|h| *h == format!("{o}:{}", p.head))
                })
                .collect();
            if query.get("sort").map(String::as_str) == Some("updated") {
                list.sort_by(|a, b| {
                    b.updated_at
                        .cmp(&a.updated_at)
                        .then(b.number.cmp(&a.number))
                });
            } else {
                list.sort_by_key(|p| std::cmp::Reverse(p.number));
            }
            let per_page: usize = query
                .get("per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30);
            let items: Vec<Value> = list
                .into_iter()
                .take(per_page)
                .map(|p| pull_json(&t.pull_simple, o, &r.name, p))
                .collect();
            answer(200, json!(items))
        }
        ("POST", ["repos", o, _, "pulls"]) => {
            let head = body["head"].as_str().unwrap_or("").to_owned();
            let head = head
                .split_once(':')
                .map_or(head.clone(), |(_, b)| b.to_owned());
            let base = body["base"].as_str().unwrap_or("").to_owned();
            let Some(head_sha) = tip(&r.bare, &head) else {
                return validation("PullRequest", "head", "invalid");
            };
            let Some(base_sha) = tip(&r.bare, &base) else {
                return validation("PullRequest", "base", "invalid");
            };
            if r.pulls
                .iter()
                .any(|p| p.open && p.head == head && p.base == base)
            {
                return error(
                    422,
                    &format!("A pull request already exists for {o}:{head}."),
                );
            }
            if is_ancestor(&r.bare, &head_sha, &base_sha) {
                return error(422, &format!("No commits between {base} and {head}"));
            }
            let number = r.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
            let p = Pull {
                number,
                title: body["title"].as_str().unwrap_or("").to_owned(),
                body: body["body"].as_str().unwrap_or("").to_owned(),
                open: true,
                head,
                head_sha,
                base,
                author: "switchyard-bot".into(),
                labels: Vec::new(),
                created_at: now(),
                updated_at: now(),
                closed_at: None,
                merged_at: None,
                merge_commit: None,
            };
            r.pulls.push(p.clone());
            answer(201, pull_json(&t.pull, o, &r.name, &p))
        }
        ("GET", ["repos", o, _, "pulls", n]) => match find_pull(r, n) {
            Some(p) => answer(200, pull_json(&t.pull, o, &r.name, p)),
            None => error(404, "Not Found"),
        },
        ("PATCH", ["repos", o, _, "pulls", n]) => {
            let bare = r.bare.clone();
            let Some(p) = find_pull_mut(r, n) else {
                return error(404, "Not Found");
            };
            if let Some(title) = body["title"].as_str() {
                p.title = title.into();
            }
            if let Some(text) = body["body"].as_str() {
                p.body = text.into();
            }
            if let Some(base) = body["base"].as_str() {
                if tip(&bare, base).is_none() {
                    return validation("PullRequest", "base", "invalid");
                }
                p.base = base.into();
            }
            match body["state"].as_str() {
                Some("closed") if p.merged_at.is_none() => {
                    p.open = false;
                    p.closed_at = Some(now());
                }
                Some("open") if !p.open => {
                    if p.merged_at.is_some() || tip(&bare, &p.head).is_none() {
                        return error(
                            422,
                            "state cannot be changed. The head branch is gone or the PR merged.",
                        );
                    }
                    p.open = true;
                    p.closed_at = None;
                }
                _ => {}
            }
            p.updated_at = now();
            let p = p.clone();
            answer(200, pull_json(&t.pull, o, &r.name, &p))
        }
        ("GET", ["repos", o, _, "pulls", n, "reviews"]) => {
            let Some(p) = find_pull(r, n) else {
                return error(404, "Not Found");
            };
            let number = p.number;
            let items: Vec<Value> = r
                .reviews
                .iter()
                .filter(|v| v.pull == number)
                .skip(skip(query))
                .take(per_page(query))
                .map(|v| {
                    let mut j = t.review.clone();
                    j["id"] = json!(v.id);
                    j["user"]["login"] = json!(v.login);
                    j["state"] = json!(v.state);
                    j["commit_id"] = json!(v.commit);
                    j["body"] = json!("");
                    j["html_url"] = json!(format!(
                        "https://github.com/{o}/{}/pull/{number}#pullrequestreview-{}",
                        r.name, v.id
                    ));
                    j["pull_request_url"] = json!(format!(
                        "https://api.github.com/repos/{o}/{}/pulls/{number}",
                        r.name
                    ));
                    j
                })
                .collect();
            answer(200, json!(items))
        }
        ("GET", ["repos", o, _, "issues", n, "comments"]) => {
            let Some(p) = find_pull(r, n) else {
                return error(404, "Not Found");
            };
            let number = p.number;
            let items: Vec<Value> = r
                .comments
                .iter()
                .filter(|c| c.pull == number)
                .skip(skip(query))
                .take(per_page(query))
                .map(|c| comment_json(&t.comment, o, &r.name, c))
                .collect();
            answer(200, json!(items))
        }
        ("POST", ["repos", o, _, "issues", n, "comments"]) => {
            let Some(number) = find_pull(r, n).map(|p| p.number) else {
                return error(404, "Not Found");
            };
            let text = body["body"].as_str().unwrap_or("");
            if text.len() > 65536 {
                return validation("IssueComment", "body", "too_long");
            }
            let c = add_comment(r, number, "switchyard-bot", text);
            answer(201, comment_json(&t.comment, o, &r.name, &c))
        }
        ("POST", ["repos", _, _, "issues", n, "labels"]) => {
            let Some(p) = find_pull_mut(r, n) else {
                return error(404, "Not Found");
            };
            for l in body["labels"].as_array().into_iter().flatten() {
                if let Some(l) = l.as_str()
                    && !p.labels.iter().any(|x| x == l)
                {
                    p.labels.push(l.into());
                }
            }
            let labels: Vec<Value> = p
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| json!({"id": i + 1, "node_id": format!("L{i}"), "url": format!("https://api.github.com/labels/{i}"), "name": l, "description": null, "color": "ededed", "default": false}))
                .collect();
            answer(200, json!(labels))
        }
        ("POST", ["repos", o, _, "check-runs"]) => {
            let status = body["status"].as_str().unwrap_or("queued").to_owned();
            let conclusion = body["conclusion"].as_str().map(str::to_owned);
            if status == "completed" && conclusion.is_none() {
                return validation("CheckRun", "conclusion", "missing_field");
            }
            let id = next(r);
            let mut c = CheckRec {
                id,
                name: body["name"].as_str().unwrap_or("").into(),
                head_sha: body["head_sha"].as_str().unwrap_or("").into(),
                status,
                conclusion,
                title: body["output"]["title"].as_str().unwrap_or("").into(),
                summary: body["output"]["summary"].as_str().unwrap_or("").into(),
                details_url: body["details_url"].as_str().map(str::to_owned),
                history: Vec::new(),
            };
            c.history
                .push((c.status.clone(), c.conclusion.clone(), c.title.clone()));
            r.checks.push(c.clone());
            answer(201, check_json(&t.check_run, o, &r.name, &c))
        }
        ("PATCH", ["repos", o, _, "check-runs", id]) => {
            let name = r.name.clone();
            let Some(c) = r.checks.iter_mut().find(|c| c.id.to_string() == *id) else {
                return error(404, "Not Found");
            };
            if let Some(s) = body["status"].as_str() {
                c.status = s.into();
            }
            if let Some(s) = body["conclusion"].as_str() {
                c.conclusion = Some(s.into());
                c.status = "completed".into();
            } else if c.status != "completed" {
                c.conclusion = None;
            }
            if c.status == "completed" && c.conclusion.is_none() {
                return validation("CheckRun", "conclusion", "missing_field");
            }
            if let Some(s) = body["output"]["title"].as_str() {
                c.title = s.into();
            }
            if let Some(s) = body["output"]["summary"].as_str() {
                c.summary = s.into();
            }
            c.history
                .push((c.status.clone(), c.conclusion.clone(), c.title.clone()));
            let c = c.clone();
            answer(200, check_json(&t.check_run, o, &name, &c))
        }
        ("GET", ["repos", o, _, "commits", sha, "check-runs"]) => {
            let runs: Vec<Value> = r
                .checks
                .iter()
                .filter(|c| c.head_sha == *sha)
                .map(|c| check_json(&t.check_run, o, &r.name, c))
                .collect();
            let mut v = t.check_runs.clone();
            v["total_count"] = json!(runs.len());
            v["check_runs"] = json!(runs);
            answer(200, v)
        }
        ("GET", ["repos", o, _, "commits", sha, "status"]) => {
            let mut latest: Vec<&StatusRec> = Vec::new();
            for s in r.statuses.iter().rev().filter(|s| s.sha == *sha) {
                if !latest.iter().any(|l| l.context == s.context) {
                    latest.push(s);
                }
            }
            let template = t.combined["statuses"][0].clone();
            let statuses: Vec<Value> = latest
                .iter()
                .map(|s| {
                    let mut j = template.clone();
                    j["id"] = json!(s.id);
                    j["context"] = json!(s.context);
                    j["state"] = json!(s.state);
                    j["description"] = json!(s.description);
                    j["target_url"] = json!(s.target_url);
                    j
                })
                .collect();
            let state = if latest
                .iter()
                .any(|s| s.state == "failure" || s.state == "error")
            {
                "failure"
            } else if !latest.is_empty() && latest.iter().all(|s| s.state == "success") {
                "success"
            } else {
                "pending"
            };
            let mut v = t.combined.clone();
            v["state"] = json!(state);
            v["sha"] = json!(sha);
            v["total_count"] = json!(statuses.len());
            v["statuses"] = json!(statuses);
            v["repository"]["full_name"] = json!(format!("{o}/{}", r.name));
            answer(200, v)
        }
        ("GET", ["orgs", _, "teams", slug, "memberships", user]) => {
            let member = r
                .teams
                .get(*slug)
                .is_some_and(|m| m.iter().any(|x| x.eq_ignore_ascii_case(user)));
            if member {
                let mut v = t.membership.clone();
                v["state"] = json!("active");
                v["role"] = json!("member");
                answer(200, v)
            } else {
                error(404, "Not Found")
            }
        }
        _ => error(404, "Not Found"),
    }
}

fn per_page(query: &HashMap<String, String>) -> usize {
    query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
}

/// How many items the requested page starts after.
fn skip(query: &HashMap<String, String>) -> usize {
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    (page.max(1) - 1) * per_page(query)
}

fn validation(resource: &str, field: &str, code: &str) -> Answer {
    answer(
        422,
        json!({"message": "Validation Failed", "errors": [{"resource": resource, "field": field, "code": code}], "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn find_pull<'r>(r: &'r Repo, n: &str) -> Option<&'r Pull> {
    r.pulls.iter().find(|p| p.number.to_string() == n)
}

fn find_pull_mut<'r>(r: &'r mut Repo, n: &str) -> Option<&'r mut Pull> {
    r.pulls.iter_mut().find(|p| p.number.to_string() == n)
}

fn pull_json(template: &Value, owner: &str, name: &str, p: &Pull) -> Value {
    let mut v = template.clone();
    let api = format!("https://api.github.com/repos/{owner}/{name}");
    v["id"] = json!(p.number * 1000);
    v["number"] = json!(p.number);
    v["title"] = json!(p.title);
    v["body"] = json!(p.body);
    v["state"] = json!(if p.open { "open" } else { "closed" });
    v["locked"] = json!(false);
    v["draft"] = json!(false);
    v["html_url"] = json!(format!(
        "https://github.com/{owner}/{name}/pull/{}",
        p.number
    ));
    v["url"] = json!(format!("{api}/pulls/{}", p.number));
    v["user"]["login"] = json!(p.author);
    v["created_at"] = json!(p.created_at);
    v["updated_at"] = json!(p.updated_at);
    v["closed_at"] = json!(p.closed_at);
    v["merged_at"] = json!(p.merged_at);
    v["merge_commit_sha"] = json!(p.merge_commit);
    v["labels"] = json!([]);
    v["head"]["ref"] = json!(p.head);
    v["head"]["sha"] = json!(p.head_sha);
    v["head"]["label"] = json!(format!("{owner}:{}", p.head));
    v["base"]["ref"] = json!(p.base);
    v["base"]["label"] = json!(format!("{owner}:{}", p.base));
    if v.get("merged").is_some() {
        v["merged"] = json!(p.merged_at.is_some());
        v["merged_by"] = json!(null);
        v["mergeable"] = json!(null);
    }
    v
}

fn comment_json(template: &Value, owner: &str, name: &str, c: &CommentRec) -> Value {
    let mut v = template.clone();
    v["id"] = json!(c.id);
    v["body"] = json!(c.body);
    v["user"]["login"] = json!(c.login);
    v["html_url"] = json!(format!(
        "https://github.com/{owner}/{name}/pull/{}#issuecomment-{}",
        c.pull, c.id
    ));
    v["issue_url"] = json!(format!(
        "https://api.github.com/repos/{owner}/{name}/issues/{}",
        c.pull
    ));
    v
}

fn check_json(template: &Value, owner: &str, name: &str, c: &CheckRec) -> Value {
    let mut v = template.clone();
    v["id"] = json!(c.id);
    v["name"] = json!(c.name);
    v["head_sha"] = json!(c.head_sha);
    v["status"] = json!(c.status);
    v["conclusion"] = json!(c.conclusion);
    v["details_url"] = json!(c.details_url);
    v["html_url"] = json!(format!("https://github.com/{owner}/{name}/runs/{}", c.id));
    v["url"] = json!(format!(
        "https://api.github.com/repos/{owner}/{name}/check-runs/{}",
        c.id
    ));
    v["output"]["title"] = json!(c.title);
    v["output"]["summary"] = json!(c.summary);
    v["pull_requests"] = json!([]);
    if c.status != "completed" {
        v["completed_at"] = json!(null);
    }
    v
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn url_decode_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes a bare repository to play the remote, seeded from `repo`'s `main`.
pub fn bare_remote(home: &Path, repo: &Path) -> PathBuf {
    let bare = home.join("remote.git");
    git_in(
        home,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git_in(repo, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git_in(repo, &["push", "-q", "origin", "main"]);
    bare
}
