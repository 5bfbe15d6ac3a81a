//! `rsrec view`: the real viewer in a real X server.
//!
//! The window test records a synthetic session (2 cameras, depth + H.265 colour), starts
//! Xvfb (software OpenGL through Mesa), runs `rsrec view --debug-layout` on it and reads the
//! viewer's layout lines (panel rectangles in window pixels, the window's position, whether
//! each panel shows the playhead's frame) from its stderr. Once every panel shows its frame,
//! it takes a screenshot of the root window with `xwd` (decoded here), checks that the depth
//! and colour panels are where the layout says (depth left of colour, one row per camera)
//! and are drawn (many colours, not uniform, depth in turbo colours); it moves the pointer
//! onto a depth panel and checks the hover text (pixel and distance); then it presses End
//! with `xdotool` (the real keyboard and seek path), waits for the frames at the end, takes a
//! second screenshot and checks that every image panel changed.
//!
//! Without Xvfb, xwd, xdotool or FFmpeg the window test prints a loud warning and skips;
//! under `CI=true` it fails. Set `RSREC_VIEW_SCREENSHOT=FILE.png` to keep the first
//! screenshot (the README's picture is made that way).
#![cfg(feature = "viewer")]

use crate::common;

use common::{p, rsrec, skip};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A 3 s synthetic session with 2 cameras (depth 424x240@30, colour 320x240@15).
fn sim_session() -> PathBuf {
    common::sim_session().to_path_buf()
}

/// A child process killed and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a free display (it picks the number and writes it to its stdout).
fn start_xvfb() -> (Killed, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    let stdout = child.stdout.take().unwrap();
    let guard = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("Xvfb did not report its display within 20 s");
    let n: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Xvfb wrote {line:?}"));
    (guard, format!(":{n}"))
}

/// The viewer, its stderr lines collected on a thread.
struct Viewer {
    _child: Killed,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Viewer {
    fn start(display: &str, session: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rsrec"))
            .args(["view", p(session), "--debug-layout", "--size", "1200x740"])
            .env("DISPLAY", display)
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rsrec view");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Viewer {
            _child: Killed(child),
            lines,
        }
    }

    fn all_lines(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits (at most 60 s) for a layout line that satisfies `ok`.
    fn wait_layout(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .rev()
                .filter_map(|l| l.strip_prefix("rsrec-view-layout "))
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| ok(v));
            if let Some(v) = found {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the viewer never showed {what} within 60 s; its stderr:\n{}",
            self.all_lines()
        );
    }
}

/// A screenshot: RGB pixels, row by row.
struct Shot {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Shot {
    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }

    /// The pixels of a screen rectangle `[x, y, w, h]`, clipped to the screen.
    fn region(&self, r: [i64; 4]) -> Vec<[u8; 3]> {
        let x0 = r[0].clamp(0, self.width as i64) as usize;
        let y0 = r[1].clamp(0, self.height as i64) as usize;
        let x1 = (r[0] + r[2]).clamp(0, self.width as i64) as usize;
        let y1 = (r[1] + r[3]).clamp(0, self.height as i64) as usize;
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| self.px(x, y))
            .collect()
    }

    fn save_png(&self, path: &Path) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&self.rgb.concat()).unwrap();
    }
}

/// Takes a screenshot of the whole screen with `xwd -root` and decodes it.
fn screenshot(display: &str) -> Shot {
    let o = Command::new("xwd")
        .args(["-root", "-silent"])
        .env("DISPLAY", display)
        .output()
        .expect("run xwd");
    assert!(
        o.status.success(),
        "xwd failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    decode_xwd(&o.stdout).unwrap_or_else(|e| panic!("bad XWD from xwd: {e}"))
}

/// Decodes an XWD image (X11 window dump, version 7) of a TrueColor visual with 24 or 32 bits
/// per pixel.
fn decode_xwd(b: &[u8]) -> Result<Shot, String> {
    let field = |i: usize| -> Result<u32, String> {
        b.get(i * 4..i * 4 + 4)
            .map(|s| u32::from_be_bytes(s.try_into().unwrap()))
            .ok_or_else(|| "truncated header".to_string())
    };
    let header_size = field(0)? as usize;
    if field(1)? != 7 {
        return Err(format!("XWD version {} (expected 7)", field(1)?));
    }
    if field(2)? != 2 {
        return Err("not a ZPixmap".into());
    }
    let (width, height) = (field(4)? as usize, field(5)? as usize);
    let byte_order = field(7)?; // 0 = LSB first
    let bpp = field(11)? as usize;
    let bytes_per_line = field(12)? as usize;
    let masks = [field(14)?, field(15)?, field(16)?];
    let ncolors = field(19)? as usize;
    if bpp != 32 && bpp != 24 {
        return Err(format!("{bpp} bits per pixel"));
    }
    let data = header_size + ncolors * 12;
    let need = data + bytes_per_line * height;
    if b.len() < need {
        return Err(format!("{} bytes, expected {need}", b.len()));
    }
    let mut rgb = Vec::with_capacity(width * height);
    for y in 0..height {
        let row = &b[data + y * bytes_per_line..];
        for x in 0..width {
            let s = &row[x * bpp / 8..x * bpp / 8 + bpp / 8];
            let mut v = 0u32;
            if byte_order == 0 {
                for (i, &c) in s.iter().enumerate() {
                    v |= (c as u32) << (8 * i);
                }
            } else {
                for &c in s {
                    v = (v << 8) | c as u32;
                }
            }
            let ch = |m: u32| ((v & m) >> m.trailing_zeros()) as u8;
            rgb.push([ch(masks[0]), ch(masks[1]), ch(masks[2])]);
        }
    }
    Ok(Shot { width, height, rgb })
}

/// Number of distinct colours (quantised to 5 bits a channel) and the standard deviation of
/// the brightness of a region.
fn variety(px: &[[u8; 3]]) -> (usize, f64) {
    let set: std::collections::HashSet<[u8; 3]> = px
        .iter()
        .map(|c| [c[0] >> 3, c[1] >> 3, c[2] >> 3])
        .collect();
    let l: Vec<f64> = px
        .iter()
        .map(|c| (c[0] as f64 + c[1] as f64 + c[2] as f64) / 3.0)
        .collect();
    let mean = l.iter().sum::<f64>() / l.len().max(1) as f64;
    let var = l.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / l.len().max(1) as f64;
    (set.len(), var.sqrt())
}

/// The panels of a layout line, on the screen: (camera, stream, [x, y, w, h]).
fn panels(layout: &Value) -> Vec<(String, String, [i64; 4])> {
    let win = &layout["window"];
    let (wx, wy) = (win[0].as_i64().unwrap_or(0), win[1].as_i64().unwrap_or(0));
    layout["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let r: Vec<i64> = p["rect"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_i64).collect())
                .filter(|r: &Vec<i64>| r.len() == 4)
                .unwrap_or_else(|| panic!("panel without a rectangle in {layout}"));
            (
                p["camera"].as_str().unwrap().to_string(),
                p["stream"].as_str().unwrap().to_string(),
                [r[0] + wx, r[1] + wy, r[2], r[3]],
            )
        })
        .collect()
}

/// Screenshots every 250 ms until `done` says yes, 15 s at most; returns the last one.
fn shoot_until(display: &str, done: impl Fn(&Shot) -> bool) -> Shot {
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let shot = screenshot(display);
        if done(&shot) || t0.elapsed() > Duration::from_secs(15) {
            return shot;
        }
    }
}

/// Pixels that differ by more than 24 in some channel.
fn changed_pixels(a: &[[u8; 3]], b: &[[u8; 3]]) -> usize {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.iter().zip(y.iter()).any(|(p, q)| p.abs_diff(*q) > 24))
        .count()
}

fn ready_with(n: usize) -> impl Fn(&Value) -> bool {
    move |v| v["ready"] == true && v["panels"].as_array().is_some_and(|p| p.len() == n)
}

#[test]
fn viewer_draws_depth_and_colour_and_seeks() {
    let tools = [
        ("Xvfb", "-help"),
        ("xwd", "-help"),
        ("xdotool", "version"),
        ("ffmpeg", "-version"),
    ];
    for (t, arg) in tools {
        if !have(t, arg) {
            return skip(&format!("{t} is not installed (tools/test.sh installs it)"));
        }
    }
    let session = sim_session();
    let (_xvfb, display) = start_xvfb();
    let viewer = Viewer::start(&display, &session);

    // 2 cameras x (depth, colour), every panel showing the frame at the playhead.
    let first = viewer.wait_layout("all four panels drawn", ready_with(4));
    assert_eq!(first["t_us"], 0, "the viewer starts at the beginning");
    // The line is printed while the frame is being drawn: wait until it is on the screen
    // (every panel drawn), 15 s at most; the checks below then judge the last screenshot.
    let ps = panels(&first);
    let shot1 = shoot_until(&display, |shot| {
        ps.iter().all(|(_, _, r)| variety(&shot.region(*r)).0 >= 20)
    });
    if let Some(path) = std::env::var_os("RSREC_VIEW_SCREENSHOT") {
        shot1.save_png(Path::new(&path));
    }
    let dir = common::keep_dir("view-screenshots");
    shot1.save_png(&dir.join("start.png"));

    // Layout: one row per camera (or one column), depth left of colour.
    for cam in ["sim0", "sim1"] {
        let find = |s: &str| {
            ps.iter()
                .find(|(c, st, _)| c == cam && st == s)
                .unwrap_or_else(|| panic!("no {cam} {s} panel in {first}"))
                .2
        };
        let (d, c) = (find("depth"), find("color"));
        assert_eq!(
            d[1], c[1],
            "{cam}: depth and colour panels side by side: {first}"
        );
        assert!(d[0] + d[2] <= c[0], "{cam}: depth left of colour: {first}");
        // Aspect ratios of the frames (424x240 depth, 320x240 colour), within 3 %.
        let ar = |r: [i64; 4]| r[2] as f64 / r[3] as f64;
        assert!((ar(d) / (424.0 / 240.0) - 1.0).abs() < 0.03, "{d:?}");
        assert!((ar(c) / (320.0 / 240.0) - 1.0).abs() < 0.03, "{c:?}");
        assert!(d[2] >= 200 && c[2] >= 150, "panels too small: {first}");
    }
    for (cam, stream, r) in &ps {
        assert!(
            r[0] >= 0 && r[1] >= 0 && r[0] + r[2] <= 1280 && r[1] + r[3] <= 800,
            "{cam} {stream} panel {r:?} is off the screen"
        );
        let (colours, sd) = variety(&shot1.region(*r));
        eprintln!("{cam} {stream}: {colours} colours, brightness sd {sd:.1}");
        assert!(
            colours >= 20 && sd > 10.0,
            "{cam} {stream} panel looks blank: {colours} colours, sd {sd:.1}"
        );
        if stream == "depth" {
            // Turbo colours: the sim's tilted wall (2-3 m) runs through green, yellow and
            // red; count clearly green and clearly red/orange pixels.
            let px = shot1.region(*r);
            let green = px
                .iter()
                .filter(|c| c[1] as i32 > c[0] as i32 + 30 && c[1] as i32 > c[2] as i32 + 30)
                .count();
            let warm = px
                .iter()
                .filter(|c| c[0] as i32 > c[1] as i32 + 60 && c[0] as i32 > c[2] as i32 + 60)
                .count();
            assert!(
                green * 50 > px.len() && warm * 50 > px.len(),
                "{cam} depth is not in turbo colours: {green} green, {warm} red of {}",
                px.len()
            );
        }
    }
    // Outside the panels the window is the (dark) UI, not the frame: the panels are where
    // the layout says they are. Check a strip just below the first depth panel.
    let d0 = ps[0].2;
    let below = [d0[0], d0[1] + d0[3] + 2, d0[2], 1];
    let (colours, _) = variety(&shot1.region(below));
    assert!(
        colours < 20,
        "the area below a panel is not UI background: {colours} colours"
    );

    // Hovering over a depth panel shows the distance and the pixel there: the pointer on
    // the centre of sim0's depth image is pixel (212, 120) of 424x240.
    let (hx, hy) = (d0[0] + d0[2] / 2, d0[1] + d0[3] / 2);
    let o = Command::new("xdotool")
        .args(["mousemove", &hx.to_string(), &hy.to_string()])
        .env("DISPLAY", &display)
        .output()
        .expect("run xdotool");
    assert!(
        o.status.success(),
        "xdotool: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // (The pointer started in the middle of the screen, over another panel.)
    let hover = viewer.wait_layout("a hover distance on sim0", |v| {
        v["hover"].as_str().is_some_and(|h| h.starts_with("sim0 ("))
    });
    let text = hover["hover"].as_str().unwrap();
    let (x, y) = text
        .strip_prefix("sim0 (")
        .and_then(|t| t.split_once(')'))
        .and_then(|(xy, _)| xy.split_once(", "))
        .and_then(|(x, y)| Some((x.parse::<i64>().ok()?, y.parse::<i64>().ok()?)))
        .unwrap_or_else(|| panic!("hover text {text:?}"));
    assert!((x - 212).abs() <= 2 && (y - 120).abs() <= 2, "{text}");
    assert!(
        text.ends_with(" m)") || text.ends_with("no depth"),
        "{text}"
    );

    // Seek to the end with the End key. Without a window manager nothing gives the window
    // the keyboard focus, so xdotool sets it first.
    let o = Command::new("xdotool")
        .args([
            "search",
            "--limit",
            "1",
            "--name",
            "^rsrec view",
            "windowfocus",
            "--sync",
            "key",
            "End",
        ])
        .env("DISPLAY", &display)
        .output()
        .expect("run xdotool");
    assert!(
        o.status.success(),
        "xdotool: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let end = viewer.wait_layout("the frames at the end after End", |v| {
        ready_with(4)(v) && v["t_us"].as_i64().unwrap_or(0) > 2_000_000
    });
    let end_panels = panels(&end);
    let shot2 = shoot_until(&display, |shot| {
        end_panels.iter().all(|(_, _, r)| {
            changed_pixels(&shot1.region(*r), &shot.region(*r)) * 20 > (r[2] * r[3]) as usize
        })
    });
    shot2.save_png(&dir.join("end.png"));
    eprintln!("screenshots in {}", dir.display());
    for (cam, stream, r) in end_panels {
        let (a, b) = (shot1.region(r), shot2.region(r));
        let changed = changed_pixels(&a, &b);
        eprintln!("{cam} {stream}: {changed} of {} pixels changed", a.len());
        assert!(
            changed * 20 > a.len(),
            "{cam} {stream}: the panel did not change after seeking to the end ({changed} of {} pixels)",
            a.len()
        );
    }
    for l in viewer.all_lines().lines() {
        if let Some(s) = l.strip_prefix("rsrec-view-seek ") {
            eprintln!("seek timing (key to every panel current): {s}");
        }
    }
}

#[test]
fn bad_paths_fail_cleanly_without_a_window() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().join("missing"), dir.path().to_path_buf()] {
        let o = Command::new(env!("CARGO_BIN_EXE_rsrec"))
            .args(["view", p(&path)])
            .env_remove("DISPLAY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.starts_with("rsrec: error:"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn no_display_is_a_clean_error() {
    let root = common::keep_dir("view-fixtures");
    let o = rsrec(&[
        "record",
        "--cameras",
        "sim:1",
        "--duration",
        "1s",
        "--depth",
        "64x48@30",
        "--color",
        "off",
        "--out",
        p(&root),
        "--session",
        "tiny",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(["view", p(&root.join("tiny"))])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("rsrec: error: cannot open the viewer window"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Every colour frame of `cam`, decoded in order by one plain FFmpeg run per video (no
/// seeking), keyed by colour frame number.
fn colour_reference(session: &rsrec::view::Session, cam: usize) -> Vec<Vec<u8>> {
    use rsrec::export::Stream;
    let camera = &session.recording.cameras[cam];
    let desc = camera.color.as_ref().expect("colour stream");
    let size = desc.width as usize * desc.height as usize * 3;
    let mut videos = std::collections::BTreeMap::new();
    for (seg, path) in &camera.videos {
        let o = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(path)
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .expect("run ffmpeg");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        videos.insert(*seg, o.stdout);
    }
    (0..session.frame_count(cam, Stream::Color))
        .map(|k| {
            let (_, e) = camera.color_frame(k).expect("colour frame entry");
            let at = e.index_in_video as usize * size;
            videos[&e.segment][at..at + size].to_vec()
        })
        .collect()
}

/// The viewer's colour source answers seeks (standby FFmpeg processes), steps back and
/// forth, and reads ahead with exactly the frames a plain decode in order gives; and the
/// same when the standby process fails (an FFmpeg without the concat demuxer), through the
/// fallback to an `-ss` seek.
#[test]
fn colour_seeks_and_steps_give_the_frames_of_a_plain_decode() {
    use rsrec::view::color::ColorSource;
    use rsrec::view::worker::{Decoded, FrameSource};
    if !have("ffmpeg", "-version") {
        skip("ffmpeg not found");
        return;
    }
    let root = common::keep_dir("view-colour-seek");
    let dir = common::sim_session().to_path_buf();
    let session = Arc::new(rsrec::view::Session::open(&dir).expect("open session"));
    // A stand-in FFmpeg that refuses the concat demuxer the standby processes use.
    let no_concat = root.join("ffmpeg-without-concat");
    std::fs::write(
        &no_concat,
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = concat ] && { echo 'Unknown input format: concat' >&2; exit 1; }; done\nexec ffmpeg \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&no_concat, std::fs::Permissions::from_mode(0o755)).unwrap();

    for cam in 0..2 {
        let reference = colour_reference(&session, cam);
        let n = reference.len();
        assert!(n >= 40, "camera {cam}: only {n} colour frames");
        // Seeks to either side of keyframes (every 15 frames at 15 fps), a step back past
        // the frames kept, steps forward, the first and the last frame.
        let order = [
            n / 2,
            n / 2 - 1,
            n / 2 - 2,
            n / 2 - 14,
            n - 1,
            0,
            1,
            2,
            15,
            14,
            16,
            29,
            30,
            31,
            n - 2,
            7,
        ];
        for ffmpeg in [PathBuf::from("ffmpeg"), no_concat.clone()] {
            let mut src = ColorSource::new(Arc::clone(&session), cam, ffmpeg.clone());
            for &k in &order {
                match src.decode((cam, k)) {
                    Decoded::Color {
                        image: Some(img), ..
                    } => assert!(
                        img.rgb == reference[k],
                        "camera {cam}, frame {k} ({ffmpeg:?}): not the frame a plain decode gives"
                    ),
                    Decoded::Color { image: None, .. } => {
                        panic!("camera {cam}, frame {k} ({ffmpeg:?}): no frame")
                    }
                    Decoded::Failed { message, .. } => {
                        panic!("camera {cam}, frame {k} ({ffmpeg:?}): {message}")
                    }
                    _ => panic!("camera {cam}, frame {k}: not a colour frame"),
                }
            }
        }
    }
}

/// Issue 17: infrared is shown in the viewer. A session recorded with `--ir left,right`
/// shows depth and both infrared panels side by side, the infrared ones in grey (one 8-bit
/// intensity a pixel); hovering over an infrared panel gives the pixel's value, the one the
/// file holds for the frame shown.
#[test]
fn viewer_shows_infrared_left_and_right() {
    for (t, arg) in [("Xvfb", "-help"), ("xwd", "-help"), ("xdotool", "version")] {
        if !have(t, arg) {
            return skip(&format!("{t} is not installed (tools/test.sh installs it)"));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = rsrec(&[
        "record",
        "--cameras",
        "sim:1",
        "--duration",
        "2s",
        "--depth",
        "320x240@30",
        "--color",
        "off",
        "--ir",
        "left,right",
        "--session",
        "s",
        "--quiet",
        "--out",
        p(tmp.path()),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let session = tmp.path().join("s");
    let (_xvfb, display) = start_xvfb();
    let viewer = Viewer::start(&display, &session);
    let first = viewer.wait_layout("depth and both infrared panels", ready_with(3));
    let ps = panels(&first);
    let streams: Vec<&str> = ps.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(streams, ["depth", "ir_left", "ir_right"], "{first}");
    for w in ps.windows(2) {
        let (a, b) = (w[0].2, w[1].2);
        assert_eq!(a[1], b[1], "panels side by side: {first}");
        assert!(a[0] + a[2] <= b[0], "left to right: {first}");
    }
    let shot = shoot_until(&display, |shot| {
        ps.iter().all(|(_, _, r)| variety(&shot.region(*r)).0 >= 8)
    });
    shot.save_png(&common::keep_dir("view-screenshots").join("infrared.png"));
    let grey = |px: &[[u8; 3]]| {
        px.iter()
            .filter(|c| c[0].abs_diff(c[1]) <= 2 && c[1].abs_diff(c[2]) <= 2)
            .count() as f64
            / px.len().max(1) as f64
    };
    for (_, stream, r) in &ps {
        let px = shot.region(*r);
        let (colours, sd) = variety(&px);
        let g = grey(&px);
        eprintln!(
            "{stream}: {colours} colours, sd {sd:.1}, {:.1} % grey",
            g * 100.0
        );
        if stream == "depth" {
            assert!(g < 0.5, "depth is in turbo colours, not grey: {g}");
        } else {
            assert!(g > 0.99, "{stream} is not grey: {g}");
            assert!(
                colours >= 8 && sd > 10.0,
                "{stream} looks blank: {colours}, {sd}"
            );
        }
    }

    // Hover over the centre of the left infrared panel.
    let r = ps[1].2;
    let o = Command::new("xdotool")
        .args([
            "mousemove",
            &(r[0] + r[2] / 2).to_string(),
            &(r[1] + r[3] / 2).to_string(),
        ])
        .env("DISPLAY", &display)
        .output()
        .expect("run xdotool");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hover = viewer.wait_layout("a hover value on the left infrared panel", |v| {
        v["hover"]
            .as_str()
            .is_some_and(|h| h.starts_with("sim0 IR left ("))
    });
    let text = hover["hover"].as_str().unwrap();
    let parse = || -> Option<(usize, usize, u8)> {
        let (xy, v) = text.strip_prefix("sim0 IR left (")?.split_once("): ")?;
        let (x, y) = xy.split_once(", ")?;
        Some((x.parse().ok()?, y.parse().ok()?, v.parse().ok()?))
    };
    let (x, y, v) = parse().unwrap_or_else(|| panic!("hover text {text:?}"));
    assert!(x.abs_diff(160) <= 2 && y.abs_diff(120) <= 2, "{text}");
    let k = hover["panels"][1]["frame"].as_u64().unwrap() as usize;
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(session.join("session.json")).unwrap()).unwrap();
    let file = session.join(manifest["cameras"][0]["files"][0].as_str().unwrap());
    let reader = rsrec::container::Reader::open(&file).unwrap();
    let frame = reader
        .read_infrared(rsrec::source::stream_id::IR_LEFT, k)
        .unwrap();
    assert_eq!(
        frame.data[y * 320 + x],
        v,
        "{text}: frame {k} of {}",
        file.display()
    );
}
