//! The supervisor every verify and setup command runs under (`switchyard __supervise`),
//! driven directly: what a command leaves behind dies with it, its status passes
//! through, and the supervisor stops when asked, whatever the command does.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, alive};

fn supervise(dir: &Path, script: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "__supervise",
        "--parent",
        &std::process::id().to_string(),
        "--",
        "sh",
        "-c",
        script,
    ])
    .current_dir(dir)
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

fn pid_in(dir: &Path, file: &str) -> i32 {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn run(dir: &Path, script: &str) -> Output {
    supervise(dir, script).output().unwrap()
}

#[test]
fn status_passes_through() {
    let tmp = tempfile::TempDir::new().unwrap();
    assert_eq!(run(tmp.path(), "exit 7").status.code(), Some(7));
    assert_eq!(run(tmp.path(), "true").status.code(), Some(0));
    let killed = run(tmp.path(), "kill -USR1 $$");
    assert_eq!(killed.status.signal(), Some(libc::SIGUSR1), "{killed:?}");
    assert!(!killed.status.core_dumped());
}

#[test]
fn what_the_command_leaves_dies_with_it_mark_or_no_mark() {
    let tmp = tempfile::TempDir::new().unwrap();
    let out = run(
        tmp.path(),
        "(unset SWITCHYARD_RUN; setsid sh -c 'echo $$ > a; exec sleep 60' &); \
         (env -i /bin/sh -c 'setsid sh -c \"echo \\$\\$ > b; exec sleep 61\" &'); \
         while [ ! -s a ] || [ ! -s b ]; do sleep 0.01; done; exit 3",
    );
    assert_eq!(out.status.code(), Some(3));
    for f in ["a", "b"] {
        assert!(!alive(pid_in(tmp.path(), f)), "{f} outlived its command");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[switchyard: stopped 2 process(es) the command left running]"),
        "{stderr}"
    );
}

#[test]
fn the_commands_own_kill_0_does_not_stop_its_supervisor() {
    let tmp = tempfile::TempDir::new().unwrap();
    let out = run(tmp.path(), "trap '' TERM; kill 0; sleep 0.2; exit 0");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn asked_to_stop_it_ends_everything_at_once() {
    let tmp = tempfile::TempDir::new().unwrap();
    let mut child = supervise(
        tmp.path(),
        "setsid sh -c 'echo $$ > c; exec sleep 60' & sleep 60",
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tmp.path().join("c").exists()
        || std::fs::read_to_string(tmp.path().join("c"))
            .unwrap()
            .is_empty()
    {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = pid_in(tmp.path(), "c");
    let asked = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(!alive(left), "the command's process outlived the stop");
}

#[test]
fn its_own_failures_are_told_apart_from_the_commands() {
    let tmp = tempfile::TempDir::new().unwrap();
    let out = Command::new(BIN)
        .args([
            "__supervise",
            "--parent",
            &std::process::id().to_string(),
            "--uid",
            "65534",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "switchyard: supervisor: --uid and --gid go together"
    );
    // A parent that is not the one named: the daemon is gone, nothing runs.
    let out = Command::new(BIN)
        .args([
            "__supervise",
            "--parent",
            "1",
            "--",
            "sh",
            "-c",
            "touch ran",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(!tmp.path().join("ran").exists());
}
