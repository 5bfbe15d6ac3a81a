//! What real rigs need, through librealsense's playback of generated bags: IMU on its own
//! clock and at the rates asked for, a stream that stalls while the IMU goes on, cameras
//! without a hardware frame counter, and a camera that cannot be recorded among good ones.

use super::*;

/// The bags of these tests (make_test_bags.py variants of the desk-holes set, no colour).
fn rig_bags() -> Option<&'static [TestBag]> {
    static BAGS: OnceLock<Option<Vec<TestBag>>> = OnceLock::new();
    BAGS.get_or_init(|| {
        let set = "d4xx-848x480-desk-holes";
        let specs = [
            format!("{set}:912300000201:imu-fast"),
            format!("{set}:912300000202:depth-stops"),
            format!("{set}:912300000203:no-counter"),
            format!("{set}:912300000204:no-depth"),
        ];
        let mut args: Vec<&str> = vec![
            "--no-color",
            "--imu",
            "imu-fast:400:250",
            "--domain",
            "imu-fast:global_time",
            "--frames",
            "imu-fast:45",
            "--imu",
            "depth-stops",
            "--frames",
            "depth-stops:90",
            "--depth-stops-after",
            "depth-stops:15",
            "--frames",
            "no-counter:60",
            "--no-counter",
            "no-counter:5",
            "--no-depth",
            "no-depth",
            "--frames",
            "no-depth:10",
        ];
        args.extend(specs.iter().map(String::as_str));
        generate_bags(
            "test-bags-rig",
            &args,
            &["imu-fast", "depth-stops", "no-counter", "no-depth"],
        )
    })
    .as_deref()
}

fn rig_bag(name: &str) -> Option<&'static TestBag> {
    rig_bags()?.iter().find(|b| b.manifest["set"] == name)
}

fn info_json(file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(["info", "--json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Regression: a bag whose streams are in global time gave depth `global_time` but gyro and
/// accel `hardware_clock` (every IMU batch was written as hardware clock), and `info`
/// counted IMU batches as frames (a 200 Hz gyro showed as "9.5 fps"). Also: the IMU rates
/// of the bag (400 / 250 Hz, not librealsense's defaults) are what is recorded.
#[test]
fn imu_in_global_time_at_400_and_250_hz_keeps_its_clock_and_rate() {
    let _g = heavy();
    let Some(tb) = rig_bag("imu-fast") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = RealSenseSource::open_bag(&tb.bag, &live_cfg(Pacing::AsFastAsPossible)).unwrap();
    let out = record(vec![Box::new(src)], dir.path(), true, |_| {});
    let o = &out[0];
    assert_eq!(o.stats.error, None);
    let file = &o.files[0];
    let r = Reader::open(file).unwrap();
    let gyro = r
        .header()
        .streams
        .iter()
        .find(|s| s.kind == StreamKind::Gyro)
        .unwrap();
    assert_eq!(gyro.fps, 400.0);
    for (id, kind) in [(stream_id::GYRO, "gyro"), (stream_id::ACCEL, "accel")] {
        let batches = r.count(id, record_type::IMU_BATCH);
        assert!(batches > 1, "{kind}: {batches} batches");
        let mut samples = 0;
        for i in 0..batches {
            let (rec, p) = r.read_record(id, record_type::IMU_BATCH, i).unwrap();
            assert_eq!(
                rec.header.ts_domain,
                rsrec::container::format::ts_domain::GLOBAL_TIME,
                "{kind} batch {i}"
            );
            samples += decode_imu_batch(p).unwrap().len() as u64;
        }
        assert_eq!(
            samples,
            tb.manifest["imu"][kind].as_u64().unwrap(),
            "{kind}"
        );
    }
    let info = info_json(file);
    for (kind, hz) in [("gyro", 400.0), ("accel", 250.0)] {
        let st = info["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap();
        assert_eq!(st["timestamp_domain"], "global_time", "{st}");
        assert_eq!(st["samples"], tb.manifest["imu"][kind], "{st}");
        assert_eq!(st["frames"], st["samples"], "{st}");
        assert!(st["batches"].as_u64().unwrap() < st["samples"].as_u64().unwrap());
        let measured = st["measured_hz"].as_f64().unwrap();
        assert!(
            (measured - hz).abs() < hz * 0.02,
            "{kind}: measured {measured} Hz, recorded at {hz} Hz"
        );
        assert!(st.get("measured_fps").is_none(), "{st}");
    }
}

/// Regression: one "last sample" timer covered every stream of a camera, so a camera whose
/// depth stopped while its IMU streamed on was never considered stalled. Now each stream is
/// watched on its own: the depth stream that stops is a stall, said with the streams that
/// went on.
#[test]
fn a_depth_stream_that_stops_while_the_imu_goes_on_is_a_stall() {
    let _g = heavy();
    let Some(tb) = rig_bag("depth-stops") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = live_cfg(Pacing::RealTime);
    cfg.stall_timeout = Duration::from_millis(800);
    let t0 = Instant::now();
    let src = RealSenseSource::open_bag(&tb.bag, &cfg).unwrap();
    let out = record(vec![Box::new(src)], dir.path(), false, |_| {});
    let o = &out[0];
    let e = o.stats.error.as_deref().expect("the stall is an error");
    assert!(
        e.contains("depth stream stalled") && e.contains("gyro") && e.contains("accel"),
        "{e}"
    );
    // Depth stopped after 0.5 s of a 3 s bag: noticed before the bag ended.
    assert!(
        t0.elapsed() < Duration::from_millis(2900),
        "noticed after {:?}",
        t0.elapsed()
    );
    assert!(o.stats.depth_written <= 15, "{:?}", o.stats);
    assert!(o.stats.depth_written > 0, "{:?}", o.stats);
    assert!(o.stats.imu_samples > 0);
    let events = Reader::open(&o.files[0]).unwrap().events().unwrap();
    assert!(
        events
            .iter()
            .any(|(_, ev)| ev.kind == "source_error" && ev.message.contains("stalled")),
        "{events:?}"
    );
}

/// Without the camera's frame counter (no UVC metadata), librealsense numbers the frames it
/// received, so frames the camera lost left no trace. They are numbered from their
/// timestamps now - by librealsense's playback and by the pure-Rust bag reader alike - and
/// each lost frame is a gap.
#[test]
fn frames_without_a_camera_counter_are_numbered_from_their_timestamps() {
    let _g = heavy();
    let Some(tb) = rig_bag("no-counter") else {
        return;
    };
    // Both readers give the same numbers.
    agree(&tb.bag);
    let dir = tempfile::tempdir().unwrap();
    let src = RealSenseSource::open_bag(&tb.bag, &live_cfg(Pacing::AsFastAsPossible)).unwrap();
    let out = record(vec![Box::new(src)], dir.path(), true, |_| {});
    let o = &out[0];
    assert_eq!(o.stats.error, None);
    // 60 frames, every 5th lost: 12 lost, the last of them after the last frame (invisible).
    let sent = tb.frames().len() as u64;
    assert_eq!(sent, 48);
    assert_eq!(o.stats.depth_written, sent);
    assert_eq!(o.stats.depth_source_skipped, 11, "{:?}", o.stats);
    let r = Reader::open(&o.files[0]).unwrap();
    let numbers: Vec<u64> = r
        .depth_frames(stream_id::DEPTH)
        .map(|f| f.unwrap().header.frame_number)
        .collect();
    let want: Vec<u64> = (1..=59).filter(|n| n % 5 != 0).collect();
    assert_eq!(numbers, want);
    let gaps = r.gaps().unwrap();
    let skipped: Vec<u64> = gaps
        .iter()
        .filter(|(s, g)| {
            *s == stream_id::DEPTH && g.reason == rsrec::container::GapReason::SourceSkipped
        })
        .flat_map(|(_, g)| g.first_frame..=g.last_frame)
        .collect();
    assert_eq!(skipped, (1..=11).map(|k| k * 5).collect::<Vec<_>>());
    // librealsense's own (contiguous) number is kept in the metadata.
    let e = r
        .entry(stream_id::DEPTH, record_type::DEPTH_FRAME, 5)
        .unwrap();
    let m = r.frame_metadata(stream_id::DEPTH, &e).unwrap().unwrap();
    assert!(
        m.pairs
            .iter()
            .any(|(k, v)| k == "librealsense_frame_number" && *v == 6),
        "{m:?}"
    );
}

/// Regression: one camera that could not be opened aborted the whole session. Now it is left
/// out, said, and listed in session.json, and the others are recorded - unless
/// `--require-all`.
#[test]
fn a_camera_that_cannot_be_recorded_is_left_out_and_the_others_go_on() {
    let _g = heavy();
    let (Some(good), Some(bad)) = (rig_bag("imu-fast"), rig_bag("no-depth")) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let cameras = format!("rsbag:{},rsbag:{}", good.bag.display(), bad.bag.display());
    let run = |extra: &[&str], session: &str| {
        Command::new(env!("CARGO_BIN_EXE_rsrec"))
            .args(["record", "--quiet", "--color", "off", "--session", session])
            .args(extra)
            .arg("--cameras")
            .arg(&cameras)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap()
    };
    let r = run(&[], "rig");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(
        stderr.contains("left out") && stderr.contains("no Z16 depth"),
        "{stderr}"
    );
    let sj: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("rig/session.json")).unwrap())
            .unwrap();
    assert_eq!(sj["cameras"].as_array().unwrap().len(), 1, "{sj}");
    assert_eq!(sj["cameras"][0]["device"]["serial"], "912300000201", "{sj}");
    let left = sj["cameras_left_out"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{sj}");
    assert!(left[0]["source"]
        .as_str()
        .unwrap()
        .ends_with("no-depth.bag"));
    assert!(left[0]["error"].as_str().unwrap().contains("no Z16 depth"));

    let r = run(&["--require-all"], "strict");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{stderr}");
    assert!(stderr.contains("no Z16 depth"), "{stderr}");
    assert!(!out.path().join("strict/session.json").exists());
}
