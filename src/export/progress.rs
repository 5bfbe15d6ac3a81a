//! Progress of an export: the [`Progress`] trait the exporter reports to, and a terminal
//! progress bar with rate and ETA.

use std::io::Write;
use std::time::{Duration, Instant};

/// Receives progress and warnings from an export.
pub trait Progress {
    /// The whole export: frames and raw bytes (depth, or RGB for colour) to go.
    fn begin(&mut self, _total_frames: u64, _total_bytes: u64) {}
    /// Work on a camera starts.
    fn camera(&mut self, _name: &str) {}
    /// `frames` more frames (`bytes` raw bytes) are done.
    fn advance(&mut self, _frames: u64, _bytes: u64) {}
    /// Something the user should know (frames missing from a video, colour not available).
    fn warn(&mut self, _message: &str) {}
    /// The export has ended (successfully or not).
    fn end(&mut self) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// Counters and the text of a progress line.
#[derive(Clone, Debug)]
pub struct Bar {
    pub total_frames: u64,
    pub total_bytes: u64,
    pub frames: u64,
    pub bytes: u64,
    pub label: String,
    started: Instant,
}

impl Bar {
    pub fn new(total_frames: u64, total_bytes: u64, started: Instant) -> Self {
        Self {
            total_frames,
            total_bytes,
            frames: 0,
            bytes: 0,
            label: String::new(),
            started,
        }
    }

    /// `label  42% [#########-----------] 1234/2940 frames  345 fps  123.4 MB/s  ETA 0:12`
    pub fn render(&self, now: Instant) -> String {
        const WIDTH: usize = 24;
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let frac = if self.total_frames == 0 {
            1.0
        } else {
            (self.frames as f64 / self.total_frames as f64).min(1.0)
        };
        let filled = (frac * WIDTH as f64).round() as usize;
        let fps = if elapsed > 0.0 {
            self.frames as f64 / elapsed
        } else {
            0.0
        };
        let mbs = if elapsed > 0.0 {
            self.bytes as f64 / elapsed / 1e6
        } else {
            0.0
        };
        let eta = if self.frames > 0 && fps > 0.0 {
            fmt_duration(Duration::from_secs_f64(
                self.total_frames.saturating_sub(self.frames) as f64 / fps,
            ))
        } else {
            "--:--".into()
        };
        format!(
            "{}{:3.0}% [{}{}] {}/{} frames  {:.0} fps  {:.1} MB/s  ETA {}",
            if self.label.is_empty() {
                String::new()
            } else {
                format!("{}  ", self.label)
            },
            frac * 100.0,
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.frames,
            self.total_frames,
            fps,
            mbs,
            eta
        )
    }
}

/// `m:ss`, or `h:mm:ss` from an hour.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A progress bar redrawn in place on stderr (at most 10 times a second); warnings are
/// printed on their own lines.
pub struct TerminalBar {
    bar: Option<Bar>,
    last_draw: Option<Instant>,
    width: usize,
}

impl TerminalBar {
    pub fn new() -> Self {
        Self {
            bar: None,
            last_draw: None,
            width: 0,
        }
    }

    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last_draw
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        let Some(bar) = &self.bar else { return };
        let line = bar.render(now);
        let pad = self.width.saturating_sub(line.len());
        self.width = line.len();
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r{line}{}", " ".repeat(pad));
        let _ = e.flush();
        self.last_draw = Some(now);
    }

    fn clear(&mut self) {
        if self.width > 0 {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r{}\r", " ".repeat(self.width));
            let _ = e.flush();
            self.width = 0;
        }
    }
}

impl Default for TerminalBar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for TerminalBar {
    fn begin(&mut self, total_frames: u64, total_bytes: u64) {
        self.bar = Some(Bar::new(total_frames, total_bytes, Instant::now()));
        self.draw(true);
    }
    fn camera(&mut self, name: &str) {
        if let Some(b) = &mut self.bar {
            b.label = name.to_string();
        }
        self.draw(true);
    }
    fn advance(&mut self, frames: u64, bytes: u64) {
        if let Some(b) = &mut self.bar {
            b.frames += frames;
            b.bytes += bytes;
        }
        self.draw(false);
    }
    fn warn(&mut self, message: &str) {
        self.clear();
        eprintln!("rsrec: warning: {message}");
        self.draw(true);
    }
    fn end(&mut self) {
        self.clear();
    }
}

/// Prints warnings only (`--quiet`, or stderr is not a terminal).
pub struct WarningsOnly;
impl Progress for WarningsOnly {
    fn warn(&mut self, message: &str) {
        eprintln!("rsrec: warning: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rate_and_eta() {
        let t0 = Instant::now();
        let mut b = Bar::new(100, 100_000_000, t0);
        b.label = "cam0".into();
        b.frames = 25;
        b.bytes = 25_000_000;
        let s = b.render(t0 + Duration::from_secs(5));
        assert!(
            s.starts_with("cam0   25% [######------------------] 25/100 frames"),
            "{s}"
        );
        assert!(s.contains(" 5 fps "), "{s}");
        assert!(s.contains("5.0 MB/s"), "{s}");
        assert!(s.ends_with("ETA 0:15"), "{s}");
        let fresh = Bar::new(10, 0, t0).render(t0);
        assert!(fresh.ends_with("ETA --:--"), "{fresh}");
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_secs(75)), "1:15");
        assert_eq!(fmt_duration(Duration::from_secs(3725)), "1:02:05");
    }
}
