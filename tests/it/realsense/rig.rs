//! What real rigs need, through librealsense's playback of generated bags: IMU on its own
//! clock and at the rates asked for, a stream that stalls while the IMU goes on, cameras
//! without a hardware frame counter, a camera that cannot be recorded among good ones, and
//! infrared left and right.

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
            format!("{set}:912300000205:infrared"),
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
            "--ir",
            "infrared",
            "--frames",
            "infrared:30",
        ];
        args.extend(specs.iter().map(String::as_str));
        generate_bags(
            "test-bags-rig",
            &args,
            &[
                "imu-fast",
                "depth-stops",
                "no-counter",
                "no-depth",
                "infrared",
            ],
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
    agree(&tb.bag, &[]);
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

/// The infrared frames make_test_bags.py wrote for `side` (`ir_left`, `ir_right`), one
/// `width * height` byte vector per frame.
fn bag_infrared(tb: &TestBag, side: &str) -> Vec<Vec<u8>> {
    let set = tb.set();
    let (descr, shape, data) =
        crate::export::read_npy(&tb.bag.with_file_name(format!("{set}.{side}.npy")));
    assert_eq!(descr, "|u1");
    let px = (shape[1] * shape[2]) as usize;
    data.chunks_exact(px).map(<[u8]>::to_vec).collect()
}

/// Issue 17: infrared (`--ir left,right`) through librealsense's playback is recorded in the
/// camera's `.rsrec` bit-exact, on the frame numbers and timestamps of its depth, with the
/// imager's intrinsics and its extrinsics to depth; rsrec's own bag reader (`rsrec import`)
/// keeps it too; and `export --to ir` gives back the same pixels as npy and PNG.
#[test]
fn infrared_left_and_right_are_recorded_imported_and_exported_bit_exact() {
    let _g = heavy();
    let Some(tb) = rig_bag("infrared") else {
        return;
    };
    let want = [bag_infrared(tb, "ir_left"), bag_infrared(tb, "ir_right")];
    let n = tb.frames().len();
    assert_eq!(want[0].len(), n);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = live_cfg(Pacing::AsFastAsPossible);
    cfg.infrared = vec![1, 2];
    let src = RealSenseSource::open_bag(&tb.bag, &cfg).unwrap();
    let out = record(vec![Box::new(src)], dir.path(), true, |_| {});
    let o = &out[0];
    assert_eq!(o.stats.error, None);
    assert_eq!(o.stats.ir_captured, 2 * n as u64);
    assert_eq!(o.stats.ir_written, 2 * n as u64);
    assert_eq!(o.stats.ir_raw_bytes, 2 * n as u64 * 848 * 480);
    let r = Reader::open(&o.files[0]).unwrap();
    assert!(rsrec::container::recover::verify(&r).ok());
    let depth_numbers: Vec<u64> = r
        .entries(stream_id::DEPTH, record_type::DEPTH_FRAME)
        .map(|e| e.frame_number)
        .collect();
    for (side, (id, index)) in [(stream_id::IR_LEFT, 1u8), (stream_id::IR_RIGHT, 2)]
        .into_iter()
        .enumerate()
    {
        let d = r.header().stream(id).unwrap();
        assert_eq!(d.kind, StreamKind::Infrared);
        assert_eq!(d.format, rsrec::container::PixelFormat::Y8);
        assert_eq!(d.ir_index(), Some(index));
        assert_eq!((d.width, d.height, d.fps), (848, 480, 30.0));
        assert!(d.intrinsics.is_some(), "{d:?}");
        let e = d.extrinsics.as_ref().expect("extrinsics to depth");
        assert_eq!(e.to_stream, stream_id::DEPTH);
        assert_eq!(r.count(id, record_type::INFRARED_FRAME), n, "{}", d.name);
        for k in 0..n {
            let f = r.read_infrared(id, k).unwrap();
            assert!(f.data == want[side][k], "{} frame {k} differs", d.name);
            assert_eq!(
                f.header.frame_number, depth_numbers[k],
                "{} frame {k}",
                d.name
            );
        }
    }
    // The right imager sits 50 mm from the left one (the depth's origin), in either sign
    // convention of the transform's direction.
    let right = r.header().stream(stream_id::IR_RIGHT).unwrap();
    let t = right.extrinsics.as_ref().unwrap().translation;
    assert!((t[0].abs() - 0.05).abs() < 1e-4, "{t:?}");
    let left = r.header().stream(stream_id::IR_LEFT).unwrap();
    assert!(left.extrinsics.as_ref().unwrap().translation[0].abs() < 1e-6);

    // rsrec's own bag reader keeps infrared (the same frames as librealsense's playback),
    // and export gives it back.
    crate::realsense::agree(&tb.bag, &[1, 2]);
    let imported = dir.path().join("imported");
    let exported = dir.path().join("exported");
    for args in [
        vec![
            "import",
            common::p(&tb.bag),
            "--out",
            common::p(&imported),
            "--quiet",
        ],
        vec![
            "export",
            common::p(&imported),
            "--to",
            "ir",
            "--out",
            common::p(&exported),
        ],
    ] {
        let o = common::rsrec(&args);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
    }
    let cam_dir = std::fs::read_dir(&exported)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("ir");
    for (side, name) in ["ir_left", "ir_right"].into_iter().enumerate() {
        let (descr, shape, data) = crate::export::read_npy(&cam_dir.join(format!("{name}.npy")));
        assert_eq!(descr, "|u1");
        assert_eq!(shape, [n as u64, 480, 848]);
        assert!(
            data == want[side].concat(),
            "{name}.npy differs from the bag"
        );
        let csv = std::fs::read_to_string(cam_dir.join(format!("{name}.csv"))).unwrap();
        let first_png = csv.lines().nth(1).unwrap().split(',').nth(4).unwrap();
        let img = image_gray8(&cam_dir.join(first_png));
        assert!(img == want[side][0], "{name}: first PNG differs");
    }
}

/// An 8-bit grayscale PNG's pixels.
fn image_gray8(path: &Path) -> Vec<u8> {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut out = vec![0u8; r.output_buffer_size()];
    let info = r.next_frame(&mut out).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    out.truncate(info.buffer_size());
    out
}
