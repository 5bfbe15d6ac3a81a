//! `rsrec info FILE [--json]`: streams, counts, times, codecs, sizes, gaps, closed or not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rsrec::codec::CodecId;
use rsrec::container::format::{record_type, ts_domain};
use rsrec::container::{Reader, StreamKind};
use serde_json::json;

use super::util::{fmt_bytes, fmt_utc};

/// Show what a .rsrec file holds: streams, frame counts, duration, timestamps, codec,
/// compression ratio, gaps, and whether it was closed cleanly.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .rsrec file.
    pub file: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

fn domain_name(d: u8) -> &'static str {
    match d {
        ts_domain::HARDWARE_CLOCK => "hardware_clock",
        ts_domain::SYSTEM_TIME => "system_time",
        ts_domain::GLOBAL_TIME => "global_time",
        ts_domain::SYNTHETIC => "synthetic",
        ts_domain::NONE => "none",
        _ => "unknown",
    }
}

fn record_type_name(t: u8) -> String {
    match t {
        record_type::DEPTH_FRAME => "depth_frames".into(),
        record_type::COLOR_FRAME => "color_frames".into(),
        record_type::IMU_BATCH => "imu_batches".into(),
        record_type::GAP => "gaps".into(),
        record_type::EVENT => "events".into(),
        record_type::VIDEO_SEGMENT => "video_segments".into(),
        t => format!("type_{t:#04x}"),
    }
}

fn props(p: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    p.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
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
            StreamKind::Color | StreamKind::Infrared => record_type::COLOR_FRAME,
            _ => record_type::IMU_BATCH,
        };
        let n = reader.count(s.id, main);
        let mut v = json!({
            "id": s.id,
            "kind": s.kind.name(),
            "name": s.name,
            "width": s.width,
            "height": s.height,
            "format": s.format,
            "nominal_fps": s.fps,
            // Shortest decimal that reads back as the stored f32 (0.001, not 0.0010000000474...).
            "depth_units_m": s.depth_units.to_string().parse::<f64>().unwrap_or(0.0),
            "intrinsics": s.intrinsics,
            "extrinsics": s.extrinsics,
            "properties": props(&s.properties),
            "records": records,
            "frames": n,
        });
        if n > 0 {
            let first = reader.entry(s.id, main, 0).expect("n > 0");
            let last = reader.entry(s.id, main, n - 1).expect("n > 0");
            let (first_rec, _) = reader.read_record(s.id, main, 0)?;
            let (last_rec, _) = reader.read_record(s.id, main, n - 1)?;
            let dur_s = (last.device_ts_ms - first.device_ts_ms) / 1000.0;
            v["first_frame_number"] = json!(first.frame_number);
            v["last_frame_number"] = json!(last.frame_number);
            v["first_device_ts_ms"] = json!(first.device_ts_ms);
            v["last_device_ts_ms"] = json!(last.device_ts_ms);
            v["timestamp_domain"] = json!(domain_name(first_rec.header.ts_domain));
            v["first_host_time_utc"] = json!(fmt_utc(first.host_ts_us));
            v["last_host_time_utc"] = json!(fmt_utc(last.host_ts_us));
            v["duration_s"] = json!(dur_s);
            if n > 1 && dur_s > 0.0 {
                v["measured_fps"] = json!((n - 1) as f64 / dur_s);
            }
            if main == record_type::DEPTH_FRAME {
                let codecs: Vec<CodecId> = vec![first_rec.header.codec, last_rec.header.codec];
                let codec = if codecs[0] == codecs[1] {
                    codecs[0].to_string()
                } else {
                    format!("{} .. {}", codecs[0], codecs[1])
                };
                let stored = reader
                    .section(s.id, main)
                    .map_or(0, |sec| sec.payload_bytes);
                let raw = n as u64 * s.width as u64 * s.height as u64 * 2;
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
    println!("file:     {}", s(&r["file"]));
    println!(
        "format:   v{}, written by {}, created {}",
        r["format_version"],
        s(&r["writer"]),
        s(&r["created_utc"])
    );
    if r["closed_cleanly"].as_bool() == Some(true) {
        println!("status:   closed cleanly");
    } else {
        println!(
            "status:   NOT CLOSED (writer did not finish; {} bytes of incomplete record at the end) - run `rsrec recover`",
            r["torn_tail_bytes"]
        );
    }
    let d = &r["device"];
    println!(
        "device:   {} (serial {}, model {}, firmware {})",
        s(&d["name"]),
        s(&d["serial"]),
        s(&d["model"]),
        s(&d["firmware"])
    );
    println!(
        "size:     {}",
        fmt_bytes(r["file_bytes"].as_u64().unwrap_or(0))
    );
    for st in r["streams"].as_array().into_iter().flatten() {
        println!(
            "stream {} {} \"{}\": {}x{} {} @ {} fps{}",
            st["id"],
            s(&st["kind"]),
            s(&st["name"]),
            st["width"],
            st["height"],
            s(&st["format"]),
            st["nominal_fps"],
            if s(&st["kind"]) == "depth" {
                format!(", depth units {} m", st["depth_units_m"])
            } else {
                String::new()
            }
        );
        if let Some(k) = st["intrinsics"].as_object() {
            println!(
                "  intrinsics: fx {} fy {} ppx {} ppy {} ({})",
                k["fx"], k["fy"], k["ppx"], k["ppy"], k["model"]
            );
        }
        println!("  frames:   {}", st["frames"]);
        if st["frames"].as_u64().unwrap_or(0) > 0 {
            println!(
                "  numbers:  {} .. {}",
                st["first_frame_number"], st["last_frame_number"]
            );
            println!(
                "  device:   {:.3} .. {:.3} ms ({}), duration {:.3} s{}",
                st["first_device_ts_ms"].as_f64().unwrap_or(0.0),
                st["last_device_ts_ms"].as_f64().unwrap_or(0.0),
                s(&st["timestamp_domain"]),
                st["duration_s"].as_f64().unwrap_or(0.0),
                st["measured_fps"]
                    .as_f64()
                    .map(|f| format!(", {f:.2} fps"))
                    .unwrap_or_default()
            );
            println!(
                "  host:     {} .. {}",
                s(&st["first_host_time_utc"]),
                s(&st["last_host_time_utc"])
            );
        }
        if let Some(ratio) = st["compression_ratio"].as_f64() {
            println!(
                "  codec:    {}, {} stored for {} raw (ratio {ratio:.2}x)",
                s(&st["codec"]),
                fmt_bytes(st["stored_bytes"].as_u64().unwrap_or(0)),
                fmt_bytes(st["raw_bytes"].as_u64().unwrap_or(0)),
            );
        }
        if let Some(m) = st["depth_max_error"].as_str() {
            let what = match m.strip_suffix('%') {
                Some(p) => format!("{p} % of the distance"),
                None => format!("{m} depth units"),
            };
            println!("  LOSSY:    not bit-exact; every depth value within {what}, holes exact");
        }
    }
    let gaps = r["gaps"].as_array().cloned().unwrap_or_default();
    if gaps.is_empty() {
        println!("gaps:     none");
    } else {
        println!(
            "gaps:     {} ({} frames lost)",
            gaps.len(),
            r["frames_lost"]
        );
        for g in gaps.iter().take(20) {
            println!(
                "  stream {} frames {}..{} ({}): {} {}",
                g["stream"],
                g["first_frame"],
                g["last_frame"],
                g["count"],
                s(&g["reason"]),
                s(&g["detail"])
            );
        }
        if gaps.len() > 20 {
            println!("  ... {} more (see --json)", gaps.len() - 20);
        }
    }
    let events = r["events"].as_array().cloned().unwrap_or_default();
    if !events.is_empty() {
        println!("events:   {}", events.len());
        for e in events.iter().take(20) {
            println!("  {}: {}", s(&e["kind"]), s(&e["message"]));
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reader = super::util::open_reader(&args.file)?;
    let r = report(&reader).with_context(|| format!("{}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_text(&r);
    }
    Ok(ExitCode::SUCCESS)
}
