//! Short-lived FFmpeg runs (probing, test-opening an encoder) with captured output and a
//! timeout, plus helpers shared with the long-running encoder process.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::error::{FfmpegFailure, VideoError};
use super::tail::Tail;

/// Lines and bytes of stderr kept for error messages.
pub(crate) const TAIL_LINES: usize = 64;
pub(crate) const TAIL_BYTES: usize = 16 * 1024;

/// The most stdout we keep from a probe (`-encoders` prints about 30 KiB).
const MAX_STDOUT: usize = 4 * 1024 * 1024;

/// Locks a mutex, ignoring poisoning (the data guarded here stays consistent on panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps a failed spawn to a typed error: a missing binary is the common case.
pub(crate) fn spawn_error(ffmpeg: &Path, e: io::Error) -> VideoError {
    if e.kind() == io::ErrorKind::NotFound {
        VideoError::FfmpegNotFound {
            path: ffmpeg.to_path_buf(),
        }
    } else {
        VideoError::Spawn {
            path: ffmpeg.to_path_buf(),
            source: e,
        }
    }
}

/// Spawns `cmd` with `nice` added to its scheduling priority (0: unchanged). The child is
/// spawned from a short-lived thread whose own priority is lowered first, so it starts with
/// that niceness and every thread it creates inherits it (Linux keeps niceness per thread,
/// so lowering the child after it started could miss threads it made meanwhile). Without
/// unsafe code and without `nice(1)`; the caller's threads keep their priority.
pub(crate) fn spawn_niced(mut cmd: Command, nice: i32) -> io::Result<Child> {
    if nice == 0 {
        return cmd.spawn();
    }
    thread::Builder::new()
        .name("ffmpeg-spawn".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            {
                let now = rustix::process::getpriority_process(None).unwrap_or(0);
                // Lowering one's own priority is always allowed; if it fails anyway, FFmpeg
                // runs at normal priority, which costs speed, never data.
                let _ = rustix::process::setpriority_process(None, (now + nice).min(19));
            }
            cmd.spawn()
        })?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the FFmpeg spawn thread panicked")))
}

/// Reads `r` to its end into `tail`. Used on a dedicated thread for a child's stderr, so that
/// the child can never block on a full stderr pipe.
pub(crate) fn drain_into_tail(mut r: impl Read, tail: &Mutex<Tail>) {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lock(tail).feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    lock(tail).finish();
}

/// Polls `done` until it returns true or `deadline` passes; returns the last answer.
pub(crate) fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    let mut pause = Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Joins `handle` if the thread ends within `timeout`; otherwise leaves it detached.
pub(crate) fn join_within<T>(handle: JoinHandle<T>, timeout: Duration) -> Option<T> {
    if wait_until(Instant::now() + timeout, || handle.is_finished()) {
        handle.join().ok()
    } else {
        None
    }
}

/// Waits for `child` until `deadline`; on timeout kills it (SIGKILL) and reaps it briefly.
/// Returns the exit status (if it could be reaped) and whether we had to kill it.
pub(crate) fn wait_or_kill(child: &mut Child, deadline: Instant) -> (Option<ExitStatus>, bool) {
    let mut status = None;
    let exited = wait_until(deadline, || match child.try_wait() {
        Ok(Some(s)) => {
            status = Some(s);
            true
        }
        Ok(None) => false,
        // Not our child any more (already reaped): nothing to wait for.
        Err(_) => true,
    });
    if exited {
        return (status, false);
    }
    let _ = child.kill();
    wait_until(Instant::now() + Duration::from_secs(2), || {
        match child.try_wait() {
            Ok(Some(s)) => {
                status = Some(s);
                true
            }
            Ok(None) => false,
            Err(_) => true,
        }
    });
    (status, true)
}

/// The result of a short FFmpeg run.
pub(crate) struct Captured {
    pub(crate) stdout: Vec<u8>,
}

/// Why a short run did not succeed.
pub(crate) enum RunError {
    /// FFmpeg could not be started at all.
    Start(VideoError),
    /// It ran but failed, or timed out.
    Failed(FfmpegFailure),
}

/// Runs `ffmpeg args...` with stdin closed, capturing stdout and a bounded stderr tail, killing
/// it after `timeout`. Succeeds only when it exits with status 0.
pub(crate) fn run_captured(
    ffmpeg: &Path,
    args: &[String],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Result<Captured, RunError> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| RunError::Start(spawn_error(ffmpeg, e)))?;
    let deadline = Instant::now() + timeout;

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let tail = Arc::new(Mutex::new(Tail::new(TAIL_LINES, TAIL_BYTES)));
    let out_thread = thread::Builder::new()
        .name("ffmpeg-probe-stdout".into())
        .spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.take(MAX_STDOUT as u64).read_to_end(&mut out);
            out
        });
    let out_thread = match out_thread {
        Ok(h) => h,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Start(VideoError::Thread(e)));
        }
    };
    let err_tail = Arc::clone(&tail);
    let err_thread = thread::Builder::new()
        .name("ffmpeg-probe-stderr".into())
        .spawn(move || drain_into_tail(stderr, &err_tail));
    let err_thread = match err_thread {
        Ok(h) => h,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Start(VideoError::Thread(e)));
        }
    };

    let (status, killed) = wait_or_kill(&mut child, deadline);
    // The pipes reach EOF once FFmpeg has exited; bound the wait anyway.
    let stdout = join_within(out_thread, Duration::from_secs(2)).unwrap_or_default();
    join_within(err_thread, Duration::from_secs(2));
    let stderr_tail = lock(&tail).text();

    if killed {
        return Err(RunError::Failed(FfmpegFailure {
            cause: format!("ffmpeg timed out after {timeout:?} and was killed"),
            status,
            stderr_tail,
        }));
    }
    match status {
        Some(s) if s.success() => Ok(Captured { stdout }),
        Some(s) => Err(RunError::Failed(FfmpegFailure {
            cause: "ffmpeg failed".into(),
            status: Some(s),
            stderr_tail,
        })),
        None => Err(RunError::Failed(FfmpegFailure {
            cause: "ffmpeg's exit status is unknown".into(),
            status: None,
            stderr_tail,
        })),
    }
}
