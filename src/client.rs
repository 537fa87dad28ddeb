//! The CLI's side of the daemon's API: HTTP/1.1 over the Unix socket, one request per
//! connection. Small on purpose: the client is synchronous and short-lived, so it needs
//! no async runtime, only a well-formed request and a careful read of the reply.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ErrorBody, ErrorCode, Outcome, VERSION, VERSION_HEADER, WaitOutcome};
use crate::model::{Task, TaskId};

/// The daemon's files inside the repository's git directory.
pub fn state_dir(common_dir: &Path) -> PathBuf {
    common_dir.join("switchyard")
}

pub fn socket_path(common_dir: &Path) -> PathBuf {
    state_dir(common_dir).join("daemon.sock")
}

/// The ledger: the daemon writes it; the CLI reads it when no daemon runs.
pub fn ledger_path(common_dir: &Path) -> PathBuf {
    state_dir(common_dir).join("ledger.db")
}

/// How long the CLI waits for the daemon's answer: a hung daemon gives a one-line error,
/// never a hang. `SWITCHYARD_TIMEOUT` overrides it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// A claim may run the worktree's `setup` command (default limit ten minutes) before it
/// answers, so it gets longer.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(11 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no switchyard daemon is running for {0} (start one with `switchyard daemon`)")]
    NoDaemon(String),
    #[error(
        "the daemon did not answer within {:?} (is it hung? see .git/switchyard/daemon.log); \
         the request may still have gone through: look (`switchyard task list`) before you \
         repeat it, though a repeated claim, release, submit, approve, reject or cancel is \
         answered as the first was",
        .0
    )]
    TimedOut(Duration),
    #[error("{message}")]
    Api { code: ErrorCode, message: String },
    #[error("lost the connection to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected reply from the daemon: {0}")]
    Protocol(String),
}

/// An id for one request that creates something (`task add`, `plan`), unique enough
/// among a repository's requests: a retry with it returns what the first one made.
pub fn request_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

pub struct Client {
    socket: PathBuf,
    repo: String,
    /// `None`: [`DEFAULT_TIMEOUT`], or [`CLAIM_TIMEOUT`] for a claim.
    timeout: Option<Duration>,
}

impl Client {
    pub fn new(common_dir: &Path, repo: &Path) -> Client {
        Client {
            socket: socket_path(common_dir),
            repo: repo.display().to_string(),
            timeout: None,
        }
    }

    /// Waits at most `timeout` for every answer, whatever the request.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.request("GET", path, None)
    }

    pub fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.request("POST", path, Some(&body))
    }

    /// Asks the daemon until task `id` leaves the queue or `timeout` runs out (`None`:
    /// no limit). Each request is held by the daemon until something happens (at most
    /// 25 s); once the daemon answered, a restart of it is waited out.
    pub fn wait_for(
        &self,
        id: TaskId,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome, ClientError> {
        const MAX_WAIT_MS: u128 = 25_000;
        let deadline = timeout.map(|t| Instant::now() + t);
        // The task exists and the daemon answers: from here on, an outage (a restart) is
        // waited out.
        let _: Task = self.get(&format!("/v1/tasks/{id}"))?;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ms = left.map_or(MAX_WAIT_MS, |l| l.as_millis().min(MAX_WAIT_MS));
            let time_left = left.is_none_or(|l| !l.is_zero());
            match self.get::<WaitOutcome>(&format!("/v1/tasks/{id}/wait?timeout_ms={ms}")) {
                Ok(o) if o.outcome == Outcome::Timeout && time_left => {}
                Ok(o) => return Ok(o),
                Err(
                    ClientError::NoDaemon(_)
                    | ClientError::Io(_)
                    | ClientError::Protocol(_)
                    | ClientError::Api {
                        code: ErrorCode::Unavailable,
                        ..
                    },
                ) if time_left => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Connects by `deadline`: a daemon whose backlog is full (hung, or flooded) makes a
    /// plain connect block, so it is made non-blocking and tried again until then.
    fn connect(&self, deadline: Instant, limit: Duration) -> Result<UnixStream, ClientError> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = self.socket.as_os_str().as_bytes();
        // SAFETY: sockaddr_un is plain data; zeroed is its empty value.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        if path.len() >= addr.sun_path.len() {
            return Err(ClientError::Protocol(format!(
                "the socket path {} is too long",
                self.socket.display()
            )));
        }
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, src) in addr.sun_path.iter_mut().zip(path) {
            *dst = *src as libc::c_char;
        }
        // SAFETY: socket(2) creates a new descriptor, owned by the stream made below.
        let fd = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(ClientError::Io(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh socket nothing else owns.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        loop {
            // SAFETY: connect(2) with an address struct we own and its size.
            let rc = unsafe {
                libc::connect(
                    fd,
                    std::ptr::addr_of!(addr).cast(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Some(libc::EAGAIN) => return Err(ClientError::TimedOut(limit)),
                Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => {
                    return Err(ClientError::NoDaemon(self.repo.clone()));
                }
                _ => return Err(ClientError::Io(e)),
            }
        }
        stream.set_nonblocking(false)?;
        Ok(stream)
    }

    fn request<R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<R, ClientError> {
        let limit = self.timeout.unwrap_or(if path == "/v1/claim" {
            CLAIM_TIMEOUT
        } else {
            DEFAULT_TIMEOUT
        });
        let deadline = Instant::now() + limit;
        let mut stream = self.connect(deadline, limit)?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: switchyard\r\n{VERSION_HEADER}: {VERSION}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let timed_out = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ClientError::TimedOut(limit)
            }
            _ => ClientError::Io(e),
        };
        for part in [head.as_bytes(), body] {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::TimedOut(limit));
            }
            stream.set_write_timeout(Some(left))?;
            stream.write_all(part).map_err(timed_out)?;
        }
        // One deadline for the whole answer, however it trickles in.
        let mut reply = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::TimedOut(limit));
            }
            stream.set_read_timeout(Some(left))?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timed_out(e)),
            }
        }
        let (status, body) = parse_response(&reply)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(format!("{e}")))
        } else {
            match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(err) => Err(ClientError::Api {
                    code: err.error.code,
                    message: err.error.message,
                }),
                Err(_) => Err(ClientError::Protocol(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ))),
            }
        }
    }
}

/// Splits an HTTP/1.1 response into its status and (de-chunked) body.
fn parse_response(reply: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
    let bad = |what: &str| ClientError::Protocol(what.to_owned());
    if reply.is_empty() {
        return Err(bad(
            "the daemon closed the connection without replying (did it stop?)",
        ));
    }
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&reply[..split]).map_err(|_| bad("headers are not UTF-8"))?;
    let body = &reply[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("bad chunk"))?;
        let size_text = std::str::from_utf8(&rest[..end]).map_err(|_| bad("bad chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_replies() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, b"{}".as_slice()));
        let (s, b) =
            parse_response(b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((s, b.as_slice()), (409, b"abcde".as_slice()));
        assert!(parse_response(b"").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
