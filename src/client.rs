//! The CLI's side of the daemon's API: HTTP/1.1 over the Unix socket, one request per
//! connection. Small on purpose: the client is synchronous and short-lived, so it needs
//! no async runtime, only a well-formed request and a careful read of the reply.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ErrorBody, ErrorCode, VERSION, VERSION_HEADER};

/// The daemon's files inside the repository's git directory.
pub fn state_dir(common_dir: &Path) -> PathBuf {
    common_dir.join("switchyard")
}

pub fn socket_path(common_dir: &Path) -> PathBuf {
    state_dir(common_dir).join("daemon.sock")
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no switchyard daemon is running for {0} (start one with `switchyard daemon`)")]
    NoDaemon(String),
    #[error("{message}")]
    Api { code: ErrorCode, message: String },
    #[error("lost the connection to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected reply from the daemon: {0}")]
    Protocol(String),
}

pub struct Client {
    socket: PathBuf,
    repo: String,
}

impl Client {
    pub fn new(common_dir: &Path, repo: &Path) -> Client {
        Client {
            socket: socket_path(common_dir),
            repo: repo.display().to_string(),
        }
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

    fn connect(&self) -> Result<UnixStream, ClientError> {
        UnixStream::connect(&self.socket).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NoDaemon(self.repo.clone())
            }
            _ => ClientError::Io(e),
        })
    }

    fn request<R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<R, ClientError> {
        let mut stream = self.connect()?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: switchyard\r\n{VERSION_HEADER}: {VERSION}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
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
