//! Decoding off the UI thread.
//!
//! A [`Worker`] is one named thread that decodes the frames of its latest request, in order,
//! and sends them on a bounded channel shared with the other workers. Requests go through a
//! one-slot mailbox: a new request replaces the one waiting, and the thread checks for one
//! between frames, so a seek abandons the prefetch that was running and its first frame is
//! the next one decoded (latest request wins). Dropping the worker sets the stop flag, wakes
//! the thread and joins it.
//!
//! What a frame is and how it is decoded is a [`FrameSource`]: depth ([`DepthSource`]) and
//! infrared ([`InfraredSource`]), both from the mapped `.rsrec` files, here; colour in
//! [`super::color`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};

use super::colormap::{percentile_range, Range};
use super::error::{Result, ViewError};
use super::model::Session;
use crate::session::Stream;

/// A decoded depth frame.
pub struct DepthImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u16>,
    /// 2nd..98th percentile of the valid samples (`None`: no valid sample).
    pub auto_range: Option<Range>,
}

/// A decoded colour frame, packed RGB.
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// A decoded infrared frame, one 8-bit intensity per pixel.
pub struct GrayImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// What a worker sends back.
pub enum Decoded {
    Depth {
        cam: usize,
        k: usize,
        image: DepthImage,
    },
    /// `image` is `None` when the video does not have the frame (a recording cut short loses
    /// the frames still inside the encoder).
    Color {
        cam: usize,
        k: usize,
        image: Option<RgbImage>,
    },
    Infrared {
        cam: usize,
        stream: Stream,
        k: usize,
        image: GrayImage,
    },
    Failed {
        cam: usize,
        stream: Stream,
        k: usize,
        message: String,
    },
}

/// One frame to decode: camera index and frame position in its stream.
pub type FrameId = (usize, usize);

/// Decodes frames for a worker. Runs on the worker's thread.
pub trait FrameSource: Send + 'static {
    fn decode(&mut self, id: FrameId) -> Decoded;
}

/// The latest request, replaced by newer ones.
struct Mailbox {
    slot: Mutex<Option<Vec<FrameId>>>,
}

impl Mailbox {
    fn take(&self) -> Option<Vec<FrameId>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
    fn put(&self, v: Vec<FrameId>) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }
}

/// A decoding thread.
pub struct Worker {
    mailbox: Arc<Mailbox>,
    wake: Option<Sender<()>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts thread `name` decoding with `source`; results go to `out`, and `notify` is
    /// called after each (the UI asks for a repaint there).
    pub fn spawn(
        name: &str,
        mut source: impl FrameSource,
        out: Sender<Decoded>,
        notify: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Self> {
        let mailbox = Arc::new(Mailbox {
            slot: Mutex::new(None),
        });
        let (wake_tx, wake_rx) = bounded::<()>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (Arc::clone(&mailbox), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&mut source, &m, &wake_rx, &s, &out, &*notify))
            .map_err(|source| ViewError::Thread {
                what: "decoder",
                source,
            })?;
        Ok(Worker {
            mailbox,
            wake: Some(wake_tx),
            stop,
            thread: Some(thread),
        })
    }

    /// Asks for `frames`, in this order, replacing the request not yet started.
    pub fn request(&self, frames: Vec<FrameId>) {
        self.mailbox.put(frames);
        if let Some(w) = &self.wake {
            // Full means a wake-up is already pending: nothing to do.
            let _ = w.try_send(());
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake = None; // disconnects: the thread wakes at once
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    source: &mut dyn FrameSource,
    mailbox: &Mailbox,
    wake: &Receiver<()>,
    stop: &AtomicBool,
    out: &Sender<Decoded>,
    notify: &(dyn Fn() + Send + Sync),
) {
    let mut todo: std::vec::IntoIter<FrameId> = Vec::new().into_iter();
    while !stop.load(Ordering::SeqCst) {
        if let Some(req) = mailbox.take() {
            todo = req.into_iter();
        }
        let Some(id) = todo.next() else {
            match wake.recv_timeout(Duration::from_millis(200)) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let mut msg = source.decode(id);
        loop {
            match out.send_timeout(msg, Duration::from_millis(100)) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(m)) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    msg = m;
                }
                Err(SendTimeoutError::Disconnected(_)) => return,
            }
        }
        notify();
    }
}

/// Depth frames of every camera of a session.
pub struct DepthSource {
    session: Arc<Session>,
}

impl DepthSource {
    pub fn new(session: Arc<Session>) -> Self {
        Self { session }
    }
}

impl FrameSource for DepthSource {
    fn decode(&mut self, (cam, k): FrameId) -> Decoded {
        let failed = |message: String| Decoded::Failed {
            cam,
            stream: Stream::Depth,
            k,
            message,
        };
        let Some(c) = self.session.recording.cameras.get(cam) else {
            return failed(format!("no camera {cam}"));
        };
        let Some(d) = &c.depth else {
            return failed(format!("{}: no depth stream", c.name));
        };
        let (width, height) = (d.width, d.height);
        let n = match c.depth_frame_len() {
            Ok(n) => n,
            Err(e) => return failed(crate::error::chain(&e)),
        };
        let mut data = vec![0u16; n];
        match c.read_depth_into(k, &mut data) {
            Ok(_) => {
                let auto_range = percentile_range(&data, 2.0, 98.0);
                Decoded::Depth {
                    cam,
                    k,
                    image: DepthImage {
                        width,
                        height,
                        data,
                        auto_range,
                    },
                }
            }
            Err(e) => failed(crate::error::chain(&e)),
        }
    }
}

/// One infrared stream (left or right) of every camera of a session.
pub struct InfraredSource {
    session: Arc<Session>,
    stream: Stream,
    /// The codec's 16-bit samples, reused between frames.
    scratch: Vec<u16>,
}

impl InfraredSource {
    pub fn new(session: Arc<Session>, stream: Stream) -> Self {
        Self {
            session,
            stream,
            scratch: Vec::new(),
        }
    }
}

impl FrameSource for InfraredSource {
    fn decode(&mut self, (cam, k): FrameId) -> Decoded {
        let stream = self.stream;
        let failed = |message: String| Decoded::Failed {
            cam,
            stream,
            k,
            message,
        };
        let Some(c) = self.session.recording.cameras.get(cam) else {
            return failed(format!("no camera {cam}"));
        };
        let Some(d) = c.infrared_descriptor(stream) else {
            return failed(format!("{}: no {} stream", c.name, stream.name()));
        };
        let (width, height) = (d.width, d.height);
        let n = match c.infrared_frame_len(stream) {
            Ok(n) => n,
            Err(e) => return failed(crate::error::chain(&e)),
        };
        let mut data = vec![0u8; n];
        match c.read_infrared_into(stream, k, &mut self.scratch, &mut data) {
            Ok(_) => Decoded::Infrared {
                cam,
                stream,
                k,
                image: GrayImage {
                    width,
                    height,
                    data,
                },
            },
            Err(e) => failed(crate::error::chain(&e)),
        }
    }
}

/// The frames to ask a worker for at time `t`: for each camera in `cams`, its frame at `t`
/// first (all cameras), then `ahead` frames after it and `behind` before it, interleaved
/// across cameras, leaving out frames `have` says are already there.
pub fn prefetch_plan(
    session: &Session,
    stream: Stream,
    t: i64,
    cams: &[usize],
    ahead: usize,
    behind: usize,
    have: impl Fn(FrameId) -> bool,
) -> Vec<FrameId> {
    let centre: Vec<(usize, usize, usize)> = cams
        .iter()
        .filter_map(|&c| {
            let n = session.frame_count(c, stream);
            session.frame_at(c, stream, t).map(|k| (c, k, n))
        })
        .collect();
    let mut plan = Vec::new();
    let offsets = std::iter::once(0i64)
        .chain((1..=ahead.max(behind)).flat_map(|i| [i as i64, -(i as i64)]))
        .filter(|&o| o <= ahead as i64 && -o <= behind as i64);
    for o in offsets {
        for &(c, k, n) in &centre {
            let Some(k) = k.checked_add_signed(o as isize).filter(|&k| k < n) else {
                continue;
            };
            if !have((c, k)) {
                plan.push((c, k));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Takes 20 ms a frame and reports depth frames of a fixed size.
    struct Slow;

    impl FrameSource for Slow {
        fn decode(&mut self, (cam, k): FrameId) -> Decoded {
            std::thread::sleep(Duration::from_millis(20));
            Decoded::Depth {
                cam,
                k,
                image: DepthImage {
                    width: 1,
                    height: 1,
                    data: vec![k as u16],
                    auto_range: None,
                },
            }
        }
    }

    fn id(d: &Decoded) -> FrameId {
        match d {
            Decoded::Depth { cam, k, .. } | Decoded::Color { cam, k, .. } => (*cam, *k),
            Decoded::Infrared { cam, k, .. } | Decoded::Failed { cam, k, .. } => (*cam, *k),
        }
    }

    #[test]
    fn the_latest_request_wins() {
        let (tx, rx) = bounded(4);
        let w = Worker::spawn("test-worker", Slow, tx, Arc::new(|| {})).unwrap();
        w.request((0..50).map(|k| (0, k)).collect());
        std::thread::sleep(Duration::from_millis(30));
        w.request(vec![(1, 7), (1, 8)]);
        let mut got = Vec::new();
        let t0 = Instant::now();
        while !got.contains(&(1, 8)) && t0.elapsed() < Duration::from_secs(10) {
            if let Ok(d) = rx.recv_timeout(Duration::from_secs(1)) {
                got.push(id(&d));
            }
        }
        let old = got.iter().filter(|f| f.0 == 0).count();
        assert!(old <= 3, "the old request kept running: {got:?}");
        let new: Vec<_> = got.iter().filter(|f| f.0 == 1).copied().collect();
        assert_eq!(new, vec![(1, 7), (1, 8)]);
        // Nothing more comes: the old request was dropped, not resumed.
        assert!(rx.recv_timeout(Duration::from_millis(150)).is_err());
    }

    #[test]
    fn drop_stops_the_thread_even_when_nobody_reads() {
        let (tx, _rx) = bounded(1);
        let w = Worker::spawn("test-worker", Slow, tx, Arc::new(|| {})).unwrap();
        w.request((0..1000).map(|k| (0, k)).collect());
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        drop(w);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }

    #[test]
    fn prefetch_starts_at_the_playhead_and_skips_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam.rsrec");
        crate::view::model::tests::write_file(&path, true);
        let s = Session::open(&path).unwrap();
        let t = 5 * 33_333;
        let plan = prefetch_plan(&s, Stream::Depth, t, &[0], 2, 1, |_| false);
        assert_eq!(plan, vec![(0, 5), (0, 6), (0, 4), (0, 7)]);
        let plan = prefetch_plan(&s, Stream::Depth, t, &[0], 2, 1, |id| id == (0, 5));
        assert_eq!(plan, vec![(0, 6), (0, 4), (0, 7)]);
        // At the end nothing past the last frame; no colour stream, no plan.
        let plan = prefetch_plan(&s, Stream::Depth, i64::MAX / 2, &[0], 2, 0, |_| false);
        assert_eq!(plan, vec![(0, 19)]);
        assert!(prefetch_plan(&s, Stream::Color, 0, &[0], 2, 0, |_| false).is_empty());
        // The real depth source decodes what the plan names.
        let mut src = DepthSource::new(Arc::new(s));
        match src.decode((0, 10)) {
            Decoded::Depth { image, .. } => {
                assert_eq!(image.data, vec![1020; 8]);
                assert_eq!(
                    image.auto_range,
                    Some(Range {
                        min: 1020,
                        max: 1021
                    })
                );
            }
            _ => panic!("frame 10 did not decode"),
        }
        assert!(matches!(src.decode((0, 20)), Decoded::Failed { .. }));
        assert!(matches!(src.decode((3, 0)), Decoded::Failed { .. }));
    }
}
