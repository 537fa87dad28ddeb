//! Running a configured command (`setup`, and later `verify`): through `sh -c` in a
//! process group of its own, with a time limit after which the whole group is killed,
//! with only the environment it is given, and with its output in a log file whose size
//! is capped. The command text comes from the config, never from task text.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many lines of output the evidence keeps.
pub const TAIL_LINES: usize = 50;
/// Output beyond this is dropped (and the log says so).
pub const MAX_LOG_BYTES: u64 = 4 * 1024 * 1024;
const POLL: Duration = Duration::from_millis(10);
/// How long output is still read after the command ended.
const READER_GRACE: Duration = Duration::from_secs(2);

/// Tells the waiting side that a reader thread is done, however it ends.
struct DropSignal(std::sync::mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

pub struct Spec<'a> {
    pub command: &'a str,
    pub dir: &'a Path,
    /// The complete environment of the command.
    pub env: &'a [(String, String)],
    pub timeout: Duration,
    pub log: &'a Path,
    /// Where to note the command's process group while it runs, so that a restart after
    /// a crash can stop what the command left running (see `kill_leftovers`).
    pub groups: Option<&'a Path>,
    /// Run it as this user instead of the daemon's.
    pub run_as: Option<&'a RunAs>,
    /// Run it under the supervisor of this very executable ([`supervise`], through
    /// `/proc/self/exe`: the file this process runs, even if the binary on disk was
    /// replaced since). Only a process that is switchyard can; without it (unit tests)
    /// the run mark alone finds what the command left.
    pub supervised: bool,
}

// What a command leaves behind is ledger evidence (`setup_failed`, `verify_*`), so its
// type lives with the other event payloads.
pub use crate::model::evidence::{Finished, Outcome};

/// What every command gets from the daemon's environment, whatever the config says:
/// enough to find programs, write temporary files and speak the user's language.
/// Anything else (tokens, keys, passwords, whatever their names) stays out unless
/// `[commands] env` names it.
pub const MINIMUM_ENV: [&str; 7] = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"];

/// The environment for the commands switchyard runs: an allowlist, not a denylist. The
/// [`MINIMUM_ENV`], the locale (`LC_*`), and the variables `named` in the config, taken
/// from the daemon's environment; nothing else.
pub fn base_env(daemon_env: &[(String, String)], named: &[String]) -> Vec<(String, String)> {
    daemon_env
        .iter()
        .filter(|(k, _)| {
            MINIMUM_ENV.contains(&k.as_str()) || k.starts_with("LC_") || named.contains(k)
        })
        .cloned()
        .collect()
}

/// Another user to run commands as (`[commands] run_as`), looked up once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl RunAs {
    /// Looks the user up in the password database. Switching to it needs root.
    pub fn lookup(name: &str) -> Result<RunAs, String> {
        let c_name = std::ffi::CString::new(name).map_err(|_| format!("bad user name {name:?}"))?;
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwnam_r writes only into `pwd` and `buf`, whose sizes we pass; the
        // strings it points `pwd` at live in `buf`, read before `buf` is dropped.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc != 0 || found.is_null() {
            return Err(format!(
                "[commands] run_as: no user {name:?} on this machine"
            ));
        }
        // SAFETY: pw_dir points into `buf` and is NUL-terminated (see above).
        let home = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(format!(
                "[commands] run_as = {name:?} needs the daemon to run as root, to switch to that user"
            ));
        }
        Ok(RunAs {
            name: name.to_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home),
        })
    }

    /// The user's own identity in the environment, instead of the daemon's; and git
    /// told that the repository, which belongs to the daemon's user, is safe to use.
    fn apply(&self, env: &mut Vec<(String, String)>) {
        env.retain(|(k, _)| {
            !matches!(k.as_str(), "HOME" | "USER" | "LOGNAME") && !k.starts_with("GIT_CONFIG_")
        });
        env.push(("HOME".into(), self.home.display().to_string()));
        env.push(("USER".into(), self.name.clone()));
        env.push(("LOGNAME".into(), self.name.clone()));
        env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
        env.push(("GIT_CONFIG_KEY_0".into(), "safe.directory".into()));
        env.push(("GIT_CONFIG_VALUE_0".into(), "*".into()));
    }
}

/// Capabilities a root command loses: those that reach another process's memory or the
/// kernel's (ptrace, raw I/O such as /proc/kcore, kernel modules, BPF, perf events).
/// Without them, root cannot read the non-dumpable daemon's memory; it is still root for
/// everything else, which is why `[commands] run_as` exists.
const DROPPED_CAPABILITIES: [u32; 5] = [
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    19, // CAP_SYS_PTRACE
    38, // CAP_PERFMON
    39, // CAP_BPF
];

/// Makes a command's process unable to read the daemon: as root (the only case where
/// the daemon's non-dumpable flag is not enough), the command loses
/// [`DROPPED_CAPABILITIES`] from every capability set, the bounding set included, so
/// neither it nor anything it runs gets them back.
///
/// Runs in the forked child before exec: only async-signal-safe system calls.
fn drop_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    // SAFETY: geteuid, prctl and the capget/capset system calls only read and write
    // the structs passed here; nothing allocates.
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(());
        }
        for cap in DROPPED_CAPABILITIES {
            // A capability this kernel does not know (older kernels lack BPF) is absent
            // anyway: EINVAL is fine.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for cap in DROPPED_CAPABILITIES {
            let word = &mut data[(cap / 32) as usize];
            let bit = !(1u32 << (cap % 32));
            word.effective &= bit;
            word.permitted &= bit;
            word.inheritable &= bit;
        }
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    Ok(())
}

/// Runs the command to completion, timeout or cancellation.
pub fn run(spec: &Spec<'_>, cancel: &AtomicBool) -> std::io::Result<Finished> {
    if let Some(parent) = spec.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let log = Arc::new(Mutex::new(CappedLog {
        file: std::fs::File::create(spec.log)?,
        written: 0,
        dropped: 0,
    }));
    let start = Instant::now();
    // Under its supervisor, a subreaper that outlives the command and ends everything
    // the command started; the supervisor keeps the daemon's user, so a command run as
    // another user cannot kill it to set its processes free.
    let mut command = match spec.supervised {
        true => {
            let mut c = Command::new("/proc/self/exe");
            c.args([SUPERVISE, "--parent", &std::process::id().to_string()]);
            if let Some(user) = spec.run_as {
                c.args([
                    "--uid",
                    &user.uid.to_string(),
                    "--gid",
                    &user.gid.to_string(),
                ]);
            }
            c.args(["--", "sh", "-c"]);
            c
        }
        false => {
            let mut c = Command::new("sh");
            if let Some(user) = spec.run_as {
                c.uid(user.uid).gid(user.gid);
            }
            c.arg("-c");
            c
        }
    };
    crate::child::of_daemon(&mut command);
    // SAFETY: drop_capabilities makes only async-signal-safe system calls.
    unsafe {
        command.pre_exec(drop_capabilities);
    }
    // Every process the command starts inherits this mark too: a second net, and the
    // one a restart uses to find what a dead daemon's commands left.
    let marker = new_marker();
    let mut env = spec.env.to_vec();
    env.push((MARKER.to_owned(), marker.clone()));
    if let Some(user) = spec.run_as {
        user.apply(&mut env);
    }
    let mut child = command
        .arg(spec.command)
        .current_dir(spec.dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id() as i32;
    let noted = spec.groups.map(|dir| dir.join(pgid.to_string()));
    if let Some(note) = &noted {
        let _ = std::fs::create_dir_all(spec.groups.expect("noted"));
        let _ = std::fs::write(note, format!("{marker}\n{}", spec.command));
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut stream| {
        let log = Arc::clone(&log);
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let _done = DropSignal(done);
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock().expect("log lock").write(&buf[..n]);
            }
        })
    })
    .collect();

    let outcome = loop {
        if let Some(status) = child.try_wait()? {
            // Ended while the daemon stops: stopped with it (a service manager signals
            // the whole group at once), whatever its status says.
            if cancel.load(Ordering::Relaxed) {
                break Outcome::Cancelled;
            }
            break match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => Outcome::Exited { code },
                (None, Some(signal)) => Outcome::Signaled { signal },
                (None, None) => Outcome::Exited { code: -1 },
            };
        }
        let stop = if cancel.load(Ordering::Relaxed) {
            Some(Outcome::Cancelled)
        } else if start.elapsed() >= spec.timeout {
            Some(Outcome::TimedOut)
        } else {
            None
        };
        if let Some(outcome) = stop {
            // The supervisor ends the command and all it started, then itself; a
            // supervisor that does not (the command killed it) is ended with its group.
            if spec.supervised {
                // SAFETY: kill(2) on our own child.
                unsafe {
                    libc::kill(pgid, libc::SIGTERM);
                }
                let patience = Instant::now() + SUPERVISOR_GRACE;
                while child.try_wait()?.is_none() && Instant::now() < patience {
                    std::thread::sleep(POLL);
                }
            }
            kill_group(pgid);
            let _ = child.wait();
            break outcome;
        }
        std::thread::sleep(POLL);
    };
    // Whatever the command left running goes too, in its group or out of it (setsid,
    // double forks, nohup), so nothing outlives it and the pipes close. (A supervised
    // command's group is the supervisor's alone, and it is gone.)
    if !spec.supervised {
        kill_group(pgid);
    }
    let stragglers = kill_marked(&marker).len();
    drop(done_tx);
    let grace = Instant::now() + READER_GRACE;
    let mut finished_readers = 0;
    while finished_readers < readers.len() {
        let left = grace.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => finished_readers += 1,
            Err(_) => break,
        }
    }
    drop(readers);
    if let Some(note) = &noted {
        let _ = std::fs::remove_file(note);
    }
    let duration = start.elapsed();
    log.lock()
        .map_err(|_| std::io::Error::other("log lock poisoned"))?
        .finish(outcome, spec.timeout, stragglers)?;
    let tail = tail(spec.log, TAIL_LINES)?;
    // A supervisor that could not run the command at all: the daemon's failure, not the
    // command's.
    if spec.supervised
        && outcome
            == (Outcome::Exited {
                code: SUPERVISOR_FAILED,
            })
        && let Some(line) = tail.iter().find(|l| l.starts_with(SUPERVISOR_ERROR))
    {
        return Err(std::io::Error::other(line.clone()));
    }
    Ok(Finished {
        command: spec.command.to_owned(),
        outcome,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        log: spec.log.to_owned(),
        tail,
    })
}

/// The hidden subcommand of the switchyard executable that runs [`supervise`].
pub const SUPERVISE: &str = "__supervise";

/// The exit status of a supervisor that could not run its command at all (bad
/// arguments, no such user, `/proc` unusable): the daemon reads it, with the line the
/// supervisor wrote, as a failure of its own, never as the command's.
pub const SUPERVISOR_FAILED: i32 = 125;

/// The prefix of the one line a failing supervisor writes on stderr.
pub const SUPERVISOR_ERROR: &str = "switchyard: supervisor: ";

/// How long a supervisor told to stop gets to end its command's processes (longer than
/// its own deadline for that, so it is never killed halfway).
const SUPERVISOR_GRACE: Duration = Duration::from_secs(10);

/// How a supervised command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervised {
    Exited(i32),
    Signaled(i32),
    /// The daemon asked (SIGTERM: a timeout or a stop) or died.
    Stopped,
}

/// What a supervisor did: how the command ended, and how many processes it left
/// running that the supervisor had to kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    pub ended: Supervised,
    pub stopped: usize,
}

/// The supervisor of one command (`switchyard __supervise --parent PID [--uid U --gid G]
/// -- PROGRAM ARGS...`): it becomes a child subreaper, so every process the command
/// starts stays its descendant whatever it does with sessions, process groups, its
/// environment or its title (a `setsid`, a double fork, a PostgreSQL rewriting its
/// `/proc` title); runs the program in a process group of its own (so the command's own
/// `kill 0` never reaches the supervisor), as `uid`/`gid` with that user's groups when
/// given; and when the program ends, or the daemon asks (SIGTERM) or dies, kills every
/// process left below it. The caller exits accordingly ([`Supervision::exit`]).
///
/// Signals are blocked and taken with `sigwaitinfo`, so a stop request between two
/// looks is never lost. Single-threaded and alone in its process, so it may reap any
/// child it has.
pub fn supervise(args: &[std::ffi::OsString]) -> Result<Supervision, String> {
    let usage = || format!("{SUPERVISE} --parent PID [--uid U --gid G] -- PROGRAM ARGS...");
    let mut rest = args;
    let (mut uid, mut gid, mut parent) = (None, None, None);
    loop {
        match rest.first().and_then(|a| a.to_str()) {
            Some("--") => {
                rest = &rest[1..];
                break;
            }
            Some(flag @ ("--uid" | "--gid" | "--parent")) => {
                let value: u32 = rest
                    .get(1)
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{flag} needs a number"))?;
                match flag {
                    "--uid" => uid = Some(value),
                    "--gid" => gid = Some(value),
                    _ => parent = Some(value as i32),
                }
                rest = &rest[2..];
            }
            _ => return Err(usage()),
        }
    }
    let parent = parent.ok_or_else(usage)?;
    let user = match (uid, gid) {
        (Some(u), Some(g)) => Some((u, g, groups_of(u, g)?)),
        (None, None) => None,
        _ => return Err("--uid and --gid go together".into()),
    };
    let Some((program, args)) = rest.split_first() else {
        return Err(usage());
    };
    // Descendants are found in /proc: it must show this process as itself (the same
    // PID namespace), or nothing would be found to kill.
    let me = std::process::id() as i32;
    let seen = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.split(' ').next().and_then(|p| p.parse::<i32>().ok()));
    if seen != Some(me) {
        return Err("/proc does not show this process (another PID namespace?)".into());
    }
    let stops = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD];
    // SAFETY: prctl, sigprocmask and getppid only affect this process.
    let mut waited: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "cannot become a subreaper: {}",
                std::io::Error::last_os_error()
            ));
        }
        libc::sigemptyset(&mut waited);
        for signal in stops {
            libc::sigaddset(&mut waited, signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &waited, std::ptr::null_mut());
        // The daemon dying is a stop request, not a sudden death: the command's
        // processes must go with it.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
            return Err(format!(
                "cannot follow the daemon: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::getppid() != parent {
            return Err("the daemon is gone".into());
        }
    }
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    // SAFETY: getppid, prctl, close_range, setgroups, setgid and setuid are
    // async-signal-safe; the groups were looked up before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::getppid() != me {
                libc::_exit(1); // the supervisor died before the command began
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // Nothing the daemon's starter left open reaches the command.
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            if let Some((uid, gid, groups)) = &user
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.to_string_lossy()))?
        .id() as i32;
    let mut ended = None;
    loop {
        // Reap whatever has ended: the command, or orphans of its that came here.
        loop {
            let mut raw = 0;
            // SAFETY: waitpid on our own children, not blocking.
            let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                ended = Some(if libc::WIFSIGNALED(raw) {
                    Supervised::Signaled(libc::WTERMSIG(raw))
                } else {
                    Supervised::Exited(libc::WEXITSTATUS(raw))
                });
            }
        }
        if ended.is_some() {
            break;
        }
        // SAFETY: siginfo_t is plain data; sigwaitinfo fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let signal = unsafe { libc::sigwaitinfo(&waited, &mut info) };
        if signal > 0 && signal != libc::SIGCHLD {
            ended = Some(Supervised::Stopped);
            break;
        }
    }
    let stopped = kill_descendants();
    Ok(Supervision {
        ended: ended.unwrap_or(Supervised::Stopped),
        stopped,
    })
}

impl Supervision {
    /// Ends the supervisor the way its command ended: its exit status, or its signal
    /// (without leaving a core file behind).
    pub fn exit(self) -> ! {
        let signal = match self.ended {
            Supervised::Exited(code) => std::process::exit(code),
            Supervised::Signaled(signal) => signal,
            Supervised::Stopped => libc::SIGTERM,
        };
        // SAFETY: prctl, setrlimit, signal, sigprocmask and kill only affect this
        // process, which is about to die of `signal`.
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            libc::signal(signal, libc::SIG_DFL);
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_UNBLOCK, &all, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
        }
        std::process::exit(128 + signal)
    }
}

/// The groups of the user `uid`, for a command run as that user: looked up before the
/// fork (the lookup reads files and allocates).
fn groups_of(uid: u32, gid: u32) -> Result<Vec<libc::gid_t>, String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into the buffers we pass.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(format!("no user with uid {uid}"));
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut count = groups.len() as libc::c_int;
    // SAFETY: getgrouplist writes at most `count` groups into the vector.
    let rc = unsafe { libc::getgrouplist(pwd.pw_name, gid, groups.as_mut_ptr(), &mut count) };
    if rc < 0 {
        return Err(format!("uid {uid} has more than 256 groups"));
    }
    groups.truncate(count.max(0) as usize);
    Ok(groups)
}

/// Kills every process below this one and reaps them, until none is left: an orphan of
/// a killed process comes to this subreaper and is killed in the next round. Gives up
/// after a few seconds (a process stuck in the kernel). Returns how many it killed.
fn kill_descendants() -> usize {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut killed = std::collections::HashSet::new();
    loop {
        let children: Vec<i32> = processes()
            .filter(|pid| parent_of(*pid) == Some(me))
            .collect();
        for pid in &children {
            // SAFETY: kill(2) on our own child: it cannot be reused before we reap it.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
            killed.insert(*pid);
        }
        // SAFETY: waitpid on our own children, not blocking.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if children.is_empty() || Instant::now() > deadline {
            return killed.len();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A process's parent, from `/proc/<pid>/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.split(' ').nth(1)?.parse().ok()
}

/// The variable that marks every process of one command run.
pub const MARKER: &str = "SWITCHYARD_RUN";

/// A mark no other run shares: this process, its start, a counter.
fn new_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{}-{since}-{n}", std::process::id())
}

/// Kills every process whose environment carries `marker`, again until none is left
/// (a process may fork while it is being killed), for at most two seconds. Returns the
/// pids it killed. A process that threw its whole environment away (`env -i`) escapes
/// this; nothing in it came from switchyard then.
fn kill_marked(marker: &str) -> Vec<i32> {
    let needle = format!("{MARKER}={marker}");
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut killed = std::collections::HashSet::new();
    loop {
        let found: Vec<i32> = processes()
            .filter(|pid| *pid != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
            })
            .collect();
        let alive: Vec<i32> = found.into_iter().filter(|pid| !is_zombie(*pid)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return killed.into_iter().collect();
        }
        for pid in alive {
            // SAFETY: kill(2) on a pid whose environment carries our mark.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pids in /proc.
fn processes() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
}

/// A dead process waiting to be reaped by its parent: nothing left to kill.
fn is_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    matches!(
        stat.rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next()),
        Some('Z' | 'X') | None
    )
}

/// Stops what commands of a crashed daemon left running: every process carrying the
/// mark of a run noted in `dir`. Returns the pids stopped.
pub fn kill_leftovers(dir: &Path) -> Vec<i32> {
    let mut killed = Vec::new();
    for note in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(note.path()).unwrap_or_default();
        let marker = text.lines().next().unwrap_or_default();
        // Notes are `<marker>\n<command>`; a marker has three dash-separated parts.
        if marker.split('-').count() == 3 {
            killed.extend(kill_marked(marker));
        }
        let _ = std::fs::remove_file(note.path());
    }
    killed
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created; it has
    // no memory effects on this process.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

struct CappedLog {
    file: std::fs::File,
    written: u64,
    dropped: u64,
}

impl CappedLog {
    fn write(&mut self, bytes: &[u8]) {
        let room = MAX_LOG_BYTES.saturating_sub(self.written);
        let keep = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if keep > 0 && self.file.write_all(&bytes[..keep]).is_ok() {
            self.written += keep as u64;
        }
        self.dropped += (bytes.len() - keep) as u64;
    }

    fn finish(
        &mut self,
        outcome: Outcome,
        timeout: Duration,
        stragglers: usize,
    ) -> std::io::Result<()> {
        if stragglers > 0 {
            writeln!(
                self.file,
                "\n[switchyard: stopped {stragglers} process(es) the command left running]"
            )?;
        }
        if self.dropped > 0 {
            writeln!(
                self.file,
                "\n[switchyard: output over {} MB dropped: {} bytes]",
                MAX_LOG_BYTES / (1024 * 1024),
                self.dropped
            )?;
        }
        match outcome {
            Outcome::TimedOut => writeln!(
                self.file,
                "\n[switchyard: killed after the time limit of {}s]",
                timeout.as_secs()
            )?,
            Outcome::Cancelled => writeln!(
                self.file,
                "\n[switchyard: stopped, the daemon is shutting down]"
            )?,
            Outcome::Exited { .. } | Outcome::Signaled { .. } => {}
        }
        self.file.sync_all()
    }
}

/// The last `n` lines of a file, read from its end.
pub fn tail(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_sh(command: &str, timeout: Duration) -> (tempfile::TempDir, Finished) {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("logs/out.log");
        let env = vec![
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("ONLY".to_owned(), "me".to_owned()),
        ];
        let finished = run(
            &Spec {
                command,
                dir: dir.path(),
                env: &env,
                timeout,
                log: &log,
                groups: None,
                run_as: None,
                supervised: false,
            },
            &AtomicBool::new(false),
        )
        .unwrap();
        (dir, finished)
    }

    #[test]
    fn captures_status_output_and_only_the_given_environment() {
        let (_d, f) = run_sh(
            "echo out; echo err >&2; env | sort; exit 3",
            Duration::from_secs(10),
        );
        assert_eq!(f.outcome, Outcome::Exited { code: 3 });
        assert!(f.tail.contains(&"out".to_owned()));
        assert!(f.tail.contains(&"err".to_owned()));
        assert!(f.tail.contains(&"ONLY=me".to_owned()));
        assert!(
            !f.tail.iter().any(|l| l.starts_with("HOME=")),
            "{:?}",
            f.tail
        );
    }

    #[test]
    fn commands_get_an_allowlisted_environment() {
        let env: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("GITHUB_TOKEN", "x"),
            ("GH_PAT", "x"),
            ("DB_PWD", "p"),
            ("OPENAI_KEY", "k"),
            ("MY_VAR", "y"),
            ("LC_ALL", "C"),
            ("HOME", "/h"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let names: Vec<String> = base_env(&env, &["MY_VAR".to_owned()])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(names, vec!["PATH", "MY_VAR", "LC_ALL", "HOME"]);
    }

    #[test]
    fn kills_the_whole_group_on_timeout() {
        let (dir, f) = run_sh(
            "sleep 30 & echo started; echo $! > child.pid; wait",
            Duration::from_millis(300),
        );
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert!(f.duration_ms < 5_000);
        let pid: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Dead means gone, or a zombie waiting for whoever adopted it to reap it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        assert!(
            matches!(state, None | Some('Z')),
            "the background child survived: {stat}"
        );
        assert!(
            f.tail
                .last()
                .unwrap()
                .contains("killed after the time limit")
        );
    }

    /// Dead means gone, or a zombie waiting for whoever adopted it to reap it.
    fn assert_dead(dir: &Path, pid_file: &str) {
        let pid: i32 = std::fs::read_to_string(dir.join(pid_file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            is_zombie(pid),
            "{pid_file}: process {pid} outlived its command"
        );
    }

    #[test]
    fn nothing_a_command_starts_outlives_it() {
        let started = std::time::Instant::now();
        // Its own session, a double fork into another session, a new process group,
        // nohup: all escape the process group; none escapes the command.
        let (dir, f) = run_sh(
            "setsid sh -c 'echo $$ > a.pid; exec sleep 30' & \
             (setsid sh -c 'echo $$ > b.pid; exec sleep 31' &) ; \
             nohup sh -c 'echo $$ > c.pid; exec sleep 32' > /dev/null 2>&1 & \
             perl -e 'setpgrp(0,0); open(F, \">d.pid\"); print F $$; close F; sleep 33' & \
             while [ ! -s a.pid ] || [ ! -s b.pid ] || [ ! -s c.pid ] || [ ! -s d.pid ]; do sleep 0.01; done; exit 0",
            Duration::from_secs(20),
        );
        assert!(f.succeeded(), "{:?}", f.tail);
        for p in ["a.pid", "b.pid", "c.pid", "d.pid"] {
            assert_dead(dir.path(), p);
        }
        // At least the three that left the process group (the nohup one is in it and
        // may already be dead of the group's kill), perhaps a shell of the double fork
        // that had not exited yet.
        let stopped: usize = f
            .tail
            .last()
            .and_then(|l| l.strip_prefix("[switchyard: stopped "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{:?}", f.tail));
        assert!((3..=5).contains(&stopped), "{:?}", f.tail);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn nothing_outlives_a_timeout_either() {
        let (dir, f) = run_sh(
            "setsid sh -c 'echo $$ > e.pid; exec sleep 30' & sleep 30",
            Duration::from_millis(500),
        );
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert_dead(dir.path(), "e.pid");
    }

    #[test]
    fn caps_the_log() {
        let (_d, f) = run_sh(
            "head -c 6000000 /dev/zero | tr '\\0' x",
            Duration::from_secs(30),
        );
        assert!(f.succeeded());
        let size = std::fs::metadata(&f.log).unwrap().len();
        assert!(size < MAX_LOG_BYTES + 200, "{size}");
        assert!(f.tail.last().unwrap().contains("dropped"));
    }
}
