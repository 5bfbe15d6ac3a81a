//! AVX2 row passes of the `grad-rans` decoders (`format-spec.md` §8.5): the contexts of a
//! row, the packing of the valid pixels' contexts, and the reconstruction (residuals spread
//! to their pixels, the running sum, the range check and the output samples). Each
//! produces exactly what its scalar twin in [`super::grad`] produces; the tests there
//! compare the two on real and random rows.

#![allow(unsafe_code)]

use super::grad::spread;
use super::rans::{token_with_bits, BitWriter, SYM_CTX_SHIFT};
use super::rans_x86::EXPAND;
use std::arch::x86_64::*;

/// True if this CPU runs the functions of this module and this thread allows SIMD
/// ([`super::set_scalar_only`]).
#[inline]
pub fn available() -> bool {
    super::simd_allowed() && std::is_x86_feature_detected!("avx2")
}

/// For each 8-bit mask, the byte shuffle that moves the set lanes' bytes to the front, in
/// order (the rest of the bytes are don't-care).
static COMPRESS: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0;
        let mut i = 0;
        while i < 8 {
            if m >> i & 1 != 0 {
                t[m][k] = i as u8;
                k += 1;
            }
            i += 1;
        }
        m += 1;
    }
    t
};

/// The 8-bit mask of the non-zero bytes among the 8 at `p`.
#[inline(always)]
unsafe fn mask8(p: *const u8) -> u32 {
    let v = _mm_loadl_epi64(p as *const __m128i);
    let z = _mm_cmpeq_epi8(v, _mm_setzero_si128());
    !(_mm_movemask_epi8(z) as u32) & 0xFF
}

/// Packs the contexts `ctx[x]` of the valid pixels (`cm[x] != 0`) to the front of `cc`, in
/// order; returns their number. `cm` and `ctx` are a row (same length); `cc` must have room
/// for the row plus 8 bytes.
///
/// # Safety
/// AVX2 ([`available`]).
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn pack_contexts(cm: &[u8], ctx: &[u8], cc: &mut [u8]) -> usize {
    let n = cm.len().min(ctx.len());
    assert!(cc.len() >= n + 8);
    let mut k = 0usize;
    let mut x = 0usize;
    while x + 8 <= n {
        let m = mask8(cm.as_ptr().add(x));
        let c = _mm_loadl_epi64(ctx.as_ptr().add(x) as *const __m128i);
        let s = _mm_loadl_epi64(COMPRESS.as_ptr().add(m as usize) as *const __m128i);
        _mm_storel_epi64(
            cc.as_mut_ptr().add(k) as *mut __m128i,
            _mm_shuffle_epi8(c, s),
        );
        k += m.count_ones() as usize;
        x += 8;
    }
    for (&m, &c) in cm[x..n].iter().zip(&ctx[x..n]) {
        cc[k] = c;
        k += (m != 0) as usize;
    }
    k
}

/// The reconstruction of one `grad-rans` row, as the scalar `grad_reconstruct` plus the
/// output step: `cm`, `g` (the gradient terms), `cv` (the filled row), `cz` (saturated
/// residuals, 0 at holes) and `out` (the samples) are the row's `w` pixels; `zc` holds the
/// values of the valid pixels in order, and has at least `w + 8` entries (any content past
/// the valid pixels' values). With
/// `pal` (65537 entries: 0, then the palette, then zeros) a valid pixel's sample is
/// `pal[v + 1]`, else `v`; holes are 0. Returns false if a residual is not a 16-bit zigzag
/// value or a valid pixel's value is outside `lo..=lo + span`; the outputs are then not
/// usable (the caller finds the bad pixel with the scalar code, for the message).
///
/// # Safety
/// AVX2 ([`available`]).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn reconstruct(
    cm: &[u8],
    g: &[u16],
    zc: &[u32],
    cv: &mut [u16],
    cz: &mut [u8],
    out: &mut [u16],
    pal: Option<&[u16; 65537]>,
    lo: u16,
    span: u16,
) -> bool {
    let w = cm.len();
    assert!(g.len() == w && cv.len() == w && cz.len() == w && out.len() == w);
    // The vector loads read at most 8 values past the valid pixels seen so far (<= w).
    assert!(zc.len() >= w + 8);
    let one32 = _mm256_set1_epi32(1);
    let low16 = _mm256_set1_epi32(0xFFFF);
    let c127 = _mm256_set1_epi32(127);
    let lo16 = _mm256_set1_epi16(lo as i16);
    let span16 = _mm256_set1_epi16(span as i16);
    let ones16 = _mm256_set1_epi16(1);
    // Broadcasts the last u16 of each 128-bit half within that half.
    let last_in_half = _mm256_setr_epi8(
        14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14,
        15, 14, 15, 14, 15, 14, 15, 14, 15,
    );
    let mut big = _mm256_setzero_si256();
    let mut bad = _mm256_setzero_si256();
    let mut carry = _mm256_setzero_si256();
    let mut k = 0usize;
    let mut x = 0usize;
    // The values of the 8 pixels at `x`: the valid ones take the next values in order, holes
    // 0. (Macros, not closures, so that the intrinsics are compiled with AVX2.)
    macro_rules! spread8 {
        ($x:expr) => {{
            let m = mask8(cm.as_ptr().add($x));
            if m == 0xFF {
                // Eight valid pixels: the next eight values as they are.
                let z = _mm256_loadu_si256(zc.as_ptr().add(k) as *const __m256i);
                k += 8;
                z
            } else {
                let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                    EXPAND.as_ptr().add(m as usize) as *const __m128i
                ));
                let z = _mm256_permutevar8x32_epi32(
                    _mm256_loadu_si256(zc.as_ptr().add(k) as *const __m256i),
                    idx,
                );
                let valid = _mm256_cmpgt_epi32(
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(cm.as_ptr().add($x) as *const __m128i)),
                    _mm256_setzero_si256(),
                );
                k += m.count_ones() as usize;
                _mm256_and_si256(z, valid)
            }
        }};
    }
    // r = (z >> 1) ^ -(z & 1), truncated to 16 bits.
    macro_rules! unzig {
        ($z:expr) => {{
            let z = $z;
            let neg = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_and_si256(z, one32));
            _mm256_and_si256(_mm256_xor_si256(_mm256_srli_epi32(z, 1), neg), low16)
        }};
    }
    while x + 16 <= w {
        let za = spread8!(x);
        let zb = spread8!(x + 8);
        big = _mm256_or_si256(big, _mm256_or_si256(za, zb));
        // The two eight-lane halves are packed (in-lane) and put back in pixel order.
        let r =
            _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(unzig!(za), unzig!(zb)));
        let s = _mm256_min_epu32(za, c127);
        let sb = _mm256_min_epu32(zb, c127);
        let s16 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(s, sb));
        let s8 = _mm256_packus_epi16(s16, s16);
        let s8 = _mm256_permute4x64_epi64::<0b11_01_10_00>(s8);
        _mm_storeu_si128(
            cz.as_mut_ptr().add(x) as *mut __m128i,
            _mm256_castsi256_si128(s8),
        );
        // Running sum of g + r.
        let mut t = _mm256_add_epi16(_mm256_loadu_si256(g.as_ptr().add(x) as *const __m256i), r);
        t = _mm256_add_epi16(t, _mm256_slli_si256::<2>(t));
        t = _mm256_add_epi16(t, _mm256_slli_si256::<4>(t));
        t = _mm256_add_epi16(t, _mm256_slli_si256::<8>(t));
        let low_total = _mm256_shuffle_epi8(_mm256_permute2x128_si256::<0x08>(t, t), last_in_half);
        t = _mm256_add_epi16(_mm256_add_epi16(t, low_total), carry);
        carry = _mm256_shuffle_epi8(_mm256_permute2x128_si256::<0x11>(t, t), last_in_half);
        _mm256_storeu_si256(cv.as_mut_ptr().add(x) as *mut __m256i, t);
        // Range check of the valid pixels.
        let m16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(cm.as_ptr().add(x) as *const __m128i));
        let valid16 = _mm256_cmpgt_epi16(m16, _mm256_setzero_si256());
        let off = _mm256_subs_epu16(_mm256_sub_epi16(t, lo16), span16);
        bad = _mm256_or_si256(bad, _mm256_and_si256(off, valid16));
        // Samples.
        // With a palette, the index into `pal` (0 at holes) for now: a scalar pass looks the
        // samples up after the loop, which is faster than 8-lane gathers.
        let o = match pal {
            Some(_) => _mm256_and_si256(_mm256_add_epi16(t, ones16), valid16),
            None => _mm256_and_si256(t, valid16),
        };
        _mm256_storeu_si256(out.as_mut_ptr().add(x) as *mut __m256i, o);
        x += 16;
    }
    if let Some(p) = pal {
        for o in out[..x].iter_mut() {
            *o = p[*o as usize];
        }
    }
    let mut f = _mm256_extract_epi16::<0>(carry) as u16;
    let mut big = {
        let mut a = [0u32; 8];
        _mm256_storeu_si256(a.as_mut_ptr() as *mut __m256i, big);
        a.iter().fold(0, |acc, &v| acc | v)
    };
    let mut ok = _mm256_testz_si256(bad, bad) == 1;
    // The last pixels one by one.
    for x in x..w {
        let m = cm[x] != 0;
        let z = if m { zc[k] } else { 0 };
        k += m as usize;
        let (d, s) = spread(z, g[x], &mut big);
        f = f.wrapping_add(d);
        cv[x] = f;
        cz[x] = s;
        ok &= !m || f.wrapping_sub(lo) <= span;
        out[x] = match (m, pal) {
            (false, _) => 0,
            (true, Some(p)) => p[f as usize + 1],
            (true, None) => f,
        };
    }
    ok && big >> 16 == 0
}

/// `grad-rans` contexts of a row (§8.5.3), exactly as the scalar `grad_contexts`: the
/// padded row buffers (`n = w + 2` entries, pixel x at index x + 1) of the row's mask `cm`,
/// the row above's mask `pm`, filled values `pv` and saturated residuals `pz`; `d` is
/// scratch; the contexts go to `ctx[1..=w]`.
///
/// # Safety
/// AVX2 ([`available`]).
#[target_feature(enable = "avx2")]
pub unsafe fn contexts(cm: &[u8], pm: &[u8], pv: &[u16], pz: &[u8], d: &mut [u8], ctx: &mut [u8]) {
    use super::family::CTX_RES;
    use super::grad::{grad_context, grad_diff};
    use super::spec::med_rans::ACT_THRESHOLDS;
    let n = ctx.len();
    assert!(n >= 3 && cm.len() == n && pm.len() == n && pv.len() == n && pz.len() == n);
    assert!(d.len() == n);
    // d[x] = |pv[x] - pv[x - 1]| (16-bit wrapping difference), saturated at 127; 0 across
    // the edges (d[1], d[n - 1]).
    let c127 = _mm256_set1_epi16(127);
    let mut x = 1usize;
    while x + 16 <= n {
        let a = _mm256_loadu_si256(pv.as_ptr().add(x) as *const __m256i);
        let b = _mm256_loadu_si256(pv.as_ptr().add(x - 1) as *const __m256i);
        let v = _mm256_min_epu16(_mm256_abs_epi16(_mm256_sub_epi16(a, b)), c127);
        let v8 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(v, v));
        _mm_storeu_si128(
            d.as_mut_ptr().add(x) as *mut __m128i,
            _mm256_castsi256_si128(v8),
        );
        x += 16;
    }
    for x in x..n {
        d[x] = grad_diff(pv[x], pv[x - 1]);
    }
    d[1] = 0;
    d[n - 1] = 0;
    // act = pz[x] + (pz[x - 1] + pz[x + 1]) / 2 + d[x] + d[x + 1], saturating; the bucket is
    // the number of thresholds that act reaches.
    let ones = _mm256_set1_epi8(1);
    let zero = _mm256_setzero_si256();
    let res = _mm256_set1_epi8(CTX_RES as i8);
    let not_both_base = _mm256_set1_epi8(CTX_RES as i8 + 10);
    let mut thr = [zero; ACT_THRESHOLDS.len()];
    for (v, &t) in thr.iter_mut().zip(&ACT_THRESHOLDS) {
        *v = _mm256_set1_epi8(t as i8);
    }
    macro_rules! load {
        ($s:expr, $i:expr) => {
            _mm256_loadu_si256($s.as_ptr().add($i) as *const __m256i)
        };
    }
    let mut x = 1usize;
    while x + 33 <= n {
        let (a, b, c) = (load!(pz, x - 1), load!(pz, x), load!(pz, x + 1));
        let t2 = _mm256_sub_epi8(
            _mm256_avg_epu8(a, c),
            _mm256_and_si256(_mm256_xor_si256(a, c), ones),
        );
        let act = _mm256_adds_epu8(
            _mm256_adds_epu8(_mm256_adds_epu8(b, t2), load!(d, x)),
            load!(d, x + 1),
        );
        let mut bucket = zero;
        for t in thr {
            // act >= t: 0xFF (-1) per byte.
            let ge = _mm256_cmpeq_epi8(_mm256_max_epu8(act, t), act);
            bucket = _mm256_sub_epi8(bucket, ge);
        }
        let l = load!(cm, x - 1);
        let u = load!(pm, x);
        let both = _mm256_cmpeq_epi8(_mm256_and_si256(l, u), ones);
        let l_only = _mm256_andnot_si256(u, l);
        let u_only = _mm256_andnot_si256(l, u);
        let not_both = _mm256_sub_epi8(
            _mm256_sub_epi8(not_both_base, _mm256_add_epi8(l_only, l_only)),
            u_only,
        );
        let cx = _mm256_blendv_epi8(not_both, _mm256_add_epi8(res, bucket), both);
        _mm256_storeu_si256(ctx.as_mut_ptr().add(x) as *mut __m256i, cx);
        x += 32;
    }
    for (x, c) in ctx.iter_mut().enumerate().take(n - 1).skip(x) {
        *c = grad_context(
            [pz[x - 1], pz[x], pz[x + 1]],
            [d[x], d[x + 1]],
            cm[x - 1],
            pm[x],
        );
    }
}

/// The `grad-rans` encoder's pass over one row, exactly as the scalar code in
/// `family::encode` (`grad_residuals` and the token loop): `cm`, `ctx`, `g` are the row's
/// mask, contexts and gradient terms; `cv` holds the row's values and receives the filled
/// row; `cz` receives the saturated residuals (0 at holes); the symbols of the valid
/// pixels (`ctx << SYM_CTX_SHIFT | token`) go to `syms` (room for the row plus 16) and
/// their extra bits to `bits`. Returns the number of symbols.
///
/// Sixteen valid pixels in a row (the usual case) are done at once: their prediction is the
/// left neighbour (known) plus `g`; other chunks go pixel by pixel.
///
/// # Safety
/// AVX2 ([`available`]).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn encode_row(
    cm: &[u8],
    ctx: &[u8],
    g: &[u16],
    cv: &mut [u16],
    cz: &mut [u8],
    syms: &mut [u16],
    bits: &mut BitWriter,
) -> usize {
    let w = cm.len();
    assert!(ctx.len() == w && g.len() == w && cv.len() == w && cz.len() == w);
    assert!(syms.len() >= w + 16);
    let c31 = _mm256_set1_epi16(31);
    let c127 = _mm256_set1_epi16(127);
    let shift = _mm_cvtsi32_si128(SYM_CTX_SHIFT as i32);
    let mut k = 0usize;
    let mut f = 0u16;
    // One pixel, as the scalar encoder does it.
    macro_rules! pixel {
        ($x:expr) => {{
            let x = $x;
            let valid = cm[x] != 0;
            let p = f.wrapping_add(g[x]);
            let v = cv[x];
            let r = v.wrapping_sub(p) as i16 as i32;
            let z = if valid {
                ((r << 1) ^ (r >> 31)) as u32
            } else {
                0
            };
            f = if valid { v } else { p };
            cv[x] = f;
            cz[x] = z.min(127) as u8;
            let t = token_with_bits(z, bits);
            syms[k] = (ctx[x] as u16) << SYM_CTX_SHIFT | t as u16;
            k += valid as usize;
        }};
    }
    let mut x = 0usize;
    while x + 16 <= w {
        let all_valid = _mm_test_all_ones(_mm_cmpeq_epi8(
            _mm_min_epu8(
                _mm_loadu_si128(cm.as_ptr().add(x) as *const __m128i),
                _mm_set1_epi8(1),
            ),
            _mm_set1_epi8(1),
        )) == 1;
        if !all_valid {
            for x in x..x + 16 {
                pixel!(x);
            }
            x += 16;
            continue;
        }
        let v = _mm256_loadu_si256(cv.as_ptr().add(x) as *const __m256i);
        // The left neighbours: [f, v0, ..., v14].
        let lo_hi = _mm256_insert_epi16::<7>(_mm256_permute2x128_si256::<0x08>(v, v), f as i16);
        let left = _mm256_alignr_epi8::<14>(v, lo_hi);
        let pred = _mm256_add_epi16(
            left,
            _mm256_loadu_si256(g.as_ptr().add(x) as *const __m256i),
        );
        let r = _mm256_sub_epi16(v, pred);
        let z = _mm256_xor_si256(_mm256_slli_epi16::<1>(r), _mm256_srai_epi16::<15>(r));
        let s = _mm256_min_epu16(z, c127);
        let s8 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(s, s));
        _mm_storeu_si128(
            cz.as_mut_ptr().add(x) as *mut __m128i,
            _mm256_castsi256_si128(s8),
        );
        let small = _mm256_testz_si256(_mm256_subs_epu16(z, c31), _mm256_subs_epu16(z, c31)) == 1;
        if small {
            let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(ctx.as_ptr().add(x) as *const __m128i));
            let sym = _mm256_or_si256(_mm256_sll_epi16(c, shift), z);
            _mm256_storeu_si256(syms.as_mut_ptr().add(k) as *mut __m256i, sym);
        } else {
            let mut zs = [0u16; 16];
            _mm256_storeu_si256(zs.as_mut_ptr() as *mut __m256i, z);
            for (i, &z) in zs.iter().enumerate() {
                let t = token_with_bits(z as u32, bits);
                syms[k + i] = (ctx[x + i] as u16) << SYM_CTX_SHIFT | t as u16;
            }
        }
        k += 16;
        f = cv[x + 15];
        x += 16;
    }
    for x in x..w {
        pixel!(x);
    }
    k
}
