//! Little-endian byte cursor and builder for the container's structures.
//!
//! The cursor never reads past its slice and checks every declared length against a cap and
//! against the bytes that remain, so a corrupt length cannot make a reader allocate more than
//! the input it was given.

use super::error::ContainerError as FormatError;

/// Reads little-endian values from a byte slice, with bounds and length caps.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being parsed, for error messages.
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, FormatError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn f32(&mut self) -> Result<f32, FormatError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64, FormatError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// `str`: u16 byte length, then that many bytes of UTF-8.
    pub fn string(&mut self) -> Result<String, FormatError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::BadUtf8 { what: self.what })
    }

    /// `blob`: u32 byte length (at most `cap`), then that many bytes.
    pub fn blob(&mut self, cap: u32) -> Result<&'a [u8], FormatError> {
        let len = self.u32()?;
        if len > cap {
            return Err(FormatError::LimitExceeded {
                what: self.what,
                value: len as u64,
                limit: cap as u64,
            });
        }
        self.take(len as usize)
    }

    /// `map`: u16 count (at most `cap`), then count pairs of `str`.
    pub fn map(&mut self, cap: usize) -> Result<Vec<(String, String)>, FormatError> {
        let n = self.u16()? as usize;
        if n > cap {
            return Err(FormatError::LimitExceeded {
                what: self.what,
                value: n as u64,
                limit: cap as u64,
            });
        }
        let mut out = Vec::with_capacity(n.min(self.remaining() / 4));
        for _ in 0..n {
            let k = self.string()?;
            let v = self.string()?;
            out.push((k, v));
        }
        Ok(out)
    }
}

/// Appends little-endian values to a byte vector.
#[derive(Default)]
pub struct Builder {
    pub buf: Vec<u8>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// Writes a `str`; strings longer than 65535 bytes are an error of the caller.
    pub fn string(&mut self, s: &str, what: &'static str) -> Result<&mut Self, FormatError> {
        let len = u16::try_from(s.len()).map_err(|_| FormatError::LimitExceeded {
            what,
            value: s.len() as u64,
            limit: u16::MAX as u64,
        })?;
        self.u16(len);
        self.buf.extend_from_slice(s.as_bytes());
        Ok(self)
    }
    pub fn blob(
        &mut self,
        b: &[u8],
        cap: u32,
        what: &'static str,
    ) -> Result<&mut Self, FormatError> {
        if b.len() as u64 > cap as u64 {
            return Err(FormatError::LimitExceeded {
                what,
                value: b.len() as u64,
                limit: cap as u64,
            });
        }
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
        Ok(self)
    }
    pub fn map(
        &mut self,
        m: &[(String, String)],
        cap: usize,
        what: &'static str,
    ) -> Result<&mut Self, FormatError> {
        if m.len() > cap {
            return Err(FormatError::LimitExceeded {
                what,
                value: m.len() as u64,
                limit: cap as u64,
            });
        }
        self.u16(m.len() as u16);
        for (k, v) in m {
            self.string(k, what)?;
            self.string(v, what)?;
        }
        Ok(self)
    }
}

/// Reads a little-endian u32 at `off` of a slice known to be long enough.
pub fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
/// Reads a little-endian u64 at `off` of a slice known to be long enough.
pub fn le_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}
/// Reads a little-endian i64 at `off` of a slice known to be long enough.
pub fn le_i64(b: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}
/// Reads a little-endian f64 at `off` of a slice known to be long enough.
pub fn le_f64(b: &[u8], off: usize) -> f64 {
    f64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}
