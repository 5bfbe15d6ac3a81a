//! `rsrec import` for PNG folders: packs a folder of 16-bit depth PNGs into one `.rsrec` file.

use std::path::{Path, PathBuf};

use crate::codec::{CodecError, DepthCodec};
use crate::container::format::{record_type, ts_domain};
use crate::container::{
    ContainerError, DeviceInfo, Distortion, FileHeader, Intrinsics, RecordHeader, StreamDescriptor,
    Writer, WriterOptions,
};
use crate::pngdir::{self, PngError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Png(#[from] PngError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("frame {index}")]
    Codec {
        index: usize,
        #[source]
        source: CodecError,
    },
    #[error("{path}: cannot read intrinsics: {detail}")]
    Intrinsics { path: PathBuf, detail: String },
    #[error("{0} already exists (use --force to replace it)")]
    Exists(PathBuf),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid option: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub fps: f64,
    pub codec: DepthCodec,
    /// Metres per depth unit.
    pub depth_units: f32,
    /// Output file stem; defaults to the dataset folder's name.
    pub name: Option<String>,
    pub overwrite: bool,
    /// Intrinsics file (Open3D `camera_intrinsic.json`); found automatically in the dataset
    /// folder when not given.
    pub intrinsics: Option<PathBuf>,
    /// Wall-clock time of frame 0 (UTC µs); defaults to now.
    pub start_utc_us: Option<i64>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            fps: 30.0,
            codec: DepthCodec::Lz4Planes,
            depth_units: 0.001,
            name: None,
            overwrite: false,
            intrinsics: None,
            start_utc_us: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ImportReport {
    pub path: PathBuf,
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub file_bytes: u64,
}

/// Reads an Open3D-style `camera_intrinsic.json` (`intrinsic_matrix` column-major 3x3).
pub fn read_open3d_intrinsics(path: &Path) -> Result<(u32, u32, Intrinsics), ImportError> {
    let err = |detail: String| ImportError::Intrinsics {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let m: Vec<f64> = v["intrinsic_matrix"]
        .as_array()
        .ok_or_else(|| err("no intrinsic_matrix array".into()))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| err("non-numeric matrix entry".into()))
        })
        .collect::<Result<_, _>>()?;
    if m.len() != 9 {
        return Err(err(format!(
            "intrinsic_matrix has {} entries, not 9",
            m.len()
        )));
    }
    let dim = |k: &str| {
        v[k].as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| err(format!("no integer '{k}'")))
    };
    Ok((
        dim("width")?,
        dim("height")?,
        Intrinsics {
            fx: m[0] as f32,
            fy: m[4] as f32,
            ppx: m[6] as f32,
            ppy: m[7] as f32,
            model: Distortion::None,
            coeffs: Vec::new(),
        },
    ))
}

/// Packs the depth PNGs of `dir` (or `dir/depth/`) into `out_dir/<name>.rsrec`.
/// `progress(done, total)` is called after each frame.
pub fn import_png_dir(
    dir: &Path,
    out_dir: &Path,
    opts: &ImportOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportReport, ImportError> {
    if !(opts.fps.is_finite() && opts.fps > 0.0 && opts.fps <= 10_000.0) {
        return Err(ImportError::Invalid(format!(
            "--fps {} must be a number in (0, 10000]",
            opts.fps
        )));
    }
    if !(opts.depth_units.is_finite() && opts.depth_units > 0.0) {
        return Err(ImportError::Invalid(format!(
            "depth units {} must be a positive number of metres",
            opts.depth_units
        )));
    }
    if !dir.is_dir() {
        return Err(ImportError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let depth_dir = pngdir::depth_dir(dir);
    let files = pngdir::list_pngs(&depth_dir)?;
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "import".into()),
    };
    std::fs::create_dir_all(out_dir).map_err(|source| ImportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let path = out_dir.join(format!("{name}.rsrec"));
    if path.exists() && !opts.overwrite {
        return Err(ImportError::Exists(path));
    }
    let first = pngdir::read_depth_png(&files[0])?;
    let (width, height) = (first.width, first.height);

    let intrinsics_path = opts.intrinsics.clone().or_else(|| {
        let p = dir.join("camera_intrinsic.json");
        p.is_file().then_some(p)
    });
    let intrinsics = match &intrinsics_path {
        Some(p) => {
            let (w, h, k) = read_open3d_intrinsics(p)?;
            if (w, h) != (width, height) {
                return Err(ImportError::Intrinsics {
                    path: p.clone(),
                    detail: format!("intrinsics are for {w}x{h}, the images are {width}x{height}"),
                });
            }
            Some(k)
        }
        None => None,
    };
    let mut depth = StreamDescriptor::depth(0, width, height, opts.fps);
    depth.depth_units = opts.depth_units;
    depth.intrinsics = intrinsics;
    depth
        .properties
        .push(("default_codec".into(), opts.codec.to_string()));
    let mut header = FileHeader::new(
        DeviceInfo {
            name: "PNG import".into(),
            model: "png-folder".into(),
            ..Default::default()
        },
        vec![depth],
    );
    let start = opts.start_utc_us.unwrap_or(header.created_utc_us);
    header.metadata_json = serde_json::json!({
        "import": {
            "source": dir.display().to_string(),
            "depth_dir": depth_dir.display().to_string(),
            "fps": opts.fps,
            "frames": files.len(),
            "first_file": files[0].file_name().map(|n| n.to_string_lossy().into_owned()),
            "last_file": files.last().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
            "intrinsics_file": intrinsics_path.as_ref().map(|p| p.display().to_string()),
            "timestamps": "synthetic: frame index / fps",
        }
    })
    .to_string();

    // Write to a temporary name and rename at the end: a failed import leaves no file that
    // looks complete.
    let partial = out_dir.join(format!(".{name}.rsrec.partial"));
    let wopts = WriterOptions {
        overwrite: true,
        fsync: crate::container::FsyncPolicy::OnClose,
        ..WriterOptions::default()
    };
    let mut writer = Writer::create(&partial, &header, wopts)?;
    let result = (|| {
        let mut payload = Vec::new();
        let mut report = ImportReport {
            path: path.clone(),
            frames: 0,
            width,
            height,
            raw_bytes: 0,
            compressed_bytes: 0,
            file_bytes: 0,
        };
        let mut img = Some(first);
        for (i, f) in files.iter().enumerate() {
            let image = match img.take() {
                Some(im) => im,
                None => pngdir::read_depth_png(f)?,
            };
            if (image.width, image.height) != (width, height) {
                return Err(PngError::SizeChanged {
                    path: f.clone(),
                    width: image.width,
                    height: image.height,
                    expected_width: width,
                    expected_height: height,
                }
                .into());
            }
            opts.codec
                .encode(&image.data, width, height, &mut payload)
                .map_err(|source| ImportError::Codec { index: i, source })?;
            let rh = RecordHeader {
                record_type: record_type::DEPTH_FRAME,
                stream: 0,
                codec: opts.codec.id(),
                ts_domain: ts_domain::SYNTHETIC,
                flags: 0,
                frame_number: i as u64,
                device_ts_ms: i as f64 * 1000.0 / opts.fps,
                host_ts_us: start + (i as f64 * 1e6 / opts.fps).round() as i64,
            };
            writer.write_record(&rh, &payload)?;
            report.frames += 1;
            report.raw_bytes += image.data.len() as u64 * 2;
            report.compressed_bytes += payload.len() as u64;
            progress(i + 1, files.len());
        }
        report.file_bytes = writer.finish()?.bytes;
        Ok(report)
    })();
    match result {
        Ok(report) => {
            std::fs::rename(&partial, &path).map_err(|source| ImportError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}
