//! What every process the daemon starts (git, verify, setup) gets, whatever it is: it
//! dies with the daemon, and it starts with the process settings the daemon was given,
//! not the ones the daemon changed for itself.
//!
//! The daemon raises its soft limit on open files (it holds many connections) and
//! ignores SIGXFSZ (a write over a size limit must fail, not kill it); both would be
//! inherited across exec and surprise a test suite, so a child gets the originals back.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The soft open-file limit the daemon started with, once it raised its own.
static ORIGINAL_OPEN_FILES: AtomicU64 = AtomicU64::new(u64::MAX);

/// Notes the soft open-file limit to give children, before the daemon raises its own.
pub fn remember_open_file_limit(soft: u64) {
    ORIGINAL_OPEN_FILES.store(soft, Ordering::Relaxed);
}

/// Sets `cmd` up as a child of the daemon: SIGKILL when the daemon dies (so that after a
/// `kill -9` no process of the old daemon races the new one's recovery), SIGXFSZ back to
/// its default, and the original soft limit on open files.
pub fn of_daemon(cmd: &mut Command) {
    let open_files = ORIGINAL_OPEN_FILES.load(Ordering::Relaxed);
    // SAFETY: prctl, signal and getrlimit/setrlimit are async-signal-safe and touch only
    // the child; nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            if open_files != u64::MAX {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                    limit.rlim_cur = open_files.min(limit.rlim_max);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                }
            }
            Ok(())
        });
    }
}
