//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether the tests run under CI (`CI=true`), where a missing tool or data set fails.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A loud skip of (part of) a test, or a failure under CI.
pub fn skip(why: &str) {
    if ci() {
        panic!("{why}; CI requires it");
    }
    eprintln!("\n**********\nWARNING: {why}: SKIPPING (part of) this test\n**********\n");
}

/// Whether `ffmpeg` and `ffprobe` run; a loud skip (a failure under CI) when they do not.
pub fn have_ffmpeg() -> bool {
    let runs = |tool: &str| {
        Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ok = runs("ffmpeg") && runs("ffprobe");
    if !ok {
        skip("ffmpeg/ffprobe are not installed");
    }
    ok
}

/// Held by the tests that load every core for minutes (every real frame through every
/// codec) and by the tests that check what a live recording keeps up with, so that the two
/// never run at once in this one test binary (a loaded machine drops frames, by design).
pub fn cpu_exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the rsrec binary built for these tests.
pub fn rsrec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(args)
        .output()
        .expect("run rsrec")
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The real RealSense depth sets with PNG frames (see ../shared/data/README.md).
pub const PNG_SETS: [&str; 3] = [
    "d4xx-lab-robot",
    "d435-ceiling-highacc",
    "d4xx-848x480-desk-holes",
];

/// Where the real data lives: `$RSREC_DATA_DIR`, else `../shared/data` beside the crate.
/// Absent data is a loud skip, except under CI (`CI=true`) where it fails the test.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RSREC_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.join(PNG_SETS[0]).is_dir() {
        return Some(dir);
    }
    if ci() {
        panic!(
            "real RealSense data not found at {} (set RSREC_DATA_DIR); CI requires it",
            dir.display()
        );
    }
    eprintln!(
        "\n**********\nWARNING: real RealSense data not found at {} (set RSREC_DATA_DIR): SKIPPING this test\n**********\n",
        dir.display()
    );
    None
}

/// Writes a 16-bit grayscale PNG.
pub fn write_png16(path: &std::path::Path, width: u32, height: u32, data: &[u16]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Sixteen);
    let mut w = enc.write_header().unwrap();
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_be_bytes()).collect();
    w.write_image_data(&bytes).unwrap();
}

/// A synthetic depth frame: a tilted plane with holes and a rare 65535 outlier.
pub fn synthetic_frame(width: u32, height: u32, seed: u64) -> Vec<u16> {
    let mut out = Vec::with_capacity((width * height) as usize);
    for y in 0..height as u64 {
        for x in 0..width as u64 {
            let h = (x * 7919 + y * 104_729 + seed * 1_299_709) % 1000;
            out.push(match h {
                0..=80 => 0,
                999 => 65535,
                _ => (600 + x * 3 + y * 2 + seed % 50 + h % 3) as u16,
            });
        }
    }
    out
}

/// A fresh folder under `$CARGO_TARGET_TMPDIR/<group>/` that outlives the test (for
/// fixtures shared by several tests); folders of test processes that have exited are removed.
pub fn keep_dir(group: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(group);
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or("");
            let alive = pid == std::process::id().to_string()
                || std::path::Path::new("/proc").join(pid).exists();
            if !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = root.join(format!("{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The small synthetic session of [`record_sim_session`], recorded once per test run and
/// shared by the export and viewer tests (they only read it). Needs FFmpeg.
pub fn sim_session() -> &'static Path {
    static S: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    S.get_or_init(|| record_sim_session(&keep_dir("sim-session")))
}

/// Records the small synthetic session the export and viewer tests share into
/// `root/s`: 2 cameras, depth 424x240@30 (lz4-planes), colour 320x240@15 (H.265
/// ultrafast), 3 s. Panics with rsrec's stderr if recording fails.
#[allow(dead_code)]
pub fn record_sim_session(root: &std::path::Path) -> PathBuf {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(["record", "--cameras", "sim:2", "--duration", "3s"])
        .args(["--depth", "424x240@30", "--color", "320x240@15"])
        .args([
            "--preset",
            "ultrafast",
            "--session",
            "s",
            "--quiet",
            "--out",
        ])
        .arg(root)
        .output()
        .expect("running rsrec");
    assert!(
        o.status.success(),
        "record failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    root.join("s")
}
