//! `rsrec info FILE|SESSION [--json]`: streams, counts, times, codecs, sizes, gaps, closed or not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rsrec::container::format::{record_type, ts_domain};
use rsrec::container::record::decode_imu_batch;
use rsrec::container::{ImuSample, Reader, StreamKind};
use rsrec::session::Recording;
use serde_json::json;

use super::util::{fmt_bytes, fmt_num, fmt_utc, human, outln};

/// Depth frames whose headers `info` reads for the codec mix: every frame of a file up to
/// about 11 minutes at 30 fps, evenly spaced ones beyond (one page read per frame).
const CODEC_MIX_FRAMES: usize = 20_000;

/// Show what a .rsrec file (or every file of a session folder) holds: streams, frame counts, duration, timestamps, codec,
/// compression ratio, gaps, and whether it was closed cleanly.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .rsrec file, or a session folder.
    pub file: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

fn domain_name(d: u8) -> &'static str {
    ts_domain::name(d).unwrap_or("unknown")
}

fn record_type_name(t: u8) -> String {
    rsrec::container::RecordKind::from_code(t).plural_name()
}

fn props(p: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    p.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
}

/// `t` as a JSON value, through text, so that f32 values keep their shortest decimal form
/// (0.001, not the 0.0010000000474974513 of an f32 widened to f64 by `to_value`).
fn json_value<T: serde::Serialize>(t: &T) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&serde_json::to_string(t)?)?)
}

/// Builds the whole report as JSON; the text output is rendered from it.
fn report(reader: &Reader) -> anyhow::Result<serde_json::Value> {
    let h = reader.header();
    let mut streams = Vec::new();
    for s in &h.streams {
        let mut records = serde_json::Map::new();
        for sec in reader.sections().iter().filter(|sec| sec.stream == s.id) {
            records.insert(record_type_name(sec.record_type), json!(sec.len()));
        }
        // Main record type of the stream: depth frames, colour entries or IMU batches.
        let main = match s.kind {
            StreamKind::Depth => record_type::DEPTH_FRAME,
            StreamKind::Infrared => record_type::INFRARED_FRAME,
            StreamKind::Color => record_type::COLOR_FRAME,
            _ => record_type::IMU_BATCH,
        };
        let n = reader.count(s.id, main);
        // The stream's description in the one JSON shape rsrec uses everywhere (export's
        // intrinsics.json, session.json, the Python reader's --json), then its counts.
        let mut v = json_value(s)?;
        v["records"] = json!(records);
        v["frames"] = json!(n);
        if n > 0 {
            let first = reader.entry(s.id, main, 0).expect("n > 0");
            let last = reader.entry(s.id, main, n - 1).expect("n > 0");
            let (first_rec, _) = reader.read_record(s.id, main, 0)?;
            let dur_s = (last.device_ts_ms - first.device_ts_ms) / 1000.0;
            v["first_frame_number"] = json!(first.frame_number);
            v["last_frame_number"] = json!(last.frame_number);
            v["first_device_ts_ms"] = json!(first.device_ts_ms);
            v["last_device_ts_ms"] = json!(last.device_ts_ms);
            v["timestamp_domain"] = json!(domain_name(first_rec.header.ts_domain));
            v["first_host_time_utc"] = json!(fmt_utc(first.host_ts_us));
            v["last_host_time_utc"] = json!(fmt_utc(last.host_ts_us));
            v["duration_s"] = json!(dur_s);
            if main == record_type::IMU_BATCH {
                // An IMU batch holds many samples (§5.3): samples and their rate, from the
                // section's payload size (8 + 40 per sample per batch) and the last batch's
                // last sample, not batches per second.
                let payload = reader
                    .section(s.id, main)
                    .map_or(0, |sec| sec.payload_bytes);
                let samples = payload.saturating_sub(8 * n as u64) / ImuSample::LEN as u64;
                let (last_rec, p) = reader.read_record(s.id, main, n - 1)?;
                let last_sample = decode_imu_batch(p)?.last().copied();
                v["batches"] = json!(n);
                v["frames"] = json!(samples);
                v["samples"] = json!(samples);
                if let Some(ls) = last_sample {
                    let dur_s = (ls.device_ts_ms - first.device_ts_ms) / 1000.0;
                    v["last_frame_number"] = json!(ls.frame_number);
                    v["last_device_ts_ms"] = json!(ls.device_ts_ms);
                    v["duration_s"] = json!(dur_s);
                    if samples > 1 && dur_s > 0.0 {
                        v["measured_hz"] = json!((samples - 1) as f64 / dur_s);
                    }
                }
                if last_rec.header.ts_domain != first_rec.header.ts_domain {
                    v["last_timestamp_domain"] = json!(domain_name(last_rec.header.ts_domain));
                }
            } else if n > 1 && dur_s > 0.0 {
                v["measured_fps"] = json!((n - 1) as f64 / dur_s);
            }
            if matches!(main, record_type::DEPTH_FRAME | record_type::INFRARED_FRAME) {
                // How the camera's clock sits against the host's: the smallest host time
                // minus device time over the frames (comparable across cameras on one
                // host-based clock, e.g. global time).
                let offset = reader
                    .entries(s.id, main)
                    .map(|e| e.host_ts_us as f64 / 1000.0 - e.device_ts_ms)
                    .filter(|d| d.is_finite())
                    .fold(f64::INFINITY, f64::min);
                if offset.is_finite() {
                    v["host_minus_device_ms_min"] = json!(offset);
                }
                // Every frame's codec id is in its record header (a file may mix codecs:
                // `auto`); a long file is sampled so that info stays fast.
                let mix = reader.codec_mix(s.id, CODEC_MIX_FRAMES);
                let codec = match mix.frames.len() {
                    1 => mix.describe(),
                    _ => "mixed".to_string(),
                };
                v["codec_frames"] = json!(mix
                    .frames
                    .iter()
                    .map(|(c, n)| (c.to_string(), json!(n)))
                    .collect::<serde_json::Map<_, _>>());
                v["codec_mix"] = json!(mix.describe());
                v["codec_frames_sampled"] = json!(mix.sampled);
                let stored = reader
                    .section(s.id, main)
                    .map_or(0, |sec| sec.payload_bytes);
                // Raw size as the camera delivers it: 2 bytes a depth pixel, 1 an infrared one.
                let bytes_per_pixel = if main == record_type::DEPTH_FRAME {
                    2
                } else {
                    1
                };
                let raw = n as u64 * s.width as u64 * s.height as u64 * bytes_per_pixel;
                v["codec"] = json!(codec);
                v["raw_bytes"] = json!(raw);
                v["stored_bytes"] = json!(stored);
                v["compression_ratio"] = json!(raw as f64 / stored.max(1) as f64);
                // §3.2 `depth_max_error`: the stream was recorded lossy with this bound.
                let max_err = s
                    .properties
                    .iter()
                    .find(|(k, _)| k == rsrec::container::format::PROP_DEPTH_MAX_ERROR);
                v["bit_exact"] = json!(max_err.is_none());
                if let Some((_, m)) = max_err {
                    v["depth_max_error"] = json!(m);
                }
            }
        }
        // §5.8 Per-frame metadata: how many frames have it, and the first frame's.
        let meta_n = reader.count(s.id, record_type::FRAME_METADATA);
        if meta_n > 0 {
            v["metadata_frames"] = json!(meta_n);
            let (_, p) = reader.read_record(s.id, record_type::FRAME_METADATA, 0)?;
            let m = rsrec::container::FrameMetadata::decode(p)?;
            v["first_frame_metadata"] = json!(m
                .pairs
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>());
        }
        streams.push(v);
    }
    let gaps: Vec<serde_json::Value> = reader
        .gaps()?
        .into_iter()
        .map(|(stream, g)| json!({"stream": stream, "first_frame": g.first_frame, "last_frame": g.last_frame, "count": g.count, "reason": g.reason, "detail": g.detail}))
        .collect();
    let events: Vec<serde_json::Value> = reader
        .events()?
        .into_iter()
        .map(|(stream, e)| json!({"stream": stream, "kind": e.kind, "message": e.message}))
        .collect();
    let metadata: serde_json::Value =
        serde_json::from_str(&h.metadata_json).unwrap_or(json!(h.metadata_json));
    Ok(json!({
        "file": reader.path().map(|p| p.display().to_string()),
        "format_version": h.format_version,
        "writer": h.writer,
        "created_utc": fmt_utc(h.created_utc_us),
        "closed_cleanly": reader.is_closed(),
        "opened_via": format!("{:?}", reader.opened_via()),
        "torn_tail_bytes": reader.torn_tail_bytes(),
        "file_bytes": reader.file_len(),
        "device": {
            "name": h.device.name,
            "serial": h.device.serial,
            "model": h.device.model,
            "firmware": h.device.firmware,
            "properties": props(&h.device.properties),
        },
        "streams": streams,
        "gaps": gaps,
        "frames_lost": gaps.iter().map(|g| g["count"].as_u64().unwrap_or(0)).sum::<u64>(),
        "events": events,
        "metadata": metadata,
    }))
}

fn print_text(r: &serde_json::Value) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    outln!("file:     {}", s(&r["file"]));
    outln!(
        "format:   v{}, written by {}, created {}",
        r["format_version"],
        s(&r["writer"]),
        s(&r["created_utc"])
    );
    if r["closed_cleanly"].as_bool() == Some(true) {
        outln!("status:   closed cleanly");
    } else {
        outln!(
            "status:   NOT CLOSED (writer did not finish; {} bytes of incomplete record at the end) - run `rsrec recover`",
            r["torn_tail_bytes"]
        );
    }
    let d = &r["device"];
    outln!(
        "device:   {} (serial {}, model {}, firmware {})",
        s(&d["name"]),
        s(&d["serial"]),
        s(&d["model"]),
        s(&d["firmware"])
    );
    outln!(
        "size:     {}",
        fmt_bytes(r["file_bytes"].as_u64().unwrap_or(0))
    );
    for st in r["streams"].as_array().into_iter().flatten() {
        outln!(
            "stream {} {} \"{}\": {}x{} {} @ {} fps{}",
            st["id"],
            s(&st["kind"]),
            s(&st["name"]),
            st["width"],
            st["height"],
            s(&st["format"]),
            fmt_num(st["fps"].as_f64().unwrap_or(0.0), 3),
            if s(&st["kind"]) == "depth" {
                format!(
                    ", depth units {} m",
                    fmt_num(st["depth_units"].as_f64().unwrap_or(0.0), 9)
                )
            } else {
                String::new()
            }
        );
        if let Some(k) = st["intrinsics"].as_object() {
            let f = |key: &str| fmt_num(k[key].as_f64().unwrap_or(0.0), 2);
            outln!(
                "  intrinsics: fx {} fy {} ppx {} ppy {} ({})",
                f("fx"),
                f("fy"),
                f("ppx"),
                f("ppy"),
                human(k["model"].as_str().unwrap_or("other"))
            );
        }
        if let Some(b) = st["batches"].as_u64() {
            outln!("  samples:  {} in {b} batches", st["samples"]);
        } else {
            outln!("  frames:   {}", st["frames"]);
        }
        if st["frames"].as_u64().unwrap_or(0) > 0 {
            outln!(
                "  numbers:  {} .. {}",
                st["first_frame_number"],
                st["last_frame_number"]
            );
            outln!(
                "  device:   {:.3} .. {:.3} ms ({}), duration {:.3} s{}",
                st["first_device_ts_ms"].as_f64().unwrap_or(0.0),
                st["last_device_ts_ms"].as_f64().unwrap_or(0.0),
                human(&s(&st["timestamp_domain"])),
                st["duration_s"].as_f64().unwrap_or(0.0),
                match (st["measured_fps"].as_f64(), st["measured_hz"].as_f64()) {
                    (Some(f), _) => format!(", {f:.2} fps"),
                    (None, Some(hz)) => format!(", {hz:.2} Hz"),
                    _ => String::new(),
                }
            );
            outln!(
                "  host:     {} .. {}",
                s(&st["first_host_time_utc"]),
                s(&st["last_host_time_utc"])
            );
            if let Some(o) = st["host_minus_device_ms_min"].as_f64() {
                outln!("  clock:    host time - device time >= {o:.3} ms");
            }
        }
        if let Some(ratio) = st["compression_ratio"].as_f64() {
            let sampled = if st["codec_frames_sampled"] == true {
                format!(" (of {CODEC_MIX_FRAMES} frames sampled)")
            } else {
                String::new()
            };
            outln!(
                "  codec:    {}{sampled}, {} stored for {} raw (ratio {ratio:.2}x)",
                s(&st["codec_mix"]),
                fmt_bytes(st["stored_bytes"].as_u64().unwrap_or(0)),
                fmt_bytes(st["raw_bytes"].as_u64().unwrap_or(0)),
            );
        }
        if let Some(n) = st["metadata_frames"].as_u64() {
            let first = st["first_frame_metadata"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            outln!("  metadata: {n} frames; the first: {first}");
        }
        if let Some(m) = st["depth_max_error"].as_str() {
            let what = match m.strip_suffix('%') {
                Some(p) => format!("{p} % of the distance"),
                None => format!("{m} depth units"),
            };
            outln!("  LOSSY:    not bit-exact; every depth value within {what}, holes exact");
        }
    }
    let gaps = r["gaps"].as_array().cloned().unwrap_or_default();
    if gaps.is_empty() {
        outln!("gaps:     none");
    } else {
        outln!(
            "gaps:     {} ({} frames lost)",
            gaps.len(),
            r["frames_lost"]
        );
        for g in gaps.iter().take(20) {
            outln!(
                "  stream {} frames {}..{} ({}): {} {}",
                g["stream"],
                g["first_frame"],
                g["last_frame"],
                g["count"],
                human(&s(&g["reason"])),
                s(&g["detail"])
            );
        }
        if gaps.len() > 20 {
            outln!("  ... {} more (see --json)", gaps.len() - 20);
        }
    }
    let events = r["events"].as_array().cloned().unwrap_or_default();
    if !events.is_empty() {
        outln!("events:   {}", events.len());
        for e in events.iter().take(20) {
            outln!("  {}: {}", human(&s(&e["kind"])), s(&e["message"]));
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.file.is_file() && args.file.file_name().is_none_or(|n| n != "session.json") {
        let reader = super::util::open_reader(&args.file)?;
        let r = report(&reader).with_context(|| format!("{}", args.file.display()))?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print_text(&r);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A session folder (or a folder of .rsrec files): every file of every camera.
    let rec = Recording::open(&args.file)?;
    let mut files = Vec::new();
    for cam in &rec.cameras {
        for f in &cam.files {
            let r = report(&f.reader).with_context(|| format!("{}", f.path.display()))?;
            files.push((cam.name.clone(), r));
        }
    }
    if args.json {
        let v = json!({
            "input": rec.description,
            "session": json_value(&rec.manifest)?,
            "files": files.iter().map(|(cam, r)| json!({"camera": cam, "info": r})).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", rec.description);
    if let Some(m) = &rec.manifest {
        outln!(
            "  {} camera(s), status {}, started {}{}",
            m.cameras.len(),
            m.status,
            m.start_utc,
            m.stop_utc
                .as_deref()
                .map(|s| format!(", stopped {s}"))
                .unwrap_or_default()
        );
    }
    for (cam, r) in &files {
        outln!();
        outln!("camera:   {cam}");
        print_text(r);
    }
    Ok(ExitCode::SUCCESS)
}
