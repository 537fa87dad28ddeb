//! Comment commands: `switchyard::github::command::parse` on arbitrary comment bodies.
//!
//! Invariants beyond "no panic": a body yields at most one command per line that holds
//! `/switchyard`; `priority` stays within -1000..=1000; a reason is non-empty and
//! trimmed; and each command found, written alone on a line the canonical way, parses
//! back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::github::command::{Command, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return; // GitHub delivers comment bodies as JSON strings: always UTF-8.
    };
    let found = parse(body);
    let candidates = body.lines().filter(|l| l.contains("/switchyard")).count();
    assert!(
        found.len() <= candidates,
        "{} commands from {candidates} lines",
        found.len()
    );
    for command in found.iter().flatten() {
        let canonical = match command {
            Command::Priority(n) => {
                assert!((-1000..=1000).contains(n), "priority {n}");
                format!("/switchyard priority {n}")
            }
            Command::Reject { reason } => {
                assert!(
                    !reason.is_empty() && reason.trim() == reason,
                    "reason {reason:?}"
                );
                format!("/switchyard reject {reason}")
            }
            other => format!("/switchyard {}", other.verb()),
        };
        assert_eq!(
            parse(&canonical),
            vec![Ok(command.clone())],
            "{canonical:?}"
        );
    }
});
