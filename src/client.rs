//! The CLI's side of the daemon's API: HTTP/1.1, one request per connection, over the
//! Unix socket of the repository's daemon or, with a URL (`--daemon`), over TCP to a
//! daemon elsewhere (`http://` on loopback, `https://` with rustls; a bearer token on
//! every request). Small on purpose: the client is synchronous and short-lived, so it
//! needs no async runtime, only a well-formed request and a careful read of the reply.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ErrorBody, ErrorCode, Outcome, VERSION, VERSION_HEADER, WaitOutcome};
use crate::auth::Token;
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
    /// A daemon elsewhere cannot be reached (refused, no such host): the message says
    /// which and why.
    #[error("{0}")]
    Unreachable(String),
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
    /// The TLS session with a daemon elsewhere failed (its certificate, most often).
    #[error("{0}")]
    Tls(String),
    #[error("unexpected reply from the daemon: {0}")]
    Protocol(String),
}

/// Where a remote daemon listens: `http://HOST[:PORT]` or `https://HOST[:PORT]`, with
/// nothing after the authority but an optional `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonUrl {
    pub https: bool,
    /// A name or an IP address, without the brackets of an IPv6 one.
    pub host: String,
    pub port: u16,
}

impl DaemonUrl {
    pub fn parse(text: &str) -> Result<DaemonUrl, String> {
        let bad = |why: &str| {
            format!(
                "{why} in {:?}: write http(s)://HOST:PORT, like https://ci.example:7878",
                crate::api::one_line(text)
            )
        };
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("no http:// or https://"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
            return Err(bad("a path, query, user or space after the host"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed ["))?;
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(bad("not an IPv6 address between [ and ]"));
                }
                match after {
                    "" => (host, None),
                    p => (
                        host,
                        Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
                    ),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((_, _)) if authority.matches(':').count() > 1 => {
                    return Err(bad("an IPv6 address must be in [ ]"));
                }
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None if https => 443,
            None => 80,
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("a bad port"))?,
        };
        Ok(DaemonUrl {
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host:port`, with brackets around an IPv6 address: the `Host` header.
    pub fn authority(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }

    /// Whether the host is this machine: `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for DaemonUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
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
    target: Target,
    /// `None`: [`DEFAULT_TIMEOUT`], or [`CLAIM_TIMEOUT`] for a claim.
    timeout: Option<Duration>,
}

enum Target {
    /// The repository's daemon, on its socket.
    Local { socket: PathBuf, repo: String },
    /// A daemon elsewhere.
    Remote(Box<Remote>),
}

struct Remote {
    url: DaemonUrl,
    /// For `https://`.
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<Token>,
}

impl Client {
    pub fn new(common_dir: &Path, repo: &Path) -> Client {
        Client {
            target: Target::Local {
                socket: socket_path(common_dir),
                repo: repo.display().to_string(),
            },
            timeout: None,
        }
    }

    /// A client of the daemon at `url`, sending `token` with every request. A daemon
    /// on `https://` must show a certificate that the web's roots (webpki-roots) or
    /// `extra_ca` (a PEM file of CA certificates, for a private or self-signed one)
    /// vouch for. Plain `http://` goes only to this machine: the token would otherwise
    /// cross the network in clear.
    pub fn remote(
        url: &str,
        token: Option<Token>,
        extra_ca: Option<&Path>,
    ) -> Result<Client, String> {
        let url = DaemonUrl::parse(url)?;
        if !url.https && !url.is_loopback() {
            return Err(format!(
                "{url}: plain http:// only goes to this machine (localhost, 127.0.0.1, [::1]); \
                 a token would cross the network in clear: use https://"
            ));
        }
        let tls = match url.https {
            true => Some(Arc::new(tls_config(extra_ca)?)),
            false => None,
        };
        Ok(Client {
            target: Target::Remote(Box::new(Remote { url, tls, token })),
            timeout: None,
        })
    }

    /// Whether this client talks to a daemon elsewhere (its token names who asks).
    pub fn is_remote(&self) -> bool {
        matches!(self.target, Target::Remote(_))
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
                    | ClientError::Unreachable(_)
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

    fn connect(&self, deadline: Instant, limit: Duration) -> Result<Conn, ClientError> {
        match &self.target {
            Target::Local { socket, repo } => {
                connect_unix(socket, repo, deadline, limit).map(Conn::Unix)
            }
            Target::Remote(remote) => remote.connect(deadline, limit),
        }
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
        let (host, authorization) = match &self.target {
            Target::Local { .. } => ("switchyard".to_owned(), String::new()),
            Target::Remote(r) => (
                r.url.authority(),
                r.token
                    .as_ref()
                    .map(|t| format!("Authorization: Bearer {}\r\n", t.expose()))
                    .unwrap_or_default(),
            ),
        };
        // The head holds the token: it is written to the connection and nowhere else.
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{authorization}{VERSION_HEADER}: {VERSION}\r\n\
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
        stream.flush().map_err(timed_out)?;
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
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    // A whole reply is enough: a TLS peer's close may come late or
                    // without its notice.
                    if is_complete(&reply) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => {
                    break;
                }
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

/// Connects to the socket by `deadline`: a daemon whose backlog is full (hung, or
/// flooded) makes a plain connect block, so it is made non-blocking and tried again
/// until then.
fn connect_unix(
    socket: &Path,
    repo: &str,
    deadline: Instant,
    limit: Duration,
) -> Result<UnixStream, ClientError> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let path = socket.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is its empty value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.len() >= addr.sun_path.len() {
        return Err(ClientError::Protocol(format!(
            "the socket path {} is too long",
            socket.display()
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
                return Err(ClientError::NoDaemon(repo.to_owned()));
            }
            _ => return Err(ClientError::Io(e)),
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

impl Remote {
    /// A TCP connection to the daemon by `deadline`, the TLS handshake done for
    /// `https://`, so that a certificate problem is its own error.
    fn connect(&self, deadline: Instant, limit: Duration) -> Result<Conn, ClientError> {
        let url = &self.url;
        let addrs: Vec<std::net::SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| ClientError::Unreachable(format!("cannot find {}: {e}", url.host)))?
            .collect();
        let mut refused = None;
        let mut tcp = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::TimedOut(limit));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Err(ClientError::TimedOut(limit));
                }
                Err(e) => refused = Some(e),
            }
        }
        let Some(tcp) = tcp else {
            let why = refused.map_or_else(|| "no address".to_owned(), |e| e.to_string());
            return Err(ClientError::Unreachable(format!(
                "no switchyard daemon answers at {url}: {why}"
            )));
        };
        let _ = tcp.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Ok(Conn::Tcp(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| ClientError::Tls(format!("{url}: {e}")))?;
        let session = rustls::ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| ClientError::Tls(format!("{url}: {e}")))?;
        let mut stream = rustls::StreamOwned::new(session, tcp);
        while stream.conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::TimedOut(limit));
            }
            stream.sock.set_read_timeout(Some(left))?;
            stream.sock.set_write_timeout(Some(left))?;
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                return Err(match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        ClientError::TimedOut(limit)
                    }
                    std::io::ErrorKind::InvalidData => ClientError::Tls(format!(
                        "TLS with {url} failed: {e} (a private or self-signed certificate? \
                         set SWITCHYARD_CA_CERT to the PEM file of its CA)"
                    )),
                    _ => ClientError::Tls(format!("TLS with {url} failed: {e}")),
                });
            }
        }
        Ok(Conn::Tls(Box::new(stream)))
    }
}

/// The web's roots (webpki-roots, Mozilla's list) and the certificates of `extra_ca`.
fn tls_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(file) = extra_ca {
        let shown = file.display();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| format!("cannot read the CA certificates in {shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "{shown} holds no PEM certificate (BEGIN CERTIFICATE)"
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("a certificate in {shown} cannot be a root: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One connection to a daemon, whatever carries it.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(t),
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Tls(s) => s.sock.set_read_timeout(t),
        }
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_write_timeout(t),
            Conn::Tcp(s) => s.set_write_timeout(t),
            Conn::Tls(s) => s.sock.set_write_timeout(t),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Whether `reply` holds a whole response: its headers and the `Content-Length` bytes
/// they announce, or a chunked body's last chunk. Without either, the end of the
/// connection ends it.
fn is_complete(reply: &[u8]) -> bool {
    let Some(split) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
    let body = &reply[split + 4..];
    for line in head.split("\r\n") {
        if let Some(n) = line.strip_prefix("content-length:") {
            return n.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
    }
    false
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

    #[test]
    fn a_reply_is_complete_by_its_length_or_last_chunk() {
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"));
        assert!(!is_complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{"
        ));
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        ));
        assert!(!is_complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n"
        ));
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\n\r\n{}"));
    }

    #[test]
    fn daemon_urls() {
        let ok = |text: &str, https: bool, host: &str, port: u16| {
            let url = DaemonUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                url,
                DaemonUrl {
                    https,
                    host: host.into(),
                    port
                },
                "{text}"
            );
        };
        ok("https://ci.example:7878", true, "ci.example", 7878);
        ok("https://CI.example/", true, "ci.example", 443);
        ok("http://127.0.0.1:80", false, "127.0.0.1", 80);
        ok("http://[::1]:7878", false, "::1", 7878);
        ok("https://[2001:db8::1]", true, "2001:db8::1", 443);
        for bad in [
            "ci.example:7878",
            "ftp://x",
            "https://",
            "https://x:0",
            "https://x:port",
            "https://x:7878/v1",
            "https://u@x",
            "https://::1:7878",
            "https://[nope]:1",
            "https://[::1]x",
        ] {
            assert!(DaemonUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            DaemonUrl::parse("http://[::1]:9").unwrap().to_string(),
            "http://[::1]:9"
        );
        assert!(
            DaemonUrl::parse("http://localhost:1")
                .unwrap()
                .is_loopback()
        );
        assert!(!DaemonUrl::parse("http://10.0.0.1:1").unwrap().is_loopback());
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        assert!(Client::remote("http://127.0.0.1:1", None, None).is_ok());
        let e = Client::remote("http://ci.example:7878", None, None)
            .err()
            .unwrap();
        assert!(e.contains("use https://"), "{e}");
        assert!(Client::remote("https://ci.example:7878", None, None).is_ok());
        let e = Client::remote("https://x:1", None, Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
