//! Request decoding as the daemon does it: `switchyard::api::decode` into each request
//! type, plus task ids and states as written in paths and query strings.
//!
//! The first byte chooses what the rest is decoded as (its value modulo 8: AddTask,
//! Claim, ByAgent, Cancel, Decision, TaskFilter, a TaskId, a TaskState). Invariants
//! beyond "no panic": a decoded body encodes back to JSON that decodes to the same
//! value, and a refused one is explained in one line, free of control characters; a
//! parsed task id or state is written back exactly as it was given (one spelling per
//! id and state).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard::api::{self, AddTask, ByAgent, Cancel, Claim, Decision, TaskFilter};
use switchyard::model::{TaskId, TaskState};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => round_trip::<AddTask>(body),
        1 => round_trip::<Claim>(body),
        2 => round_trip::<ByAgent>(body),
        3 => round_trip::<Cancel>(body),
        4 => round_trip::<Decision>(body),
        5 => round_trip::<TaskFilter>(body),
        6 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(id) = text.parse::<TaskId>() {
                assert!(id.0 > 0, "{text:?} parsed as {id:?}");
                assert_eq!(id.to_string(), text, "task id {text:?} does not round-trip");
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(state) = text.parse::<TaskState>() {
                assert_eq!(
                    state.to_string(),
                    text,
                    "state {text:?} does not round-trip"
                );
                let json = serde_json::to_string(&state).expect("a state encodes");
                assert_eq!(api::decode::<TaskState>(json.as_bytes()), Ok(state));
            }
        }
    }
});

/// Decodes `body`; if that works, the value's JSON must decode to an equal value.
fn round_trip<T: DeserializeOwned + Serialize>(body: &[u8]) {
    let value = match api::decode::<T>(body) {
        Ok(value) => value,
        Err(e) => {
            // Documented as one line, for the `bad_request` reply; shown on terminals.
            assert!(
                !e.contains(char::is_control),
                "a control character in {e:?}"
            );
            return;
        }
    };
    let json = serde_json::to_string(&value).expect("a decoded request encodes");
    let again: T = api::decode(json.as_bytes())
        .unwrap_or_else(|e| panic!("{json} does not decode again: {e}"));
    let json_again = serde_json::to_string(&again).expect("encodes");
    assert_eq!(json, json_again, "decode(encode(x)) != x");
}
