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
//!
//! The samples are read twice, one batch at a time ([`Camera::imu_readings`]): [`read`],
//! before the depth frames, checks every batch and gathers what the npy headers and
//! `intrinsics.json` need ([`Summary`]: the count, the clocks, the first and the last
//! sample); [`write`], after them, reads them again and writes the rows. Memory does not
//! grow with the number of samples (IMU batches are tiny next to depth frames, so the
//! second reading costs little).

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

/// What the first reading of one camera's IMU samples in the export's window found: done
/// before its depth frames are exported, so that a damaged batch fails the camera before
/// the long part.
pub(super) struct ImuData {
    /// Timeline range of the samples (`None`: all of them).
    range: Option<RangeInclusive<i64>>,
    streams: Vec<(StreamKind, Summary)>,
}

/// The CSV header line of `gyro.csv` / `accel.csv`.
const CSV_COLUMNS: &str = "frame_number,device_ts_ms,host_ts_us,x,y,z";

/// The most runs of one clock `timestamp_domain_runs` lists: a stream switching clocks
/// back and forth must not make `intrinsics.json` (and the memory) grow with the length of
/// the recording. Beyond them, `timestamp_domain_runs_total` says how many there are.
const MAX_RUNS_LISTED: usize = 1000;

/// What the headers and `intrinsics.json` need to know of one stream's exported samples,
/// gathered one sample at a time ([`Summary::add`]) in bounded memory.
#[derive(Clone, Debug, Default, PartialEq)]
struct Summary {
    samples: u64,
    /// Every timestamp domain of the samples, in the order first seen (at most 256).
    domains: Vec<u8>,
    /// The first [`MAX_RUNS_LISTED`] runs of samples on one domain: the position of the
    /// run's first sample in the exported arrays, and the domain.
    runs: Vec<(u64, u8)>,
    /// How many runs there are.
    run_count: u64,
    first: Option<ImuReading>,
    last: Option<ImuReading>,
}

impl Summary {
    /// The next exported sample.
    fn add(&mut self, r: &ImuReading) {
        if self.last.is_none_or(|l| l.ts_domain != r.ts_domain) {
            self.run_count += 1;
            if self.runs.len() < MAX_RUNS_LISTED {
                self.runs.push((self.samples, r.ts_domain));
            }
        }
        if !self.domains.contains(&r.ts_domain) {
            self.domains.push(r.ts_domain);
        }
        self.first.get_or_insert(*r);
        self.last = Some(*r);
        self.samples += 1;
    }

    /// Every timestamp domain of the samples, in the order first seen.
    fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|&d| domain_name(d)).collect()
    }

    /// Where the clock changes: the first sample (position in the exported arrays) of each
    /// run of samples on one timestamp domain (the first [`MAX_RUNS_LISTED`]).
    fn domain_runs(&self) -> Vec<Value> {
        self.runs
            .iter()
            .map(|&(k, d)| json!({"first_sample": k, "domain": domain_name(d)}))
            .collect()
    }

    /// The number of runs, when [`Summary::domain_runs`] does not list them all.
    fn domain_runs_total(&self) -> Option<u64> {
        (self.run_count > self.runs.len() as u64).then_some(self.run_count)
    }

    /// Samples per second over the exported samples, and the clock it was measured on:
    /// device time when every sample is on the same device clock, else host time. `None`
    /// below two samples or when no time passes between the first and the last.
    fn measured_rate(&self) -> Option<(f64, &'static str)> {
        let (first, last) = (self.first?, self.last?);
        let intervals = (self.samples - 1) as f64;
        let one_clock = first.ts_domain != ts_domain::NONE && self.domains == [first.ts_domain];
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
}

/// A read error of the samples: a damaged batch is [`ExportError::DamagedImu`].
fn read_error(e: SessionError) -> ExportError {
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
}

/// The samples of one IMU stream in the window, one batch in memory at a time.
fn readings<'a>(
    job: &Job<'a>,
    kind: StreamKind,
    range: &Option<RangeInclusive<i64>>,
) -> impl Iterator<Item = Result<ImuReading>> + 'a {
    job.camera
        .imu_readings(kind, range.clone())
        .map(|r| r.map_err(read_error))
}

/// The first reading: the [`Summary`] of every IMU stream of the job's camera in the job's
/// window (every batch of the window is read and checked).
pub(super) fn read(job: &Job) -> Result<ImuData> {
    let range = window(job)?;
    let mut streams = Vec::new();
    for kind in job.camera.imu_kinds() {
        let mut summary = Summary::default();
        for r in readings(job, kind, &range) {
            summary.add(&r?);
        }
        streams.push((kind, summary));
    }
    Ok(ImuData { range, streams })
}

/// Writes the samples [`read`] summarised (reading them again) into the job's folder, adds
/// the bytes to `report` and the `"imu"` object to `info` (the extra keys of
/// `intrinsics.json`). Nothing without IMU streams.
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
    for (kind, summary) in &data.streams {
        let name = kind.name();
        let units = units(*kind);
        let samples = readings(job, *kind, &data.range);
        let (written, rows) = match files {
            ImuFiles::Npy => write_npy(&job.dir, name, units, summary.samples, samples)?,
            ImuFiles::Csv => write_csv(&job.dir, name, units, samples)?,
        };
        if rows != summary.samples {
            // The npy headers (and intrinsics.json) hold the first reading's count.
            return Err(ExportError::Internal(format!(
                "{}: {rows} {name} samples read for writing, {} before",
                cam.name, summary.samples
            )));
        }
        for (file, _) in &written {
            report.bytes_written += std::fs::metadata(job.dir.join(file)).map_or(0, |m| m.len());
        }
        if let Some(w) = clock_warning(job, name, summary, data.range.is_some()) {
            progress.warn(&w);
            report.warnings.push(w);
        }
        let (rate, rate_clock) = summary.measured_rate().unzip();
        let mut entry = json!({
            "files": written.into_iter().collect::<serde_json::Map<_, _>>(),
            "samples": summary.samples,
            "units": units,
            "timestamp_domains": summary.domain_names(),
            "timestamp_domain_runs": summary.domain_runs(),
            "rate_hz": rate,
            "rate_clock": rate_clock,
            "nominal_rate_hz": cam.imu_stream(*kind).map(|d| d.fps).filter(|&f| f > 0.0),
            "time_range_us": data.range.as_ref().map(|r| [*r.start(), *r.end()]),
            "timeline": match cam.timeline() {
                Timeline::Host => "host",
                Timeline::Device { .. } => "device",
            },
        });
        if let (Some(total), Some(o)) = (summary.domain_runs_total(), entry.as_object_mut()) {
            o.insert("timestamp_domain_runs_total".into(), total.into());
        }
        imu.insert(name.to_string(), entry);
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

/// `S.npy`, `S_timestamps.npy`, `S_host_timestamps_us.npy`, `S_frame_numbers.npy` of the
/// `n` samples of `samples` (more or fewer is an error); returns each file's name and
/// description, and the number of samples written.
fn write_npy(
    dir: &Path,
    name: &str,
    units: &str,
    n: u64,
    samples: impl Iterator<Item = Result<ImuReading>>,
) -> Result<(Vec<(String, Value)>, u64)> {
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
    let mut rows = 0;
    for r in samples {
        let s = &r?.sample;
        rows += 1;
        if rows > n {
            // Counted, not written: the headers say n (the caller tells the mismatch).
            continue;
        }
        for v in s.xyz {
            xyz.write(&v.to_le_bytes())?;
        }
        ts.write_f64(s.device_ts_ms)?;
        // As host_timestamps_us.npy of depth: the spec's i64, times before 1970 become 0.
        host.write_u64(s.host_ts_us.max(0) as u64)?;
        numbers.write_u64(s.frame_number)?;
    }
    if rows != n {
        // The writers are dropped: their partial files are removed.
        return Ok((Vec::new(), rows));
    }
    for w in [xyz, ts, host, numbers] {
        w.finish()?;
    }
    let files = files
        .into_iter()
        .map(|(f, d)| (f, Value::from(d)))
        .collect();
    Ok((files, rows))
}

/// `S.csv`; returns its name and description, and the number of samples written.
fn write_csv(
    dir: &Path,
    name: &str,
    units: &str,
    samples: impl Iterator<Item = Result<ImuReading>>,
) -> Result<(Vec<(String, Value)>, u64)> {
    let file = format!("{name}.csv");
    let mut csv = Csv::create_at(dir.join(&file), CSV_COLUMNS)?;
    let mut rows = 0;
    for r in samples {
        let s = &r?.sample;
        rows += 1;
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
    Ok((vec![(file, Value::from(what))], rows))
}

/// A domain's name for intrinsics.json.
fn domain_name(d: u8) -> String {
    ts_domain::name(d).map_or_else(|| format!("unknown ({d})"), str::to_string)
}

/// On a device-time timeline (the camera's host times are unusable) a window compares IMU
/// device times with depth device times: meaningless for samples on another clock.
fn clock_warning(job: &Job, name: &str, summary: &Summary, windowed: bool) -> Option<String> {
    let cam = job.camera;
    if !windowed || !matches!(cam.timeline(), Timeline::Device { .. }) {
        return None;
    }
    let depth = cam.ts_domain(Stream::Depth)?;
    // The first domain seen that is not depth's: that of the first sample on another clock.
    let other = *summary.domains.iter().find(|&&d| d != depth)?;
    Some(format!(
        "{}: the {name} samples were chosen by device time (the host times are unusable), but \
         some are on another clock ({}) than depth ({}): the window may not match the depth frames",
        cam.name,
        domain_name(other),
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

    /// The summary of `samples`, one at a time as the export gathers it.
    fn summary(samples: &[ImuReading]) -> Summary {
        let mut s = Summary::default();
        for r in samples {
            s.add(r);
        }
        s
    }

    #[test]
    fn export_imu_rate_is_measured_on_one_clock() {
        let hw = ts_domain::HARDWARE_CLOCK;
        // 201 samples over 1 s of device time (host time says 2 s: ignored).
        let s: Vec<_> = (0..201)
            .map(|k| reading(k, 5.0 * k as f64, 10_000 * k as i64, hw))
            .collect();
        assert_eq!(summary(&s).measured_rate(), Some((200.0, "device")));
        // Two clocks: host time.
        let mut mixed = s.clone();
        mixed[100].ts_domain = ts_domain::GLOBAL_TIME;
        assert_eq!(summary(&mixed).measured_rate(), Some((100.0, "host")));
        assert_eq!(summary(&s[..1]).measured_rate(), None);
        assert_eq!(summary(&[]).measured_rate(), None);
        let still = [reading(0, 1.0, 5, hw), reading(1, 1.0, 5, hw)];
        assert_eq!(summary(&still).measured_rate(), None);
        // No device clock (domain none): host time.
        let none: Vec<_> = s
            .iter()
            .map(|r| ImuReading {
                ts_domain: ts_domain::NONE,
                ..*r
            })
            .collect();
        assert_eq!(summary(&none).measured_rate(), Some((100.0, "host")));
    }

    fn runs_of(s: &Summary) -> Vec<(u64, String)> {
        s.domain_runs()
            .iter()
            .map(|r| {
                (
                    r["first_sample"].as_u64().unwrap(),
                    r["domain"].as_str().unwrap().to_string(),
                )
            })
            .collect()
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
        let sum = summary(&s);
        assert_eq!(
            sum.domain_names(),
            ["hardware_clock", "global_time", "unknown (77)"]
        );
        assert_eq!(
            runs_of(&sum),
            [
                (0, "hardware_clock".to_string()),
                (2, "global_time".to_string()),
                (3, "hardware_clock".to_string()),
                (4, "unknown (77)".to_string()),
            ]
        );
        assert_eq!((sum.samples, sum.domain_runs_total()), (5, None));
        let empty = summary(&[]);
        assert!(empty.domain_names().is_empty() && empty.domain_runs().is_empty());
        assert_eq!((empty.samples, empty.domain_runs_total()), (0, None));
    }

    /// A stream that changes clocks at every sample: the summary keeps the first
    /// MAX_RUNS_LISTED runs and counts the others, so it stays the same size however many
    /// samples it has seen.
    #[test]
    fn export_imu_summary_is_bounded() {
        let (hw, gl) = (ts_domain::HARDWARE_CLOCK, ts_domain::GLOBAL_TIME);
        let n = 3 * MAX_RUNS_LISTED as u64 + 7;
        let mut sum = Summary::default();
        for k in 0..n {
            sum.add(&reading(
                k,
                k as f64,
                1000 * k as i64,
                if k % 2 == 0 { hw } else { gl },
            ));
            assert!(sum.runs.len() <= MAX_RUNS_LISTED && sum.domains.len() <= 2);
        }
        assert_eq!(sum.samples, n);
        assert_eq!(sum.domain_runs_total(), Some(n));
        let runs = runs_of(&sum);
        assert_eq!(runs.len(), MAX_RUNS_LISTED);
        assert_eq!(runs[0], (0, "hardware_clock".to_string()));
        let last = MAX_RUNS_LISTED as u64 - 1;
        assert_eq!(runs[last as usize], (last, "global_time".to_string()));
        assert_eq!(sum.domain_names(), ["hardware_clock", "global_time"]);
        assert_eq!(sum.first.map(|r| r.sample.frame_number), Some(0));
        assert_eq!(sum.last.map(|r| r.sample.frame_number), Some(n - 1));
        // Exactly MAX_RUNS_LISTED runs: all listed, no total.
        let exact: Vec<_> = (0..MAX_RUNS_LISTED as u64)
            .map(|k| reading(k, 0.0, 0, if k % 2 == 0 { hw } else { gl }))
            .collect();
        assert_eq!(summary(&exact).domain_runs_total(), None);
    }
}
