//! NumPy `.npy` files written incrementally: the header, with the final shape, is written
//! first, then the data is streamed, so an array of N frames never has to be in memory.
//!
//! Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>,
//! version 1.0 (header length < 64 KiB): magic `\x93NUMPY`, version 1.0, `u16` little-endian
//! header length, then a Python dict literal padded with spaces and a final `\n` so that the
//! data starts at a multiple of 64 bytes (which also keeps it aligned for `mmap_mode`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::{ExportError, Result};

/// The `.npy` header (magic to padding) for a C-order array.
/// `descr` is a NumPy type string such as `<u2`, `<f8`, `|u1`.
pub fn header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // 6 magic + 2 version + 2 length, then the dict, spaces and '\n' to a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// An `.npy` file being written: created as `NAME.partial`, renamed to `NAME` by
/// [`NpyWriter::finish`] once exactly the declared number of bytes has been written. A writer
/// dropped before that (the export failed) removes its partial file.
pub struct NpyWriter {
    out: Option<BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
    expected: u64,
    written: u64,
}

impl NpyWriter {
    /// Creates the file and writes the header. `shape[0]` is the number of items, the rest
    /// the shape of one item; `item_bytes` is the byte size of one element.
    pub fn create(path: &Path, descr: &str, item_bytes: u64, shape: &[u64]) -> Result<Self> {
        let partial = partial_path(path);
        let file = File::create(&partial).map_err(|e| ExportError::io(&partial, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header(descr, shape))
            .map_err(|e| ExportError::io(&partial, e))?;
        let expected = shape.iter().product::<u64>() * item_bytes;
        Ok(Self {
            out: Some(out),
            partial,
            path: path.to_path_buf(),
            expected,
            written: 0,
        })
    }

    /// Appends raw little-endian element bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        if self.written > self.expected {
            return Err(ExportError::Internal(format!(
                "{}: more data than the declared shape",
                self.path.display()
            )));
        }
        self.out
            .as_mut()
            .expect("open until finished")
            .write_all(bytes)
            .map_err(|e| ExportError::io(&self.partial, e))
    }

    pub fn write_u16s(&mut self, v: &[u16]) -> Result<()> {
        if cfg!(target_endian = "little") {
            // SAFETY: u16 has no padding and any byte pattern is valid; on a little-endian
            // machine its memory is exactly the `<u2` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 2) };
            self.write(bytes)
        } else {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.write(&bytes)
        }
    }

    pub fn write_f64(&mut self, v: f64) -> Result<()> {
        self.write(&v.to_le_bytes())
    }

    pub fn write_u64(&mut self, v: u64) -> Result<()> {
        self.write(&v.to_le_bytes())
    }

    /// Flushes, checks that the declared shape was filled, and renames into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.written != self.expected {
            return Err(ExportError::Internal(format!(
                "{}: wrote {} bytes of data, the header declares {}",
                self.path.display(),
                self.written,
                self.expected
            )));
        }
        let mut out = self.out.take().expect("open until finished");
        out.flush().map_err(|e| ExportError::io(&self.partial, e))?;
        drop(out);
        std::fs::rename(&self.partial, &self.path).map_err(|e| ExportError::io(&self.path, e))?;
        Ok(self.path.clone())
    }
}

impl Drop for NpyWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = header("<u2", &[3, 240, 424]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(len + 10, h.len());
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(
            text.starts_with("{'descr': '<u2', 'fortran_order': False, 'shape': (3, 240, 424), }")
        );
        assert!(text.ends_with(" \n"));
        let one = header("<f8", &[7]);
        assert!(std::str::from_utf8(&one[10..])
            .unwrap()
            .contains("'shape': (7,), }"));
        assert_eq!(one.len() % 64, 0);
    }

    #[test]
    fn writer_checks_the_declared_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let mut w = NpyWriter::create(&p, "<u2", 2, &[2, 2]).unwrap();
        w.write_u16s(&[1, 2, 3]).unwrap();
        assert!(!p.exists());
        w.write_u16s(&[0xABCD]).unwrap();
        assert!(w.write_u16s(&[5]).is_err());
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "partial removed"
        );
        let dir2 = tempfile::tempdir().unwrap();
        let q = dir2.path().join("b.npy");
        let mut w = NpyWriter::create(&q, "<u2", 2, &[2]).unwrap();
        w.write_u16s(&[7, 8]).unwrap();
        assert_eq!(w.finish().unwrap(), q);
        let bytes = std::fs::read(&q).unwrap();
        assert_eq!(&bytes[bytes.len() - 4..], &[7, 0, 8, 0]);
        let short = NpyWriter::create(&dir2.path().join("c.npy"), "<u2", 2, &[2]).unwrap();
        assert!(short.finish().is_err());
    }
}
