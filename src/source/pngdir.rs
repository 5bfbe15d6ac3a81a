//! Folders of 16-bit depth PNGs: listing in natural order and decoding to Z16.

use std::cmp::Ordering;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PngError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable PNG: {detail}")]
    Decode { path: PathBuf, detail: String },
    #[error("{path}: expected a 16-bit grayscale PNG, found {found}")]
    NotDepth { path: PathBuf, found: String },
    #[error(
        "{path}: image is {width}x{height}, earlier frames are {expected_width}x{expected_height}"
    )]
    SizeChanged {
        path: PathBuf,
        width: u32,
        height: u32,
        expected_width: u32,
        expected_height: u32,
    },
    #[error("no image files in {0}")]
    Empty(PathBuf),
    #[error("{}: cannot read intrinsics: {detail}", path.display())]
    Intrinsics { path: PathBuf, detail: String },
    #[error("{}, line {line}: {detail}", path.display())]
    List {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

/// Largest timestamp list read (`depth.txt`, `rgb.txt`, `associations.txt`): 64 MiB is about
/// a million lines, far beyond any dataset; a larger file is refused rather than read.
pub const MAX_LIST_BYTES: u64 = 64 << 20;

/// One image of a timestamped dataset: its time (seconds) and its file.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped {
    pub t: f64,
    pub path: PathBuf,
}

fn read_list(path: &Path) -> Result<String, PngError> {
    let io = |source| PngError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_LIST_BYTES {
        return Err(PngError::List {
            path: path.to_path_buf(),
            line: 0,
            detail: format!("{len} bytes, more than the {MAX_LIST_BYTES} a list may have"),
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// The lines of a TUM-style list that carry data: `#` comments and blank lines skipped,
/// with their line numbers (1-based) and whitespace-separated fields.
fn list_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i, l.split_whitespace().collect()))
}

/// Parses `t file` pairs (TUM RGB-D's `depth.txt`, `rgb.txt`: seconds, then a path relative
/// to `dir`). Times must be finite and increasing; every file must exist.
pub fn read_stamped(list: &Path, dir: &Path) -> Result<Vec<Stamped>, PngError> {
    let text = read_list(list)?;
    let mut out: Vec<Stamped> = Vec::new();
    for (line, f) in list_lines(&text) {
        let bad = |detail: String| PngError::List {
            path: list.to_path_buf(),
            line,
            detail,
        };
        let [t, file, ..] = f.as_slice() else {
            return Err(bad("expected `timestamp file`".into()));
        };
        out.push(stamped(t, file, dir, out.last(), &bad)?);
    }
    if out.is_empty() {
        return Err(PngError::Empty(list.to_path_buf()));
    }
    Ok(out)
}

fn stamped(
    t: &str,
    file: &str,
    dir: &Path,
    last: Option<&Stamped>,
    bad: &dyn Fn(String) -> PngError,
) -> Result<Stamped, PngError> {
    let t: f64 = t
        .parse()
        .ok()
        .filter(|t: &f64| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| bad(format!("{t:?} is not a timestamp in seconds")))?;
    if let Some(l) = last {
        if t <= l.t {
            return Err(bad(format!(
                "timestamp {t} is not after the one before it ({})",
                l.t
            )));
        }
    }
    let path = dir.join(file);
    if !path.is_file() {
        return Err(bad(format!("{} does not exist", path.display())));
    }
    Ok(Stamped { t, path })
}

/// Parses an `associations.txt` (TUM's `associate.py`: `t1 file1 t2 file2` per line, one
/// matched depth/colour pair each): returns (depth, colour). Which column is depth is told by
/// the file paths (`depth/...`); times of each stream must increase.
pub fn read_associations(
    list: &Path,
    dir: &Path,
) -> Result<(Vec<Stamped>, Vec<Stamped>), PngError> {
    let text = read_list(list)?;
    let (mut depth, mut color): (Vec<Stamped>, Vec<Stamped>) = (Vec::new(), Vec::new());
    let is_depth = |f: &str| {
        Path::new(f).components().any(|c| {
            c.as_os_str()
                .to_string_lossy()
                .eq_ignore_ascii_case("depth")
        })
    };
    for (line, f) in list_lines(&text) {
        let bad = |detail: String| PngError::List {
            path: list.to_path_buf(),
            line,
            detail,
        };
        let [t1, f1, t2, f2, ..] = f.as_slice() else {
            return Err(bad("expected `timestamp file timestamp file`".into()));
        };
        let ((td, fd), (tc, fc)) = match (is_depth(f1), is_depth(f2)) {
            (true, false) => ((t1, f1), (t2, f2)),
            (false, true) => ((t2, f2), (t1, f1)),
            _ => {
                return Err(bad(format!(
                    "cannot tell which of {f1} and {f2} is the depth image (one path should be in depth/)"
                )))
            }
        };
        let d = stamped(td, fd, dir, depth.last(), &bad)?;
        let c = stamped(tc, fc, dir, color.last(), &bad)?;
        depth.push(d);
        color.push(c);
    }
    if depth.is_empty() {
        return Err(PngError::Empty(list.to_path_buf()));
    }
    Ok((depth, color))
}

/// Longest `camera_intrinsic.json` read (a real one is a few hundred bytes).
const MAX_INTRINSICS_BYTES: u64 = 1 << 20;

/// Reads an Open3D-style `camera_intrinsic.json` (`intrinsic_matrix` column-major 3x3,
/// `width`, `height`): the image size and pinhole intrinsics without distortion.
pub fn read_open3d_intrinsics(
    path: &Path,
) -> Result<(u32, u32, crate::container::Intrinsics), PngError> {
    use crate::container::{Distortion, Intrinsics};
    let err = |detail: String| PngError::Intrinsics {
        path: path.to_path_buf(),
        detail,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| err(e.to_string()))?
        .len();
    if len > MAX_INTRINSICS_BYTES {
        return Err(err(format!(
            "{len} bytes is too large for an intrinsics file"
        )));
    }
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

/// Compares file names naturally: digit runs by value, so `2.png` sorts before `10.png`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                let ta = trim_zeros(na);
                let tb = trim_zeros(nb);
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then(da.cmp(&db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z..]
}

/// The depth folder of a dataset: `dir/depth/` if it exists, else `dir` itself.
pub fn depth_dir(dir: &Path) -> PathBuf {
    let sub = dir.join("depth");
    if sub.is_dir() {
        sub
    } else {
        dir.to_path_buf()
    }
}

/// The `.png` files of `dir`, in natural order.
pub fn list_pngs(dir: &Path) -> Result<Vec<PathBuf>, PngError> {
    list_images(dir, &["png"])
}

/// The files of `dir` with one of `extensions` (case-insensitive), in natural order.
pub fn list_images(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, PngError> {
    let io = |source| PngError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
        })
        .collect();
    if files.is_empty() {
        return Err(PngError::Empty(dir.to_path_buf()));
    }
    files.sort_by(|a, b| {
        natural_cmp(
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    Ok(files)
}

/// A decoded depth image.
pub struct DepthImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u16>,
}

/// Reads a 16-bit grayscale PNG into Z16 samples (PNG stores them big-endian).
pub fn read_depth_png(path: &Path) -> Result<DepthImage, PngError> {
    let file = File::open(path).map_err(|source| PngError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let decode_err = |e: png::DecodingError| PngError::Decode {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let mut reader = decoder.read_info().map_err(decode_err)?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    if info.color_type != png::ColorType::Grayscale || info.bit_depth != png::BitDepth::Sixteen {
        return Err(PngError::NotDepth {
            path: path.to_path_buf(),
            found: format!("{:?} {:?}-bit", info.color_type, info.bit_depth as u8),
        });
    }
    crate::codec::frame_len(width, height).map_err(|e| PngError::Decode {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(decode_err)?;
    let bytes = &buf[..frame.buffer_size()];
    let data = bytes
        .chunks_exact(2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .collect();
    Ok(DepthImage {
        width,
        height,
        data,
    })
}

/// A decoded 8-bit RGB image.
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Reads an 8-bit colour PNG (RGB, RGBA or grey) or a JPEG into packed RGB8.
pub fn read_rgb(path: &Path) -> Result<RgbImage, PngError> {
    let bytes = std::fs::read(path).map_err(|source| PngError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |detail: String| PngError::Decode {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.starts_with(b"\x89PNG") {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
        let mut buf = vec![0u8; reader.output_buffer_size()];
        let frame = reader
            .next_frame(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        let (w, h) = (frame.width, frame.height);
        let px = &buf[..frame.buffer_size()];
        let data = match frame.color_type {
            png::ColorType::Rgb => px.to_vec(),
            png::ColorType::Rgba => px
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            png::ColorType::Grayscale => px.iter().flat_map(|&g| [g, g, g]).collect(),
            png::ColorType::GrayscaleAlpha => px
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0]])
                .collect(),
            other => return Err(bad(format!("unsupported colour type {other:?}"))),
        };
        Ok(RgbImage {
            width: w,
            height: h,
            data,
        })
    } else {
        let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(&bytes));
        let px = d.decode().map_err(|e| bad(e.to_string()))?;
        let info = d.info().ok_or_else(|| bad("JPEG without header".into()))?;
        let data = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => px,
            jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&g| [g, g, g]).collect(),
            other => return Err(bad(format!("unsupported JPEG pixel format {other:?}"))),
        };
        Ok(RgbImage {
            width: info.width as u32,
            height: info.height as u32,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["10.png", "2.png", "1.png", "000003.png", "a10", "a9", "b"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["1.png", "2.png", "000003.png", "10.png", "a9", "a10", "b"]
        );
    }
}
