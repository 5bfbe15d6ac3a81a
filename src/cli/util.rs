//! Small formatting helpers shared by the subcommands.

/// Opens an rsrec file; errors name the file once.
pub fn open_reader(path: &std::path::Path) -> anyhow::Result<rsrec::container::Reader> {
    use rsrec::container::ContainerError;
    rsrec::container::Reader::open(path).map_err(|e| match e {
        // I/O errors already carry the path.
        ContainerError::Io { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(path.display().to_string()),
    })
}

pub use rsrec::container::fmt_utc;

/// Human-readable byte count.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(fmt_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            fmt_utc(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(fmt_utc(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn byte_formatting() {
        assert_eq!(fmt_bytes(12), "12 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
    }
}
