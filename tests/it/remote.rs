//! The networked API (`[api] listen`): one real daemon listening on loopback, over TLS
//! with a certificate made at test time (rcgen) and over plain HTTP, and the real CLI
//! talking to it from a directory that is no repository, with `--daemon` or
//! `SWITCHYARD_DAEMON` and `SWITCHYARD_TOKEN`. Tokens are made with `switchyard token`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{BIN, Daemon, Run, TestRepo, commit_in, hermetic, tasks};

/// A repository whose daemon also listens on TCP, and the tokens it knows.
struct Remote {
    repo: TestRepo,
    daemon: Daemon,
    url: String,
    /// Where a remote client runs: not a repository.
    elsewhere: PathBuf,
    /// The certificate, for `SWITCHYARD_CA_CERT`; `None` over plain HTTP.
    ca: Option<PathBuf>,
    tokens: BTreeMap<&'static str, String>,
}

/// The config's `[api]` section and the files it names, the certificate made now.
pub(crate) fn api_config(repo: &TestRepo, tls: bool) -> String {
    let mut api = "[api]\nlisten = \"127.0.0.1:0\"\ntokens = \"../tokens\"\n".to_owned();
    if tls {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(repo.tmp.path().join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(
            repo.tmp.path().join("key.pem"),
            made.signing_key.serialize_pem(),
        )
        .unwrap();
        api.push_str("tls_cert = \"../cert.pem\"\ntls_key = \"../key.pem\"\n");
    }
    api
}

/// Makes a token with the CLI, as the daemon's owner would.
pub(crate) fn token(repo: &TestRepo, name: &str, roles: &[&str]) -> String {
    let mut args = vec!["--json", "token", "add", name];
    for r in roles {
        args.extend(["--role", r]);
    }
    let added = repo.run(args).expect(0).json();
    assert_eq!(added["name"], name);
    added["token"].as_str().unwrap().to_owned()
}

fn remote_repo(tls: bool) -> Remote {
    let repo = TestRepo::new();
    repo.files(&["src/lib.rs"]).commit("init");
    let api = api_config(&repo, tls);
    repo.config(&format!(
        "[[subsystem]]\nname = \"core\"\npaths = [\"src/**\"]\n[claims]\nlease = \"10m\"\n{api}"
    ));
    repo.commit("config");
    let mut tokens = BTreeMap::new();
    tokens.insert("alice", token(&repo, "alice", &[]));
    tokens.insert("bob", token(&repo, "bob", &["executor"]));
    tokens.insert("plan", token(&repo, "plan", &["planner"]));
    tokens.insert("root", token(&repo, "root", &["admin"]));
    let daemon = repo.start_daemon();
    let url = daemon
        .ready
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("no URL in {:?}", daemon.ready))
        .to_owned();
    assert_eq!(url.starts_with("https://"), tls, "{url}");
    let elsewhere = repo.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let ca = tls.then(|| repo.tmp.path().join("cert.pem"));
    Remote {
        repo,
        daemon,
        url,
        elsewhere,
        ca,
        tokens,
    }
}

impl Remote {
    /// The CLI, elsewhere, with `SWITCHYARD_DAEMON` and the token of `who` (none:
    /// no token at all).
    fn as_(&self, who: Option<&str>, args: &[&str]) -> Run {
        let token = who.map(|w| self.tokens.get(w).cloned().unwrap_or_else(|| w.to_owned()));
        self.run(token.as_deref(), &[("SWITCHYARD_DAEMON", &self.url)], args)
    }

    fn run(&self, token: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd = std::process::Command::new(BIN);
        hermetic(&mut cmd, &self.repo.home())
            .envs(env.iter().copied())
            .args(args)
            .current_dir(&self.elsewhere);
        if let Some(token) = token {
            cmd.env("SWITCHYARD_TOKEN", token);
        }
        if let Some(ca) = &self.ca {
            cmd.env("SWITCHYARD_CA_CERT", ca);
        }
        Run(cmd.output().unwrap())
    }

    /// The error code of a refused `--json` command, from its stderr.
    fn refused_with(&self, who: Option<&str>, args: &[&str], code: &str) -> String {
        let mut all = vec!["--json"];
        all.extend(args);
        let run = self.as_(who, &all).expect(1);
        let err: Value = serde_json::from_str(run.stderr().trim())
            .unwrap_or_else(|e| panic!("{e}: {}", run.stderr()));
        assert_eq!(err["error"]["code"], code, "{}", run.stderr());
        err["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// One raw HTTP/1.1 request over plain TCP; the whole reply as text.
fn raw(url: &str, request: &str) -> String {
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
}

#[test]
fn the_cli_works_against_a_daemon_elsewhere_over_tls_and_plain_http() {
    for tls in [true, false] {
        let r = remote_repo(tls);
        let added = r
            .as_(
                Some("plan"),
                &["--json", "task", "add", "Fix login", "--scope", "core"],
            )
            .expect(0)
            .json();
        assert_eq!(added["state"], "open");
        // The token's name is who is recorded.
        let id = added["id"].as_str().unwrap().to_owned();
        let listed = r
            .as_(Some("alice"), &["--json", "task", "list"])
            .expect(0)
            .json();
        // The same answer as on the socket, byte for byte.
        assert_eq!(listed, Value::Array(tasks(&r.repo)));
        assert_eq!(listed[0]["id"], id.as_str());

        // `--daemon` as a flag does the same as the variable.
        let claimed = r
            .run(
                Some(&r.tokens["alice"]),
                &[],
                &["--daemon", &r.url, "--json", "claim"],
            )
            .expect(0)
            .json();
        assert_eq!(claimed["id"], id.as_str());
        assert_eq!(claimed["agent"], "alice");
        let text = r.as_(Some("alice"), &["task", "list"]).expect(0).stdout();
        assert!(text.contains("claimed") && text.contains("alice"), "{text}");
        let shown = r
            .as_(Some("bob"), &["--json", "task", "show", &id])
            .expect(0)
            .json();
        assert_eq!(shown["roles"]["planner"]["name"], "plan");
        assert_eq!(shown["agent"], "alice");
        r.as_(Some("alice"), &["heartbeat", &id]).expect(0);

        // The executor's work lands as it would locally (the worktree is the daemon's,
        // on this same machine here).
        let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
        commit_in(&wt, "fix", &[("src/lib.rs", "fixed\n")]);
        let submitted = r
            .as_(Some("alice"), &["--json", "submit", &id])
            .expect(0)
            .json();
        assert_eq!(submitted["state"], "queued");
        let merged = r
            .as_(Some("alice"), &["--json", "wait", &id, "--timeout", "60s"])
            .expect(0)
            .json();
        assert_eq!(merged["outcome"], "merged");
        let log = r.as_(Some("bob"), &["--json", "log", &id]).expect(0).json();
        assert!(
            log.as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "merged")
        );
        r.as_(Some("bob"), &["queue"]).expect(0);

        // The token never shows in the daemon's log.
        let log = r.daemon.log_text();
        for t in r.tokens.values() {
            assert!(!log.contains(t.as_str()), "a token in the log");
        }
    }
}

#[test]
fn local_only_commands_and_a_missing_task_id_say_so() {
    let r = remote_repo(false);
    // A command working on this machine's repository does not take --daemon...
    let run = r.repo.run(["check", "--daemon", &r.url]);
    run.refused(2, "--daemon does not go with `switchyard check`");
    // ... and ignores SWITCHYARD_DAEMON.
    r.repo
        .run_env(&[("SWITCHYARD_DAEMON", &r.url)], ["check"])
        .expect(0);
    r.repo
        .run_env(&[("SWITCHYARD_DAEMON", &r.url)], ["token", "list"])
        .expect(0);
    // A worktree is the local daemon's: elsewhere, the task is named.
    r.as_(Some("alice"), &["heartbeat"])
        .refused(2, "with a daemon elsewhere, name the task");
    let repo_arg = r.repo.root.display().to_string();
    r.as_(Some("alice"), &["--repo", &repo_arg, "task", "list"])
        .refused(2, "--repo names a repository on this machine");
    // A token never crosses the network in clear.
    r.run(
        Some("x"),
        &[("SWITCHYARD_DAEMON", "http://192.0.2.1:7878")],
        &["task", "list"],
    )
    .refused(2, "use https://");
    r.run(
        Some("x"),
        &[("SWITCHYARD_DAEMON", "ftp://host")],
        &["task", "list"],
    )
    .refused(2, "SWITCHYARD_DAEMON: no http:// or https://");
}

#[test]
fn a_missing_or_wrong_token_is_refused_and_changes_nothing() {
    let r = remote_repo(false);
    let m = r.refused_with(None, &["task", "add", "x"], "unauthorized");
    assert!(m.contains("carries no token"), "{m}");
    let m = r.refused_with(Some("sy_wrong"), &["task", "add", "x"], "unauthorized");
    assert!(m.contains("unknown or revoked"), "{m}");
    r.refused_with(Some("sy_wrong"), &["task", "list"], "unauthorized");
    assert!(tasks(&r.repo).is_empty());
    // The status is 401, with the error envelope, and a request to no route is
    // refused the same way before the router says anything.
    for path in ["/v1/tasks", "/v1/nowhere"] {
        let reply = raw(
            &r.url,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
        assert!(
            reply
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{reply}"
        );
        assert!(
            reply.contains(r#"{"error":{"code":"unauthorized""#),
            "{reply}"
        );
    }
    let reply = raw(
        &r.url,
        &format!(
            "GET /v1/nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            r.tokens["alice"]
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    // Failures are logged with the peer, never with the token tried.
    let log = r.daemon.log_text();
    assert!(
        log.contains("authentication failed") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains("sy_wrong"), "{log}");
}

#[test]
fn roles_limit_what_a_token_may_do_and_it_cannot_act_as_another() {
    let r = remote_repo(true);
    // An executor neither plans nor decides; a planner does not claim.
    let m = r.refused_with(Some("alice"), &["task", "add", "x"], "not_allowed");
    assert!(m.contains("needs the planner role"), "{m}");
    let id = r
        .as_(
            Some("plan"),
            &["--json", "task", "add", "Work", "--scope", "core"],
        )
        .expect(0)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    r.refused_with(Some("plan"), &["claim"], "not_allowed");
    let m = r.refused_with(Some("alice"), &["approve", &id], "not_allowed");
    assert!(m.contains("needs the admin role"), "{m}");
    for args in [
        vec!["reject", id.as_str(), "--reason", "no"],
        vec!["pause", "--reason", "no"],
        vec!["resume"],
        vec!["task", "cancel", id.as_str()],
    ] {
        r.refused_with(Some("alice"), &args, "not_allowed");
    }
    // Naming someone else is refused, and nothing changes.
    let m = r.refused_with(Some("alice"), &["claim", "--agent", "bob"], "not_allowed");
    assert!(m.contains("this token belongs to alice"), "{m}");
    let with_env = r
        .run(
            Some(&r.tokens["alice"]),
            &[("SWITCHYARD_DAEMON", &r.url), ("SWITCHYARD_AGENT", "bob")],
            &["claim"],
        )
        .expect(1);
    assert!(with_env.stderr().contains("this token belongs to alice"));
    assert_eq!(tasks(&r.repo)[0]["state"], "open");

    r.as_(Some("alice"), &["claim", &id]).expect(0);
    // Bob's token cannot touch Alice's claim, even naming no one: he is bob.
    for verb in ["heartbeat", "submit", "release"] {
        let m = r.refused_with(Some("bob"), &[verb, &id], "not_claim_holder");
        assert!(m.contains("alice"), "{m}");
        r.refused_with(Some("bob"), &[verb, &id, "--agent", "alice"], "not_allowed");
    }
    // Taking a task from its executor is a person's decision: admin only.
    r.refused_with(
        Some("alice"),
        &["release", &id, "--by", "alice"],
        "not_allowed",
    );
    let task = tasks(&r.repo);
    assert_eq!(
        (task[0]["state"].as_str(), task[0]["agent"].as_str()),
        (Some("claimed"), Some("alice"))
    );
    r.as_(Some("root"), &["release", &id, "--by", "root"])
        .expect(0);
    assert_eq!(tasks(&r.repo)[0]["state"], "open");
    // Admin may do everything, as itself.
    r.as_(Some("root"), &["pause", "--reason", "maintenance"])
        .expect(0);
    r.as_(Some("root"), &["resume"]).expect(0);
    let events = r
        .as_(Some("root"), &["--json", "log", "--queue"])
        .expect(0)
        .json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("root")),
        "{events}"
    );
}

#[test]
fn a_revoked_token_stops_working_at_once_and_a_new_one_works() {
    let r = remote_repo(false);
    r.as_(Some("alice"), &["task", "list"]).expect(0);
    r.repo.run(["token", "revoke", "alice"]).expect(0);
    // The very next request, without a restart.
    r.refused_with(Some("alice"), &["task", "list"], "unauthorized");
    let carol = token(&r.repo, "carol", &["planner"]);
    let added = r
        .run(
            Some(&carol),
            &[("SWITCHYARD_DAEMON", &r.url)],
            &["--json", "task", "add", "From carol"],
        )
        .expect(0)
        .json();
    let shown = r.as_(
        Some("bob"),
        &["--json", "task", "show", added["id"].as_str().unwrap()],
    );
    assert_eq!(shown.expect(0).json()["roles"]["planner"]["name"], "carol");
    r.repo
        .run(["token", "revoke", "nobody"])
        .refused(1, "nobody has no token");
    let listed = r.repo.run(["--json", "token", "list"]).expect(0).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "plan", "root", "carol"]);
    assert!(!listed.to_string().contains("hash") && !listed.to_string().contains("sy_"));
    // A tokens file opened to others accepts nothing until it is private again.
    let file = r.repo.tmp.path().join("tokens");
    set_mode(&file, 0o644);
    r.refused_with(Some("bob"), &["task", "list"], "unavailable");
    set_mode(&file, 0o600);
    r.as_(Some("bob"), &["task", "list"]).expect(0);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn failed_authentications_are_rate_limited_per_address() {
    let r = remote_repo(true);
    // Ten failures a minute are allowed...
    for _ in 0..10 {
        r.refused_with(Some("sy_guess"), &["task", "list"], "unauthorized");
    }
    // ... then this address is refused, a right token included, for a while.
    let m = r.refused_with(Some("alice"), &["task", "list"], "rate_limited");
    assert!(m.contains("too many failed authentications"), "{m}");
    // The local socket is not affected.
    r.repo.run(["task", "list"]).expect(0);
    let log = r.daemon.log_text();
    assert!(log.contains("too many failed authentications"), "{log}");
    assert!(!log.contains("sy_guess"));
}

#[test]
fn tls_needs_a_certificate_the_client_trusts() {
    let r = remote_repo(true);
    // Without the CA file, the self-signed certificate is not trusted.
    let mut cmd = std::process::Command::new(BIN);
    let out = hermetic(&mut cmd, &r.repo.home())
        .env("SWITCHYARD_DAEMON", &r.url)
        .env("SWITCHYARD_TOKEN", &r.tokens["alice"])
        .args(["task", "list"])
        .current_dir(&r.elsewhere)
        .output()
        .unwrap();
    let run = Run(out).refused(1, "SWITCHYARD_CA_CERT");
    assert!(!run.stderr().contains(&r.tokens["alice"]));
    // Plain HTTP to a TLS listener gets nothing useful either.
    let plain = r.url.replace("https://", "http://");
    let run = r.run(
        Some(&r.tokens["alice"]),
        &[("SWITCHYARD_DAEMON", &plain)],
        &["task", "list"],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
}

#[test]
fn mcp_acts_as_the_token_owner() {
    use rmcp::ServiceExt;
    use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
    let r = remote_repo(false);
    r.as_(Some("plan"), &["task", "add", "For the agent"])
        .expect(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cmd = std::process::Command::new(BIN);
        hermetic(&mut cmd, &r.repo.home())
            .env("SWITCHYARD_DAEMON", &r.url)
            .env("SWITCHYARD_TOKEN", &r.tokens["alice"])
            .arg("mcp")
            .current_dir(&r.elsewhere);
        let transport =
            rmcp::transport::TokioChildProcess::new(tokio::process::Command::from(cmd)).unwrap();
        let session = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("some-mcp-client", "1.0"),
        )
        .serve(transport)
        .await
        .unwrap();
        let claimed = session
            .call_tool(CallToolRequestParams::new("claim".to_owned()))
            .await
            .unwrap();
        assert_ne!(claimed.is_error, Some(true), "{claimed:?}");
        // Not the MCP client's name, not the user's: the token's.
        assert_eq!(claimed.structured_content.unwrap()["agent"], "alice");
        session.cancel().await.unwrap();
    });
}

#[test]
fn bad_setups_stop_the_daemon_before_anything_changes() {
    let repo = TestRepo::new();
    repo.files(&["a"]).commit("init");
    let base = api_config(&repo, true);
    let start = |config: &str| {
        repo.config(config);
        let e = match repo.try_start_daemon() {
            Ok(_) => panic!("started with {config}"),
            Err(e) => e,
        };
        assert!(
            !repo.root.join(".git/switchyard/ledger.db").exists(),
            "a ledger was made"
        );
        e
    };
    let tokens = repo.tmp.path().join("tokens");
    let e = start(&base);
    assert!(
        e.contains(&format!(
            "the tokens file {} does not exist",
            tokens.display()
        )),
        "{e}"
    );
    token(&repo, "alice", &[]);

    set_mode(&tokens, 0o640);
    let e = start(&base);
    assert!(
        e.contains(&format!(
            "the tokens file {} is open to other users",
            tokens.display()
        )),
        "{e}"
    );
    set_mode(&tokens, 0o600);

    let good = std::fs::read_to_string(&tokens).unwrap();
    std::fs::write(&tokens, format!("{good}mallory:not-a-hash\n")).unwrap();
    let e = start(&base);
    assert!(
        e.contains(&format!("{}:3:9: the second field", tokens.display())),
        "{e}"
    );
    std::fs::write(&tokens, &good).unwrap();

    let cert = repo.tmp.path().join("cert.pem");
    let good_cert = std::fs::read_to_string(&cert).unwrap();
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = start(&base);
    assert!(e.contains(&cert.display().to_string()), "{e}");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let e = start(&base);
    assert!(
        e.contains(&format!(
            "the certificate file {} ([api] tls_cert) holds no PEM certificate",
            cert.display()
        )),
        "{e}"
    );
    std::fs::write(&cert, &good_cert).unwrap();

    let key = repo.tmp.path().join("key.pem");
    std::fs::write(&key, "garbage\n").unwrap();
    let e = start(&base);
    assert!(
        e.contains(&format!("cannot read a private key from {}", key.display())),
        "{e}"
    );
    // A key of another certificate.
    let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
    let e = start(&base);
    assert!(
        e.contains(&key.display().to_string()) && e.contains(&cert.display().to_string()),
        "{e}"
    );

    // An address in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = start(&format!(
        "[api]\nlisten = \"{addr}\"\ntokens = \"../tokens\"\n"
    ));
    assert!(
        e.contains(&format!("cannot listen on {addr} ([api] listen)")),
        "{e}"
    );
    // Plain HTTP beyond loopback is a config error, at its place.
    let e = start("[api]\nlisten = \"0.0.0.0:7878\"\ntokens = \"../tokens\"\n");
    assert!(
        e.contains(
            "switchyard.toml:2:10: [api] `listen` = \"0.0.0.0:7878\" is not a loopback address"
        ),
        "{e}"
    );
}
