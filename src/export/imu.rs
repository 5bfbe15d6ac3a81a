//! IMU samples (gyro, accel) next to the depth of `--to npy` and `--to png16`: this module
//! reads a camera's IMU streams for the export's window and writes them, with their
//! `"imu"` entry of `intrinsics.json`.
//!
//! Files per stream `S` (`gyro`, `accel`), for each IMU stream the camera's files declare:
//! - `npy`: `S.npy` (N x 3 `<f4`: x, y, z, rad/s for gyro, m/s² for accel),
//!   `S_timestamps.npy` (N `<f8`, device ms), `S_host_timestamps_us.npy` (N `<u8`, UTC µs,
//!   times before 1970 become 0, as for depth) and `S_frame_numbers.npy` (N `<u8`);
//! - `png16`: `S.csv`, `frame_number,device_ts_ms,host_ts_us,x,y,z`, every number printed
//!   exactly (it parses back to the same f64 / f32).
//!
//! Which samples: every one when every depth frame is exported; otherwise those whose
//! timeline time ([`Camera::sample_time_us`]) lies between the first and the last selected
//! depth frame's (inclusive). A camera without IMU streams gets no files and no `"imu"` key.

use std::ops::RangeInclusive;

use serde_json::Value;

use super::npy::NpyWriter;
use super::*;
use crate::container::StreamKind;
use crate::session::recording::Timeline;
use crate::session::{ImuReading, SessionError};

/// How the samples are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ImuFiles {
    /// Four `.npy` arrays per stream.
    Npy,
    /// One `.csv` file per stream.
    Csv,
}

/// One camera's IMU samples in the export's window: read before its depth frames are
/// exported, so that a damaged batch fails the camera before the long part.
pub(super) struct ImuData {
    /// Timeline range of the samples (`None`: all of them).
    range: Option<RangeInclusive<i64>>,
    streams: Vec<(StreamKind, Vec<ImuReading>)>,
}

/// The CSV header line of `gyro.csv` / `accel.csv`.
const CSV_COLUMNS: &str = "frame_number,device_ts_ms,host_ts_us,x,y,z";

/// Reads the samples of every IMU stream of the job's camera in the job's window.
pub(super) fn read(job: &Job) -> Result<ImuData> {
    let cam = job.camera;
    let range = window(job)?;
    let mut streams = Vec::new();
    for kind in cam.imu_kinds() {
        let samples = cam.imu_samples(kind, range.clone()).map_err(|e| {
            let file = match &e {
                SessionError::ImuBatch { file, .. } => Some(file.clone()),
                _ => None,
            };
            match file {
                Some(file) => ExportError::DamagedImu {
                    file,
                    source: Box::new(e),
                },
                None => e.into(),
            }
        })?;
        streams.push((kind, samples));
    }
    Ok(ImuData { range, streams })
}

/// Writes the samples read by [`read`] into the job's folder, adds the bytes to `report`
/// and the `"imu"` object to `info` (the extra keys of `intrinsics.json`). Nothing without
/// IMU streams.
pub(super) fn write(
    job: &Job,
    data: ImuData,
    files: ImuFiles,
    report: &mut CameraReport,
    info: &mut Value,
    progress: &mut dyn Progress,
) -> Result<()> {
    if data.streams.is_empty() {
        return Ok(());
    }
    let cam = job.camera;
    let mut imu = serde_json::Map::new();
    for (kind, samples) in &data.streams {
        let name = kind.name();
        let units = units(*kind);
        let written = match files {
            ImuFiles::Npy => write_npy(&job.dir, name, units, samples)?,
            ImuFiles::Csv => write_csv(&job.dir, name, units, samples)?,
        };
        for (file, _) in &written {
            report.bytes_written += std::fs::metadata(job.dir.join(file)).map_or(0, |m| m.len());
        }
        if let Some(w) = clock_warning(job, name, samples, data.range.is_some()) {
            progress.warn(&w);
            report.warnings.push(w);
        }
        let (rate, rate_clock) = measured_rate(samples).unzip();
        imu.insert(
            name.to_string(),
            json!({
                "files": written.into_iter().collect::<serde_json::Map<_, _>>(),
                "samples": samples.len(),
                "units": units,
                "timestamp_domains": domains(samples),
                "timestamp_domain_runs": domain_runs(samples),
                "rate_hz": rate,
                "rate_clock": rate_clock,
                "nominal_rate_hz": cam.imu_stream(*kind).map(|d| d.fps).filter(|&f| f > 0.0),
                "time_range_us": data.range.as_ref().map(|r| [*r.start(), *r.end()]),
                "timeline": match cam.timeline() {
                    Timeline::Host => "host",
                    Timeline::Device { .. } => "device",
                },
            }),
        );
    }
    match info.as_object_mut() {
        Some(o) => {
            o.insert("imu".into(), Value::Object(imu));
            Ok(())
        }
        None => Err(ExportError::Internal(
            "the extra keys of intrinsics.json are not an object".into(),
        )),
    }
}

/// The timeline range of the samples to export: `None` (every sample) when every depth
/// frame is exported, else from the first to the last selected depth frame's time.
fn window(job: &Job) -> Result<Option<RangeInclusive<i64>>> {
    let (cam, sel) = (job.camera, job.sel);
    if sel.start == 0 && sel.step == 1 && sel.end >= cam.count(Stream::Depth) {
        return Ok(None);
    }
    let Some(last) = sel.last() else {
        // Nothing selected: no sample either (an empty range).
        return Ok(Some(RangeInclusive::new(1, 0)));
    };
    let time = |pos: usize| {
        cam.time_us(Stream::Depth, pos).ok_or_else(|| {
            ExportError::Internal(format!("{}: no depth index entry {pos}", cam.name))
        })
    };
    let (a, b) = (time(sel.start)?, time(last)?);
    Ok(Some(a.min(b)..=a.max(b)))
}

/// The unit of x, y, z.
fn units(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Gyro => "rad/s",
        StreamKind::Accel => "m/s²",
        _ => "",
    }
}

/// `S.npy`, `S_timestamps.npy`, `S_host_timestamps_us.npy`, `S_frame_numbers.npy`; returns
/// each file's name and description.
fn write_npy(
    dir: &Path,
    name: &str,
    units: &str,
    samples: &[ImuReading],
) -> Result<Vec<(String, Value)>> {
    let n = samples.len() as u64;
    let files = [
        (
            format!("{name}.npy"),
            format!("N x 3 float32: x, y, z in {units}"),
        ),
        (
            format!("{name}_timestamps.npy"),
            "N float64 device timestamps, ms (clocks: timestamp_domain_runs)".into(),
        ),
        (
            format!("{name}_host_timestamps_us.npy"),
            "N uint64 host timestamps, UTC microseconds".into(),
        ),
        (
            format!("{name}_frame_numbers.npy"),
            "N uint64 sample frame numbers".into(),
        ),
    ];
    let mut xyz = NpyWriter::create(&dir.join(&files[0].0), "<f4", 4, &[n, 3])?;
    let mut ts = NpyWriter::create(&dir.join(&files[1].0), "<f8", 8, &[n])?;
    let mut host = NpyWriter::create(&dir.join(&files[2].0), "<u8", 8, &[n])?;
    let mut numbers = NpyWriter::create(&dir.join(&files[3].0), "<u8", 8, &[n])?;
    for r in samples {
        let s = &r.sample;
        for v in s.xyz {
            xyz.write(&v.to_le_bytes())?;
        }
        ts.write_f64(s.device_ts_ms)?;
        // As host_timestamps_us.npy of depth: the spec's i64, times before 1970 become 0.
        host.write_u64(s.host_ts_us.max(0) as u64)?;
        numbers.write_u64(s.frame_number)?;
    }
    for w in [xyz, ts, host, numbers] {
        w.finish()?;
    }
    Ok(files
        .into_iter()
        .map(|(f, d)| (f, Value::from(d)))
        .collect())
}

/// `S.csv`; returns its name and description.
fn write_csv(
    dir: &Path,
    name: &str,
    units: &str,
    samples: &[ImuReading],
) -> Result<Vec<(String, Value)>> {
    let file = format!("{name}.csv");
    let mut csv = Csv::create_at(dir.join(&file), CSV_COLUMNS)?;
    for r in samples {
        let s = &r.sample;
        // `{}` of a float is the shortest text that parses back to the same value (f64 for
        // the time, f32 for x, y, z).
        csv.line(&format!(
            "{},{},{},{},{},{}",
            s.frame_number, s.device_ts_ms, s.host_ts_us, s.xyz[0], s.xyz[1], s.xyz[2]
        ))?;
    }
    csv.finish()?;
    let what = format!(
        "one row per sample: {CSV_COLUMNS}; device ms (clocks: timestamp_domain_runs), host UTC \
         microseconds, x, y, z in {units}"
    );
    Ok(vec![(file, Value::from(what))])
}

/// A domain's name for intrinsics.json.
fn domain_name(d: u8) -> String {
    ts_domain::name(d).map_or_else(|| format!("unknown ({d})"), str::to_string)
}

/// Every timestamp domain of the samples, in the order first seen.
fn domains(samples: &[ImuReading]) -> Vec<String> {
    let mut seen: Vec<u8> = Vec::new();
    for s in samples {
        if !seen.contains(&s.ts_domain) {
            seen.push(s.ts_domain);
        }
    }
    seen.into_iter().map(domain_name).collect()
}

/// Where the clock changes: the first sample (position in the exported arrays) of each run
/// of samples on one timestamp domain.
fn domain_runs(samples: &[ImuReading]) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut last = None;
    for (k, s) in samples.iter().enumerate() {
        if last != Some(s.ts_domain) {
            last = Some(s.ts_domain);
            runs.push(json!({"first_sample": k, "domain": domain_name(s.ts_domain)}));
        }
    }
    runs
}

/// Samples per second over the exported samples, and the clock it was measured on: device
/// time when every sample is on the same device clock, else host time. `None` below two
/// samples or when no time passes between the first and the last.
fn measured_rate(samples: &[ImuReading]) -> Option<(f64, &'static str)> {
    let (first, last) = (samples.first()?, samples.last()?);
    let intervals = (samples.len() - 1) as f64;
    let one_clock = first.ts_domain != ts_domain::NONE
        && samples.iter().all(|s| s.ts_domain == first.ts_domain);
    let device_s = (last.sample.device_ts_ms - first.sample.device_ts_ms) / 1000.0;
    let host_s = (last.sample.host_ts_us as f64 - first.sample.host_ts_us as f64) / 1e6;
    let (secs, clock) = if one_clock && device_s.is_finite() && device_s > 0.0 {
        (device_s, "device")
    } else {
        (host_s, "host")
    };
    let rate = intervals / secs;
    (secs > 0.0 && rate.is_finite()).then(|| ((rate * 1000.0).round() / 1000.0, clock))
}

/// On a device-time timeline (the camera's host times are unusable) a window compares IMU
/// device times with depth device times: meaningless for samples on another clock.
fn clock_warning(job: &Job, name: &str, samples: &[ImuReading], windowed: bool) -> Option<String> {
    let cam = job.camera;
    if !windowed || !matches!(cam.timeline(), Timeline::Device { .. }) {
        return None;
    }
    let depth = cam.ts_domain(Stream::Depth)?;
    let other = samples.iter().find(|s| s.ts_domain != depth)?;
    Some(format!(
        "{}: the {name} samples were chosen by device time (the host times are unusable), but \
         some are on another clock ({}) than depth ({}): the window may not match the depth frames",
        cam.name,
        domain_name(other.ts_domain),
        domain_name(depth)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ImuSample;

    fn reading(k: u64, device_ts_ms: f64, host_ts_us: i64, ts_domain: u8) -> ImuReading {
        ImuReading {
            sample: ImuSample {
                frame_number: k,
                device_ts_ms,
                host_ts_us,
                xyz: [0.0; 3],
            },
            ts_domain,
        }
    }

    #[test]
    fn export_imu_rate_is_measured_on_one_clock() {
        let hw = ts_domain::HARDWARE_CLOCK;
        // 201 samples over 1 s of device time (host time says 2 s: ignored).
        let s: Vec<_> = (0..201)
            .map(|k| reading(k, 5.0 * k as f64, 10_000 * k as i64, hw))
            .collect();
        assert_eq!(measured_rate(&s), Some((200.0, "device")));
        // Two clocks: host time.
        let mut mixed = s.clone();
        mixed[100].ts_domain = ts_domain::GLOBAL_TIME;
        assert_eq!(measured_rate(&mixed), Some((100.0, "host")));
        assert_eq!(measured_rate(&s[..1]), None);
        assert_eq!(measured_rate(&[]), None);
        let still = [reading(0, 1.0, 5, hw), reading(1, 1.0, 5, hw)];
        assert_eq!(measured_rate(&still), None);
    }

    #[test]
    fn export_imu_domains_are_listed_with_their_runs() {
        let (hw, gl) = (ts_domain::HARDWARE_CLOCK, ts_domain::GLOBAL_TIME);
        let s = [
            reading(0, 0.0, 0, hw),
            reading(1, 0.0, 0, hw),
            reading(2, 0.0, 0, gl),
            reading(3, 0.0, 0, hw),
            reading(4, 0.0, 0, 77),
        ];
        assert_eq!(
            domains(&s),
            ["hardware_clock", "global_time", "unknown (77)"]
        );
        let runs: Vec<(u64, String)> = domain_runs(&s)
            .iter()
            .map(|r| {
                (
                    r["first_sample"].as_u64().unwrap(),
                    r["domain"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            runs,
            [
                (0, "hardware_clock".to_string()),
                (2, "global_time".to_string()),
                (3, "hardware_clock".to_string()),
                (4, "unknown (77)".to_string()),
            ]
        );
        assert!(domains(&[]).is_empty() && domain_runs(&[]).is_empty());
    }
}
