//! Depth to colour: the turbo colormap as a 256-entry lookup table, the automatic display
//! range from percentiles of the valid (non-zero) samples, and the colourising of a frame.

/// An RGB colour.
pub type Rgb = [u8; 3];

/// The 256 colours of Google's turbo colormap, from the polynomial fit published with it
/// (maximum error under 1 % of the original table), built once.
pub fn turbo_lut() -> &'static [Rgb; 256] {
    static LUT: std::sync::OnceLock<[Rgb; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let mut lut = [[0u8; 3]; 256];
        for (i, c) in lut.iter_mut().enumerate() {
            *c = turbo(i as f64 / 255.0);
        }
        lut
    })
}

/// Turbo at `x` in `[0, 1]`.
fn turbo(x: f64) -> Rgb {
    let x = x.clamp(0.0, 1.0);
    let poly = |c: [f64; 6]| c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * c[5]))));
    let r = poly([
        0.135_721_38,
        4.615_392_6,
        -42.660_322_6,
        132.131_082_9,
        -152.942_393_9,
        59.286_379_1,
    ]);
    let g = poly([
        0.091_402_61,
        2.194_188_39,
        4.842_966_58,
        -14.185_033_33,
        4.277_298_55,
        2.829_566_04,
    ]);
    let b = poly([
        0.106_673_3,
        12.641_946_08,
        -60.582_048_36,
        110.362_767_71,
        -89.903_109_81,
        27.348_249_81,
    ]);
    let q = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [q(r), q(g), q(b)]
}

/// Colour of pixels without depth (0) and outside nothing: black.
pub const INVALID: Rgb = [0, 0, 0];

/// A display range in depth units, `min < max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub min: u16,
    pub max: u16,
}

impl Range {
    /// A range with `min < max` (widened by one unit when they are equal or swapped).
    pub fn new(a: u16, b: u16) -> Self {
        let (min, max) = (a.min(b), a.max(b));
        if min == max {
            if max == u16::MAX {
                Range { min: max - 1, max }
            } else {
                Range { min, max: max + 1 }
            }
        } else {
            Range { min, max }
        }
    }
}

/// The range from the `lo`-th to the `hi`-th percentile (0..100) of the non-zero samples,
/// or `None` when there are none. Counts a sparse subsample (at most ~64k samples), so it
/// costs well under a millisecond for any frame size.
pub fn percentile_range(depth: &[u16], lo: f64, hi: f64) -> Option<Range> {
    let step = (depth.len() / 65_536).max(1);
    let mut hist = vec![0u32; 65_536];
    let mut n = 0u64;
    for &v in depth.iter().step_by(step) {
        if v != 0 {
            hist[v as usize] += 1;
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let rank = |p: f64| ((p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64).round() as u64;
    let (want_lo, want_hi) = (rank(lo), rank(hi));
    let (mut min, mut max) = (None, None);
    let mut seen = 0u64;
    for (v, &c) in hist.iter().enumerate() {
        if c == 0 {
            continue;
        }
        seen += c as u64;
        if min.is_none() && seen > want_lo {
            min = Some(v as u16);
        }
        if seen > want_hi {
            max = Some(v as u16);
            break;
        }
    }
    Some(Range::new(min?, max?))
}

/// Colourises `depth` into `out` (RGBA, 4 bytes a sample): near = blue end of turbo, far =
/// red end, values outside the range clamped, 0 (no depth) black.
pub fn colorize(depth: &[u16], range: Range, out: &mut Vec<u8>) {
    let lut = turbo_lut();
    out.clear();
    out.reserve(depth.len() * 4);
    let span = (range.max - range.min) as u32;
    for &v in depth {
        let c = if v == 0 {
            INVALID
        } else {
            let d = v.clamp(range.min, range.max) - range.min;
            lut[(d as u32 * 255 / span) as usize]
        };
        out.extend_from_slice(&[c[0], c[1], c[2], 255]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turbo_runs_from_dark_blue_through_green_to_dark_red() {
        let lut = turbo_lut();
        // (The fit starts nearly black; the blue comes within a few entries.)
        assert!(lut[0].iter().all(|&c| c < 60), "{:?}", lut[0]);
        let [r0, g0, b0] = lut[12];
        assert!(b0 > r0 + 50 && b0 > g0 + 50, "{:?}", lut[12]);
        let [r1, g1, b1] = lut[128];
        assert!(g1 > 180 && g1 > r1.min(b1), "{:?}", lut[128]);
        let [r2, g2, b2] = lut[255];
        assert!(r2 > 100 && r2 > g2 && r2 > b2, "{:?}", lut[255]);
        // Perceptual maps change smoothly: no jump between neighbours.
        for w in lut.windows(2) {
            for c in 0..3 {
                assert!((w[0][c] as i32 - w[1][c] as i32).abs() <= 16, "{w:?}");
            }
        }
    }

    #[test]
    fn percentiles_ignore_zeros_and_outliers() {
        let mut d: Vec<u16> = (1000..2000).collect();
        d.extend(std::iter::repeat_n(0, 5000));
        d.push(65535);
        let r = percentile_range(&d, 2.0, 98.0).unwrap();
        assert!((1015..=1025).contains(&r.min), "{r:?}");
        assert!((1975..=1985).contains(&r.max), "{r:?}");
        assert_eq!(percentile_range(&[0, 0, 0], 2.0, 98.0), None);
        // A flat frame still gives a usable range.
        let r = percentile_range(&[700; 100], 2.0, 98.0).unwrap();
        assert_eq!(r, Range { min: 700, max: 701 });
    }

    #[test]
    fn colorize_maps_ends_and_holes() {
        let mut out = Vec::new();
        colorize(&[0, 100, 50_000, 1, 200], Range::new(100, 200), &mut out);
        let lut = turbo_lut();
        assert_eq!(&out[0..4], &[0, 0, 0, 255]);
        assert_eq!(&out[4..7], &lut[0]);
        assert_eq!(&out[8..11], &lut[255]);
        assert_eq!(&out[12..15], &lut[0]);
        assert_eq!(&out[16..19], &lut[255]);
        assert_eq!(Range::new(5, 5), Range { min: 5, max: 6 });
        assert_eq!(Range::new(9, 3), Range { min: 3, max: 9 });
        assert_eq!(Range::new(65535, 65535).min, 65534);
    }
}
