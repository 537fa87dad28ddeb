//! `switchyard mcp`: the real binary driven by a real MCP client (rmcp's), against a
//! real daemon: the executor's loop from claim to merged, and the refusals.

use std::path::PathBuf;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::queue::queue_repo;
use crate::support::{BIN, TestRepo, commit_in, hermetic};

type Session = RunningService<RoleClient, ClientConfig>;

/// `switchyard mcp` in the repository, with the tests' hermetic environment, and a
/// client that introduces itself as `mcp-test-agent`.
async fn connect(repo: &TestRepo) -> Session {
    let mut cmd = std::process::Command::new(BIN);
    hermetic(&mut cmd, &repo.home())
        .arg("mcp")
        .current_dir(&repo.root);
    let transport = TokioChildProcess::new(tokio::process::Command::from(cmd)).unwrap();
    let config = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-test-agent", "1.0"),
    );
    config.serve(transport).await.unwrap()
}

async fn call(session: &Session, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    session
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// A successful call's structured result.
async fn ok(session: &Session, tool: &str, args: Value) -> Value {
    let r = call(session, tool, args).await;
    assert_ne!(r.is_error, Some(true), "{tool} failed: {r:?}");
    match r.structured_content {
        Some(v) => v,
        None => panic!("{tool}: no structured content: {:?}", r.content),
    }
}

/// A refused call's `{"code", "message"}`, read from its text as an agent would.
async fn refused(session: &Session, tool: &str, args: Value) -> Value {
    let r = call(session, tool, args).await;
    assert_eq!(r.is_error, Some(true), "{tool} should fail: {r:?}");
    let text = r.content[0].as_text().expect("text content").text.clone();
    let body: Value = serde_json::from_str(&text).unwrap();
    body["error"].clone()
}

#[test]
fn mcp_executor_loop_from_claim_to_merged() {
    let repo = queue_repo("");
    // No [mcp] listen: nothing to print a client config for.
    repo.run(["mcp", "--http-config"])
        .refused(2, "has no [mcp] listen");
    let _daemon = repo.start_daemon();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = connect(&repo).await;

        let mut names: Vec<String> = s
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "add_task",
                "claim",
                "conflicts",
                "heartbeat",
                "list_tasks",
                "log",
                "plan",
                "queue",
                "release",
                "review_approve",
                "review_changes",
                "review_next",
                "show_task",
                "submit",
                "wait",
            ]
        );

        let task = ok(
            &s,
            "add_task",
            json!({"title": "Say more", "scope": ["api"], "accept": ["line 2 says more"]}),
        )
        .await;
        let id = task["id"].as_str().unwrap().to_owned();
        assert_eq!(task["state"], "open");

        let claimed = ok(&s, "claim", json!({})).await;
        assert_eq!(claimed["id"], id.as_str());
        // No SWITCHYARD_AGENT: the MCP client's name is the agent.
        assert_eq!(claimed["agent"], "mcp-test-agent");
        assert_eq!(claimed["env"]["SWITCHYARD_TASK"], id.as_str());
        let worktree = PathBuf::from(claimed["worktree"].as_str().unwrap());
        commit_in(
            &worktree,
            "say more",
            &[("api/handler.txt", "line 1\nline 2, with more\nline 3\n")],
        );

        // Another agent may not submit it: the daemon's code, as the CLI reports it.
        let e = refused(&s, "submit", json!({"id": id, "agent": "intruder"})).await;
        assert_eq!(e["code"], "not_claim_holder", "{e}");

        // A wrongly typed or unknown argument is a tool error; the server keeps serving.
        let e = refused(&s, "wait", json!({"id": id, "timeout_seconds": "soon"})).await;
        assert_eq!(e["code"], "usage", "{e}");
        let e = refused(&s, "show_task", json!({"id": id, "verbose": true})).await;
        assert_eq!(e["code"], "usage", "{e}");
        let e = refused(&s, "show_task", json!({"id": "nonsense"})).await;
        assert_eq!(e["code"], "usage", "{e}");
        // Arguments over the limit (1 MiB) are refused before anything is asked.
        let big = "x".repeat(2 * 1024 * 1024);
        let e = refused(&s, "add_task", json!({"title": "big", "body": big})).await;
        assert_eq!(e["code"], "too_large", "{e}");

        let beat = ok(&s, "heartbeat", json!({"id": id})).await;
        assert_eq!(beat["state"], "claimed");
        assert!(beat["conflicts"].is_array(), "{beat}");

        let listed = ok(&s, "list_tasks", json!({"state": "claimed"})).await;
        assert_eq!(listed["tasks"][0]["id"], id.as_str(), "{listed}");

        let submitted = ok(&s, "submit", json!({"id": id})).await;
        assert_eq!(submitted["id"], id.as_str());

        let outcome = ok(&s, "wait", json!({"id": id, "timeout_seconds": 60})).await;
        assert_eq!(outcome["outcome"], "merged", "{outcome}");
        let commit = outcome["commit"].as_str().unwrap();
        assert_eq!(repo.git(&["rev-parse", "main"]).trim(), commit);

        let log = ok(&s, "log", json!({"id": id})).await;
        assert!(
            log["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "merged"),
            "{log}"
        );
        let q = ok(&s, "queue", json!({})).await;
        assert_eq!(q["queue"], json!([]));

        s.cancel().await.unwrap();
    });
}

/// The daemon's own MCP endpoint (`[mcp] listen`): the same tools over streamable HTTP,
/// reached with the client config `switchyard mcp --http-config` prints; without its
/// token, or from a web page (an `Origin`), nothing gets in.
#[test]
fn mcp_over_http_serves_the_tools_behind_a_token() {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let port = crate::support::free_port();
    let repo = queue_repo(&format!("[mcp]\nlisten = \"127.0.0.1:{port}\"\n"));
    let _daemon = repo.start_daemon();

    let config = repo
        .run(["mcp", "--http-config", "--agent", "http-agent"])
        .expect(0)
        .json();
    let server = &config["mcpServers"]["switchyard"];
    assert_eq!(server["type"], "http");
    let url = server["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{port}/mcp"));
    let auth = server["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = auth.strip_prefix("Bearer ").unwrap().to_owned();
    assert_eq!(server["headers"]["X-Switchyard-Agent"], "http-agent");
    // The token is the daemon's, kept private in the state directory.
    let token_file = repo.root.join(".git/switchyard/mcp-token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&token_file.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // By hand, as an intruder would: no token, a wrong one, or a right one from a page.
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
    let status = |headers: &str| raw_post(port, headers, initialize);
    assert_eq!(status(""), 401);
    assert_eq!(
        status("Authorization: Bearer 0123456789abcdef0123456789abcdef\r\n"),
        401
    );
    assert_eq!(
        status(&format!(
            "Authorization: {auth}\r\nOrigin: http://evil.example\r\n"
        )),
        403
    );
    assert_eq!(status(&format!("Authorization: {auth}\r\n")), 200);
    // A name that is not this machine's (DNS rebinding) is refused, token or not.
    let rebound = raw_post_to(
        port,
        "rebound.attacker.example",
        &format!("Authorization: {auth}\r\n"),
        initialize,
    );
    assert_ne!(rebound, 200);
    assert!((400..500).contains(&rebound), "{rebound}");
    let tasks = repo.run(["--json", "task", "list"]).expect(0).json();
    assert_eq!(tasks, json!([]), "a refused request changed nothing");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connect = |agent: Option<&str>| {
            let mut headers = std::collections::HashMap::new();
            if let Some(agent) = agent {
                headers.insert(
                    http::HeaderName::from_static("x-switchyard-agent"),
                    http::HeaderValue::from_str(agent).unwrap(),
                );
            }
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url.clone())
                    .auth_header(token.clone())
                    .custom_headers(headers),
            );
            let config = ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("shared-client-name", "1.0"),
            );
            config.serve(transport)
        };
        let s = connect(Some("http-agent")).await.unwrap();
        assert_eq!(s.list_all_tools().await.unwrap().len(), 15);

        let task = ok(
            &s,
            "add_task",
            json!({"title": "Over HTTP", "scope": ["api"]}),
        )
        .await;
        let id = task["id"].as_str().unwrap().to_owned();
        let claimed = ok(&s, "claim", json!({})).await;
        assert_eq!(claimed["id"], id.as_str());
        // The header names the agent, not the client's shared name.
        assert_eq!(claimed["agent"], "http-agent");
        let worktree = PathBuf::from(claimed["worktree"].as_str().unwrap());
        commit_in(
            &worktree,
            "over http",
            &[("api/handler.txt", "line 1\nline 2 over http\nline 3\n")],
        );

        // A second client without the header must say who it is.
        let anonymous = connect(None).await.unwrap();
        let e = refused(&anonymous, "submit", json!({"id": id})).await;
        assert_eq!(e["code"], "usage", "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("x-switchyard-agent"),
            "{e}"
        );
        let e = refused(&anonymous, "submit", json!({"id": id, "agent": "intruder"})).await;
        assert_eq!(e["code"], "not_claim_holder", "{e}");
        anonymous.cancel().await.unwrap();

        ok(&s, "submit", json!({"id": id})).await;
        let outcome = ok(&s, "wait", json!({"id": id, "timeout_seconds": 60})).await;
        assert_eq!(outcome["outcome"], "merged", "{outcome}");
        s.cancel().await.unwrap();
    });
}

/// POSTs `body` to the MCP endpoint with the extra header lines, and returns the status.
fn raw_post(port: u16, headers: &str, body: &str) -> u16 {
    raw_post_to(port, &format!("127.0.0.1:{port}"), headers, body)
}

/// `raw_post` with `Host: host`.
fn raw_post_to(port: u16, host: &str, headers: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

/// `[mcp] listen` on a port in use stops the start before anything changes.
#[test]
fn an_mcp_port_in_use_stops_the_start_before_anything_changes() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let repo = queue_repo(&format!("[mcp]\nlisten = \"127.0.0.1:{port}\"\n"));
    repo.run_within(60, &[], ["daemon"])
        .refused(1, &format!("cannot listen for MCP on 127.0.0.1:{port}"));
    assert!(!repo.root.join(".git/switchyard/ledger.db").exists());
    assert!(!repo.root.join(".git/switchyard/daemon.sock").exists());
}
