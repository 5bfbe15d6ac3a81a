//! The `grad-rans` predictor (`format-spec.md` §8.5.2-8.5.3), also used by `grad-rans32`:
//! the left neighbour plus the gradient of the row above in a "filled" image (holes take
//! their prediction), so that decoding a row is a running sum instead of a chain of MED
//! selects; contexts from the residuals and differences of the row above. The scalar passes
//! here are the reference for the AVX2 ones in [`super::grad_x86`]. The frame layout and the
//! entropy coding are in [`super::family`].

use super::family::{context, sat};

/// `grad-rans` contexts (§8.5.3) of every pixel of a row into `ctx[1..=w]`, like
/// [`row_contexts`] but on the filled row above: the gradient terms are there for every
/// pixel but at the frame's left and right edges. `d` is scratch.
pub(super) fn grad_contexts(
    cm: &[u8],
    pm: &[u8],
    pv: &[u16],
    pz: &[u8],
    d: &mut [u8],
    ctx: &mut [u8],
) {
    let n = ctx.len();
    let (cm, pm, pv, pz, d) = (&cm[..n], &pm[..n], &pv[..n], &pz[..n], &mut d[..n]);
    // d[x] = |pv[x] - pv[x - 1]| (16-bit wrapping difference), saturated; 0 across the edges.
    for ((o, &b), &c) in d[1..].iter_mut().zip(&pv[1..]).zip(&pv[..n - 1]) {
        *o = grad_diff(b, c);
    }
    d[1] = 0;
    d[n - 1] = 0;
    for x in 1..n - 1 {
        // Indexing the slices re-cut to `n` above lets the compiler vectorise this loop.
        ctx[x] = grad_context(
            [pz[x - 1], pz[x], pz[x + 1]],
            [d[x], d[x + 1]],
            cm[x - 1],
            pm[x],
        );
    }
}

/// `|b - c|` (16-bit wrapping difference, read as signed), saturated at 127 (§8.5.3 `D`).
#[inline(always)]
pub(super) fn grad_diff(b: u16, c: u16) -> u8 {
    (b.wrapping_sub(c) as i16).unsigned_abs().min(127) as u8
}

/// The `grad-rans` context of a pixel from the saturated residuals above-left, above and
/// above-right `z`, the differences `d` ([`grad_diff`]) at the pixel and its right
/// neighbour, and whether the left (`l`) and upper (`u`) neighbours are valid.
#[inline(always)]
pub(super) fn grad_context(z: [u8; 3], d: [u8; 2], l: u8, u: u8) -> u8 {
    let t2 = (z[0] + z[2]) >> 1;
    let act = z[1]
        .saturating_add(t2)
        .saturating_add(d[0])
        .saturating_add(d[1]);
    context(act, l, u)
}

/// `grad-rans` row gradient (§8.5.2) into `g[1..=w]` from the filled row above `pv`: the
/// prediction of column x > 0 is `left + g`, of column 0 `0 + g` (the value above).
pub(super) fn grad_gradient(pv: &[u16], g: &mut [u16]) {
    let n = pv.len();
    let w = n - 2;
    let g = &mut g[..n];
    for ((o, &d), &c) in g[1..=w].iter_mut().zip(&pv[2..]).zip(&pv[..w]) {
        *o = (d.wrapping_sub(c) as i16 >> 1) as u16;
    }
    if w >= 2 {
        g[w] = pv[w].wrapping_sub(pv[w - 1]);
    }
    g[1] = pv[1];
}

/// `grad-rans` encoder: the residuals (zigzag, 0 at holes) of a row into `zs`, and the row
/// filled (holes take their prediction) into `cv`. The only serial chain is one add and
/// one select per pixel.
pub(super) fn grad_residuals(cm: &[u8], cv: &mut [u16], g: &[u16], zs: &mut [u32]) {
    let n = cm.len();
    let (cv, g, zs) = (&mut cv[..n], &g[..n], &mut zs[..n]);
    let mut f = 0u16;
    for x in 1..n - 1 {
        let p = f.wrapping_add(g[x]);
        let v = cv[x];
        let r = v.wrapping_sub(p) as i16 as i32;
        let m = 0u32.wrapping_sub(cm[x] as u32);
        zs[x] = ((r << 1) ^ (r >> 31)) as u32 & m;
        f = if cm[x] != 0 { v } else { p };
        cv[x] = f;
    }
}

/// One pixel of [`grad_reconstruct`]'s spread pass: the running-sum term `g + r` and the
/// saturated residual, from the value `z` (0 at holes); `big` collects `z` for the check
/// that every residual is a 16-bit zigzag value.
#[inline(always)]
pub(super) fn spread(z: u32, g: u16, big: &mut u32) -> (u16, u8) {
    *big |= z;
    let r = (z >> 1) ^ 0u32.wrapping_sub(z & 1);
    (g.wrapping_add(r as u16), sat(z))
}

/// `grad-rans` decoder: reconstructs the filled row into `cv` from the values `zc` of its
/// valid pixels (in order), the saturated residuals into `cz`; `t` is scratch. Returns the
/// padded index of the first valid pixel whose value is outside `lo..=lo + span` or whose
/// residual is not a 16-bit zigzag value, if any.
///
/// Three passes, so that only the running sum is serial: spread the residuals to their
/// pixels and add the gradient; the running sum; the range check.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_reconstruct(
    cm: &[u8],
    g: &[u16],
    zc: &[u32],
    cv: &mut [u16],
    cz: &mut [u8],
    t: &mut [u16],
    lo: u16,
    span: u16,
) -> Option<usize> {
    let n = cm.len();
    let w = n - 2;
    let (cm, g, cv, cz, t) = (
        &cm[1..=w],
        &g[1..=w],
        &mut cv[1..=w],
        &mut cz[1..=w],
        &mut t[1..=w],
    );
    // Spread: eight valid pixels in a row (the usual case) take eight values at once.
    let mut k = 0usize;
    let mut big = 0u32;
    for ((m8, t8), (g8, z8)) in cm
        .chunks(8)
        .zip(t.chunks_mut(8))
        .zip(g.chunks(8).zip(cz.chunks_mut(8)))
    {
        if m8 == [1; 8] {
            let Some(v8) = zc.get(k..k + 8) else {
                return Some(1);
            };
            for (((o, &z), &gx), s) in t8.iter_mut().zip(v8).zip(g8).zip(z8.iter_mut()) {
                (*o, *s) = spread(z, gx, &mut big);
            }
            k += 8;
        } else {
            for (((o, &m), &gx), s) in t8.iter_mut().zip(m8).zip(g8).zip(z8.iter_mut()) {
                let z = zc.get(k).copied().unwrap_or(0) & 0u32.wrapping_sub(m as u32);
                k += m as usize;
                (*o, *s) = spread(z, gx, &mut big);
            }
        }
    }
    // The running sum.
    let mut f = 0u16;
    for (o, &d) in cv.iter_mut().zip(t.iter()) {
        f = f.wrapping_add(d);
        *o = f;
    }
    // Range check of the valid pixels.
    let mut bad = 0u8;
    for (&v, &m) in cv.iter().zip(cm) {
        bad |= (v.wrapping_sub(lo) > span) as u8 & m;
    }
    if big >> 16 == 0 && bad == 0 {
        return None;
    }
    // Slow path, for the message: the first bad pixel.
    let mut k = 0usize;
    for (x, (&m, &v)) in cm.iter().zip(cv.iter()).enumerate() {
        if m != 0 {
            if zc[k] >> 16 != 0 || v.wrapping_sub(lo) > span {
                return Some(x + 1);
            }
            k += 1;
        }
    }
    Some(1)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod simd_tests {
    use super::super::family::{pack_contexts, PAL_LEN};
    use super::super::grad_x86;
    use super::*;

    /// The AVX2 row passes against the scalar ones on random rows: masks from all-valid to
    /// all-holes, residuals up to 2^17 (so some are not 16-bit zigzag values), values that
    /// leave the valid range, with and without a palette, widths around the 8/16/32-pixel
    /// chunks; contexts from random rows above.
    #[test]
    fn simd_row_passes_match_scalar() {
        if !grad_x86::available() {
            eprintln!("SKIP simd_row_passes_match_scalar: this CPU has no AVX2");
            return;
        }
        let mut rnd = super::super::xorshift(0x9E37_79B9_7F4A_7C15);
        let mut pal = vec![0u16; PAL_LEN];
        for (i, p) in pal.iter_mut().enumerate().skip(1).take(65535) {
            *p = (i as u16).wrapping_mul(7);
        }
        let pal: &[u16; PAL_LEN] = pal[..].try_into().unwrap();
        let (mut oks, mut bads) = (0, 0);
        for case in 0..4000 {
            let w = 1 + rnd() as usize % 70;
            let hole_rate = rnd() % 4;
            let mut cm = vec![0u8; w + 2];
            for m in &mut cm[1..=w] {
                *m = (rnd() % 4 >= hole_rate) as u8;
            }
            let nv = cm.iter().filter(|&&m| m != 0).count();
            let big = rnd() % 8 == 0;
            let mut zc: Vec<u32> = (0..w + 8)
                .map(|_| match rnd() % 16 {
                    0 if big => (rnd() % (1 << 17)) as u32,
                    0..=3 => (rnd() % 65536) as u32,
                    _ => (rnd() % 9) as u32,
                })
                .collect();
            zc[nv..].fill(0xDEAD_BEEF); // padding: must never be read
            let g: Vec<u16> = (0..w + 2)
                .map(|_| {
                    if rnd() % 2 == 0 {
                        rnd() as u16
                    } else {
                        (rnd() % 5) as u16
                    }
                })
                .collect();
            let (lo, span) = match rnd() % 3 {
                0 => (1u16, 65534u16),
                1 => (0, (rnd() % 65536) as u16),
                _ => (0, 65535),
            };
            let palette = rnd() % 2 == 0;
            let (mut cv, mut cz, mut t) = (vec![0u16; w + 2], vec![0u8; w + 2], vec![0u16; w + 2]);
            let want = grad_reconstruct(&cm, &g, &zc[..nv], &mut cv, &mut cz, &mut t, lo, span);
            let (mut cv2, mut cz2, mut out) = (vec![0u16; w], vec![0u8; w], vec![0u16; w]);
            // SAFETY: AVX2 checked above.
            let ok = unsafe {
                grad_x86::reconstruct(
                    &cm[1..=w],
                    &g[1..=w],
                    &zc,
                    &mut cv2,
                    &mut cz2,
                    &mut out,
                    palette.then_some(pal),
                    lo,
                    span,
                )
            };
            assert_eq!(ok, want.is_none(), "case {case}");
            if ok {
                oks += 1;
                assert_eq!(&cv2[..], &cv[1..=w], "case {case}");
                assert_eq!(&cz2[..], &cz[1..=w], "case {case}");
                for x in 0..w {
                    let v = cv[x + 1];
                    let expect = match (cm[x + 1] != 0, palette) {
                        (false, _) => 0,
                        (true, true) => pal[v as usize + 1],
                        (true, false) => v,
                    };
                    assert_eq!(out[x], expect, "case {case} pixel {x}");
                }
            } else {
                bads += 1;
            }
            // Packing of the contexts.
            let ctx: Vec<u8> = (0..w).map(|_| rnd() as u8).collect();
            let (mut c1, mut c2) = (vec![0u8; w + 8], vec![0u8; w + 8]);
            let n1 = pack_contexts(&cm[1..=w], &ctx, &mut c1);
            // SAFETY: AVX2 checked above.
            let n2 = unsafe { grad_x86::pack_contexts(&cm[1..=w], &ctx, &mut c2) };
            assert_eq!((n1, &c1[..n1]), (n2, &c2[..n2]), "case {case}");
            // Contexts, from the row above (`g` stands in for its values, `cz` for its
            // saturated residuals) and this row's mask.
            let mut pm = vec![0u8; w + 2];
            for m in &mut pm[1..=w] {
                *m = (rnd() % 4 >= hole_rate) as u8;
            }
            let pz: Vec<u8> = (0..w + 2)
                .map(|x| if x == 0 || x == w + 1 { 0 } else { cz[x] })
                .collect();
            let (mut d1, mut d2) = (vec![0u8; w + 2], vec![0u8; w + 2]);
            let (mut x1, mut x2) = (vec![0u8; w + 2], vec![0u8; w + 2]);
            grad_contexts(&cm, &pm, &g, &pz, &mut d1, &mut x1);
            // SAFETY: AVX2 checked above.
            unsafe { grad_x86::contexts(&cm, &pm, &g, &pz, &mut d2, &mut x2) };
            assert_eq!(&x1[1..=w], &x2[1..=w], "case {case}");
        }
        // Both outcomes were exercised.
        assert!(
            oks > 500 && bads > 500,
            "{oks} valid rows, {bads} rejected rows"
        );
    }
}
