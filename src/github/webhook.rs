//! Webhook deliveries: the signature check, and which PR a delivery is about. A valid
//! delivery only nudges the poller to look at GitHub now; both paths share one
//! handling, so a delivery never does anything a poll would not.

use ring::hmac;
use serde_json::Value;

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the body, in constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag).is_ok()
}

/// The signature header GitHub would send for `body` (for tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The PR a delivery concerns, for the events switchyard reacts to.
pub fn pull_number(event: &str, payload: &Value) -> Option<u64> {
    match event {
        "pull_request" | "pull_request_review" => payload.pointer("/pull_request/number"),
        "issue_comment" => payload
            .get("issue")
            .filter(|i| i.get("pull_request").is_some())
            .and_then(|i| i.get("number")),
        _ => None,
    }
    .and_then(Value::as_u64)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        // The example from GitHub's documentation on validating deliveries.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some(header)
        ));
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            header
        );
        assert!(!signature_ok(b"wrong", b"Hello, World!", Some(header)));
        assert!(!signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            Some(header)
        ));
        assert!(!signature_ok(b"s", b"x", None));
        assert!(!signature_ok(b"s", b"x", Some("sha1=00")));
        assert!(!signature_ok(b"s", b"x", Some("sha256=zz")));
    }

    #[test]
    fn deliveries_name_their_pull_request() {
        let pr = serde_json::json!({"pull_request": {"number": 7}});
        assert_eq!(pull_number("pull_request_review", &pr), Some(7));
        let comment = serde_json::json!({"issue": {"number": 9, "pull_request": {}}});
        assert_eq!(pull_number("issue_comment", &comment), Some(9));
        let issue = serde_json::json!({"issue": {"number": 9}});
        assert_eq!(pull_number("issue_comment", &issue), None);
        assert_eq!(pull_number("push", &pr), None);
    }
}
