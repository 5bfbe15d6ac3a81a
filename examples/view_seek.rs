//! Measures the viewer's seek latency without a window: the same session model and decoding
//! workers as `rsrec view`, asked for the frames of every camera (depth and colour) at random
//! times, one seek at a time, timing each seek until every frame has arrived.
//!
//! `cargo run --release --example view_seek -- SESSION [SEEKS] [--ffmpeg PATH] [--no-color]
//! [--pause MS]`
//!
//! `--pause` waits between seeks (default 0: back to back), as a user clicking on the
//! timeline does; the colour sources start their next standby FFmpeg after each seek.
//!
//! Prints the median, 90th percentile and maximum per stream; the window adds one repaint
//! (a few ms) and the texture upload on top.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use rsrec::export::Stream;
use rsrec::view::color::ColorSource;
use rsrec::view::worker::{Decoded, DepthSource, Worker};
use rsrec::view::Session;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut session, mut seeks, mut ffmpeg) = (None, 30usize, PathBuf::from("ffmpeg"));
    let mut with_color = true;
    let mut pause = Duration::ZERO;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ffmpeg" => ffmpeg = args.next().map(PathBuf::from).unwrap_or(ffmpeg),
            "--no-color" => with_color = false,
            "--pause" => match args.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(ms) => pause = Duration::from_millis(ms),
                None => {
                    eprintln!("view_seek: --pause needs milliseconds");
                    return ExitCode::from(2);
                }
            },
            _ if session.is_none() => session = Some(PathBuf::from(a)),
            n => match n.parse() {
                Ok(n) => seeks = n,
                Err(_) => {
                    eprintln!("usage: view_seek SESSION [SEEKS] [--ffmpeg PATH] [--no-color] [--pause MS]");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let Some(path) = session else {
        eprintln!("usage: view_seek SESSION [SEEKS] [--ffmpeg PATH] [--no-color] [--pause MS]");
        return ExitCode::from(2);
    };
    let t0 = Instant::now();
    let session = match Session::open(&path) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("view_seek: {}", rsrec::error::chain(&e));
            return ExitCode::FAILURE;
        }
    };
    println!(
        "opened {} ({} cameras, {:.1} s) in {:.1} ms",
        session.description,
        session.cameras.len(),
        session.duration_us as f64 / 1e6,
        t0.elapsed().as_secs_f64() * 1e3
    );
    let (tx, rx) = bounded(64);
    let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(|| {});
    let depth = Worker::spawn(
        "seek-depth",
        DepthSource::new(Arc::clone(&session)),
        tx.clone(),
        Arc::clone(&notify),
    )
    .expect("depth worker");
    let cams: Vec<usize> = (0..session.cameras.len()).collect();
    let color: Vec<(usize, Worker)> = cams
        .iter()
        .filter(|&&c| with_color && session.frame_count(c, Stream::Color) > 0)
        .map(|&c| {
            let src = ColorSource::new(Arc::clone(&session), c, ffmpeg.clone());
            let w = Worker::spawn(&format!("seek-color-{c}"), src, tx.clone(), notify.clone())
                .expect("colour worker");
            (c, w)
        })
        .collect();
    let (mut d_ms, mut c_ms) = (Vec::new(), Vec::new());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..seeks {
        std::thread::sleep(pause);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = (x % (session.duration_us.max(1) as u64)) as i64;
        let start = Instant::now();
        let mut want_d: Vec<(usize, usize)> = cams
            .iter()
            .filter_map(|&c| session.frame_at(c, Stream::Depth, t).map(|k| (c, k)))
            .collect();
        let mut want_c: Vec<(usize, usize)> = color
            .iter()
            .filter_map(|(c, _)| session.frame_at(*c, Stream::Color, t).map(|k| (*c, k)))
            .collect();
        depth.request(want_d.clone());
        for (c, w) in &color {
            w.request(want_c.iter().filter(|f| f.0 == *c).copied().collect());
        }
        while !want_d.is_empty() || !want_c.is_empty() {
            let Ok(msg) = rx.recv_timeout(Duration::from_secs(30)) else {
                eprintln!("view_seek: no frame within 30 s");
                return ExitCode::FAILURE;
            };
            let ms = start.elapsed().as_secs_f64() * 1e3;
            match msg {
                Decoded::Depth { cam, k, .. } => {
                    want_d.retain(|f| *f != (cam, k));
                    if want_d.is_empty() {
                        d_ms.push(ms);
                    }
                }
                Decoded::Color { cam, k, .. } => {
                    want_c.retain(|f| *f != (cam, k));
                    if want_c.is_empty() {
                        c_ms.push(ms);
                    }
                }
                // Not asked for: this bench times depth and colour.
                Decoded::Infrared { .. } => {}
                Decoded::Failed { message, .. } => {
                    eprintln!("view_seek: {message}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    for (name, mut v) in [
        ("depth (all cameras)", d_ms),
        ("colour (all cameras)", c_ms),
    ] {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name}: {} seeks, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            v.len(),
            q(0.5),
            q(0.9),
            q(1.0)
        );
    }
    ExitCode::SUCCESS
}
