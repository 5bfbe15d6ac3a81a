//! The `med-rans` predictor (`format-spec.md` §8.4.3-8.4.4): MED (the median edge detector of
//! LOCO-I) from valid neighbours only, with fallbacks when neighbours are holes, and its
//! contexts from the activity of the row above. The frame layout and the entropy coding are
//! in [`super::family`].
//!
//! Why: MED picks the left or upper neighbour at an edge and the plane through three
//! neighbours elsewhere; on some scenes it predicts depth edges better than the gradient
//! predictor of [`super::grad`], at the cost of a serial chain of selects per pixel.

use super::family::{context, sat};

/// Contexts of every pixel of a row (§8.4.4) into `ctx[1..=w]`; index `x` is the pixel's
/// position in the padded row buffers (`x = column + 1`). Every input is known before the row
/// is coded (the row's hole mask and the row above), so these are branch-free passes that the
/// compiler vectorises. The value of a hole pixel's context is unused. `d` is scratch.
///
/// In bytes: every term of the activity is saturated at 127 or more (`pz` is stored
/// saturated, see [`sat`]), and the sum saturates at 255. A term is exact below 63 and at
/// least 40 (the largest threshold) when the exact term is, so the sum reaches each threshold
/// exactly when the exact sum does.
pub(super) fn row_contexts(
    cm: &[u8],
    pm: &[u8],
    pv: &[u16],
    pz: &[u8],
    d: &mut [u8],
    ctx: &mut [u8],
) {
    let n = ctx.len();
    let (cm, pm, pv, pz, d) = (&cm[..n], &pm[..n], &pv[..n], &pz[..n], &mut d[..n]);
    // d[x] = |pv[x] - pv[x - 1]|, saturated.
    for ((o, &b), &c) in d[1..].iter_mut().zip(&pv[1..]).zip(&pv[..n - 1]) {
        *o = b.abs_diff(c).min(127) as u8;
    }
    for x in 1..n - 1 {
        let t2 = (pz[x - 1] + pz[x + 1]) >> 1;
        let t3 = d[x] & 0u8.wrapping_sub(pm[x - 1]);
        let t4 = d[x + 1] & 0u8.wrapping_sub(pm[x + 1]);
        let act = pz[x]
            .saturating_add(t2)
            .saturating_add(t3)
            .saturating_add(t4);
        ctx[x] = context(act, cm[x - 1], pm[x]);
    }
}

/// MED prediction with fallbacks for hole neighbours (§8.4.3).
///
/// Arithmetic wraps: in a corrupt frame the decoder's `a` may already be out of range (it is
/// flagged and the row rejected after the loop), and that must not overflow here.
#[inline(always)]
pub(super) fn predict(x: usize, va: bool, a: u32, pm: &[u8], pv: &[u16], last: u32) -> u32 {
    let vb = pm[x] != 0;
    let (b, c) = (pv[x] as u32, pv[x - 1] as u32);
    if va && vb {
        if pm[x - 1] != 0 {
            // MED is `a + b - c` clamped to [min(a, b), max(a, b)]; branch-free, because
            // which case applies is unpredictable.
            // `max` then `min` rather than `clamp`, which panics when a corrupt `a` makes
            // the bounds cross.
            let (a, b, c) = (a as i32, b as i32, c as i32);
            a.wrapping_add(b)
                .wrapping_sub(c)
                .max(a.min(b))
                .min(a.max(b)) as u32
        } else {
            a.wrapping_add(b) >> 1
        }
    } else if va {
        a
    } else if vb {
        b
    } else if pm[x - 1] != 0 {
        c
    } else if pm[x + 1] != 0 {
        pv[x + 1] as u32
    } else {
        last
    }
}

/// The residuals (zigzag) of every valid pixel of a row into `zs`, computed for the whole row
/// at once from the known values (branch-free, so that the compiler vectorises it). Pixels
/// with no valid neighbour (left, up, up-left, up-right) predict from the last valid value
/// before them; their residual is left wrong here. Returns true if the row has any.
pub(super) fn row_residuals(cm: &[u8], pm: &[u8], cv: &[u16], pv: &[u16], zs: &mut [u32]) -> bool {
    let n = cm.len();
    let (pm, cv, pv, zs) = (&pm[..n], &cv[..n], &pv[..n], &mut zs[..n]);
    let mut lonely = 0u8;
    // Selects with all-ones / all-zero masks, so that the compiler vectorises the loop.
    let sel = |m: i32, x: i32, y: i32| (x & m) | (y & !m);
    for x in 1..n - 1 {
        let (va, vb, vc, vd) = (cm[x - 1], pm[x], pm[x - 1], pm[x + 1]);
        let (ma, mb, mc) = (-(va as i32), -(vb as i32), -(vc as i32));
        let (a, b, c, d) = (
            cv[x - 1] as i32,
            pv[x] as i32,
            pv[x - 1] as i32,
            pv[x + 1] as i32,
        );
        let med = (a + b - c).max(a.min(b)).min(a.max(b));
        let avg = (a + b) >> 1;
        let both = sel(mc, med, avg);
        let not_a = sel(mb, b, sel(mc, c, d));
        let p = sel(ma, sel(mb, both, a), not_a);
        let r = cv[x] as i32 - p;
        zs[x] = ((r << 1) ^ (r >> 31)) as u32;
        lonely |= cm[x] & !(va | vb | vc | vd) & 1;
    }
    lonely != 0
}

/// Reconstructs one row from the values `zc` of its valid pixels (in order): the values into
/// `cv` (0 at holes), the saturated residuals into `cz`. `last` is the last valid value
/// before the row, and after it. Returns false if a value is outside `lo..=hi`; `cv` is then
/// not usable.
///
/// `a` (the left neighbour) stays in a register: it is the loop's critical path.
/// Out-of-range values are only flagged (`v - lo` wraps to a large value when `v < lo`).
#[allow(clippy::too_many_arguments)]
pub(super) fn reconstruct(
    cm: &[u8],
    pm: &[u8],
    pv: &[u16],
    cv: &mut [u16],
    cz: &mut [u8],
    zc: &[u32],
    last: &mut u32,
    lo: i32,
    hi: i32,
) -> bool {
    let n = cm.len();
    let (pm, pv, cv, cz) = (&pm[..n], &pv[..n], &mut cv[..n], &mut cz[..n]);
    let mut a = 0u32;
    let mut l = *last;
    let mut out_of_range = false;
    let span = (hi - lo) as u32;
    let mut k = 0usize;
    for x in 1..n - 1 {
        if cm[x] == 0 {
            cv[x] = 0;
            cz[x] = 0;
            continue;
        }
        let p = predict(x, cm[x - 1] != 0, a, pm, pv, l) as i32;
        let z = zc[k];
        k += 1;
        cz[x] = sat(z);
        let v = p.wrapping_add((z >> 1) as i32 ^ -((z & 1) as i32));
        out_of_range |= (v.wrapping_sub(lo) as u32) > span;
        cv[x] = v as u16;
        a = v as u32;
        l = a;
    }
    *last = l;
    !out_of_range
}

/// The padded index of the first pixel of a row whose value is outside `lo..=hi` (the slow
/// path of [`reconstruct`], for the error message).
pub(super) fn first_out_of_range(
    cm: &[u8],
    pm: &[u8],
    pv: &[u16],
    zc: &[u32],
    last: &mut u32,
    lo: i32,
    hi: i32,
) -> usize {
    let mut a = 0u32;
    let mut k = 0usize;
    for x in 1..cm.len() - 1 {
        if cm[x] == 0 {
            continue;
        }
        let p = predict(x, cm[x - 1] != 0, a, pm, pv, *last) as i32;
        let z = zc[k];
        k += 1;
        let v = p.wrapping_add((z >> 1) as i32 ^ -((z & 1) as i32));
        if !(lo..=hi).contains(&v) {
            return x;
        }
        a = v as u32;
        *last = a;
    }
    1
}

/// The `med-rans` encoder's residuals (zigzag) of a row into `zs`: [`row_residuals`], then
/// the pixels with no valid neighbour predicted from `last`, the last valid value before
/// them (updated to the row's last valid value).
pub(super) fn encode_residuals(
    cm: &[u8],
    pm: &[u8],
    cv: &[u16],
    pv: &[u16],
    zs: &mut [u32],
    last: &mut u32,
) {
    let w = cm.len() - 2;
    if row_residuals(cm, pm, cv, pv, zs) {
        // Pixels with no valid neighbour: predicted from the last valid value.
        for x in 1..=w {
            if cm[x] == 0 {
                continue;
            }
            if cm[x - 1] | pm[x] | pm[x - 1] | pm[x + 1] == 0 {
                let r = cv[x] as i32 - *last as i32;
                zs[x] = ((r << 1) ^ (r >> 31)) as u32;
            }
            *last = cv[x] as u32;
        }
    } else if let Some(x) = cm[1..=w].iter().rposition(|&m| m != 0) {
        *last = cv[x + 1] as u32;
    }
}
