//! What keeps the daemon's secrets from the code it runs. `verify` runs code from any
//! submitted branch; a process started by the daemon can walk up to it and read
//! `/proc/<pid>/environ` (the environment the daemon was *started* with, whatever it
//! removes later) or its memory. So, by construction rather than by a list of names:
//!
//! - `switchyard daemon` first reads the secrets the config names (the GitHub token, the
//!   webhook secret, the dashboard's token) and replaces itself (`execve`, same pid) with a copy of itself whose
//!   environment holds only what the daemon needs ([`daemon_env`]); the secrets travel
//!   through a pipe and live only in its memory.
//! - The daemon makes itself non-dumpable: its `/proc` files and memory are closed to
//!   processes of the same user; as root, its commands also lose `CAP_SYS_PTRACE` and the
//!   other capabilities that reach another process's memory
//!   (`command::drop_capabilities`), without which root cannot read its memory either.
//! - Commands get an allowlisted environment (`command::base_env`), optionally as another
//!   user (`[commands] run_as`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::config::Config;

/// Variables the daemon keeps for itself (git, SSH and proxies reach remotes with them;
/// the locale and time zone shape its output); everything else is dropped at start.
const DAEMON_ENV: [&str; 23] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TZ",
    "TMPDIR",
    "SHELL",
    "SSH_AUTH_SOCK",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
    "GNUPGHOME",
    // A private CA for GitHub Enterprise, for the API client and git alike.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];
/// ... and these families: the locale, git's own settings, switchyard's.
const DAEMON_ENV_PREFIXES: [&str; 3] = ["LC_", "GIT_", "SWITCHYARD_"];

/// The daemon's environment after the restart: [`DAEMON_ENV`], its prefixes, and the
/// variables `[commands] env` passes on to commands; never a secret the config names,
/// nor `SWITCHYARD_TOKEN`.
pub fn daemon_env(config: &Config, env: &[(String, String)]) -> Vec<(String, String)> {
    let secrets = secret_names(config);
    env.iter()
        .filter(|(k, _)| {
            DAEMON_ENV.contains(&k.as_str())
                || DAEMON_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
                || config.commands.env.contains(k)
        })
        .filter(|(k, _)| !secrets.contains(&k.as_str()))
        // A client's API token: the daemon never needs one, it would only be here
        // because a client's shell started it.
        .filter(|(k, _)| k != crate::auth::TOKEN_ENV)
        .cloned()
        .collect()
}

/// The variables the config says hold secrets.
fn secret_names(config: &Config) -> Vec<&str> {
    let mut names = Vec::new();
    if let Some(gh) = &config.github {
        names.push(gh.token_env.as_str());
        names.extend(gh.webhook.as_ref().map(|w| w.secret_env.as_str()));
    }
    names.extend(
        config
            .dashboard
            .as_ref()
            .and_then(|d| d.token_env.as_deref()),
    );
    names
}

/// Replaces this process with `exe ARGS... --secrets-fd N`, its environment cut down to
/// [`daemon_env`] and the config's secrets readable once from fd N. Returns only on
/// failure.
pub fn restart_without_secrets(
    exe: &Path,
    args: &[OsString],
    config: &Config,
    env: &[(String, String)],
) -> std::io::Error {
    let secrets: Vec<(String, String)> = secret_names(config)
        .into_iter()
        .filter_map(|name| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(k, v)| (k.clone(), v.clone()))
        })
        .collect();
    let payload = match serde_json::to_vec(&secrets) {
        Ok(p) => p,
        Err(e) => return std::io::Error::other(e),
    };
    // A pipe holds 64 kB before a write blocks; secrets are a few hundred bytes.
    if payload.len() > 32 * 1024 {
        return std::io::Error::other("the secrets are over 32 kB");
    }
    let (read_end, write_end) = match pipe() {
        Ok(p) => p,
        Err(e) => return e,
    };
    // Non-blocking: where pipes are small (a user over pipe-user-pages-soft gets one
    // page), a full pipe fails the start instead of hanging it.
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return std::io::Error::last_os_error();
    }
    if let Err(e) = std::fs::File::from(write_end).write_all(&payload) {
        return e;
    }
    // The read end must survive exec: clear its close-on-exec flag.
    let fd = read_end.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return std::io::Error::last_os_error();
    }
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .arg("--secrets-fd")
        .arg(fd.to_string())
        .env_clear()
        .envs(daemon_env(config, env));
    let error = command.exec();
    drop(read_end);
    error
}

/// Reads the secrets [`restart_without_secrets`] passed on fd `fd`, and closes it.
pub fn read_secrets(fd: i32) -> Result<Vec<(String, String)>, String> {
    if fd < 3 {
        return Err(format!(
            "--secrets-fd {fd} is not switchyard's own pipe (it is for the daemon's restart)"
        ));
    }
    // SAFETY: fstat on any descriptor number is harmless; we only adopt it below if it
    // is a pipe, which is what our own restart passed.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(format!(
            "--secrets-fd {fd} is not a pipe (it is for switchyard's own use)"
        ));
    }
    // SAFETY: the descriptor is open (fstat succeeded) and nothing else in this process
    // uses it: it came from the process we replaced.
    let mut pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the secrets: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("cannot read the secrets: {e}"))
}

/// Closes the daemon's `/proc` files and memory to other processes of its user (its
/// children included), and keeps it from dumping core with secrets in it.
pub fn make_undumpable() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE) changes only this process's flag.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_keeps_only_what_it_needs() {
        let config = crate::config::parse(
            "[github]\nrepo = \"o/r\"\ntoken_env = \"MY_TOKEN\"\n[commands]\nenv = [\"DATABASE_URL\"]\n",
            "sy.toml",
            &Default::default(),
        )
        .unwrap()
        .config;
        let env: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("MY_TOKEN", "ghp_x"),
            ("OPENAI_KEY", "sk"),
            ("DB_PWD", "p"),
            ("DATABASE_URL", "postgres://"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("SWITCHYARD_LOG", "debug"),
            ("SWITCHYARD_TOKEN", "sy_x"),
            ("LC_ALL", "C"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept: Vec<String> = daemon_env(&config, &env)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            kept,
            [
                "PATH",
                "DATABASE_URL",
                "GIT_CONFIG_GLOBAL",
                "SWITCHYARD_LOG",
                "LC_ALL"
            ]
        );
    }

    #[test]
    fn secrets_cross_a_pipe() {
        let (read_end, write_end) = pipe().unwrap();
        let fd = read_end.as_raw_fd();
        std::mem::forget(read_end);
        std::fs::File::from(write_end)
            .write_all(br#"[["MY_TOKEN","ghp_x"]]"#)
            .unwrap();
        assert_eq!(
            read_secrets(fd).unwrap(),
            vec![("MY_TOKEN".to_owned(), "ghp_x".to_owned())]
        );
        let file = tempfile::tempfile().unwrap();
        assert!(
            read_secrets(file.as_raw_fd())
                .unwrap_err()
                .contains("not a pipe")
        );
    }
}
