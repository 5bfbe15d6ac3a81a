//! Process-level tests of the `rsrec` binary: outputs, exit codes, one-line errors.

use crate::common;

use common::{p, rsrec, stderr, stdout};

use std::path::{Path, PathBuf};

/// A dataset folder with `depth/1.png`, `depth/2.png`, `depth/10.png` (distinct frames).
fn dataset(root: &Path) -> (PathBuf, Vec<Vec<u16>>) {
    let dir = root.join("myset");
    std::fs::create_dir_all(dir.join("depth")).unwrap();
    let mut frames = Vec::new();
    for (i, name) in ["1.png", "2.png", "10.png"].iter().enumerate() {
        let f = common::synthetic_frame(33, 17, i as u64);
        common::write_png16(&dir.join("depth").join(name), 33, 17, &f);
        frames.push(f);
    }
    (dir, frames)
}

fn import(root: &Path) -> (PathBuf, Vec<Vec<u16>>) {
    let (dir, frames) = dataset(root);
    let out = root.join("out");
    let o = rsrec(&[
        "import",
        p(&dir),
        "--fps",
        "15",
        "--out",
        p(&out),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (out.join("myset.rsrec"), frames)
}

#[test]
fn import_info_verify_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, frames) = import(tmp.path());
    // Natural sort: 10.png is the third frame.
    let reader = rsrec::container::Reader::open(&file).unwrap();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(&reader.read_depth(0, i).unwrap().data, f);
    }

    let o = rsrec(&["info", p(&file)]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("closed cleanly"), "{text}");
    assert!(text.contains("33x17"), "{text}");
    // The default (`auto`) of a conversion: grad-rans32 for every frame.
    assert!(text.contains("grad-rans32"), "{text}");

    let o = rsrec(&["info", p(&file), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["closed_cleanly"], true);
    assert_eq!(v["streams"][0]["frames"], 3);
    assert_eq!(v["streams"][0]["last_frame_number"], 2);
    assert_eq!(v["streams"][0]["depth_units"], 0.001);
    let dur = v["streams"][0]["duration_s"].as_f64().unwrap();
    assert!((dur - 2.0 / 15.0).abs() < 1e-9, "{dur}");
    assert!(v["streams"][0]["compression_ratio"].as_f64().unwrap() > 1.0);
    assert_eq!(v["frames_lost"], 0);

    let o = rsrec(&["verify", p(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("OK"));
}

#[test]
fn import_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, _) = import(tmp.path());
    let dir = tmp.path().join("myset");
    let out = tmp.path().join("out");
    let o = rsrec(&["import", p(&dir), "--fps", "15", "--out", p(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = rsrec(&[
        "import",
        p(&dir),
        "--fps",
        "15",
        "--out",
        p(&out),
        "--force",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(file.exists());
}

#[test]
fn bad_arguments_and_inputs_give_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = dataset(tmp.path());
    let out = tmp.path().join("out");
    let not_rsrec = tmp.path().join("notes.txt");
    std::fs::write(
        &not_rsrec,
        "this is not an rsrec file at all, just some text\n",
    )
    .unwrap();
    let empty = tmp.path().join("empty.rsrec");
    std::fs::write(&empty, "").unwrap();
    let missing = tmp.path().join("missing.rsrec");
    let empty_dir = tmp.path().join("nothing-here");
    std::fs::create_dir_all(&empty_dir).unwrap();

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["info", p(&not_rsrec)], 1, "not an rsrec file"),
        (vec!["verify", p(&not_rsrec)], 1, "not an rsrec file"),
        (vec!["recover", p(&not_rsrec)], 1, "not an rsrec file"),
        (vec!["info", p(&empty)], 1, "too short"),
        (vec!["info", p(&missing)], 1, "No such file"),
        (vec!["verify", p(&empty_dir)], 1, "no .rsrec files"),
        (vec!["info", p(&empty_dir)], 1, "no .rsrec files"),
        (
            vec!["import", p(&dir), "--fps", "0", "--out", p(&out)],
            2,
            "--fps",
        ),
        (
            vec!["import", p(&missing), "--fps", "30", "--out", p(&out)],
            1,
            "not a directory",
        ),
        (
            vec!["import", p(&out), "--fps", "30", "--out", p(&out)],
            1,
            "",
        ),
        (
            vec![
                "import",
                p(&dir),
                "--fps",
                "30",
                "--out",
                p(&out),
                "--depth-codec",
                "gzip",
            ],
            2,
            "unknown depth codec",
        ),
        (
            vec!["import", p(&dir), "--out", p(&out)],
            2,
            "--fps is required",
        ),
        // Bad arguments that only rsrec itself can see exit 2 as clap's do.
        (
            vec!["record", "--cameras", "foo:1", "--out", p(&out)],
            2,
            "'foo:1' is not a camera",
        ),
        (
            vec!["record", "--cameras", "sim:0", "--out", p(&out)],
            2,
            "sim:N needs N",
        ),
        (
            vec![
                "record",
                "--cameras",
                "sim:1",
                "--out",
                p(&out),
                "--session",
                "../x",
            ],
            2,
            "--session",
        ),
        (
            vec![
                "record",
                "--cameras",
                "sim:1",
                "--out",
                p(&out),
                "--min-free",
                "lots",
            ],
            2,
            "--min-free",
        ),
        (
            vec![
                "record",
                "--cameras",
                "sim:1",
                "--out",
                p(&out),
                "--color",
                "big",
            ],
            2,
            "--color",
        ),
        (
            vec![
                "import",
                p(&dir),
                "--fps",
                "30",
                "--out",
                p(&out),
                "--name",
                ".hidden",
            ],
            2,
            "--name",
        ),
        (
            vec!["man", "--subcommand", "frobnicate"],
            2,
            "no subcommand",
        ),
        (vec!["completions", "tcsh"], 2, "invalid value"),
        (
            vec!["record", "--cameras", "sim:1", "--ir", "middle"],
            2,
            "'middle': use left, right, left,right or off",
        ),
        (vec!["info"], 2, "FILE"),
        (vec!["bogus"], 2, "unrecognized subcommand"),
    ];
    for (args, code, needle) in cases {
        let o = rsrec(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        // rsrec's own errors are one line; clap's usage errors have their usage block.
        if code == 1 || err.starts_with("rsrec: error: ") {
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{args:?}: not one line: {err}"
            );
            assert!(err.starts_with("rsrec: error: "), "{args:?}: {err}");
        }
    }
}

#[test]
fn recover_exit_codes_distinguish_torn_tail_from_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, frames) = import(tmp.path());
    let bytes = std::fs::read(&file).unwrap();
    let reader = rsrec::container::Reader::open(&file).unwrap();
    let last = reader.entry(0, 1, 2).unwrap().offset as usize;
    let second = reader.entry(0, 1, 1).unwrap().offset as usize;
    drop(reader);

    // Cut in the middle of the last frame: a torn tail, exit 0, two frames recovered.
    let torn = tmp.path().join("torn.rsrec");
    std::fs::write(&torn, &bytes[..last + 60]).unwrap();
    let o = rsrec(&["info", p(&torn)]);
    assert!(stdout(&o).contains("NOT CLOSED"), "{}", stdout(&o));
    let o = rsrec(&["verify", p(&torn)]);
    assert_eq!(o.status.code(), Some(1));
    let o = rsrec(&["recover", p(&torn)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = tmp.path().join("torn.recovered.rsrec");
    assert!(rsrec(&["verify", p(&out)]).status.success());
    let r = rsrec::container::Reader::open(&out).unwrap();
    assert_eq!(r.frame_count(0), 2);
    assert_eq!(r.read_depth(0, 1).unwrap().data, frames[1]);
    // Refuses to overwrite the output.
    assert_eq!(rsrec(&["recover", p(&torn)]).status.code(), Some(1));

    // Damage the second frame's payload: verify names its offset, recover exits 3 and
    // records the lost frame as a gap.
    let mut bad = bytes.clone();
    bad[second + 100] ^= 0xFF;
    let damaged = tmp.path().join("damaged.rsrec");
    std::fs::write(&damaged, &bad).unwrap();
    let o = rsrec(&["verify", p(&damaged)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("first at offset {second}")),
        "{}",
        stderr(&o)
    );
    let fixed = tmp.path().join("fixed.rsrec");
    let o = rsrec(&["recover", p(&damaged), "-o", p(&fixed)]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(rsrec(&["verify", p(&fixed)]).status.success());
    let o = rsrec(&["info", p(&fixed), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["streams"][0]["frames"], 2);
    assert_eq!(v["frames_lost"], 1);
    assert_eq!(v["gaps"][0]["reason"], "corrupted");
    assert_eq!(v["gaps"][0]["first_frame"], 1);
}

/// `--depth-max-error`: lossy grad-rans32 (the default codec with a bound selects it),
/// med-rans, grad-rans or grad-rans32 within the bound, recorded in the file, shown by
/// `info`; a bound with a codec that cannot honour it is an error.
#[test]
fn import_with_an_error_bound_is_lossy_within_the_bound_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, frames) = dataset(tmp.path());
    let out = tmp.path().join("out");
    for (codec_args, codec) in [
        (&[][..], "grad-rans32"),
        (&["--depth-codec", "lz4-planes"], "grad-rans32"),
        (&["--depth-codec", "med-rans"], "med-rans"),
        (&["--depth-codec", "grad-rans"], "grad-rans"),
        (&["--depth-codec", "grad-rans32"], "grad-rans32"),
    ] {
        let mut args = vec![
            "import",
            p(&dir),
            "--fps",
            "30",
            "--out",
            p(&out),
            "--force",
        ];
        args.extend_from_slice(codec_args);
        args.extend_from_slice(&["--depth-max-error", "2mm", "--quiet"]);
        let o = rsrec(&args);
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let file = out.join("myset.rsrec");
        let info = stdout(&rsrec(&["info", p(&file), "--json"]));
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        let depth = &v["streams"][0];
        assert_eq!(depth["codec"], codec, "{info}");
        assert_eq!(depth["bit_exact"], false, "{info}");
        assert_eq!(depth["depth_max_error"], "2", "{info}");
        assert!(stdout(&rsrec(&["info", p(&file)])).contains("LOSSY"));
        let reader = rsrec::container::Reader::open(&file).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let got = reader.read_depth(0, i).unwrap().data;
            for (&o, &v) in got.iter().zip(f) {
                assert!(
                    (o == 0) == (v == 0) && o.abs_diff(v) <= 2,
                    "{codec} frame {i}: {v} -> {o}"
                );
            }
        }
    }
    // record: the default codec with a bound is lossy grad-rans32 as well.
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
        p(&out),
        "--session",
        "lossy",
        "--depth-max-error",
        "2mm",
        "--quiet",
    ]);
    assert!(o.status.success(), "record: {}", stderr(&o));
    let files: Vec<_> = std::fs::read_dir(out.join("lossy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "rsrec"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let info = stdout(&rsrec(&["info", p(&files[0]), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["streams"][0]["codec"], "grad-rans32", "{info}");
    assert_eq!(v["streams"][0]["depth_max_error"], "2", "{info}");
    let o = rsrec(&[
        "import",
        p(&dir),
        "--fps",
        "30",
        "--out",
        p(&out),
        "--force",
        "--depth-codec",
        "zstd-planes",
        "--depth-max-error",
        "1mm",
    ]);
    // A bad combination of arguments: exit code 2, like any other bad argument.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs --depth-codec med-rans"),
        "{}",
        stderr(&o)
    );
    // The same for record, before any camera is opened.
    let o = rsrec(&[
        "record",
        "--cameras",
        "sim:1",
        "--out",
        p(&out),
        "--depth-codec",
        "raw",
        "--depth-max-error",
        "0.5%",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs --depth-codec med-rans, grad-rans or grad-rans32, not raw"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = rsrec(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let text = stdout(&o);
        // Every subcommand is completed.
        for sub in [
            "record", "export", "import", "verify", "recover", "view", "man",
        ] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let o = rsrec(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH rsrec"),
        "{page}"
    );
    assert!(page.contains("record"), "{page}");
    let o = rsrec(&["man", "--subcommand", "record"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH rsrec-record"), "{page}");
    assert!(
        page.contains("min\\-free") || page.contains("min-free"),
        "{page}"
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, _) = import(tmp.path());
    for args in [
        vec!["info", "--json", p(&file)],
        vec!["info", p(&file)],
        vec!["completions", "bash"],
        vec!["man"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rsrec"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end at once, as `| head -0` would.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn info_and_verify_accept_a_session_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rsrec(&[
        "record",
        "--cameras",
        "sim:2",
        "--duration",
        "1s",
        "--depth",
        "212x120@30",
        "--color",
        "off",
        "--out",
        p(tmp.path()),
        "--session",
        "s",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tmp.path().join("s");
    let o = rsrec(&["info", p(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("camera:   sim0") && text.contains("camera:   sim1"),
        "{text}"
    );
    assert!(text.contains("status complete"), "{text}");
    // Human output: no 17-digit floats, no internal snake_case names.
    assert!(text.contains("depth units 0.001 m"), "{text}");
    assert!(!text.contains("0.0010000000"), "{text}");
    assert!(
        !text.contains("system_time") && !text.contains("hardware_clock"),
        "{text}"
    );
    let o = rsrec(&["info", "--json", p(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["session"]["status"], "complete");
    assert_eq!(v["session"]["manifest_version"], 1);
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    assert_eq!(v["files"][0]["info"]["streams"][0]["depth_units"], 0.001);
    assert!(v["files"][0]["info"]["streams"][0]["properties"].is_object());
    let o = rsrec(&["verify", p(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches(": OK (").count(), 2, "{}", stdout(&o));
    // One damaged file fails the session, naming the file.
    let f = dir.join("sim1.rsrec");
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&f, bytes).unwrap();
    let o = rsrec(&["verify", p(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("sim1.rsrec"), "{}", stderr(&o));
}

#[test]
fn import_color_off_imports_depth_only() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let set = data.join("d4xx-848x480-desk-holes");
    let o = rsrec(&[
        "import",
        p(&set),
        "--fps",
        "30",
        "--out",
        p(tmp.path()),
        "--quiet",
        "--name",
        "desk",
        "--color",
        "off",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["desk.rsrec"], "{names:?}");
    let r = rsrec::container::Reader::open(tmp.path().join("desk.rsrec")).unwrap();
    assert!(r
        .header()
        .streams
        .iter()
        .all(|s| s.kind != rsrec::container::StreamKind::Color));
}

/// Issue 16: `info` showed the codec of the first and last frame only ("a .. b"), though
/// `auto` mixes codecs within a file. It counts every frame's codec now.
#[test]
fn info_shows_the_codec_mix_of_every_frame() {
    let fixture =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/v2/all-records.rsrec");
    let info = stdout(&rsrec(&["info", p(&fixture), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let depth = &v["streams"][0];
    assert_eq!(depth["codec"], "mixed", "{info}");
    assert_eq!(depth["codec_frames_sampled"], false, "{info}");
    let frames = depth["codec_frames"].as_object().unwrap();
    let names: Vec<&str> = frames.keys().map(String::as_str).collect();
    for c in [
        "raw",
        "lz4-planes",
        "zstd-planes",
        "med-rans",
        "grad-rans",
        "grad-rans32",
    ] {
        assert!(names.contains(&c), "{c} missing in {info}");
    }
    let total: u64 = frames.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, depth["frames"].as_u64().unwrap(), "{info}");
    let text = stdout(&rsrec(&["info", p(&fixture)]));
    assert!(
        text.contains("grad-rans32 ") && text.contains(" %"),
        "{text}"
    );
}
