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

/// A deadline that moves on while a process works: it passes once `progress` has not changed
/// for `idle`, or at `cap` after it was made, whichever comes first. A slow encoder on a busy
/// machine (it takes frames, writes bytes or uses CPU, if slowly) gets its time; a stuck one
/// (nothing changes) is given up on after `idle`.
pub(crate) struct ProgressDeadline<F> {
    idle: Duration,
    cap: Instant,
    last: u64,
    changed: Instant,
    progress: F,
}

impl<F: FnMut() -> u64> ProgressDeadline<F> {
    pub(crate) fn new(idle: Duration, cap: Duration, mut progress: F) -> Self {
        let now = Instant::now();
        Self {
            idle,
            cap: now + cap,
            last: progress(),
            changed: now,
            progress,
        }
    }

    /// Whether the deadline has passed (reads the progress).
    pub(crate) fn passed(&mut self) -> bool {
        let p = (self.progress)();
        let now = Instant::now();
        if p != self.last {
            self.last = p;
            self.changed = now;
        }
        now >= self.cap || now >= self.changed + self.idle
    }

    /// Whether it passed because of the cap rather than for want of progress.
    pub(crate) fn capped(&self) -> bool {
        Instant::now() >= self.cap
    }
}

/// Polls `done` until it returns true or `deadline` passes; returns the last answer.
pub(crate) fn wait_progressing<F: FnMut() -> u64>(
    deadline: &mut ProgressDeadline<F>,
    mut done: impl FnMut() -> bool,
) -> bool {
    let mut pause = Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        if deadline.passed() {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// CPU time (user + system, in clock ticks) that process `pid` has used, from
/// `/proc/PID/stat`; 0 where it cannot be read (not Linux, the process is gone).
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name is in parentheses and may hold spaces: count fields after it. What
    // follows starts at field 3 (state); utime and stime are fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
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
    wait_or_kill_when(child, || Instant::now() >= deadline)
}

/// [`wait_or_kill`] until `passed` says the time is up.
pub(crate) fn wait_or_kill_when(
    child: &mut Child,
    mut passed: impl FnMut() -> bool,
) -> (Option<ExitStatus>, bool) {
    let mut status = None;
    let mut pause = Duration::from_millis(1);
    let exited = loop {
        match child.try_wait() {
            Ok(Some(s)) => {
                status = Some(s);
                break true;
            }
            Ok(None) => {}
            // Not our child any more (already reaped): nothing to wait for.
            Err(_) => break true,
        }
        if passed() {
            break false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A finishing FFmpeg that keeps working is waited for; one that stops is given up on
    /// after the idle time; nothing is waited for past the cap.
    #[test]
    fn the_finish_deadline_moves_on_with_progress_and_stops_at_the_cap() {
        let work = Cell::new(0u64);
        let idle = Duration::from_millis(60);
        let mut d = ProgressDeadline::new(idle, Duration::from_secs(10), || work.get());
        // Progress every 20 ms for 300 ms (5 idle times): never passed.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(300) {
            work.set(work.get() + 1);
            assert!(!d.passed(), "passed while progressing");
            thread::sleep(Duration::from_millis(20));
        }
        // A last step of progress, then none: passed the idle time after that step, not
        // because of the cap.
        work.set(work.get() + 1);
        let stalled = Instant::now();
        assert!(!wait_progressing(&mut d, || false));
        assert!(stalled.elapsed() >= idle);
        assert!(!d.capped());
        // The cap ends the wait however much progress there is.
        let mut n = 0u64;
        let mut capped = ProgressDeadline::new(idle, Duration::from_millis(150), || {
            n += 1;
            n
        });
        let t1 = Instant::now();
        assert!(!wait_progressing(&mut capped, || false));
        assert!(t1.elapsed() >= Duration::from_millis(150));
        assert!(capped.capped());
    }

    #[test]
    fn cpu_ticks_grow_for_a_busy_process_and_are_zero_for_none() {
        let me = std::process::id();
        let before = cpu_ticks(me);
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(cpu_ticks(me) > before, "no CPU counted for a busy process");
        assert_eq!(cpu_ticks(u32::MAX), 0);
    }
}
