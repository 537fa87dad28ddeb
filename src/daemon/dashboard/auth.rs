//! Who may look and who may act. Without `[dashboard] token_env` the page is read-only
//! (and, by the config's rule, only on loopback). With it, every request needs the
//! token: `Authorization: Bearer TOKEN` (scrapers, scripts), or a session cookie that
//! the sign-in form sets in exchange for the token, so that a browser never holds the
//! token in a URL, a page or a script: the cookie is random (not derived from the
//! token), `HttpOnly` (no script reads it) and `SameSite=Strict` (no other site's form
//! sends it), and lives in the daemon's memory only (a restart signs everyone out).
//! Each session also has a form token that every action must carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// How long a sign-in lasts.
pub(super) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most: a flood of sign-ins (with the token) cannot fill memory; the
/// oldest goes first.
const MAX_SESSIONS: usize = 256;
/// The shortest token accepted: a guessable one would make the port an open door.
pub(super) const MIN_TOKEN_CHARS: usize = 16;

/// The token and the sessions it opened.
pub(super) struct Guard {
    /// The token is kept only as a keyed hash, compared in constant time.
    key: hmac::Key,
    tag: hmac::Tag,
    sessions: Mutex<HashMap<String, Session>>,
    random: SystemRandom,
    /// The cookie's name: with the port in it, dashboards of several repositories on
    /// one host (cookies ignore ports) do not sign each other out.
    pub cookie: String,
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// Who actions are recorded as.
    pub name: String,
    /// The token every form of this session carries.
    pub csrf: String,
    expires: Instant,
}

impl Guard {
    pub fn new(token: &str, port: u16) -> Result<Guard, String> {
        let random = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &random)
            .map_err(|_| "cannot get random bytes for the dashboard's token".to_owned())?;
        let tag = hmac::sign(&key, token.as_bytes());
        Ok(Guard {
            key,
            tag,
            sessions: Mutex::default(),
            random,
            cookie: format!("switchyard_{port}"),
        })
    }

    /// Whether `candidate` is the token, in time that does not depend on where it
    /// differs.
    pub fn is_token(&self, candidate: &str) -> bool {
        hmac::verify(&self.key, candidate.as_bytes(), self.tag.as_ref()).is_ok()
    }

    /// Opens a session for `name`; returns the cookie's value.
    pub fn open(&self, name: String) -> Result<(String, Session), String> {
        let id = self.random_hex(32)?;
        let session = Session {
            name,
            csrf: self.random_hex(16)?,
            expires: Instant::now() + SESSION_LIFETIME,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => sessions.remove(&k),
                None => break,
            };
        }
        sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session a cookie value names, if it is live.
    pub fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn close(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn random_hex(&self, bytes: usize) -> Result<String, String> {
        let mut buf = vec![0u8; bytes];
        self.random
            .fill(&mut buf)
            .map_err(|_| "cannot get random bytes for a session".to_owned())?;
        Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// This guard's cookie's value in a `Cookie` header.
    pub fn cookie_in<'h>(&self, header: &'h str) -> Option<&'h str> {
        header.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == self.cookie).then_some(value)
        })
    }

    /// The `Set-Cookie` value that signs a browser in.
    pub fn set_cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            self.cookie,
            SESSION_LIFETIME.as_secs()
        )
    }

    /// The `Set-Cookie` value that signs a browser out.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
            self.cookie
        )
    }
}

/// The token in an `Authorization: Bearer` header.
pub(super) fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_opens() {
        let g = Guard::new("a-long-enough-secret-token", 8790).unwrap();
        assert!(g.is_token("a-long-enough-secret-token"));
        for wrong in [
            "",
            "a-long-enough-secret-toke",
            "a-long-enough-secret-tokenX",
            "x",
        ] {
            assert!(!g.is_token(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn sessions_are_random_and_end() {
        let g = Guard::new("a-long-enough-secret-token", 8790).unwrap();
        let (a, sa) = g.open("lead".into()).unwrap();
        let (b, _) = g.open("lead".into()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("secret"));
        assert_eq!(g.session(&a).unwrap().csrf, sa.csrf);
        g.close(&a);
        assert!(g.session(&a).is_none());
        assert!(g.session(&b).is_some());
        assert!(g.session("nope").is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let g = Guard::new("a-long-enough-secret-token", 1).unwrap();
        let (first, _) = g.open("a".into()).unwrap();
        for _ in 0..MAX_SESSIONS {
            g.open("b".into()).unwrap();
        }
        assert!(g.session(&first).is_none(), "the oldest went first");
        assert_eq!(g.sessions.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_and_bearer_headers_are_read() {
        let g = Guard::new("a-long-enough-secret-token", 8790).unwrap();
        assert_eq!(
            g.cookie_in("a=1; switchyard_8790=abc; switchyard_8791=def"),
            Some("abc")
        );
        assert_eq!(g.cookie_in("switchyard_8791=def"), None);
        assert!(g.set_cookie("abc").contains("HttpOnly; SameSite=Strict"));
        assert_eq!(bearer("Bearer xyz"), Some("xyz"));
        assert_eq!(bearer("bearer  xyz "), Some("xyz"));
        assert_eq!(bearer("Basic xyz"), None);
    }
}
