//! The role table, identity rules, token format and tokens file, without a daemon.

use super::file::{self, FileError};
use super::*;

fn entry(name: &str, roles: &[Role]) -> Entry {
    Entry {
        name: name.into(),
        hash: TokenHash::of(&format!("sy_{name}")),
        roles: roles_or_default(roles.to_vec()),
    }
}

/// The whole table, written out: a change to who may do what shows here.
#[test]
fn each_route_needs_exactly_its_role() {
    use Endpoint as E;
    let reads = [
        E::Status,
        E::ListTasks,
        E::ShowTask,
        E::TaskEvents,
        E::Wait,
        E::Conflicts,
        E::Queue,
        E::QueueEvents,
    ];
    for e in E::ALL {
        let want = if reads.contains(&e) {
            Permit::AnyToken
        } else {
            match e {
                E::Claim | E::Heartbeat | E::Release | E::Submit => Permit::Role(Role::Executor),
                E::ReviewNext | E::ReviewApprove | E::ReviewChanges => Permit::Role(Role::Reviewer),
                E::AddTask | E::Plan => Permit::Role(Role::Planner),
                _ => Permit::Role(Role::Admin),
            }
        };
        assert_eq!(permit(Call::Route(e)), want, "{e:?}");
    }
    for e in [E::Approve, E::Reject, E::Cancel, E::Pause, E::Resume] {
        assert_eq!(permit(Call::Route(e)), Permit::Role(Role::Admin), "{e:?}");
    }
    assert_eq!(permit(Call::TakeBack), Permit::Role(Role::Admin));
}

#[test]
fn admin_may_do_everything_and_others_only_theirs() {
    let admin = entry("root", &[Role::Admin]);
    let exec = entry("bot", &[]);
    let both = entry("rev", &[Role::Reviewer, Role::Planner]);
    for e in Endpoint::ALL {
        assert!(allowed(&admin, Call::Route(e)).is_ok(), "{e:?}");
    }
    assert!(allowed(&admin, Call::TakeBack).is_ok());
    assert!(allowed(&exec, Call::Route(Endpoint::Claim)).is_ok());
    assert!(allowed(&exec, Call::Route(Endpoint::Queue)).is_ok());
    assert!(allowed(&exec, Call::TakeBack).is_err());
    let refusal = allowed(&exec, Call::Route(Endpoint::Approve)).unwrap_err();
    assert_eq!(
        refusal,
        "the token of bot (executor) may not approve tasks: that needs the admin role"
    );
    assert!(allowed(&both, Call::Route(Endpoint::Plan)).is_ok());
    assert!(allowed(&both, Call::Route(Endpoint::ReviewApprove)).is_ok());
    let refusal = allowed(&both, Call::Route(Endpoint::Submit)).unwrap_err();
    assert!(
        refusal.contains("needs the executor role (or admin)"),
        "{refusal}"
    );
}

#[test]
fn a_request_acts_as_the_token_owner_or_is_refused() {
    let mut claim = api::Claim {
        id: None,
        agent: String::new(),
        remote: true,
    };
    claim.act_as("alice").unwrap();
    assert_eq!(claim.agent, "alice");
    // Another spelling of the same name is the same name.
    claim.agent = " ALICE ".into();
    claim.act_as("alice").unwrap();
    assert_eq!(claim.agent, "alice");
    claim.agent = "bob".into();
    let e = claim.act_as("alice").unwrap_err();
    assert_eq!(e.code(), api::ErrorCode::NotAllowed);
    assert!(
        e.message()
            .starts_with("this token belongs to alice; it cannot act as bob"),
        "{}",
        e.message()
    );
    claim.agent = "\u{7}".into();
    assert_eq!(
        claim.act_as("alice").unwrap_err().code(),
        api::ErrorCode::BadRequest
    );

    let mut decision = api::Decision {
        by: String::new(),
        reason: String::new(),
    };
    decision.act_as("root").unwrap();
    assert_eq!(decision.by, "root");

    // A person's release fills nothing else in; an executor's names the agent.
    let mut release = api::ByAgent {
        agent: String::new(),
        by: Some("root".into()),
    };
    release.act_as("root").unwrap();
    assert_eq!(
        (release.agent.as_str(), release.by.as_deref()),
        ("", Some("root"))
    );
    let mut release = api::ByAgent {
        agent: String::new(),
        by: Some("mallory".into()),
    };
    assert!(release.act_as("root").is_err());
    let mut beat = api::ByAgent {
        agent: String::new(),
        by: None,
    };
    beat.act_as("bot").unwrap();
    assert_eq!(beat.agent, "bot");
    let mut beat = api::ByAgent {
        agent: "bot".into(),
        by: Some("someone".into()),
    };
    assert!(beat.act_as("bot").is_err());

    let mut next = api::ReviewNext {
        reviewer: api::Reviewer::default(),
    };
    next.act_as("rev").unwrap();
    assert_eq!(next.reviewer.agent.as_deref(), Some("rev"));
    let mut verdict = api::ReviewVerdict {
        reviewer: api::Reviewer {
            agent: None,
            by: Some("rev".into()),
        },
        notes: String::new(),
        commit: None,
    };
    verdict.act_as("rev").unwrap();
    assert_eq!(verdict.reviewer.agent, None);
    verdict.reviewer.by = Some("other".into());
    assert!(verdict.act_as("rev").is_err());
}

#[test]
fn tokens_are_random_hashed_and_never_formatted() {
    let a = Token::generate().unwrap();
    let b = Token::generate().unwrap();
    assert_ne!(a, b);
    assert!(a.expose().starts_with(TOKEN_PREFIX));
    assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 64);
    assert_eq!(format!("{a:?}"), "Token(..)");
    assert_eq!(TokenHash::parse(&a.hash().to_hex()), Some(a.hash()));
    // SHA-256 of "abc", the standard's own example.
    assert_eq!(
        TokenHash::of("abc").to_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let tokens = Tokens::new(vec![
        Entry {
            name: "a".into(),
            hash: a.hash(),
            roles: vec![Role::Executor],
        },
        Entry {
            name: "b".into(),
            hash: b.hash(),
            roles: vec![Role::Admin],
        },
    ]);
    assert_eq!(tokens.find(b.expose()).map(|e| e.name.as_str()), Some("b"));
    assert_eq!(tokens.find(a.expose()).map(|e| e.name.as_str()), Some("a"));
    assert!(tokens.find("sy_nope").is_none());
    assert!(tokens.find("").is_none());
}

#[test]
fn token_names_are_plain_and_lower_case() {
    assert_eq!(token_name("Build-Bot_1").unwrap(), "build-bot_1");
    assert_eq!(token_name("ci@example.com").unwrap(), "ci@example.com");
    for bad in ["", "a:b", "a b", "-x", "é", &"x".repeat(65)] {
        assert!(token_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_file_round_trips_and_every_bad_line_is_located() {
    let mut tokens = Tokens::default();
    tokens.add(entry("alice", &[])).unwrap();
    tokens
        .add(entry("bob", &[Role::Reviewer, Role::Admin, Role::Reviewer]))
        .unwrap();
    assert!(tokens.add(entry("alice", &[Role::Admin])).is_err());
    let text = file::render(&tokens);
    assert_eq!(file::parse(&text, "tokens").unwrap(), tokens);
    assert!(text.contains(":reviewer,admin\n"), "{text}");

    let hash = TokenHash::of("x").to_hex();
    let text = format!(
        "# c\n\nalice:{hash}\n  bob:{hash}:executor,boss\nbad line\ncarol:sy_secret:admin\nalice:{hash}:admin\nBad Name:{hash}\n"
    );
    let Err(FileError::Invalid(errors)) = file::parse(&text, "tok") else {
        panic!("parsed")
    };
    let lines: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].starts_with("tok:4:81: unknown role \"boss\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("tok:5:1: a line must be"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("tok:6:7: the second field"),
        "{}",
        lines[2]
    );
    assert!(!lines[2].contains("sy_secret"));
    assert!(
        lines[3].starts_with("tok:7:1: alice has a token already"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("tok:8:1: a token's name"),
        "{}",
        lines[4]
    );
    // A name-only line gets the default role.
    let parsed = file::parse(&format!("x:{hash}\n"), "t").unwrap();
    assert_eq!(parsed.entries()[0].roles, DEFAULT_ROLES);
}

#[test]
fn updates_are_private_atomic_and_refuse_what_they_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    let token = Token::generate().unwrap();
    file::update(&path, |t| {
        t.add(Entry {
            name: "alice".into(),
            hash: token.hash(),
            roles: vec![Role::Executor],
        })
    })
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (_, read) = file::read(&path).unwrap();
    assert_eq!(read.find(token.expose()).unwrap().name, "alice");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(token.expose()));

    // Open to others: the daemon refuses it, naming it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = file::read(&path).unwrap_err().to_string();
    assert!(e.contains("is open to other users (mode 0640)"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    // A rewrite makes it private again.
    let revoked = file::update(&path, |t| Ok(t.revoke("alice"))).unwrap();
    assert!(revoked);
    assert!(file::read(&path).unwrap().1.entries().is_empty());

    // A file that does not parse is not rewritten.
    std::fs::write(&path, "garbage\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(file::update(&path, |t| Ok(t.revoke("x"))).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage\n");

    let e = file::read(&dir.path().join("none"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn a_hash_matches_its_token_and_nothing_else() {
    let hash = TokenHash::of("sy_abc");
    assert!(hash.matches("sy_abc"));
    assert!(!hash.matches("sy_abd"));
    assert!(!hash.matches("sy_ab"));
    assert!(!hash.matches(""));
}
