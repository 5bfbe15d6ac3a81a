//! The RealSense backend (feature `realsense`), tested against librealsense itself without a
//! camera: `tools/make_test_bags.py` writes genuine `.bag` files from the real PNG sets through
//! pyrealsense2's software device and recorder; librealsense's playback device replays them in
//! real time as if they were live cameras; they are recorded through the pipeline and every
//! depth frame, frame number, timestamp, depth unit and intrinsic is checked against the source.
//!
//! Needs the environment of `tools/realsense-env.sh` (librealsense from the pyrealsense2 wheel,
//! its venv for the generator) and the real data of `../shared/data`. Without them the tests
//! print a loud warning and skip; with `CI=true` they fail instead.

use crate::common;

use common::ci;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rsrec::codec::DepthCodec;
use rsrec::container::format::record_type;
use rsrec::container::record::decode_imu_batch;
use rsrec::container::{Distortion, Reader, StreamKind, WriterOptions};
use rsrec::record::pipeline::CameraOutcome;
use rsrec::record::{Pipeline, PipelineConfig};
use rsrec::source::bag::BagSource;
use rsrec::source::realsense::{list_devices, Pacing, RealSenseConfig, RealSenseSource};
use rsrec::source::{stream_id, Sample, Source, SourceError};
use serde_json::Value;

/// The real-time tests must not share two cores with each other.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loud skip, or a failure under CI.
fn skip(why: &str) {
    if ci() {
        panic!("{why}; CI requires the RealSense test environment (tools/realsense-env.sh)");
    }
    eprintln!(
        "\n**********\nWARNING: {why}: SKIPPING this test (set up with \
         `eval \"$(tools/realsense-env.sh)\"`)\n**********\n"
    );
}

/// Where tools/realsense-env.sh keeps its files.
fn env_dir() -> PathBuf {
    std::env::var_os("RSREC_REALSENSE_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/realsense-env"))
}

/// The venv python with pyrealsense2.
fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("RSREC_REALSENSE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| env_dir().join("venv"));
    let py = venv.join("bin/python");
    let ok = py.is_file()
        && Command::new(&py)
            .env_remove("LD_PRELOAD") // the venv's python brings its own libpython
            .args(["-c", "import pyrealsense2, numpy, PIL"])
            .status()
            .is_ok_and(|s| s.success());
    ok.then_some(py)
}

/// One generated bag and what went into it (`<set>.json` of make_test_bags.py).
struct TestBag {
    bag: PathBuf,
    manifest: Value,
}

impl TestBag {
    fn set(&self) -> &str {
        self.manifest["set"].as_str().unwrap()
    }
    fn serial(&self) -> &str {
        self.manifest["serial"].as_str().unwrap()
    }
    fn frames(&self) -> &Vec<Value> {
        self.manifest["frames"].as_array().unwrap()
    }
    /// The source PNG of frame number `n`.
    fn png_of(&self, n: u64) -> PathBuf {
        let f = self
            .frames()
            .iter()
            .find(|f| f["frame_number"].as_u64() == Some(n))
            .unwrap_or_else(|| panic!("{}: no frame number {n} in the manifest", self.set()));
        PathBuf::from(f["png"].as_str().unwrap())
    }
}

/// The three test bags (lab robot 200 frames, ceiling 99, desk 25 with IMU), generated once
/// and cached in `target/realsense-env/test-bags` (regenerated when the generator or the
/// data changes).
fn bags() -> Option<&'static [TestBag]> {
    static BAGS: OnceLock<Option<Vec<TestBag>>> = OnceLock::new();
    BAGS.get_or_init(|| {
        let mut args = vec!["--imu", "d4xx-848x480-desk-holes"];
        args.extend(common::PNG_SETS);
        generate_bags("test-bags", &args, &common::PNG_SETS)
    })
    .as_deref()
}

/// Runs make_test_bags.py with `args` into `target/realsense-env/<name>` (unless it is there
/// from the same script, data and arguments) and reads the manifests of `bag_names`.
fn generate_bags(name: &str, args: &[&str], bag_names: &[&str]) -> Option<Vec<TestBag>> {
    {
        let data = common::data_dir()?;
        let Some(py) = venv_python() else {
            skip("no Python venv with pyrealsense2 (tools/realsense-env.sh makes it)");
            return None;
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/make_test_bags.py");
        let stamp = format!(
            "{:08x} {} {}",
            crc32c::crc32c(&std::fs::read(&script).unwrap()),
            data.display(),
            args.join(" ")
        );
        let dir = env_dir().join(name);
        let stamp_file = dir.join("stamp");
        if std::fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) {
            let tmp = env_dir().join(format!("{name}.tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let t0 = Instant::now();
            let out = Command::new(&py)
                .env_remove("LD_PRELOAD")
                .arg(&script)
                .arg("--data")
                .arg(&data)
                .arg("--out")
                .arg(&tmp)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "make_test_bags.py failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "generated the test bags in {:.1} s:\n{}",
                t0.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&out.stdout)
            );
            std::fs::write(tmp.join("stamp"), &stamp).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir).unwrap();
        }
        Some(
            bag_names
                .iter()
                .map(|set| {
                    let manifest: Value = serde_json::from_slice(
                        &std::fs::read(dir.join(format!("{set}.json"))).unwrap(),
                    )
                    .unwrap();
                    TestBag {
                        bag: dir.join(format!("{set}.bag")),
                        manifest,
                    }
                })
                .collect(),
        )
    }
}

fn live_cfg(pacing: Pacing) -> RealSenseConfig {
    let mut cfg = RealSenseConfig::new(
        "848x480@30".parse().unwrap(),
        Some("640x480@30".parse().unwrap()),
        true,
    );
    cfg.pacing = pacing;
    cfg
}

fn pipeline_cfg(dir: &Path, lossless: bool) -> PipelineConfig {
    PipelineConfig {
        session_dir: dir.to_path_buf(),
        depth: rsrec::record::DepthEncoding::Fixed(DepthCodec::Lz4Planes),
        queue_frames: 120,
        workers: 2,
        writer: WriterOptions::default(),
        segment: None,
        lossless,
        color: None,
        metadata: serde_json::json!({"test": "realsense"}),
        reconnect: None,
    }
}

/// Runs the pipeline until every source has finished; calls `during` every 50 ms.
fn record(
    sources: Vec<Box<dyn Source>>,
    dir: &Path,
    lossless: bool,
    mut during: impl FnMut(&Pipeline),
) -> Vec<CameraOutcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let p = Pipeline::start(sources, pipeline_cfg(dir, lossless), stop).unwrap();
    let t0 = Instant::now();
    while !p.all_finished() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "recording does not end"
        );
        during(&p);
        std::thread::sleep(Duration::from_millis(50));
    }
    p.finish()
}

fn outcome<'a>(outcomes: &'a [CameraOutcome], serial: &str) -> &'a CameraOutcome {
    outcomes
        .iter()
        .find(|o| o.info.device.serial == serial)
        .unwrap_or_else(|| panic!("no camera {serial} among the outcomes"))
}

/// A [`RealSenseSource`] that publishes how many samples its own channel dropped and how many
/// frames it could not read, so that a test can tell rsrec's losses from librealsense's.
struct Counted {
    inner: RealSenseSource,
    losses: Arc<Mutex<(u64, u64)>>,
}

impl Counted {
    fn new(inner: RealSenseSource) -> (Self, Arc<Mutex<(u64, u64)>>) {
        let losses = Arc::new(Mutex::new((0, 0)));
        (
            Counted {
                inner,
                losses: losses.clone(),
            },
            losses,
        )
    }
}

impl Source for Counted {
    fn info(&self) -> &rsrec::source::SourceInfo {
        self.inner.info()
    }
    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        let r = self.inner.next();
        *self.losses.lock().unwrap() = (self.inner.dropped(), self.inner.bad_frames().0);
        r
    }
    fn losses(&self, stream: rsrec::source::StreamId) -> rsrec::source::SourceLosses {
        self.inner.losses(stream)
    }
}

/// Depth frames of a real-time recording: rsrec's own channel lost nothing and read every
/// frame it got; a frame that librealsense's real-time playback dropped (it may, on a busy
/// host) is a gap record in the file, never a silent loss; and there are few of them.
/// `upto`: the last frame number the camera could have delivered.
fn check_accounted(
    file: &Path,
    tb: &TestBag,
    o: &CameraOutcome,
    losses: (u64, u64),
    seen: &[(u64, i64)],
    upto: u64,
) {
    assert_eq!(losses, (0, 0), "{}: samples lost inside rsrec", tb.set());
    let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{}", tb.set());
    let first = *numbers.first().expect("no depth frame");
    let last = *numbers.last().unwrap();
    let missing: Vec<u64> = (first..=last).filter(|n| !numbers.contains(n)).collect();
    let gaps = Reader::open(file).unwrap().gaps().unwrap();
    for n in &missing {
        assert!(
            gaps.iter()
                .any(|(s, g)| *s == stream_id::DEPTH && (g.first_frame..=g.last_frame).contains(n)),
            "{}: frame {n} is missing and not a gap record",
            tb.set()
        );
    }
    assert_eq!(
        o.stats.depth_source_skipped + o.stats.depth_host_dropped,
        missing.len() as u64,
        "{}",
        tb.set()
    );
    assert_eq!(o.stats.depth_dropped, 0, "{}", tb.set());
    let lost = missing.len() as u64 + (first - 1) + (upto - last);
    if lost > 0 {
        eprintln!(
            "note: {}: librealsense's real-time playback dropped {lost} of {upto} depth frames \
             (missing {missing:?}, first {first}, last {last}); each inside the file is a gap",
            tb.set()
        );
    }
    assert!(
        lost * 50 <= upto,
        "{}: {lost} of {upto} depth frames lost",
        tb.set()
    );
}

/// Checks a recorded file against its bag's source: device, depth descriptor, and every
/// recorded depth frame bit-exact with its PNG, with its frame number, timestamp and domain.
/// Returns the frame numbers and host timestamps of the recorded depth frames.
fn check_file(file: &Path, tb: &TestBag) -> Vec<(u64, i64)> {
    let m = &tb.manifest;
    let r = Reader::open(file).unwrap();
    assert!(r.is_closed(), "{} not closed cleanly", file.display());
    let report = rsrec::container::recover::verify(&r);
    assert!(report.ok(), "{}: {:?}", file.display(), report.problems);

    let h = r.header();
    assert_eq!(h.device.serial, tb.serial());
    assert_eq!(h.device.name, m["device_name"].as_str().unwrap());
    assert_eq!(h.device.firmware, m["firmware"].as_str().unwrap());
    let d = h.stream(stream_id::DEPTH).unwrap();
    assert_eq!(d.kind, StreamKind::Depth);
    assert_eq!(
        (d.width as u64, d.height as u64),
        (m["width"].as_u64().unwrap(), m["height"].as_u64().unwrap())
    );
    assert_eq!(d.fps, m["fps"].as_f64().unwrap());
    assert_eq!(d.depth_units, m["depth_units"].as_f64().unwrap() as f32);
    let k = d.intrinsics.as_ref().expect("depth intrinsics");
    let mk = &m["intrinsics"];
    for (got, key) in [(k.fx, "fx"), (k.fy, "fy"), (k.ppx, "ppx"), (k.ppy, "ppy")] {
        let want = mk[key].as_f64().unwrap();
        assert!(
            (got as f64 - want).abs() < 1e-3,
            "{}: intrinsics {key} {got} != {want}",
            tb.set()
        );
    }
    assert_eq!(k.model, Distortion::BrownConrady);
    if m["color"].is_object() {
        let c = h.stream(stream_id::COLOR).expect("colour stream");
        let e = c.extrinsics.as_ref().expect("colour-to-depth extrinsics");
        assert_eq!(e.to_stream, stream_id::DEPTH);
        assert!((e.translation[0] + 0.015).abs() < 1e-6, "{e:?}");
    }

    let domain = m["timestamp_domain_code"].as_u64().unwrap() as u8;
    let mut seen = Vec::new();
    for f in r.depth_frames(stream_id::DEPTH) {
        let f = f.unwrap();
        let n = f.header.frame_number;
        let want = &tb.frames()[(n - 1) as usize];
        assert_eq!(want["frame_number"].as_u64(), Some(n));
        let ts = want["timestamp_ms"].as_f64().unwrap();
        assert!(
            (f.header.device_ts_ms - ts).abs() < 1e-3,
            "{} frame {n}: device timestamp {} != {ts}",
            tb.set(),
            f.header.device_ts_ms
        );
        assert_eq!(f.header.ts_domain, domain, "{} frame {n}: domain", tb.set());
        let png = rsrec::source::pngdir::read_depth_png(&tb.png_of(n)).unwrap();
        assert_eq!((f.width, f.height), (png.width, png.height));
        assert!(
            f.data == png.data,
            "{} frame {n}: depth differs from {}",
            tb.set(),
            tb.png_of(n).display()
        );
        seen.push((n, f.header.host_ts_us));
    }
    seen
}

#[test]
fn three_bags_play_at_once_in_real_time_and_record_bit_exact() {
    // Heavy first: generating the bags (real-time writers) must not overlap a real-time test.
    let _g = heavy();
    let Some(bags) = bags() else { return };
    let out = tempfile::tempdir().unwrap();
    let cfg = live_cfg(Pacing::RealTime);
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut losses = Vec::new();
    for tb in bags {
        let src = RealSenseSource::open_bag(&tb.bag, &cfg).unwrap();
        assert_eq!(src.info().name, tb.serial());
        assert!(src.warnings().is_empty(), "{:?}", src.warnings());
        let (src, l) = Counted::new(src);
        sources.push(Box::new(src));
        losses.push(l);
    }
    let t0 = Instant::now();
    let outcomes = record(sources, out.path(), false, |_| {});
    let wall = t0.elapsed().as_secs_f64();

    let mut firsts = Vec::new();
    for (tb, l) in bags.iter().zip(&losses) {
        let o = outcome(&outcomes, tb.serial());
        assert_eq!(o.stats.error, None, "{}", tb.set());
        let n = tb.frames().len() as u64;
        assert_eq!(
            o.stats.depth_written,
            o.stats.depth_captured,
            "{}",
            tb.set()
        );
        assert_eq!(o.files.len(), 1);
        let seen = check_file(&o.files[0], tb);
        assert_eq!(seen.len() as u64, o.stats.depth_written, "{}", tb.set());
        check_accounted(&o.files[0], tb, o, *l.lock().unwrap(), &seen, n);

        // Real time: frames reached the recorder at the bag's pace (30 fps).
        let span = (seen.last().unwrap().1 - seen[0].1) as f64 / 1e6;
        let nominal = (n - 1) as f64 / tb.manifest["fps"].as_f64().unwrap();
        // (As fast as possible would take a small fraction of it; a busy host may stretch it.)
        assert!(
            span >= 0.85 * nominal - 0.05 && span <= 1.3 * nominal + 0.5,
            "{}: frames arrived over {span:.2} s, the bag lasts {nominal:.2} s",
            tb.set()
        );
        firsts.push(seen[0].1);

        if let Some(imu) = tb.manifest["imu"].as_object() {
            for (id, numbers) in imu_numbers(&o.files[0]) {
                let key = if id == stream_id::GYRO {
                    "gyro"
                } else {
                    "accel"
                };
                // librealsense's real-time playback drops motion samples when the host is
                // busy (up to 12 % here with three bags on two cores, a third with one core
                // busy elsewhere; its documentation warns that real-time playback may drop
                // frames). Every sample is checked in the as-fast-as-possible test.
                let want = imu[key].as_u64().unwrap();
                assert!(
                    numbers.windows(2).all(|w| w[0] < w[1]),
                    "{key}: {numbers:?}"
                );
                assert!(numbers.iter().all(|n| (1..=want).contains(n)), "{key}");
                assert!(
                    numbers.len() as f64 >= 0.5 * want as f64,
                    "{key}: {} of {want} samples",
                    numbers.len()
                );
            }
        }
    }
    // At once: all three started together, and the whole run took about as long as the
    // longest bag, not the sum.
    let spread = (firsts.iter().max().unwrap() - firsts.iter().min().unwrap()) as f64 / 1e6;
    assert!(spread < 1.0, "the bags started {spread:.2} s apart");
    let longest = bags
        .iter()
        .map(|b| b.frames().len() as f64 / b.manifest["fps"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        wall >= longest * 0.9,
        "{wall:.2} s for a {longest:.2} s bag"
    );
    assert!(
        wall < 1.3 * longest + 4.0,
        "{wall:.2} s for a {longest:.2} s bag"
    );
}

/// The samples of the IMU streams of a file: (stream, frame numbers).
fn imu_numbers(file: &Path) -> Vec<(u8, Vec<u64>)> {
    let r = Reader::open(file).unwrap();
    [stream_id::GYRO, stream_id::ACCEL]
        .into_iter()
        .map(|id| {
            let mut numbers = Vec::new();
            for i in 0..r.count(id, record_type::IMU_BATCH) {
                let (_, p) = r.read_record(id, record_type::IMU_BATCH, i).unwrap();
                numbers.extend(decode_imu_batch(p).unwrap().iter().map(|s| s.frame_number));
            }
            (id, numbers)
        })
        .collect()
}

#[test]
fn three_bags_at_once_as_fast_as_possible_lose_nothing() {
    // Heavy first: generating the bags (real-time writers) must not overlap a real-time test.
    let _g = heavy();
    let Some(bags) = bags() else { return };
    let out = tempfile::tempdir().unwrap();
    let cfg = live_cfg(Pacing::AsFastAsPossible);
    let sources: Vec<Box<dyn Source>> = bags
        .iter()
        .map(|tb| Box::new(RealSenseSource::open_bag(&tb.bag, &cfg).unwrap()) as Box<dyn Source>)
        .collect();
    let outcomes = record(sources, out.path(), true, |_| {});
    for tb in bags {
        let o = outcome(&outcomes, tb.serial());
        assert_eq!(o.stats.error, None, "{}", tb.set());
        let n = tb.frames().len() as u64;
        let seen = check_file(&o.files[0], tb);
        let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, (1..=n).collect::<Vec<_>>(), "{}", tb.set());
        assert!(Reader::open(&o.files[0])
            .unwrap()
            .gaps()
            .unwrap()
            .is_empty());
        if let Some(imu) = tb.manifest["imu"].as_object() {
            for (id, numbers) in imu_numbers(&o.files[0]) {
                let key = if id == stream_id::GYRO {
                    "gyro"
                } else {
                    "accel"
                };
                let want = imu[key].as_u64().unwrap();
                assert_eq!(numbers, (1..=want).collect::<Vec<_>>(), "{key} samples");
            }
        }
    }
}

/// Frame number, device timestamp, domain, pixels, metadata.
type DepthTuple = (u64, f64, u8, Vec<u16>, Vec<(String, i64)>);

/// The samples of a source, as comparable tuples, by stream.
#[derive(Default, Debug)]
struct Drained {
    depth: Vec<DepthTuple>,
    color: Vec<(u64, f64, u8, Vec<u8>)>,
    imu: Vec<(StreamKind, u64, f64, [f32; 3])>,
    /// Infrared frames: imager index, frame number, pixels.
    ir: Vec<(u8, u64, Vec<u8>)>,
}

fn drain(src: &mut dyn Source) -> Result<Drained, SourceError> {
    let mut d = Drained::default();
    while let Some(s) = src.next()? {
        match s {
            Sample::Depth(f) => {
                let t = f.timing;
                d.depth.push((
                    t.frame_number,
                    t.device_ts_ms,
                    t.ts_domain,
                    f.data,
                    f.metadata,
                ))
            }
            Sample::Color(f) => {
                let t = f.timing;
                d.color
                    .push((t.frame_number, t.device_ts_ms, t.ts_domain, f.data))
            }
            Sample::Imu { kind, sample, .. } => {
                d.imu
                    .push((kind, sample.frame_number, sample.device_ts_ms, sample.xyz))
            }
            Sample::Infrared { ir_index, frame } => {
                d.ir.push((ir_index, frame.timing.frame_number, frame.data))
            }
        }
    }
    Ok(d)
}

/// The pure-Rust reader and librealsense's playback give the same samples.
/// rsrec's own bag reader and librealsense's playback (with infrared imagers `ir` enabled:
/// the bag reader keeps every infrared stream) give the same streams and samples.
pub(crate) fn agree(bag: &Path, ir: &[u8]) {
    let name = bag.display();
    let mut ours = BagSource::open(bag, rsrec::source::bag::Pacing::AsFastAsPossible).unwrap();
    let mut cfg = live_cfg(Pacing::AsFastAsPossible);
    cfg.infrared = ir.to_vec();
    let mut theirs = RealSenseSource::open_bag(bag, &cfg).unwrap();

    let (a, b) = (ours.info(), theirs.info());
    assert_eq!(a.device.serial, b.device.serial, "{name}");
    assert_eq!(a.device.name, b.device.name, "{name}");
    assert_eq!(a.device.firmware, b.device.firmware, "{name}");
    assert_eq!(a.name, b.name, "{name}");
    let kinds = |i: &rsrec::source::SourceInfo| i.streams.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(kinds(a), kinds(b), "{name}: streams");
    for (x, y) in a.streams.iter().zip(&b.streams) {
        assert_eq!(
            (x.kind, x.width, x.height, x.format, x.fps, x.depth_units),
            (y.kind, y.width, y.height, y.format, y.fps, y.depth_units),
            "{name}: stream {}",
            x.id
        );
        assert_eq!(
            x.intrinsics, y.intrinsics,
            "{name}: stream {} intrinsics",
            x.id
        );
        match (&x.extrinsics, &y.extrinsics) {
            (Some(ex), Some(ey)) => {
                assert_eq!(ex.to_stream, ey.to_stream);
                for (u, v) in ex
                    .rotation
                    .iter()
                    .chain(&ex.translation)
                    .zip(ey.rotation.iter().chain(&ey.translation))
                {
                    assert!((u - v).abs() < 1e-6, "{name}: extrinsics {ex:?} vs {ey:?}");
                }
            }
            (None, None) => {}
            (ex, ey) => panic!("{name}: stream {} extrinsics {ex:?} vs {ey:?}", x.id),
        }
    }

    let a = drain(&mut ours).unwrap();
    let b = drain(&mut theirs).unwrap();
    assert!(!a.depth.is_empty(), "{name}: no depth");
    assert_eq!(a.depth.len(), b.depth.len(), "{name}: depth frames");
    for (x, y) in a.depth.iter().zip(&b.depth) {
        assert_eq!(x.0, y.0, "{name}: depth frame numbers");
        assert!(
            (x.1 - y.1).abs() < 1e-3,
            "{name}: frame {} ts {} vs {}",
            x.0,
            x.1,
            y.1
        );
        assert_eq!(x.2, y.2, "{name}: frame {} domain", x.0);
        assert!(x.3 == y.3, "{name}: frame {} depth differs", x.0);
        // Metadata both report agree.
        let mut common = 0;
        for (k, v) in &x.4 {
            if let Some((_, w)) = y.4.iter().find(|(kk, _)| kk == k) {
                assert_eq!(v, w, "{name}: frame {} metadata {k}", x.0);
                common += 1;
            }
        }
        assert!(
            common > 0,
            "{name}: frame {}: no common metadata ({:?} vs {:?})",
            x.0,
            x.4,
            y.4
        );
    }
    assert_eq!(a.color.len(), b.color.len(), "{name}: colour frames");
    for (x, y) in a.color.iter().zip(&b.color) {
        assert_eq!((x.0, x.2), (y.0, y.2), "{name}: colour frame");
        assert!((x.1 - y.1).abs() < 1e-3, "{name}: colour ts");
        assert!(x.3 == y.3, "{name}: colour frame {} differs", x.0);
    }
    // IMU: same samples per kind (the interleaving of streams may differ).
    for kind in [StreamKind::Gyro, StreamKind::Accel] {
        let pick = |d: &Drained| -> Vec<(u64, f64, [f32; 3])> {
            d.imu
                .iter()
                .filter(|s| s.0 == kind)
                .map(|s| (s.1, s.2, s.3))
                .collect()
        };
        let (x, y) = (pick(&a), pick(&b));
        assert_eq!(x.len(), y.len(), "{name}: {kind:?} samples");
        for (u, v) in x.iter().zip(&y) {
            assert_eq!((u.0, u.2), (v.0, v.2), "{name}: {kind:?}");
            assert!((u.1 - v.1).abs() < 1e-3, "{name}: {kind:?} ts");
        }
    }
    // Infrared: the same frames per imager, in order.
    for index in [1u8, 2] {
        let pick = |d: &Drained| -> Vec<(u64, Vec<u8>)> {
            d.ir.iter()
                .filter(|s| s.0 == index)
                .map(|s| (s.1, s.2.clone()))
                .collect()
        };
        let (x, y) = (pick(&a), pick(&b));
        assert_eq!(x.len(), y.len(), "{name}: infrared {index} frames");
        assert!(x == y, "{name}: infrared {index} frames differ");
    }
    assert_eq!(theirs.dropped(), 0);
    assert_eq!(theirs.bad_frames().0, 0, "{:?}", theirs.bad_frames().1);
}

#[test]
fn pure_rust_bag_reader_and_librealsense_agree_frame_for_frame() {
    // Heavy first: generating the bags (real-time writers) must not overlap a real-time test.
    let _g = heavy();
    let Some(bags) = bags() else { return };
    for tb in bags {
        agree(&tb.bag, &[]);
    }
    // And a bag recorded by a real D435 (librealsense's own test data).
    let real = common::data_dir()
        .unwrap()
        .join("d435-librealsense-bag/single_depth_color_640x480.bag");
    agree(&real, &[]);
}

#[test]
fn a_camera_that_vanishes_leaves_the_others_recording() {
    // Heavy first: generating the bags (real-time writers) must not overlap a real-time test.
    let _g = heavy();
    let Some(bags) = bags() else { return };
    let out = tempfile::tempdir().unwrap();
    let cfg = live_cfg(Pacing::RealTime);
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut losses = Vec::new();
    let mut control = None;
    // Lab robot (6.6 s), ceiling (3.3 s, vanishes after about 1 s), desk (0.8 s, ends).
    let victim = &bags[1];
    for tb in bags {
        let src = RealSenseSource::open_bag(&tb.bag, &cfg).unwrap();
        if tb.serial() == victim.serial() {
            control = src.playback_control();
        }
        let (src, l) = Counted::new(src);
        sources.push(Box::new(src));
        losses.push(l);
    }
    let control = control.unwrap();
    let mut unplugged = false;
    let outcomes = record(sources, out.path(), false, |p| {
        let stats = p.stats();
        let captured = stats
            .iter()
            .find(|(n, _)| n == victim.serial())
            .map(|(_, s)| s.depth_captured)
            .unwrap();
        if !unplugged && captured >= 30 {
            control.unplug().unwrap();
            unplugged = true;
        }
    });
    assert!(unplugged);

    let v = outcome(&outcomes, victim.serial());
    let err = v
        .stats
        .error
        .as_deref()
        .expect("the vanished camera reports an error");
    assert!(err.contains("removed"), "{err}");
    let seen = check_file(&v.files[0], victim);
    let last = seen.last().unwrap().0;
    assert!(
        (30..victim.frames().len() as u64).contains(&last),
        "the vanished camera's last frame is {last}"
    );
    check_accounted(
        &v.files[0],
        victim,
        v,
        *losses[1].lock().unwrap(),
        &seen,
        last,
    );
    // `rsrec verify` agrees.
    let st = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .arg("verify")
        .arg(&v.files[0])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    for i in [0, 2] {
        let tb = &bags[i];
        let o = outcome(&outcomes, tb.serial());
        assert_eq!(o.stats.error, None, "{}", tb.set());
        let seen = check_file(&o.files[0], tb);
        let n = tb.frames().len() as u64;
        check_accounted(&o.files[0], tb, o, *losses[i].lock().unwrap(), &seen, n);
    }
}

#[test]
fn no_camera_is_a_clear_error_and_devices_says_so() {
    // librealsense scanning for devices (here and in `rsrec devices`) costs enough CPU to
    // make a real-time playback running beside it drop frames.
    let _g = heavy();
    if !list_devices().unwrap().is_empty() {
        eprintln!("a RealSense camera is connected: skipping the no-camera checks");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args([
            "record",
            "--cameras",
            "all",
            "--color",
            "off",
            "--duration",
            "2s",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no RealSense devices found"), "{stderr}");
    assert!(stderr.starts_with("rsrec: error:"), "{stderr}");

    let r = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(["record", "--cameras", "123456789012", "--color", "off"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("123456789012"), "{stderr}");

    let r = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .arg("devices")
        .output()
        .unwrap();
    assert!(r.status.success());
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "no RealSense devices found"
    );
    let r = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(["devices", "--json"])
        .output()
        .unwrap();
    assert!(r.status.success());
    let v: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));

    let e = RealSenseSource::open_all(&live_cfg(Pacing::RealTime))
        .err()
        .unwrap();
    assert!(e.to_string().contains("no RealSense devices found"), "{e}");
}

#[test]
fn playback_ends_cleanly_and_stop_ends_it_early() {
    // Heavy first: generating the bags (real-time writers) must not overlap a real-time test.
    let _g = heavy();
    let Some(bags) = bags() else { return };
    // The desk bag to its end, in real time.
    let tb = &bags[2];
    let mut src = RealSenseSource::open_bag(&tb.bag, &live_cfg(Pacing::RealTime)).unwrap();
    let d = drain(&mut src).unwrap();
    assert_eq!(
        d.depth.len(),
        tb.frames().len(),
        "depth frames {:?}, dropped {}, bad {:?}",
        d.depth.iter().map(|f| f.0).collect::<Vec<_>>(),
        src.dropped(),
        src.bad_frames()
    );
    assert!(src.next().unwrap().is_none(), "ended stays ended");

    // The lab robot bag, stopped after 10 depth frames: ends without an error.
    let tb = &bags[0];
    let mut src = RealSenseSource::open_bag(&tb.bag, &live_cfg(Pacing::RealTime)).unwrap();
    let pc = src.playback_control().unwrap();
    assert!(pc.duration_ns() > 6_000_000_000, "{}", pc.duration_ns());
    let mut depth = 0;
    while let Some(s) = src.next().unwrap() {
        if matches!(s, Sample::Depth(_)) {
            depth += 1;
            if depth == 10 {
                pc.stop().unwrap();
            }
        }
    }
    assert!(
        (10..30).contains(&depth),
        "{depth} depth frames after the stop"
    );

    // A file that is not a bag is an error, not a crash.
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not a bag at all").unwrap();
    assert!(RealSenseSource::open_bag(junk.path(), &live_cfg(Pacing::RealTime)).is_err());
    assert!(
        RealSenseSource::open_bag(Path::new("/no/such.bag"), &live_cfg(Pacing::RealTime)).is_err()
    );
}

#[test]
fn rsrec_record_plays_rsbags_through_librealsense_with_camera_names_from_a_config() {
    // Heavy first: generating the bags (real-time writers) must not overlap a real-time test.
    let _g = heavy();
    let Some(bags) = bags() else { return };
    let out = tempfile::tempdir().unwrap();
    let names = ["lab", "ceiling", "desk"];
    let mut config = String::from("[defaults]\nvisual_preset = \"high_accuracy\"\n");
    for (tb, name) in bags.iter().zip(names) {
        config += &format!("[camera.{}]\nname = \"{name}\"\n", tb.serial());
    }
    let config_file = out.path().join("cameras.toml");
    std::fs::write(&config_file, config).unwrap();
    let cameras: Vec<String> = bags
        .iter()
        .map(|b| format!("rsbag:{}", b.bag.display()))
        .collect();
    let r = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(["record", "--session", "s", "--quiet", "--imu"])
        .args(["--color-codec", "libx264", "--preset", "ultrafast"])
        .arg("--cameras")
        .arg(cameras.join(","))
        .arg("--camera-config")
        .arg(&config_file)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    let session = out.path().join("s");
    let sj: Value =
        serde_json::from_slice(&std::fs::read(session.join("session.json")).unwrap()).unwrap();
    assert_eq!(sj["status"], "complete", "{sj}");
    for (tb, name) in bags.iter().zip(names) {
        let file = session.join(format!("{name}.rsrec"));
        let seen = check_file(&file, tb);
        let n = tb.frames().len();
        let cam = sj["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in session.json: {sj}"));
        let st = &cam["stats"];
        let get = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("{k} in {st}"));
        assert_eq!(get("depth_written"), seen.len() as u64, "{cam}");
        assert_eq!(get("depth_dropped"), 0, "{cam}");
        assert_eq!(get("depth_captured"), get("depth_written"), "{cam}");
        // Each camera's clock against the host's, on the clock its bag was recorded in.
        assert_eq!(
            st["depth_ts_domain"], tb.manifest["timestamp_domain"],
            "{cam}"
        );
        assert!(st["depth_clock_offset_us"].is_i64(), "{cam}");
        // librealsense's real-time playback drops frames when the host is busy (its
        // documentation says so); each one inside the recording is a gap record
        // (source skipped), none is silent. The bag must still have been played through.
        let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
        let (first, last) = (numbers[0], *numbers.last().unwrap());
        let missing = (first..=last).filter(|k| !numbers.contains(k)).count() as u64;
        assert_eq!(
            get("depth_source_skipped") + get("depth_host_dropped"),
            missing,
            "{cam}"
        );
        let gaps = Reader::open(&file).unwrap().gaps().unwrap();
        let in_gaps: u64 = gaps
            .iter()
            .filter(|(s, _)| *s == stream_id::DEPTH)
            .map(|(_, g)| g.count)
            .sum();
        assert_eq!(in_gaps, missing, "{}: {gaps:?}", tb.set());
        if seen.len() < n {
            eprintln!(
                "note: {}: the real-time playback delivered {} of {n} depth frames",
                tb.set(),
                seen.len()
            );
        }
        assert!(
            seen.len() * 5 >= n * 4,
            "{}: {} of {n}",
            tb.set(),
            seen.len()
        );
        let r = Reader::open(&file).unwrap();
        let colour_entries = r.count(stream_id::COLOR, record_type::COLOR_FRAME);
        if tb.manifest["color"].is_object() {
            let video = session.join(format!("{name}.color.000.mkv"));
            assert!(video.is_file(), "{} has no colour video", tb.set());
            assert!(colour_entries > 0, "{}", tb.set());
        } else {
            assert_eq!(colour_entries, 0, "{}", tb.set());
        }
    }
}

#[test]
fn a_camera_that_comes_back_is_reopened_and_the_outage_is_a_gap() {
    // Heavy first: generating the bags (real-time writers) must not overlap a real-time test.
    let _g = heavy();
    let Some(bags) = bags() else { return };
    let out = tempfile::tempdir().unwrap();
    let cfg = live_cfg(Pacing::RealTime);
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut control = None;
    let victim = &bags[1]; // ceiling: 99 frames, 3.3 s
    for tb in &bags[1..] {
        let src = RealSenseSource::open_bag(&tb.bag, &cfg).unwrap();
        if tb.serial() == victim.serial() {
            control = src.playback_control();
        }
        sources.push(Box::new(src));
    }
    let control = control.unwrap();
    let mut pc = pipeline_cfg(out.path(), false);
    pc.reconnect = Some(Duration::from_millis(100));
    let stop = Arc::new(AtomicBool::new(false));
    let p = Pipeline::start(sources, pc, stop).unwrap();
    let t0 = Instant::now();
    let mut unplugged_at = None;
    let mut saw_disconnected = false;
    while !p.all_finished() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "recording does not end"
        );
        let stats = p.stats();
        let s = &stats.iter().find(|(n, _)| n == victim.serial()).unwrap().1;
        saw_disconnected |= s.disconnected;
        match unplugged_at {
            None if s.depth_captured >= 30 => {
                control.unplug().unwrap();
                unplugged_at = Some(Instant::now());
            }
            Some(t) if t.elapsed() >= Duration::from_secs(1) => control.replug(),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let outcomes = p.finish();
    assert!(
        saw_disconnected,
        "the status never showed the camera disconnected"
    );
    let v = outcome(&outcomes, victim.serial());
    assert_eq!(
        v.stats.error, None,
        "a camera that came back is not an error"
    );
    assert_eq!((v.stats.disconnects, v.stats.reconnects), (1, 1));
    assert!(
        (900..5000).contains(&v.stats.outage_ms),
        "outage {} ms",
        v.stats.outage_ms
    );
    assert_eq!(v.files.len(), 1);
    // Every frame before and after the outage is bit-exact; the file verifies.
    let seen = check_file(&v.files[0], victim);
    let n = victim.frames().len();
    let restart = seen
        .windows(2)
        .position(|w| w[1].0 <= w[0].0)
        .expect("frame numbers restart after the reconnect")
        + 1;
    assert!(
        (30..n).contains(&restart),
        "{restart} frames before the outage"
    );
    let after = seen.len() - restart;
    assert!(
        after * 50 >= n * 49,
        "{after} of {n} frames after the reconnect"
    );
    // The outage is a gap record between the two runs, and events say what happened.
    let r = Reader::open(&v.files[0]).unwrap();
    let gaps = r.gaps().unwrap();
    let outage: Vec<_> = gaps
        .iter()
        .filter(|(s, g)| {
            *s == stream_id::DEPTH && g.reason == rsrec::container::GapReason::DeviceDisconnected
        })
        .collect();
    assert_eq!(outage.len(), 1, "{gaps:?}");
    let g = &outage[0].1;
    assert_eq!(g.first_frame, seen[restart - 1].0 + 1);
    // About a second at 30 fps.
    assert!((20..150).contains(&g.count), "{g:?}");
    let kinds: Vec<String> = r
        .events()
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.kind)
        .collect();
    for k in ["camera_disconnected", "camera_reconnected"] {
        assert!(kinds.iter().any(|e| e == k), "{kinds:?}");
    }
    // The gap is in the file between the last frame before and the first after.
    let host = |i: usize| seen[i].1;
    let gap_host = {
        let mut t = None;
        for i in 0..r.count(stream_id::DEPTH, record_type::GAP) {
            let (h, p) = r
                .read_record(stream_id::DEPTH, record_type::GAP, i)
                .unwrap();
            if rsrec::container::Gap::decode(p).unwrap().reason
                == rsrec::container::GapReason::DeviceDisconnected
            {
                t = Some(h.header.host_ts_us);
            }
        }
        t.unwrap()
    };
    assert!(
        host(restart - 1) <= gap_host && gap_host <= host(restart),
        "gap at {gap_host}"
    );

    // The other camera did not notice.
    let other = outcome(&outcomes, bags[2].serial());
    assert_eq!(other.stats.error, None);
    assert_eq!(other.stats.disconnects, 0);
}

/// Rigs: IMU clocks and rates, stalled streams, cameras without a frame counter, a camera
/// that cannot be recorded among good ones.
mod rig;
