use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn errors(text: &str) -> Vec<String> {
    errors_with(text, &Context::default())
}

fn errors_with(text: &str, ctx: &Context) -> Vec<String> {
    match parse(text, "sy.toml", ctx) {
        Ok(_) => vec![],
        Err(LoadError::Invalid(diags)) => diags.iter().map(|d| d.to_string()).collect(),
        Err(other) => panic!("unexpected {other}"),
    }
}

/// Each case: config text and the exact diagnostics, in order.
fn check(text: &str, want: &[&str]) {
    assert_eq!(errors(text), want, "for config:\n{text}");
}

fn warnings(text: &str) -> Vec<String> {
    let loaded = parse(text, "sy.toml", &Context::default()).expect("valid");
    loaded.warnings.iter().map(|d| d.to_string()).collect()
}

#[test]
fn defaults() {
    let c = parse("", "sy.toml", &Context::default()).unwrap().config;
    assert_eq!(c.base, "main");
    assert_eq!(c.remote, None);
    assert_eq!(c.queue.verify, Vec::<String>::new());
    assert_eq!(c.queue.verify_timeout, Duration::from_secs(1200));
    assert_eq!(c.worktrees.pool, 2);
    assert_eq!(c.claims.lease, Duration::from_secs(1800));
    assert_eq!(c.claims.max_parallel, None);
    assert_eq!(c.queue.max_parallel.get(), 1);
    assert_eq!(c.queue.land, crate::config::Land::Squash);
    assert!(c.github.is_none());
    assert!(c.subsystems.is_empty());
}

#[test]
fn queue_parallelism_and_landing() {
    let c = parse(
        "[queue]\nmax_parallel = 64\nland = \"rebase\"\n",
        "sy.toml",
        &Context::default(),
    )
    .unwrap()
    .config;
    assert_eq!(c.queue.max_parallel.get(), 64);
    assert_eq!(c.queue.land, crate::config::Land::Rebase);
    check(
        "[queue]\nmax_parallel = 0\nland = \"merge\"\n",
        &[
            "sy.toml:2:16: [queue] `max_parallel` must be between 1 and 64, found 0",
            "sy.toml:3:8: [queue] `land` must be \"squash\" or \"rebase\", found \"merge\"",
        ],
    );
    check(
        "[queue]\nmax_attempts = 0\n[review]\nreviewers = [\"\u{200b}\"]\nrequired = 1\n[[subsystem]]\nname = \"a\"\npaths = [\"a/\"]\nreview = \"maybe\"\n",
        &[
            "sy.toml:2:16: [queue] `max_attempts` must be between 1 and 100, found 0",
            "sy.toml:4:14: [review] reviewer \"\\u{200b}\" must be 1 to 100 printable characters (no control or invisible ones)",
            "sy.toml:5:12: `required` must be true or false, found an integer",
            "sy.toml:9:10: `review` must be \"required\" or \"none\", found \"maybe\"",
        ],
    );
    check(
        "[queue]\nretries = -1\n",
        &["sy.toml:2:11: [queue] `retries` must be between 0 and 10, found -1"],
    );
    check(
        "[queue]\nmax_parallel = 65\n",
        &["sy.toml:2:16: [queue] `max_parallel` must be between 1 and 64, found 65"],
    );
    check(
        "[queue]\nlanes = true\n",
        &[
            "sy.toml:2:9: [queue] `lanes = true` needs [[subsystem]] entries: lanes come from what each subsystem owns and `depends_on`",
        ],
    );
    check(
        "[queue]\nlanes = \"yes\"\n",
        &["sy.toml:2:9: `lanes` must be true or false, found a string"],
    );
}

#[test]
fn toml_syntax_error() {
    check(
        "base = \"main\"\nremote = = \"x\"\n",
        &["sy.toml:2:10: extra `=`, expected nothing"],
    );
}

#[test]
fn unknown_keys_with_suggestions() {
    check(
        "bsae = \"main\"\n[queue]\nverfy = []\n[worktrees]\nzzz = 1\n",
        &[
            "sy.toml:1:1: unknown key `bsae` in the top level; did you mean `base`?",
            "sy.toml:3:1: unknown key `verfy` in [queue]; did you mean `verify`?",
            "sy.toml:5:1: unknown key `zzz` in [worktrees] (known keys: root, pool, copy, setup, setup_timeout)",
        ],
    );
    check(
        "[claims]\nlease = \"forever\"\nmax_parallel = 0\nlaese = 1\n",
        &[
            "sy.toml:2:9: invalid duration \"forever\": write a number with a unit, like \"90s\", \"20m\" or \"1h30m\" (units: ms, s, m, h, d)",
            "sy.toml:3:16: `max_parallel` must be at least 1, found 0 (leave it out for no cap)",
            "sy.toml:4:1: unknown key `laese` in [claims]; did you mean `lease`?",
        ],
    );
    check(
        "[[subsystems]]\nname = \"a\"\n",
        &["sy.toml:1:3: unknown key `subsystems` in the top level; did you mean `subsystem`?"],
    );
}

#[test]
fn wrong_types() {
    check(
        "base = 3\n[[subsystem]]\nname = \"a\"\npaths = \"src/**\"\nmax_parallel = \"2\"\nverify = [\"ok\", 1]\n",
        &[
            "sy.toml:1:8: `base` must be a string, found an integer",
            "sy.toml:4:9: `paths` must be a list of strings, found a string",
            "sy.toml:5:16: `max_parallel` must be an integer, found a string",
            "sy.toml:6:17: `verify` must be a list of strings, but this element is an integer",
        ],
    );
    check(
        "[subsystem]\nname = \"a\"\n",
        &["sy.toml:1:1: `subsystem` must be an array of tables ([[subsystem]]), found a table"],
    );
}

#[test]
fn invalid_and_unsupported_globs() {
    check(
        "[[subsystem]]\nname = \"a\"\npaths = [\"src/**\", \"src/[a\", \"!src/x\", \"../up/**\", \"\"]\n",
        &[
            "sy.toml:3:20: invalid glob \"src/[a\": unclosed character class; missing ']'",
            "sy.toml:3:30: pattern \"!src/x\": negation (`!`) is not supported; ownership is decided by the last matching rule, so give the carved-out paths their own rule after this one",
            "sy.toml:3:40: pattern \"../up/**\": the path component \"..\" can never match a path as git stores it (relative to the root, no `.`, `..` or empty components)",
            "sy.toml:3:52: empty pattern",
        ],
    );
}

#[test]
fn subsystem_rules() {
    check(
        "[[subsystem]]\nname = \"a\"\npaths = [\"a/\"]\nmax_parallel = 0\napproval = \"maybe\"\n\
         [[subsystem]]\nname = \"a\"\npaths = [\"b/\"]\n\
         [[subsystem]]\npaths = []\n\
         [[subsystem]]\nname = \"bad name\"\npaths = []\n",
        &[
            "sy.toml:4:16: `max_parallel` must be at least 1, found 0 (leave it out for no cap)",
            "sy.toml:5:12: `approval` must be \"required\" or \"none\", found \"maybe\"",
            "sy.toml:7:8: duplicate subsystem name \"a\" (first defined on line 2)",
            "sy.toml:9:1: missing key `name` in [[subsystem]]",
            "sy.toml:12:8: invalid subsystem name \"bad name\": use 1 to 64 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit",
        ],
    );
    check(
        "[[subsystem]]\nname = \"a\"\npaths = [\"a/\"]\nmax_parallel = -3\n",
        &["sy.toml:4:16: `max_parallel` must be at least 1, found -3 (leave it out for no cap)"],
    );
}

#[test]
fn depends_on_unknown_and_cycles() {
    check(
        "[[subsystem]]\nname = \"a\"\npaths = [\"a/\"]\ndepends_on = [\"b\", \"zz\"]\n\
         [[subsystem]]\nname = \"b\"\npaths = [\"b/\"]\ndepends_on = [\"c\"]\n\
         [[subsystem]]\nname = \"c\"\npaths = [\"c/\"]\ndepends_on = [\"a\"]\n\
         [[subsystem]]\nname = \"d\"\npaths = [\"d/\"]\ndepends_on = [\"d\"]\n",
        &[
            "sy.toml:4:20: `depends_on` names unknown subsystem \"zz\"",
            "sy.toml:12:15: `depends_on` forms a cycle: a -> b -> c -> a",
            "sy.toml:16:15: `depends_on` forms a cycle: d -> d",
        ],
    );
}

#[test]
fn durations_and_worktrees() {
    check(
        "[queue]\nverify = [\"  \"]\nverify_timeout = \"20 mins later\"\n[worktrees]\npool = 1000\ncopy = [\"/etc/passwd\", \"../x\"]\nsetup_timeout = \"0s\"\n",
        &[
            "sy.toml:2:11: empty command in `verify`",
            "sy.toml:3:18: invalid duration \"20 mins later\": write a number with a unit, like \"90s\", \"20m\" or \"1h30m\" (units: ms, s, m, h, d)",
            "sy.toml:5:8: `pool` must be between 0 and 256, found 1000",
            "sy.toml:6:9: `copy` entry \"/etc/passwd\" must be a relative path inside the repository",
            "sy.toml:6:24: `copy` entry \"../x\" must be a relative path inside the repository",
            "sy.toml:7:17: `setup_timeout` must be longer than zero",
        ],
    );
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("").is_err());
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("m5").is_err());
    assert!(parse_duration(" 5s").is_err());
    assert_eq!(parse_duration("36500d"), Ok(crate::config::MAX_DURATION));
}

#[test]
fn values_have_bounds() {
    check(
        "[claims]\nlease = \"4294967295d\"\nmax_parallel = 5000\n[queue]\nverify_timeout = \"99999999999999999999s\"\n[github]\nrepo = \"o/r\"\npoll_interval = \"10ms\"\n",
        &[
            "sy.toml:2:9: duration \"4294967295d\" is too long: at most 100 years (36500d)",
            "sy.toml:3:16: `max_parallel` must be at most 1000, found 5000 (leave it out for no cap)",
            "sy.toml:5:18: duration \"99999999999999999999s\" is too long: at most 100 years (36500d)",
            "sy.toml:8:17: `poll_interval` must be at least 100ms",
        ],
    );
}

#[test]
fn worktree_root_must_be_outside_the_checkout() {
    let ctx = Context {
        repo_root: Some(PathBuf::from("/src/repo")),
        ..Default::default()
    };
    assert_eq!(
        errors_with("[worktrees]\nroot = \"wt\"\n", &ctx),
        vec![
            "sy.toml:2:8: `root` \"wt\" is inside the repository's checkout (/src/repo); task worktrees must live outside it, for example \"../repo.worktrees\""
        ]
    );
    assert!(errors_with("[worktrees]\nroot = \"../wt\"\n", &ctx).is_empty());
    let c = parse("[worktrees]\nroot = \"../wt\"\n", "sy.toml", &ctx)
        .unwrap()
        .config;
    assert_eq!(
        c.worktrees.root_for(&PathBuf::from("/src/repo")),
        PathBuf::from("/src/wt")
    );
    let c = parse("", "sy.toml", &ctx).unwrap().config;
    assert_eq!(
        c.worktrees.root_for(&PathBuf::from("/src/repo")),
        PathBuf::from("/src/repo.worktrees")
    );
}

#[test]
fn github_section() {
    check(
        "[github]\nrepo = \"ghp_SECRET\"\napi_url = \"ftp://x\"\ntoken_env = \"ghp_abcdefSECRET\"\n",
        &[
            "sy.toml:2:8: `repo` must be \"owner/name\", found what looks like a token",
            "sy.toml:3:11: `api_url` must be an http(s) URL, found \"ftp://x\"",
            "sy.toml:4:13: `token_env` holds what looks like a GitHub token; it must name the environment variable that holds the token (like \"GITHUB_TOKEN\"). Remove the token from this file and revoke it",
        ],
    );
    check(
        "[github]\n",
        &["sy.toml:1:1: missing key `repo` in [github]"],
    );
    let c = parse("[github]\nrepo = \"o/r\"\n", "sy.toml", &Context::default())
        .unwrap()
        .config;
    let gh = c.github.unwrap();
    assert_eq!(gh.api_url, "https://api.github.com");
    assert_eq!(gh.token_env, "GITHUB_TOKEN");
}

#[test]
fn the_networked_api() {
    let ctx = Context {
        config_dir: Some(PathBuf::from("/etc/sy")),
        ..Default::default()
    };
    let c = parse(
        "[api]\nlisten = \"0.0.0.0:7878\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/keys/key.pem\"\ntokens = \"../tokens\"\n",
        "sy.toml",
        &ctx,
    )
    .unwrap()
    .config;
    let listen = c.api.listen.unwrap();
    assert_eq!(listen.addr, "0.0.0.0:7878".parse().unwrap());
    let tls = listen.tls.unwrap();
    assert_eq!(tls.cert, PathBuf::from("/etc/sy/tls/cert.pem"));
    assert_eq!(tls.key, PathBuf::from("/keys/key.pem"));
    assert_eq!(listen.tokens, PathBuf::from("/etc/tokens"));
    assert_eq!(c.api.tokens, Some(PathBuf::from("/etc/tokens")));
    // Plain HTTP on loopback, IPv4 or IPv6.
    for addr in ["127.0.0.1:0", "[::1]:7878"] {
        let text = format!("[api]\nlisten = \"{addr}\"\ntokens = \"t\"\n");
        let c = parse(&text, "sy.toml", &Context::default()).unwrap().config;
        assert!(c.api.listen.unwrap().tls.is_none());
    }
    // Off by default; tokens alone (for `switchyard token`) serve nothing.
    assert_eq!(
        parse("", "sy.toml", &ctx).unwrap().config.api,
        Api::default()
    );
    let c = parse("[api]\ntokens = \"t\"\n", "sy.toml", &ctx)
        .unwrap()
        .config;
    assert!(c.api.listen.is_none());
    check(
        "[api]\nlisten = \"0.0.0.0:7878\"\ntokens = \"t\"\n",
        &[
            "sy.toml:2:10: [api] `listen` = \"0.0.0.0:7878\" is not a loopback address, so it needs HTTPS: set `tls_cert` and `tls_key` (plain HTTP is only for 127.0.0.1 or ::1)",
        ],
    );
    check(
        "[api]\nlisten = \"localhost:80\"\ntls_cert = \"c\"\ntokens = \"\"\nhttps = 1\n",
        &[
            "sy.toml:2:10: [api] `listen` must be an address with a port, like \"127.0.0.1:7878\" or \"0.0.0.0:7878\", found \"localhost:80\"",
            "sy.toml:3:12: [api] `tls_cert` needs `tls_key`, the certificate's private key",
            "sy.toml:4:10: [api] `tokens` must not be empty",
            "sy.toml:5:1: unknown key `https` in [api] (known keys: listen, tls_cert, tls_key, tokens)",
        ],
    );
    check(
        "[api]\nlisten = \"127.0.0.1:7878\"\n",
        &[
            "sy.toml:2:10: [api] `listen` needs `tokens`: the file of the tokens clients present (make it with `switchyard token add NAME`)",
        ],
    );
    check(
        "[api]\ntls_key = \"k\"\ntokens = \"t\"\n",
        &[
            "sy.toml:2:11: [api] `tls_key` needs `tls_cert`, the certificate it belongs to",
            "sy.toml:2:11: [api] `tls_key` applies only with `listen`, the address to serve on",
        ],
    );
    check(
        "[commands]\nenv = [\"SWITCHYARD_TOKEN\"]\n",
        &[
            "sy.toml:2:8: `env` must not pass SWITCHYARD_TOKEN to commands: it holds a client's API token",
        ],
    );
}

#[test]
fn github_keys_for_deciding_polling_and_webhooks() {
    let c = parse(
        "[github]\nrepo = \"o/r\"\napprovers = [\"alice\", \"@org/team-a\"]\nlabels = [\"q\"]\npoll_interval = \"5s\"\ndelete_branch = true\nwebhook_listen = \"127.0.0.1:9000\"\nwebhook_secret_env = \"HOOK\"\n",
        "sy.toml",
        &Context::default(),
    )
    .unwrap()
    .config;
    let gh = c.github.unwrap();
    assert_eq!(
        gh.approvers,
        vec![
            Approver::User("alice".into()),
            Approver::Team {
                org: "org".into(),
                slug: "team-a".into()
            }
        ]
    );
    assert_eq!(gh.labels, vec!["q"]);
    assert_eq!(gh.poll_interval, Duration::from_secs(5));
    assert!(gh.delete_branch);
    let hook = gh.webhook.unwrap();
    assert_eq!(hook.listen.port(), 9000);
    assert_eq!(hook.secret_env, "HOOK");
    assert_eq!(
        c.remote.as_deref(),
        Some("origin"),
        "[github] implies a remote"
    );

    check(
        "[github]\nrepo = \"o/r\"\napprovers = [\"a b\", \"@org\"]\npoll_interval = \"0s\"\ndelete_branch = \"yes\"\nwebhook_listen = \"nowhere\"\n",
        &[
            "sy.toml:3:14: approver \"a b\" must be a GitHub login (\"alice\") or a team (\"@org/team\")",
            "sy.toml:3:21: approver \"@org\" must be a GitHub login (\"alice\") or a team (\"@org/team\")",
            "sy.toml:4:17: `poll_interval` must be longer than zero",
            "sy.toml:5:17: `delete_branch` must be true or false, found a string",
            "sy.toml:6:18: `webhook_listen` must be an address with a port, like \"127.0.0.1:8787\", found \"nowhere\"",
            "sy.toml:6:18: webhooks need `webhook_secret_env`: the environment variable holding the secret their signatures are checked with",
        ],
    );
}

#[test]
fn mcp_listens_on_loopback_only() {
    let c = parse(
        "[mcp]\nlisten = \"127.0.0.1:8790\"\n",
        "sy.toml",
        &Context::default(),
    )
    .unwrap()
    .config;
    assert_eq!(c.mcp_listen, Some("127.0.0.1:8790".parse().unwrap()));
    check(
        "[mcp]\nlisten = \"0.0.0.0:8790\"\n",
        &[
            "sy.toml:2:10: [mcp] `listen` must be a loopback address (127.0.0.1 or [::1]), found 0.0.0.0:8790: MCP over HTTP serves agents on this machine",
        ],
    );
    check(
        "[mcp]\nlisten = \"localhost\"\nlsten = 1\n",
        &[
            "sy.toml:2:10: [mcp] `listen` must be an address with a port, like \"127.0.0.1:8791\", found \"localhost\"",
            "sy.toml:3:1: unknown key `lsten` in [mcp]; did you mean `listen`?",
        ],
    );
}

#[test]
fn the_dashboard_listens_on_loopback_or_with_a_token() {
    let c = parse(
        "[dashboard]\nlisten = \"127.0.0.1:8790\"\n",
        "sy.toml",
        &Context::default(),
    )
    .unwrap()
    .config;
    let d = c.dashboard.unwrap();
    assert_eq!(d.listen.port(), 8790);
    assert_eq!(d.token_env, None);
    assert_eq!(d.url(), "http://127.0.0.1:8790/");
    let c = parse(
        "[dashboard]\nlisten = \"0.0.0.0:8790\"\ntoken_env = \"DASH\"\n[commands]\nenv = [\"DASH\"]\n",
        "sy.toml",
        &Context::default(),
    );
    assert!(c.is_err(), "a command must not get the dashboard's token");
    let c = parse(
        "[dashboard]\nlisten = \"[::]:8790\"\ntoken_env = \"DASH\"\n",
        "sy.toml",
        &Context::default(),
    )
    .unwrap()
    .config;
    let d = c.dashboard.unwrap();
    assert_eq!(d.token_env.as_deref(), Some("DASH"));
    assert_eq!(
        d.url(),
        "http://[::1]:8790/",
        "every interface is opened on loopback"
    );
    assert!(
        parse("", "sy.toml", &Context::default())
            .unwrap()
            .config
            .dashboard
            .is_none()
    );

    check(
        "[dashboard]\nlisten = \"localhost\"\n",
        &[
            "sy.toml:2:10: `listen` must be an address with a port, like \"127.0.0.1:8790\", found \"localhost\"",
        ],
    );
    check(
        "[dashboard]\nlisten = \"0.0.0.0:8790\"\n",
        &[
            "sy.toml:2:10: `listen` = \"0.0.0.0:8790\" is not a loopback address: set `token_env` too, so that every request needs the token (or listen on 127.0.0.1)",
        ],
    );
    check(
        "[dashboard]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"ghp_abcdef\"\nwat = 1\n",
        &[
            "sy.toml:2:10: `listen` needs a port of its own (not 0), so that the page has an address to open",
            "sy.toml:3:13: `token_env` must be an environment variable name (letters, digits and '_', not starting with a digit), like \"SWITCHYARD_DASHBOARD_TOKEN\", never the token",
            "sy.toml:4:1: unknown key `wat` in [dashboard] (known keys: listen, token_env)",
        ],
    );
    check(
        "[dashboard]\ntoken_env = \"DASH\"\n[commands]\nenv = [\"DASH\"]\n",
        &[
            "sy.toml:1:1: missing key `listen` in [dashboard]",
            "sy.toml:4:8: `env` must not pass DASH to commands: it holds a secret of [dashboard]",
        ],
    );
}

#[test]
fn verify_on_github_checks() {
    let c = parse(
        "[queue]\nverify = \"github-checks\"\nrequired_checks = [\"build\"]\n[github]\nrepo = \"o/r\"\n",
        "sy.toml",
        &Context::default(),
    )
    .unwrap()
    .config;
    assert_eq!(
        c.queue.verify_on,
        VerifyOn::GithubChecks {
            required: vec!["build".into()]
        }
    );
    check(
        "[queue]\nverify = \"github-checks\"\n",
        &[
            "sy.toml:2:10: `verify = \"github-checks\"` needs a [github] section",
            "sy.toml:2:10: `verify = \"github-checks\"` needs `required_checks`: the names of the check runs or statuses that must pass",
        ],
    );
    check(
        "[queue]\nverify = \"make test\"\n",
        &[
            "sy.toml:2:10: `verify` must be a list of commands or \"github-checks\", found \"make test\"",
        ],
    );
    check(
        "[queue]\nverify = [\"true\"]\nrequired_checks = [\"build\"]\n",
        &["sy.toml:3:19: `required_checks` applies only with verify = \"github-checks\""],
    );
}

#[test]
fn secrets_are_never_echoed() {
    let all = errors("[github]\nrepo = \"o/r\"\ntoken_env = \"not a name SECRET\"\n").join("\n");
    assert!(all.contains("`token_env` must be an environment variable name"));
    assert!(!all.contains("SECRET"));
}

#[test]
fn all_problems_at_once() {
    check(
        "base = \"a..b\"\nremote = \"bad remote\"\nwat = 1\n[[subsystem]]\nname = \"x y\"\npaths = [\"[\"]\ndepends_on = [\"ghost\"]\n",
        &[
            "sy.toml:1:8: `base` \"a..b\" is not a valid branch name",
            "sy.toml:2:10: `remote` \"bad remote\" is not a valid remote name",
            "sy.toml:3:1: unknown key `wat` in the top level (known keys: base, remote, queue, subsystem, claims, worktrees, commands, github, review, mcp, api, dashboard)",
            "sy.toml:5:8: invalid subsystem name \"x y\": use 1 to 64 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit",
            "sy.toml:6:10: invalid glob \"[\": unclosed character class; missing ']'",
            "sy.toml:7:15: `depends_on` names unknown subsystem \"ghost\"",
        ],
    );
    // A key of the wrong type is reported once, not also as missing.
    check(
        "[[subsystem]]\nname = 1\npaths = 2\n[github]\nrepo = 3\n",
        &[
            "sy.toml:2:8: `name` must be a string, found an integer",
            "sy.toml:3:9: `paths` must be a list of strings, found an integer",
            "sy.toml:5:8: `repo` must be a string, found an integer",
        ],
    );
}

#[test]
fn warnings_for_dead_rules_and_empty_paths() {
    assert_eq!(
        warnings(
            "[[subsystem]]\nname = \"auth\"\npaths = [\"src/auth/**\"]\n\
             [[subsystem]]\nname = \"core\"\npaths = [\"src/\"]\n\
             [[subsystem]]\nname = \"none\"\npaths = []\n"
        ),
        vec![
            "sy.toml:9:9: warning: subsystem \"none\" has an empty `paths` list; it owns nothing",
            "sy.toml:3:10: warning: rule \"src/auth/**\" of subsystem auth can never win: the later rule \"src/\" of subsystem core (sy.toml:6) matches every path it matches",
        ]
    );
}

#[test]
fn rules_keep_file_order_and_locations() {
    let c = parse(
        "[[subsystem]]\nname = \"core\"\npaths = [\"src/\"]\n[[subsystem]]\nname = \"auth\"\npaths = [\"src/auth/\"]\n",
        "sy.toml",
        &Context::default(),
    )
    .unwrap()
    .config;
    let rule = c.ownership.owner("src/auth/a.rs").unwrap();
    assert_eq!(rule.subsystem.as_str(), "auth");
    assert_eq!(rule.origin.to_string(), "sy.toml:6:10");
    assert_eq!(
        c.ownership.owner("src/b.rs").unwrap().subsystem.as_str(),
        "core"
    );
}

/// The shipped example documents every key; parsing it keeps it honest.
#[test]
fn example_config_parses_and_sets_every_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let loaded =
        parse(&text, "config/example.toml", &Context::default()).unwrap_or_else(|e| match e {
            LoadError::Invalid(d) => panic!("{d:#?}"),
            e => panic!("{e}"),
        });
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let (raw, errs) = raw::read(&text);
    assert!(errs.is_empty());
    assert!(raw.base.is_some() && raw.remote.is_some());
    let q = raw.queue.unwrap();
    assert!(q.verify.is_some() && q.verify_timeout.is_some() && q.max_attempts.is_some());
    let r = raw.review.unwrap();
    assert!(r.required.is_some() && r.reviewers.is_some() && r.lease.is_some());
    assert!(raw.mcp.unwrap().listen.is_some());
    let d = raw.dashboard.unwrap();
    assert!(d.listen.is_some() && d.token_env.is_some());
    let c = raw.claims.unwrap();
    assert!(c.lease.is_some() && c.max_parallel.is_some());
    let w = raw.worktrees.unwrap();
    assert!(w.root.is_some() && w.pool.is_some() && w.copy.is_some());
    assert!(w.setup.is_some() && w.setup_timeout.is_some());
    let g = raw.github.unwrap();
    assert!(g.repo.is_some() && g.api_url.is_some() && g.token_env.is_some());
    assert!(g.approvers.is_some() && g.labels.is_some() && g.poll_interval.is_some());
    assert!(g.delete_branch.is_some() && g.webhook_listen.is_some());
    assert!(g.webhook_secret_env.is_some());
    let a = raw.api.unwrap();
    assert!(a.listen.is_some() && a.tls_cert.is_some() && a.tls_key.is_some());
    assert!(a.tokens.is_some());
    // The CI-verify keys exclude the local ones, so they are shown commented out.
    assert!(text.contains("\n# verify = \"github-checks\"\n# required_checks = ["));
    for field in [
        "name",
        "paths",
        "max_parallel",
        "verify",
        "approval",
        "review",
        "depends_on",
    ] {
        let set = raw.subsystems.iter().any(|s| match field {
            "name" => s.name.is_some(),
            "paths" => s.paths.is_some(),
            "max_parallel" => s.max_parallel.is_some(),
            "verify" => s.verify.is_some(),
            "approval" => s.approval.is_some(),
            "review" => s.review.is_some(),
            _ => s.depends_on.is_some(),
        });
        assert!(set, "no subsystem in the example sets `{field}`");
    }
}
