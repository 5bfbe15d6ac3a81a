//! AVX2 decoding of N (a multiple of 8: 32 for `grad-rans32`) interleaved rANS states
//! (`format-spec.md` §8.4.5 step): the states are N/8 vectors of eight lanes, eight values
//! take one gather from the packed decoding table, and the renormalisation words go to the
//! lanes that need them through a permutation looked up by the lanes' mask. Produces exactly what the scalar decoder in
//! [`super::rans`] produces, for valid and corrupt streams alike (same overrun rules, same
//! sentinel for unused contexts); the tests compare the two.

#![allow(unsafe_code)]

use super::rans::{
    put, BitReader, DecTables, EncSym, DIRECT, ENC_SLOTS, PROB_BITS, PROB_SCALE, RANS_L,
    RENORM_SHIFT,
};
use std::arch::x86_64::*;

/// For each 8-bit lane mask, the index of the word each set lane takes: the number of set
/// lanes below it (8 bytes per mask, widened on load).
pub(super) static EXPAND: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0u8;
        let mut i = 0;
        while i < 8 {
            if m >> i & 1 != 0 {
                t[m][i] = k;
                k += 1;
            }
            i += 1;
        }
        m += 1;
    }
    t
};

/// Adds the extra bits of the values whose lanes are set in `big` (tokens >= DIRECT), in
/// lane order; false if one is outside the alphabet (it becomes 0).
#[cold]
#[inline(never)]
fn extra_bits(out: &mut [u32], big: u32, bits: &mut BitReader) -> bool {
    let mut ok = true;
    let mut b = big;
    while b != 0 {
        let l = b.trailing_zeros() as usize;
        b &= b - 1;
        match super::rans::slow_value(out[l], bits) {
            Some(val) => out[l] = val,
            None => {
                ok = false;
                out[l] = 0;
            }
        }
    }
    ok
}

/// True if this CPU runs [`values`] and this thread allows SIMD
/// ([`super::set_scalar_only`]).
#[inline]
pub fn available() -> bool {
    super::simd_allowed() && std::is_x86_feature_detected!("avx2")
}

/// Decodes one value per entry of `ctxs` into `out` (same length) with the `N` states `x`
/// (`N` a multiple of 8, at most 128), where `x[0]` decodes the first value and value j uses
/// `x[j % N]`; the caller keeps track of which state is next. `pos` is the byte position
/// in `words`. Returns false if a token is outside the alphabet.
///
/// # Safety
/// The CPU must support AVX2 ([`available`]).
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn values<const N: usize>(
    x: &mut [u32; N],
    tables: &DecTables,
    words: &[u8],
    pos: &mut usize,
    ctxs: &[u8],
    out: &mut [u32],
    bits: &mut BitReader,
) -> bool {
    assert!(N % 8 == 0 && N <= 128, "{N} states");
    let n = ctxs.len().min(out.len());
    let packed = tables.packed().as_ptr() as *const i32;
    let mut v = [_mm256_setzero_si256(); 16];
    for (k, vk) in v.iter_mut().enumerate().take(N / 8) {
        *vk = _mm256_loadu_si256(x.as_ptr().add(8 * k) as *const __m256i);
    }
    let slot_mask = _mm256_set1_epi32((PROB_SCALE - 1) as i32);
    let ctx_mask = _mm256_set1_epi32(15);
    let mask12 = _mm256_set1_epi32(0xFFF);
    let direct = _mm256_set1_epi32(DIRECT as i32 - 1);
    let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let zero = _mm256_setzero_si256();
    let mut p = *pos;
    let mut ok = true;
    // One step of the eight states `$xv` for the values `$i..$i + $lanes` (`$lanes` <= 8;
    // the other lanes keep their state and read no word). A macro, not a closure, so that
    // the intrinsics are compiled with AVX2.
    macro_rules! step {
        ($xv:expr, $i:expr, $lanes:expr) => {{
            let (xv, i, lanes): (__m256i, usize, usize) = ($xv, $i, $lanes);
            let c8 = if lanes == 8 {
                _mm_loadl_epi64(ctxs.as_ptr().add(i) as *const __m128i)
            } else {
                let mut b = [0u8; 8];
                b[..lanes].copy_from_slice(&ctxs[i..i + lanes]);
                _mm_loadl_epi64(b.as_ptr() as *const __m128i)
            };
            let c = _mm256_and_si256(_mm256_cvtepu8_epi32(c8), ctx_mask);
            let slot = _mm256_and_si256(xv, slot_mask);
            let ti = _mm256_or_si256(_mm256_slli_epi32(c, PROB_BITS as i32), slot);
            let e = _mm256_i32gather_epi32::<4>(packed, ti);
            let t = _mm256_srli_epi32(e, 23);
            let freq = _mm256_and_si256(e, mask12);
            let bias = _mm256_and_si256(_mm256_srli_epi32(e, 12), slot_mask);
            let y = _mm256_add_epi32(
                _mm256_mullo_epi32(freq, _mm256_srli_epi32(xv, PROB_BITS as i32)),
                bias,
            );
            // Lanes whose state fell below 2^16 read the next words, in lane order.
            let mut need = _mm256_cmpeq_epi32(_mm256_srli_epi32(y, 16), zero);
            let active = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), lane_ids);
            if lanes < 8 {
                need = _mm256_and_si256(need, active);
            }
            let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as u32;
            let w16 = if p + 16 <= words.len() {
                _mm_loadu_si128(words.as_ptr().add(p) as *const __m128i)
            } else {
                let mut b = [0u8; 16];
                if p < words.len() {
                    // Whole words only: a trailing odd byte reads as nothing (like the
                    // scalar decoder).
                    let r = &words[p..];
                    let r = &r[..r.len() & !1];
                    b[..r.len()].copy_from_slice(r);
                }
                _mm_loadu_si128(b.as_ptr() as *const __m128i)
            };
            let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                EXPAND.as_ptr().add(m as usize) as *const __m128i
            ));
            let wv = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(w16), idx);
            p += 2 * m.count_ones() as usize;
            let y = _mm256_blendv_epi8(y, _mm256_or_si256(_mm256_slli_epi32(y, 16), wv), need);
            // Values: the token itself below DIRECT; else extra bits, in lane order.
            let big = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(t, direct))) as u32
                & ((1u32 << lanes) - 1);
            if lanes == 8 {
                _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, t);
            } else {
                let mut b = [0u32; 8];
                _mm256_storeu_si256(b.as_mut_ptr() as *mut __m256i, t);
                out[i..i + lanes].copy_from_slice(&b[..lanes]);
            }
            if big != 0 {
                ok &= extra_bits(&mut out[i..i + lanes], big, bits);
            }
            if lanes < 8 {
                _mm256_blendv_epi8(xv, y, active)
            } else {
                y
            }
        }};
    }
    let mut i = 0usize;
    if N == 32 {
        // The usual case, unrolled: the four vectors stay in registers.
        let [mut v0, mut v1, mut v2, mut v3] = [v[0], v[1], v[2], v[3]];
        while i + 32 <= n {
            v0 = step!(v0, i, 8);
            v1 = step!(v1, i + 8, 8);
            v2 = step!(v2, i + 16, 8);
            v3 = step!(v3, i + 24, 8);
            i += 32;
        }
        [v[0], v[1], v[2], v[3]] = [v0, v1, v2, v3];
    }
    while i < n {
        for vk in v.iter_mut().take(N / 8) {
            if i >= n {
                break;
            }
            let lanes = (n - i).min(8);
            *vk = step!(*vk, i, lanes);
            i += lanes;
        }
    }
    for (k, vk) in v.iter().enumerate().take(N / 8) {
        _mm256_storeu_si256(x.as_mut_ptr().add(8 * k) as *mut __m256i, *vk);
    }
    *pos = p;
    ok
}

/// For each 8-bit lane mask, the set lanes in descending order (the rest don't-care): the
/// order in which the encoder emits the words of one vector's lanes.
static DESCENDING: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0;
        let mut i = 8;
        while i > 0 {
            i -= 1;
            if m >> i & 1 != 0 {
                t[m][k] = i as u8;
                k += 1;
            }
        }
        m += 1;
    }
    t
};

/// [`super::rans::encode`] with the `N` states (a multiple of 8, at most 128) as vectors of
/// eight lanes: the same words and states. Within a group of N symbols the scalar encoder
/// codes symbol j = N-1 down to 0; here each vector's eight states step at once (they are
/// independent) and the words of the lanes that emit are written in descending lane order,
/// which is the order the scalar encoder writes them in.
///
/// # Safety
/// AVX2 ([`available`]).
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn encode<const N: usize>(
    symbols: &[u16],
    table: &[EncSym; ENC_SLOTS],
    words: &mut Vec<u16>,
) -> [u32; N] {
    assert!(N % 8 == 0 && N <= 128, "{N} states");
    let mut rcp = [0u32; ENC_SLOTS];
    let mut info = [0u32; ENC_SLOTS];
    for ((r, i), e) in rcp.iter_mut().zip(info.iter_mut()).zip(table.iter()) {
        (*r, *i) = e.packed();
    }
    // One word per symbol at most, plus room for an 8-word store.
    words.clear();
    words.resize(symbols.len() + 16, 0);
    let mut wp = 0usize;
    let mut x = [RANS_L; N];
    let full = symbols.len() / N * N;
    for j in (full..symbols.len()).rev() {
        put(&mut x[j % N], symbols[j], table, words, &mut wp);
    }
    let mut v = [_mm256_setzero_si256(); 16];
    for (k, vk) in v.iter_mut().enumerate().take(N / 8) {
        *vk = _mm256_loadu_si256(x.as_ptr().add(8 * k) as *const __m256i);
    }
    let slot_mask = _mm256_set1_epi32((ENC_SLOTS - 1) as i32);
    let mask12 = _mm256_set1_epi32(0xFFF);
    let mask11 = _mm256_set1_epi32(0x7FF);
    let low16 = _mm256_set1_epi32(0xFFFF);
    let scale = _mm256_set1_epi32(PROB_SCALE as i32);
    let one = _mm256_set1_epi32(1);
    let buf = words.as_mut_ptr();
    for group in symbols[..full].chunks_exact(N).rev() {
        for k in (0..N / 8).rev() {
            let s = _mm256_and_si256(
                _mm256_cvtepu16_epi32(_mm_loadu_si128(group.as_ptr().add(8 * k) as *const __m128i)),
                slot_mask,
            );
            let r = _mm256_i32gather_epi32::<4>(rcp.as_ptr() as *const i32, s);
            let inf = _mm256_i32gather_epi32::<4>(info.as_ptr() as *const i32, s);
            let freq = _mm256_and_si256(inf, mask12);
            let cum = _mm256_and_si256(_mm256_srli_epi32::<12>(inf), mask11);
            let shift = _mm256_srli_epi32::<23>(inf);
            let xv = v[k];
            // Renormalise: x >> RENORM_SHIFT >= freq (both far below 2^31).
            let emit = _mm256_cmpgt_epi32(
                _mm256_srli_epi32::<{ RENORM_SHIFT as i32 }>(xv),
                _mm256_sub_epi32(freq, one),
            );
            let m = _mm256_movemask_ps(_mm256_castsi256_ps(emit)) as u32;
            let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                DESCENDING.as_ptr().add(m as usize) as *const __m128i
            ));
            let wv = _mm256_permutevar8x32_epi32(_mm256_and_si256(xv, low16), idx);
            let w8 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(
                wv,
                _mm256_setzero_si256(),
            ));
            _mm_storeu_si128(buf.add(wp) as *mut __m128i, _mm256_castsi256_si128(w8));
            wp += m.count_ones() as usize;
            let xs = _mm256_blendv_epi8(xv, _mm256_srli_epi32::<16>(xv), emit);
            // q = (xs + (xs * rcp >> 32)) >> shift. The sum fits in 32 bits: it is below
            // xs * 2^shift / freq + 1 <= 2^(21 + shift) with xs < freq << 21 (after
            // renormalisation) and shift <= 11, and at freq = 2048 the reciprocal's low
            // part is 0.
            let he = _mm256_srli_epi64::<32>(_mm256_mul_epu32(xs, r));
            let ho = _mm256_mul_epu32(_mm256_srli_epi64::<32>(xs), _mm256_srli_epi64::<32>(r));
            let hi = _mm256_blend_epi32::<0b1010_1010>(he, ho);
            let q = _mm256_srlv_epi32(_mm256_add_epi32(xs, hi), shift);
            let cmpl = _mm256_sub_epi32(scale, freq);
            v[k] = _mm256_add_epi32(_mm256_add_epi32(xs, cum), _mm256_mullo_epi32(q, cmpl));
        }
    }
    for (k, vk) in v.iter().enumerate().take(N / 8) {
        _mm256_storeu_si256(x.as_mut_ptr().add(8 * k) as *mut __m256i, *vk);
    }
    words.truncate(wp);
    words.reverse();
    x
}
