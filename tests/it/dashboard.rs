//! The dashboard and `/metrics`: a real daemon with `[dashboard]`, a real browser
//! (Debian's chromium, driven by playwright-core from `tests/browser/`), the metrics
//! read by a real Prometheus parser (Python's `prometheus_client`), and what bad input
//! and missing tokens get.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::queue::work;
use crate::support::{
    BIN, Daemon, TestRepo, add, all_text_under, claim, eventually, free_port, hermetic,
    ledger_bytes, queue_events,
};

const TOKEN: &str = "dashboard-test-token-0123456789";
const TOKEN_ENV: &str = "SWITCHYARD_DASHBOARD_TOKEN";

/// A small shop: four subsystems with caps, CI needing a person's approval. Its verify
/// runs `commands` (`./check.sh`: waits while `$HOME/hold` exists, then fails on a
/// file saying BROKEN), then `extra_config` is appended.
fn shop(commands: &str, check_pause: &str, extra_config: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.file("api/routes.txt", "GET /items\n");
    repo.file("web/index.html", "<html>shop</html>\n");
    repo.file("docs/guide.md", "# Guide\n");
    repo.file("ci/pipeline.yml", "steps: [build]\n");
    repo.file(
        "check.sh",
        &format!(
            "#!/bin/sh\n# The shop's verify: held while the test holds it, fails on BROKEN.\n\
             while [ -f \"$HOME/hold\" ]; do sleep 0.05; done\n{check_pause}\
             if grep -rl BROKEN --exclude=check.sh --exclude-dir=.git . ; then echo \"found BROKEN\"; exit 1; fi\n\
             echo \"all clean\"\n"
        ),
    );
    repo.file(
        "flaky.sh",
        "#!/bin/sh\n# Fails the first time on each candidate, passes when run again.\n\
         if [ -f .flaked ]; then echo \"passed the second time\"; exit 0; fi\n\
         touch .flaked\necho \"failed the first time\"\nexit 1\n",
    );
    for script in ["check.sh", "flaky.sh"] {
        std::fs::set_permissions(
            repo.root.join(script),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    repo.config(&format!(
        "[queue]\nverify = {commands}\nverify_timeout = \"2m\"\n\
         [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\nmax_parallel = 3\n\
         [[subsystem]]\nname = \"web\"\npaths = [\"web/\"]\nmax_parallel = 1\n\
         [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\nmax_parallel = 2\n\
         [[subsystem]]\nname = \"ci\"\npaths = [\"ci/\", \"*.sh\", \"switchyard.toml\"]\nmax_parallel = 1\napproval = \"required\"\n\
         [worktrees]\npool = 1\n{extra_config}"
    ));
    repo.commit("the shop");
    repo
}

fn dashboard_config(port: u16, token: bool) -> String {
    let mut text = format!("[dashboard]\nlisten = \"127.0.0.1:{port}\"\n");
    if token {
        text.push_str(&format!("token_env = \"{TOKEN_ENV}\"\n"));
    }
    text
}

/// `switchyard wait ID`: blocks until the task leaves the queue; its exit status.
fn wait(repo: &TestRepo, id: &str) -> i32 {
    repo.run(["wait", id, "--timeout", "2m"]).code()
}

// ---- HTTP, as a scraper or a script would speak it ----------------------------------

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let host = match headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        true => String::new(),
        false => format!("Host: 127.0.0.1:{port}\r\n"),
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if method == "POST" {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Reply {
    http(port, "GET", path, headers, "")
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// The token reached no log, no command's log, not the ledger (read while the daemon
/// runs, so nothing is checkpointed away) and not the daemon's environment.
fn assert_token_nowhere(repo: &TestRepo, daemon: &Daemon) {
    let log = daemon.log_text();
    assert!(!log.contains(TOKEN), "the token reached the daemon's log");
    assert!(
        !ledger_bytes(repo).contains(TOKEN),
        "the token reached the ledger"
    );
    let logs = all_text_under(&repo.root.join(".git/switchyard/logs"));
    assert!(!logs.contains(TOKEN), "the token reached a command's log");
    let kept = log
        .lines()
        .find(|l| l.contains("the daemon's environment (names only)"))
        .unwrap_or_else(|| panic!("the daemon never said what it kept:\n{log}"));
    assert!(
        !kept.contains(TOKEN_ENV),
        "the token's variable stayed: {kept}"
    );
    if let Ok(environ) = std::fs::read(format!("/proc/{}/environ", daemon.pid)) {
        assert!(
            !String::from_utf8_lossy(&environ).contains(TOKEN),
            "the token stayed in the daemon's environment"
        );
    }
}

// ---- the browser ---------------------------------------------------------------------

/// Debian's chromium, which `.ci/run` installs.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the dashboard's browser test needs Debian's chromium at {}: apt-get install chromium (or set CHROMIUM)",
        path.display()
    );
    path
}

/// `npm ci` in tests/browser once (playwright-core, pinned by its lock file); others
/// wait for the one installing.
fn browser_package() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let installed = || {
        dir.join("node_modules/playwright-core/package.json")
            .is_file()
    };
    if !installed() {
        let lock = std::fs::File::create(std::env::temp_dir().join("switchyard-npm-browser.lock"))
            .unwrap();
        lock.lock().unwrap();
        if !installed() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&dir)
                .status()
                .expect("the browser test needs Node.js and npm");
            assert!(status.success(), "npm ci in tests/browser failed");
        }
    }
    dir
}

#[test]
fn the_page_shows_the_queue_live_in_a_real_browser() {
    let chromium = chromium();
    let package = browser_package();
    let port = free_port();
    let repo = shop(
        "[\"./check.sh\"]",
        "sleep 1\n",
        &dashboard_config(port, true),
    );
    let daemon = repo.try_start_daemon_with(&[(TOKEN_ENV, TOKEN)]).unwrap();

    // The scene: two landings, one that came back, one at a checkpoint, one verifying
    // (held at the gate), one queued behind it, one claimed.
    let hold = repo.home().join("hold");
    let (t1, _, _) = work(
        &repo,
        "Add the orders endpoint",
        &["api"],
        "ann",
        &[("api/orders.txt", "GET /orders\n")],
    );
    assert_eq!(wait(&repo, &t1), 0);
    let (t2, _, _) = work(
        &repo,
        "Tidy the web header",
        &["web"],
        "bob",
        &[("web/header.html", "<header>shop</header>\n")],
    );
    assert_eq!(wait(&repo, &t2), 0);
    let (t3, _, _) = work(
        &repo,
        "Break the build",
        &["api"],
        "cy",
        &[("api/broken.txt", "BROKEN\n")],
    );
    assert_eq!(wait(&repo, &t3), 1);
    let (t4, _, submitted) = work(
        &repo,
        "Change the CI pipeline",
        &["api"],
        "dee",
        &[("ci/pipeline.yml", "steps: [build, test]\n")],
    );
    assert_eq!(submitted["state"], "awaiting_approval");
    std::fs::write(&hold, "").unwrap();
    let (t5, _, _) = work(
        &repo,
        "Speed up search",
        &["api"],
        "eve",
        &[("api/search.txt", "fast\n")],
    );
    eventually(60, "t5 to verify", || {
        let queue = repo.run(["--json", "queue"]).expect(0).json();
        queue[0]["id"] == t5.as_str() && queue[0]["stage"] == "verifying"
    });
    let (t6, _, _) = work(
        &repo,
        "Docs for search",
        &["docs"],
        "fay",
        &[("docs/search.md", "# Search\n")],
    );
    let t7 = add(&repo, "Refactor login", &["web"]);
    claim(&repo, Some(&t7), "gus");
    assert_eq!(
        [t1, t2, t3, t4, t5, t6, t7],
        ["t1", "t2", "t3", "t4", "t5", "t6", "t7"]
    );

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let _ = std::fs::remove_dir_all(&artifacts);
    let mut child = hermetic(&mut Command::new("node"), &repo.home())
        .arg(package.join("dashboard.js"))
        .env("DASHBOARD_URL", format!("http://127.0.0.1:{port}"))
        .env("DASHBOARD_TOKEN", TOKEN)
        .env("SWITCHYARD_BIN", BIN)
        .env("SWITCHYARD_REPO", &repo.root)
        .env("HOLD_FILE", &hold)
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .current_dir(&package)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the browser test needs Node.js");
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("DONE"),
        "the browser script failed:\n{stdout}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log_text()
    );
    for check in [
        "the queue shows lane 1: t5 verifying, t6 waiting, t4 awaiting approval",
        "the running verify shows elapsed and expected time",
        "a pause from the CLI shows up live",
        "no navigation happened meanwhile",
        "approving from the page is recorded as lead",
    ] {
        assert!(
            stdout.contains(&format!("ok: {check}")),
            "no {check:?} in:\n{stdout}"
        );
    }
    for shot in ["dashboard.png", "dashboard-phone.png", "task.png"] {
        let bytes = std::fs::read(artifacts.join(shot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{shot} is a PNG");
    }
    // The approval went through the service, as the name signed in with.
    let log = repo.run(["--json", "log", "t4"]).expect(0).json();
    let approved = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "approved")
        .unwrap_or_else(|| panic!("t4 was not approved: {log:#}"));
    assert_eq!(
        approved["by"],
        serde_json::json!({"kind": "person", "name": "lead"})
    );
    assert_token_nowhere(&repo, &daemon);
}

// ---- metrics ---------------------------------------------------------------------

/// Every sample of a scrape, through Prometheus' own text parser (Python's
/// `prometheus_client`, which `.ci/run` installs): `(name, labels, value)`.
fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    const SCRIPT: &str = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
        print(json.dumps(out))\n";
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "the metrics test needs python3 with prometheus_client (pip install prometheus-client)",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the scrape (pip install prometheus-client if it is missing):\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    parsed
}

fn sample(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {samples:#?}"))
        .2
}

#[test]
fn metrics_count_what_the_ledger_says_and_survive_a_restart() {
    let port = free_port();
    let repo = shop(
        "[\"./flaky.sh\", \"./check.sh\"]\nretries = 1",
        "",
        &dashboard_config(port, false),
    );
    let daemon = repo.start_daemon();
    // Three landings, a failed verify, a rejection; every verify flakes once.
    for (title, scope, agent, file) in [
        ("Orders", "api", "ann", "api/orders.txt"),
        ("Header", "web", "bob", "web/header.html"),
        ("Guide", "docs", "cy", "docs/more.md"),
    ] {
        let (id, _, _) = work(&repo, title, &[scope], agent, &[(file, "new\n")]);
        assert_eq!(wait(&repo, &id), 0, "{id} lands");
    }
    let (t4, _, _) = work(
        &repo,
        "Broken",
        &["api"],
        "dee",
        &[("api/x.txt", "BROKEN\n")],
    );
    assert_eq!(wait(&repo, &t4), 1);
    let (t5, _, submitted) = work(&repo, "Too wide", &["api"], "eve", &[("web/x.html", "x\n")]);
    assert_eq!(submitted["state"], "awaiting_approval");
    repo.run(["reject", &t5, "--reason", "split it", "--by", "lead"])
        .expect(0);

    let scrape = get(port, "/metrics", &[]);
    assert_eq!(scrape.status, 200);
    assert!(
        scrape
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        scrape.head
    );
    let counters = |s: &[(String, BTreeMap<String, String>, f64)]| {
        vec![
            sample(s, "switchyard_landings_total", &[]),
            sample(
                s,
                "switchyard_returns_total",
                &[("reason", "verify_failed")],
            ),
            sample(s, "switchyard_returns_total", &[("reason", "rejected")]),
            sample(s, "switchyard_flakes_total", &[("command", "./flaky.sh")]),
            sample(
                s,
                "switchyard_verify_duration_seconds_count",
                &[("outcome", "passed")],
            ),
            sample(
                s,
                "switchyard_verify_duration_seconds_count",
                &[("outcome", "failed")],
            ),
            sample(s, "switchyard_queue_wait_seconds_count", &[]),
        ]
    };
    let first = parse(&scrape.body);
    assert_eq!(counters(&first), vec![3.0, 1.0, 1.0, 4.0, 3.0, 1.0, 4.0]);
    assert!(
        sample(
            &first,
            "switchyard_verify_duration_seconds_sum",
            &[("outcome", "passed")]
        ) > 0.0
    );
    assert_eq!(
        sample(&first, "switchyard_tasks", &[("state", "merged")]),
        3.0
    );
    assert_eq!(
        sample(&first, "switchyard_tasks", &[("state", "returned")]),
        2.0
    );
    assert_eq!(
        sample(&first, "switchyard_tasks", &[("state", "open")]),
        0.0
    );
    assert_eq!(
        sample(&first, "switchyard_claims", &[("subsystem", "api")]),
        2.0
    );
    assert_eq!(
        sample(&first, "switchyard_claims_cap", &[("subsystem", "api")]),
        3.0
    );
    assert_eq!(
        sample(&first, "switchyard_claims", &[("subsystem", "web")]),
        0.0
    );
    assert_eq!(sample(&first, "switchyard_paused", &[]), 0.0);
    assert_eq!(
        sample(&first, "switchyard_github_api_calls_total", &[]),
        0.0
    );
    assert_eq!(
        sample(
            &first,
            "switchyard_github_api_failures_total",
            &[("kind", "server_error")]
        ),
        0.0
    );

    // The counters come from the ledger's history: a restart keeps them.
    let (status, _) = daemon.stop();
    assert!(status.success());
    let _daemon = repo.start_daemon();
    let again = parse(&get(port, "/metrics", &[]).body);
    assert_eq!(counters(&again), counters(&first));

    // Queue depth and verifies in flight, per lane, while one is held at the gate.
    std::fs::write(repo.home().join("hold"), "").unwrap();
    let (t6, _, _) = work(&repo, "Held", &["docs"], "fay", &[("docs/held.md", "x\n")]);
    let (_t7, _, _) = work(
        &repo,
        "Behind",
        &["docs"],
        "gus",
        &[("docs/behind.md", "x\n")],
    );
    eventually(60, "t6 to verify", || {
        let queue = repo.run(["--json", "queue"]).expect(0).json();
        queue[0]["id"] == t6.as_str() && queue[0]["stage"] == "verifying"
    });
    let held = parse(&get(port, "/metrics", &[]).body);
    assert_eq!(
        sample(&held, "switchyard_queue_depth", &[("lane", "1")]),
        2.0
    );
    assert_eq!(
        sample(&held, "switchyard_verifies_in_flight", &[("lane", "1")]),
        1.0
    );
    std::fs::remove_file(repo.home().join("hold")).unwrap();
}

// ---- bad input, tokens, actions -------------------------------------------------

#[test]
fn bad_dashboard_settings_stop_the_start_with_one_clear_line() {
    // A malformed address: a config error with its place, from check, daemon and
    // dashboard alike.
    let repo = TestRepo::new();
    repo.config("base = \"main\"\n[dashboard]\nlisten = \"localhost:80x\"\n");
    repo.commit("config");
    let want = "switchyard.toml:3:10: `listen` must be an address with a port, like \"127.0.0.1:8790\", found \"localhost:80x\"";
    assert!(repo.run(["check"]).expect(2).stderr().contains(want));
    repo.run_within(30, &[], ["daemon"]).refused(2, want);
    repo.run(["dashboard"]).refused(2, want);

    // Anywhere but loopback needs a token.
    repo.config("[dashboard]\nlisten = \"0.0.0.0:8790\"\n");
    repo.run(["dashboard"]).refused(
        2,
        "switchyard.toml:2:10: `listen` = \"0.0.0.0:8790\" is not a loopback address: set `token_env` too",
    );

    // No [dashboard]: `dashboard` says how to turn it on.
    repo.config("base = \"main\"\n");
    repo.run(["dashboard"]).refused(
        1,
        "the dashboard is off: add `[dashboard]` with `listen = \"127.0.0.1:8790\"`",
    );
    let port = free_port();
    repo.config(&dashboard_config(port, true));
    assert_eq!(
        repo.run(["dashboard"]).expect(0).stdout(),
        format!("http://127.0.0.1:{port}/\n")
    );
    let json = repo.run(["--json", "dashboard"]).expect(0).json();
    assert_eq!(json["token_env"], TOKEN_ENV);

    // The token's variable unset, or a short token: the daemon does not start.
    let out = repo.run_within(60, &[], ["daemon"]).expect(1);
    assert!(
        out.stderr().contains(&format!(
            "the dashboard's token is missing: set the environment variable {TOKEN_ENV} ([dashboard] token_env)"
        )),
        "{}",
        out.stderr()
    );
    let out = repo
        .run_within(60, &[(TOKEN_ENV, "short")], ["daemon"])
        .expect(1);
    assert!(
        out.stderr().contains("is shorter than 16 characters"),
        "{}",
        out.stderr()
    );
    assert!(!out.stderr().contains("short\n") && !out.stderr().contains("\"short\""));

    // A port in use: refused at start, naming the address, before the ledger exists.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    repo.config(&dashboard_config(port, false));
    let out = repo.run_within(60, &[], ["daemon"]).expect(1);
    assert!(
        out.stderr().contains(&format!(
            "cannot serve the dashboard on 127.0.0.1:{port} ([dashboard] listen): "
        )),
        "{}",
        out.stderr()
    );
    assert!(!repo.root.join(".git/switchyard/ledger.db").exists());
}

#[test]
fn the_token_guards_every_request_and_actions_need_it() {
    let port = free_port();
    let repo = shop("[\"./check.sh\"]", "", &dashboard_config(port, true));
    let daemon = repo.try_start_daemon_with(&[(TOKEN_ENV, TOKEN)]).unwrap();
    let t1 = add(&repo, "A task <b>with markup</b>", &["api"]);

    // Nothing without the token; a wrong one is a 401 too.
    let page = get(port, "/", &[]);
    assert_eq!(page.status, 401);
    assert!(
        page.body.contains("name=\"token\""),
        "the sign-in form: {}",
        page.body
    );
    for (path, auth) in [
        ("/metrics", None),
        ("/live", None),
        ("/tasks/t1", Some("Bearer wrong-token-wrong-token")),
        ("/metrics", Some("Bearer wrong-token-wrong-token")),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let reply = get(port, path, &headers);
        assert_eq!(reply.status, 401, "{path} with {auth:?}");
        assert!(!reply.body.contains("A task"), "{path} showed a task");
    }
    let wrong = http(
        port,
        "POST",
        "/login",
        &[],
        "token=not-it-not-it-not-it&name=x",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    // With it: the pages, and a 404 page for what is not there.
    let auth = bearer();
    let scrape = get(port, "/metrics", &[("Authorization", &auth)]);
    assert_eq!(scrape.status, 200);
    assert!(scrape.body.contains("switchyard_tasks{state=\"open\"} 1"));
    let task = get(port, &format!("/tasks/{t1}"), &[("Authorization", &auth)]);
    assert_eq!(task.status, 200);
    assert!(task.body.contains("A task &lt;b&gt;with markup&lt;/b&gt;"));
    assert_eq!(
        get(port, "/tasks/t42/live", &[("Authorization", &auth)]).status,
        404
    );
    for path in ["/tasks/t42", "/tasks/nonsense", "/no/such/page"] {
        let missing = get(port, path, &[("Authorization", &auth)]);
        assert_eq!(missing.status, 404, "{path}");
        assert!(
            missing.body.contains("<h1>Not found</h1>"),
            "{path}: {}",
            missing.body
        );
    }
    assert!(
        get(port, "/tasks/t42", &[("Authorization", &auth)])
            .body
            .contains("no task t42")
    );

    // Signing in: a random HttpOnly, SameSite=Strict cookie, never the token.
    let signed = http(
        port,
        "POST",
        "/login",
        &[],
        &format!("token={TOKEN}&name=Lead"),
    );
    assert_eq!(signed.status, 303);
    let cookie = signed.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN));
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = get(port, "/", &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("acting as <b>lead</b>"));
    assert!(!page.body.contains(TOKEN), "the token is on the page");
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // An action from a form that is not this session's: refused, nothing changes.
    let forged = http(
        port,
        "POST",
        "/pause",
        &[("Cookie", &cookie)],
        "csrf=forged&reason=x",
    );
    assert_eq!(forged.status, 403);
    assert!(queue_events(&repo).is_empty());
    // The real form: paused, recorded as the person signed in.
    let paused = http(
        port,
        "POST",
        "/pause",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}&reason=lunch+break&only=queue"),
    );
    assert_eq!(paused.status, 303, "{}", paused.body);
    assert_eq!(paused.header("location").as_deref(), Some("/"));
    let events = queue_events(&repo);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"], "paused");
    assert_eq!(events[0]["by"]["name"], "lead");
    assert_eq!(events[0]["evidence"]["only"], "queue");
    // A refusal is a page with the service's reason.
    let refused = http(
        port,
        "POST",
        &format!("/tasks/{t1}/approve"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(refused.status, 409);
    assert!(refused.body.contains("Refused"), "{}", refused.body);
    // A script with the token acts as `dashboard`.
    let resumed = http(port, "POST", "/resume", &[("Authorization", &auth)], "");
    assert_eq!(resumed.status, 303);
    let events = queue_events(&repo);
    assert_eq!(events.last().unwrap()["event"], "resumed");
    assert_eq!(events.last().unwrap()["by"]["name"], "dashboard");
    // Signing out ends the session.
    let out = http(
        port,
        "POST",
        "/logout",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(out.status, 303);
    assert_eq!(get(port, "/", &[("Cookie", &cookie)]).status, 401);

    assert_token_nowhere(&repo, &daemon);
}

#[test]
fn without_a_token_the_page_is_read_only() {
    let port = free_port();
    let repo = shop("[\"./check.sh\"]", "", &dashboard_config(port, false));
    let _daemon = repo.start_daemon();
    let t1 = add(&repo, "Look, do not touch", &["api"]);
    let page = get(port, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h2>Queue</h2>"));
    assert!(!page.body.contains("<form"), "no actions: {}", page.body);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let task = get(port, &format!("/tasks/{t1}"), &[]);
    assert_eq!(task.status, 200);
    assert!(task.body.contains("Look, do not touch") && !task.body.contains("<form"));
    // Open to this machine only, by name too: a page whose own name was re-pointed at
    // 127.0.0.1 (DNS rebinding) gets nothing.
    for host in ["rebound.attacker.example", "localhost.attacker.example:80"] {
        let foreign = get(port, &format!("/tasks/{t1}"), &[("Host", host)]);
        assert_eq!(foreign.status, 421, "{host}");
        assert!(!foreign.body.contains("Look, do not touch"), "{host}");
        assert_eq!(
            get(port, "/metrics", &[("Host", host)]).status,
            421,
            "{host}"
        );
    }
    assert_eq!(
        get(port, "/", &[("Host", &format!("localhost:{port}"))]).status,
        200
    );
    for (path, body) in [
        ("/pause", "reason=x"),
        ("/resume", ""),
        ("/tasks/t1/approve", ""),
        ("/tasks/t1/reject", "reason=x"),
    ] {
        let refused = http(port, "POST", path, &[], body);
        assert_eq!(refused.status, 403, "{path}");
        assert!(
            refused.body.contains("read-only"),
            "{path}: {}",
            refused.body
        );
    }
    assert!(queue_events(&repo).is_empty(), "nothing was paused");
    let show: Value = repo.run(["--json", "task", "show", &t1]).expect(0).json();
    assert_eq!(show["state"], "open");
    assert_eq!(get(port, "/login", &[]).status, 404);
    // The assets come from the binary.
    let script = get(port, "/assets/app.js", &[]);
    assert_eq!(script.status, 200);
    assert!(script.body.contains("EventSource"));
    assert_eq!(get(port, "/assets/style.css", &[]).status, 200);
}
