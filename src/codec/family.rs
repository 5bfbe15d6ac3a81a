//! The frame layout shared by the `med-rans` (`format-spec.md` §8.4), `grad-rans` (§8.5) and
//! `grad-rans32` (§8.6) depth codecs: palette of the frame's distinct depth values, hole mask
//! as run lengths, prediction of each valid pixel's palette index, residuals in 14 contexts,
//! all entropy-coded with static rANS. The predictors themselves live in [`super::med`] (MED
//! from valid neighbours only) and [`super::grad`] (left neighbour plus the gradient of the
//! row above in a "filled" image); this module runs the row loop and the entropy coding.
//!
//! Why: real D4xx depth takes few distinct values (stereo depth is quantised in disparity), so
//! coding ranks in the sorted value set instead of millimetres halves the residuals at range;
//! holes are runs and must not pollute the prediction of valid pixels. The lossy mode
//! quantises the depth values first ([`super::bound`]) and then codes them losslessly, so the
//! decoder is the same for both.

use std::cell::RefCell;

use super::bound::ErrorBound;
use super::rans::{
    self, BitReader, BitWriter, DecTables, EncSym, ENC_SLOTS, NTOK, PROB_SCALE, SYM_CTX_SHIFT,
};
pub use super::spec::med_rans::{ACT_THRESHOLDS, FLAG_PALETTE, HEADER_LEN, NCTX};
use super::spec::{grad_rans, grad_rans32, med_rans};
use super::{grad, med, CodecError};

/// The member of the codec family: they share the payload layout and the entropy coding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `med-rans` (codec 4, §8.4).
    Med,
    /// `grad-rans` (codec 5, §8.5).
    Grad,
    /// `grad-rans32` (codec 6, §8.6): `grad-rans` with 32 rANS states.
    Grad32,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Med => "med-rans",
            Kind::Grad => "grad-rans",
            Kind::Grad32 => "grad-rans32",
        }
    }

    /// Number of interleaved rANS states.
    pub fn states(self) -> usize {
        match self {
            Kind::Med => med_rans::STATES,
            Kind::Grad => grad_rans::STATES,
            Kind::Grad32 => grad_rans32::STATES,
        }
    }

    fn corrupt(self, detail: impl Into<String>) -> CodecError {
        CodecError::Corrupt {
            codec: self.name(),
            detail: detail.into(),
        }
    }
}

const CTX_PALETTE: u8 = 0;
const CTX_VALID_RUN: u8 = 1;
const CTX_HOLE_RUN: u8 = 2;
pub(super) const CTX_RES: usize = 3;

/// A residual's context from the activity and whether the left (`l`) and upper (`u`)
/// neighbours are valid (0 or 1).
#[inline(always)]
pub(super) fn context(act: u8, l: u8, u: u8) -> u8 {
    // Bucket: how many activity thresholds `act` reaches (0..=7).
    let mut bucket = 0u8;
    for t in ACT_THRESHOLDS {
        bucket += (act >= t as u8) as u8;
    }
    // Both valid: by activity; else neither -> CTX_RES + 10, left only -> + 8, up only -> + 9.
    let not_both = CTX_RES as u8 + 10 - 2 * (l & (u ^ 1)) - (u & (l ^ 1));
    if l & u != 0 {
        CTX_RES as u8 + bucket
    } else {
        not_both
    }
}

/// `z` as stored for the contexts of the next row: saturated at 127 (see [`row_contexts`]).
#[inline(always)]
pub(super) fn sat(z: u32) -> u8 {
    z.min(127) as u8
}

/// Packs the contexts `ctx[x]` of the valid pixels (`cm[x] != 0`) of a row to the front of
/// `cc` (room for the row plus 8); returns their number. Eight valid pixels in a row (the
/// usual case) are copied at once; else every pixel is written and the count advances on
/// valid ones.
pub(super) fn pack_contexts(cm: &[u8], ctx: &[u8], cc: &mut [u8]) -> usize {
    let mut nv = 0usize;
    for (m8, c8) in cm.chunks(8).zip(ctx.chunks(8)) {
        if m8 == [1; 8] {
            cc[nv..nv + 8].copy_from_slice(c8);
            nv += 8;
        } else {
            for (&m, &c) in m8.iter().zip(c8) {
                cc[nv] = c;
                nv += m as usize;
            }
        }
    }
    nv
}

/// Length of the decoder's padded palette: 0 (holes), up to 65535 entries, and zeros, so
/// that any `u16` + 1 is an index.
pub(super) const PAL_LEN: usize = 65537;

/// Padded row buffers: index 0 and `w + 1` are always holes. `cv`, `pv`: values (palette
/// indices or depth); `cz`, `pz`: residuals saturated with [`sat`], for the contexts.
#[derive(Default)]
struct Rows {
    cm: Vec<u8>,
    pm: Vec<u8>,
    cv: Vec<u16>,
    pv: Vec<u16>,
    cz: Vec<u8>,
    pz: Vec<u8>,
    ctx: Vec<u8>,
    d: Vec<u8>,
    /// `grad-rans`: the row's gradient term, and scratch.
    g: Vec<u16>,
    t: Vec<u16>,
}

impl Rows {
    fn reset(&mut self, w: usize) {
        for m in [
            &mut self.cm,
            &mut self.pm,
            &mut self.ctx,
            &mut self.d,
            &mut self.cz,
            &mut self.pz,
        ] {
            m.clear();
            m.resize(w + 2, 0);
        }
        for v in [&mut self.cv, &mut self.pv, &mut self.g, &mut self.t] {
            v.clear();
            v.resize(w + 2, 0);
        }
    }
    fn swap(&mut self) {
        std::mem::swap(&mut self.cm, &mut self.pm);
        std::mem::swap(&mut self.cv, &mut self.pv);
        std::mem::swap(&mut self.cz, &mut self.pz);
    }
}

#[derive(Default)]
struct EncScratch {
    quant: Vec<u16>,
    lut: Option<(ErrorBound, Vec<u16>)>,
    seen: Vec<u8>,
    rank: Vec<u16>,
    symbols: Vec<u16>,
    bits: BitWriter,
    words: Vec<u16>,
    rows: Rows,
    /// Residuals of a row (zigzag), at every pixel.
    zs: Vec<u32>,
    enc: Vec<EncSym>,
}

struct DecScratch {
    mask: Vec<u8>,
    pal: Vec<u16>,
    tables: DecTables,
    rows: Rows,
    /// Contexts and values of the valid pixels of a row.
    cc: Vec<u8>,
    zc: Vec<u32>,
}

thread_local! {
    static ENC: RefCell<EncScratch> = RefCell::new(EncScratch::default());
    static DEC: RefCell<DecScratch> = RefCell::new(DecScratch {
        mask: Vec::new(),
        pal: Vec::new(),
        tables: DecTables::default(),
        rows: Rows::default(),
        cc: Vec::new(),
        zc: Vec::new(),
    });
}

#[inline(always)]
fn push_value(symbols: &mut Vec<u16>, bits: &mut BitWriter, ctx: u8, v: u32) {
    let t = rans::token_with_bits(v, bits);
    symbols.push((ctx as u16) << SYM_CTX_SHIFT | t as u16);
}

/// The end of the run of valid (non-zero) or hole (zero) samples that starts at `i`: 32
/// samples at a time while a whole block continues the run (a branch-free count that the
/// compiler vectorises), then one at a time.
fn run_end(src: &[u16], mut i: usize, valid: bool) -> usize {
    const B: usize = 32;
    let want = if valid { 0 } else { B as u8 };
    while let Some(block) = src.get(i..i + B) {
        let zeros: u8 = block.iter().map(|&v| (v == 0) as u8).sum();
        if zeros != want {
            break;
        }
        i += B;
    }
    while i < src.len() && (src[i] != 0) == valid {
        i += 1;
    }
    i
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes one frame (`depth.len() == width * height`, already checked by the caller).
pub(super) fn encode(
    kind: Kind,
    depth: &[u16],
    width: u32,
    height: u32,
    bound: ErrorBound,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    ENC.with_borrow_mut(|s| {
        let EncScratch {
            quant,
            lut,
            seen,
            rank,
            symbols,
            bits,
            words,
            rows,
            zs,
            enc,
        } = s;
        // Lossy: map every value to its representative first (holes stay 0).
        let src: &[u16] = match bound {
            ErrorBound::Lossless => depth,
            _ => {
                if lut.as_ref().map(|(b, _)| *b) != Some(bound) {
                    *lut = Some((bound, bound.lut()));
                }
                let l = &lut.as_ref().expect("set above").1;
                quant.clear();
                quant.extend(depth.iter().map(|&v| l[v as usize]));
                quant
            }
        };
        let (w, h, n) = (width as usize, height as usize, depth.len());
        symbols.clear();
        symbols.reserve(n + 1024);
        bits.clear();

        // Palette (§8.4.2): distinct non-zero values, sorted. The values present are marked
        // with plain byte stores (64 KiB; no read-modify-write chain between neighbouring
        // pixels); `rank` is written for the values present only, and only those are looked
        // up (holes never use theirs).
        seen.clear();
        seen.resize(65536, 0);
        for &v in src {
            seen[v as usize] = 1;
        }
        let k: u32 = seen[1..].iter().map(|&b| b as u32).sum();
        let palette = k > 0 && (k as usize) * 2 <= n;
        if palette {
            rank.resize(65536, 0);
            rank[0] = 0;
            let mut next = 0u16;
            let mut prev = 0u32;
            for v in 1..65536u32 {
                if seen[v as usize] != 0 {
                    rank[v as usize] = next;
                    next += 1;
                    push_value(symbols, bits, CTX_PALETTE, v - prev - 1);
                    prev = v;
                }
            }
        }

        // Hole mask as alternating runs, valid first (§8.4.2).
        let mut i = 0;
        let mut valid = true;
        while i < n {
            let start = i;
            i = run_end(src, i, valid);
            let ctx = if valid { CTX_VALID_RUN } else { CTX_HOLE_RUN };
            push_value(symbols, bits, ctx, (i - start) as u32);
            valid = !valid;
        }

        // Residuals, row by row (§8.4.3).
        rows.reset(w);
        zs.clear();
        zs.resize(w + 2, 0);
        let mut last = 0u32;
        // The symbol buffer and the bit writer in locals, so that their lengths and bit
        // accumulator stay in registers instead of being reloaded after every store.
        let (mut syms, mut bw) = (std::mem::take(symbols), std::mem::take(bits));
        #[cfg(target_arch = "x86_64")]
        let simd = super::grad_x86::available();
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            let Rows {
                cm,
                pm,
                cv,
                pv,
                cz,
                pz,
                ctx,
                d,
                g,
                ..
            } = rows;
            if palette {
                for ((m, c), &v) in cm[1..=w].iter_mut().zip(&mut cv[1..=w]).zip(row) {
                    *m = (v != 0) as u8;
                    *c = rank[v as usize];
                }
            } else {
                for ((m, c), &v) in cm[1..=w].iter_mut().zip(&mut cv[1..=w]).zip(row) {
                    *m = (v != 0) as u8;
                    *c = v;
                }
            }
            match kind {
                Kind::Med => {
                    med::row_contexts(cm, pm, pv, pz, d, ctx);
                    med::encode_residuals(cm, pm, cv, pv, zs, &mut last);
                }
                Kind::Grad | Kind::Grad32 => {
                    #[cfg(target_arch = "x86_64")]
                    if simd {
                        // SAFETY: the CPU has AVX2 (checked above).
                        unsafe { super::grad_x86::contexts(cm, pm, pv, pz, d, ctx) };
                        grad::grad_gradient(pv, g);
                        let base = syms.len();
                        syms.resize(base + w + 16, 0);
                        // SAFETY: as above.
                        let k = unsafe {
                            super::grad_x86::encode_row(
                                &cm[1..=w],
                                &ctx[1..=w],
                                &g[1..=w],
                                &mut cv[1..=w],
                                &mut cz[1..=w],
                                &mut syms[base..],
                                &mut bw,
                            )
                        };
                        syms.truncate(base + k);
                        rows.swap();
                        continue;
                    }
                    grad::grad_contexts(cm, pm, pv, pz, d, ctx);
                    grad::grad_gradient(pv, g);
                    grad::grad_residuals(cm, cv, g, zs);
                }
            }
            let base = syms.len();
            syms.resize(base + w, 0);
            let out = &mut syms[base..];
            let mut k = 0usize;
            for (((&m, &c), &z), zsat) in cm[1..=w]
                .iter()
                .zip(&ctx[1..=w])
                .zip(&zs[1..=w])
                .zip(&mut cz[1..=w])
            {
                // 0 at holes.
                let z = z & 0u32.wrapping_sub(m as u32);
                *zsat = sat(z);
                let t = rans::token_with_bits(z, &mut bw);
                // Every pixel writes, valid ones advance: packs the valid pixels' symbols.
                if let Some(o) = out.get_mut(k) {
                    *o = (c as u16) << SYM_CTX_SHIFT | t as u16;
                }
                k += m as usize;
            }
            syms.truncate(base + k);
            rows.swap();
        }
        (*symbols, *bits) = (syms, bw);
        bits.flush();

        // Symbol counts: four partial histograms, so that runs of one symbol do not wait on
        // the previous increment of the same counter.
        let mut part = vec![[0u32; ENC_SLOTS]; 4];
        let mut chunks = symbols.chunks_exact(4);
        for c in &mut chunks {
            for (h, &s) in part.iter_mut().zip(c) {
                h[s as usize & (ENC_SLOTS - 1)] += 1;
            }
        }
        for &s in chunks.remainder() {
            part[0][s as usize & (ENC_SLOTS - 1)] += 1;
        }
        let mut counts = vec![[0u32; NTOK]; NCTX];
        for (c, cnt) in counts.iter_mut().enumerate() {
            for (t, v) in cnt.iter_mut().enumerate() {
                let i = c << SYM_CTX_SHIFT | t;
                *v = part.iter().map(|h| h[i]).sum();
            }
        }

        // Frequency tables and the rANS stream.
        out.clear();
        out.push(if palette { FLAG_PALETTE } else { 0 });
        let (bound_kind, value) = bound.to_header();
        out.push(bound_kind);
        out.extend_from_slice(&value.to_le_bytes());
        out.extend_from_slice(&width.to_le_bytes());
        out.extend_from_slice(&height.to_le_bytes());
        out.extend_from_slice(&(if palette { k } else { 0 }).to_le_bytes());
        out.extend_from_slice(&[0; 8]); // rans_len, bits_len: filled in below
        enc.clear();
        enc.resize(ENC_SLOTS, EncSym::default());
        let enc: &mut [EncSym; ENC_SLOTS] = enc.as_mut_slice().try_into().expect("sized above");
        for (i, c) in counts.iter().enumerate() {
            let mut f = [0u16; NTOK];
            let nsym = rans::normalize(c, &mut f);
            rans::enc_table(i, &f, enc);
            out.push(nsym as u8);
            for &fr in &f[..nsym] {
                put_varint(out, fr as u32);
            }
        }
        let states = match kind {
            Kind::Med => rans::encode::<{ med_rans::STATES }>(symbols, enc, words).to_vec(),
            Kind::Grad => rans::encode::<{ grad_rans::STATES }>(symbols, enc, words).to_vec(),
            Kind::Grad32 => rans::encode::<{ grad_rans32::STATES }>(symbols, enc, words).to_vec(),
        };
        let rans_len = (words.len() * 2) as u32;
        out[18..22].copy_from_slice(&rans_len.to_le_bytes());
        out[22..26].copy_from_slice(&(bits.bytes.len() as u32).to_le_bytes());
        for st in states {
            out.extend_from_slice(&st.to_le_bytes());
        }
        out.reserve(words.len() * 2 + bits.bytes.len());
        for wd in words.iter() {
            out.extend_from_slice(&wd.to_le_bytes());
        }
        out.extend_from_slice(&bits.bytes);
        Ok(())
    })
}

fn u32_at(p: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(p[off..off + 4].try_into().expect("4 bytes"))
}

/// The parsed fixed header.
pub struct Header {
    pub flags: u8,
    pub bound: ErrorBound,
    pub palette_len: u32,
    pub rans_len: usize,
    pub bits_len: usize,
}

/// Checks the fixed header against the frame size without allocating (§8.4.1).
pub fn parse_header(
    kind: Kind,
    payload: &[u8],
    width: u32,
    height: u32,
) -> Result<Header, CodecError> {
    let corrupt = |d: &str| kind.corrupt(d);
    let min = HEADER_LEN + NCTX + 4 * kind.states();
    if payload.len() < min {
        return Err(CodecError::BadPayloadLen {
            codec: kind.name(),
            expected: min,
            actual: payload.len(),
        });
    }
    let flags = payload[0];
    if flags & !FLAG_PALETTE != 0 {
        return Err(corrupt(&format!("unknown flags 0x{flags:02x}")));
    }
    let bound = ErrorBound::from_header(payload[1], u32_at(payload, 2))
        .ok_or_else(|| corrupt(&format!("bad error bound kind {}", payload[1])))?;
    let (pw, ph) = (u32_at(payload, 6), u32_at(payload, 10));
    if (pw, ph) != (width, height) {
        return Err(corrupt(&format!(
            "payload is for a {pw}x{ph} frame, the stream is {width}x{height}"
        )));
    }
    let palette_len = u32_at(payload, 14);
    let n = width as u64 * height as u64;
    let pal_ok = if flags & FLAG_PALETTE != 0 {
        (1..=65535).contains(&palette_len) && palette_len as u64 <= n
    } else {
        palette_len == 0
    };
    if !pal_ok {
        return Err(corrupt(&format!("bad palette size {palette_len}")));
    }
    let rans_len = u32_at(payload, 18) as usize;
    let bits_len = u32_at(payload, 22) as usize;
    if rans_len % 2 != 0
        || rans_len as u64 + bits_len as u64 + 4 * kind.states() as u64 > payload.len() as u64
    {
        return Err(corrupt(&format!(
            "stream lengths {rans_len} + {bits_len} exceed the payload"
        )));
    }
    Ok(Header {
        flags,
        bound,
        palette_len,
        rans_len,
        bits_len,
    })
}

/// Decodes one frame into `out` (`out.len() == width * height`, checked by the caller).
pub(super) fn decode(
    kind: Kind,
    payload: &[u8],
    width: u32,
    height: u32,
    out: &mut [u16],
) -> Result<(), CodecError> {
    match kind {
        Kind::Med => decode_with::<{ med_rans::STATES }>(kind, payload, width, height, out),
        Kind::Grad => decode_with::<{ grad_rans::STATES }>(kind, payload, width, height, out),
        Kind::Grad32 => decode_with::<{ grad_rans32::STATES }>(kind, payload, width, height, out),
    }
}

/// [`decode`] with `N = kind.states()` rANS states.
fn decode_with<const N: usize>(
    kind: Kind,
    payload: &[u8],
    width: u32,
    height: u32,
    out: &mut [u16],
) -> Result<(), CodecError> {
    debug_assert_eq!(N, kind.states());
    let corrupt = |d: &str| kind.corrupt(d);
    let hd = parse_header(kind, payload, width, height)?;
    let (w, h, n) = (width as usize, height as usize, out.len());
    // Tables.
    let mut pos = HEADER_LEN;
    let simd_rans = rans::Decoder::<N>::simd();
    DEC.with_borrow_mut(|s| {
        let DecScratch {
            mask,
            pal,
            tables,
            rows,
            cc,
            zc,
        } = s;
        for ctx in 0..NCTX {
            let nsym = *payload
                .get(pos)
                .ok_or_else(|| corrupt("truncated tables"))? as usize;
            pos += 1;
            if nsym > NTOK {
                return Err(corrupt(&format!("table with {nsym} symbols")));
            }
            let mut f = [0u16; NTOK];
            let mut sum = 0u32;
            for fr in f.iter_mut().take(nsym) {
                let mut v = 0u32;
                let mut shift = 0;
                loop {
                    let b = *payload
                        .get(pos)
                        .ok_or_else(|| corrupt("truncated tables"))?;
                    pos += 1;
                    v |= ((b & 0x7F) as u32) << shift;
                    if b & 0x80 == 0 {
                        break;
                    }
                    shift += 7;
                    if shift > 14 {
                        return Err(corrupt("frequency varint too long"));
                    }
                }
                if v > PROB_SCALE {
                    return Err(corrupt(&format!("frequency {v} > {PROB_SCALE}")));
                }
                *fr = v as u16;
                sum += v;
            }
            if nsym > 0 && sum != PROB_SCALE {
                return Err(corrupt(&format!("frequencies sum to {sum}")));
            }
            tables.set(ctx, &f);
            if simd_rans {
                tables.set_packed(ctx, &f);
            }
        }
        let end = pos as u64 + 4 * N as u64 + hd.rans_len as u64 + hd.bits_len as u64;
        if end != payload.len() as u64 {
            return Err(CodecError::BadPayloadLen {
                codec: kind.name(),
                expected: end as usize,
                actual: payload.len(),
            });
        }
        let states: [u32; N] = std::array::from_fn(|i| u32_at(payload, pos + 4 * i));
        pos += 4 * N;
        let mut dec = rans::Decoder::<N>::new(states, &payload[pos..pos + hd.rans_len]);
        debug_assert_eq!(simd_rans, rans::Decoder::<N>::simd());
        let mut bits = BitReader::new(&payload[pos + hd.rans_len..]);
        let mut bad = false;
        let mut value = |dec: &mut rans::Decoder<N>, ctx: u8, bad: &mut bool| -> u32 {
            let t = dec.get(tables, ctx);
            if t < rans::DIRECT {
                t
            } else if t as usize >= NTOK {
                *bad = true;
                0
            } else {
                let (nb, base) = rans::token_base(t);
                base | bits.get(nb)
            }
        };

        // Palette, after a 0 for holes; padded with zeros to `PAL_LEN` entries.
        pal.clear();
        pal.push(0);
        let mut prev = 0u32;
        for _ in 0..hd.palette_len {
            let v = prev + 1 + value(&mut dec, CTX_PALETTE, &mut bad);
            if v > 65535 {
                return Err(corrupt("palette value above 65535"));
            }
            pal.push(v as u16);
            prev = v;
        }
        pal.resize(PAL_LEN, 0);

        // Hole mask.
        mask.clear();
        mask.resize(n, 0);
        let mut i = 0usize;
        let mut valid = true;
        let mut first = true;
        while i < n {
            let ctx = if valid { CTX_VALID_RUN } else { CTX_HOLE_RUN };
            let run = value(&mut dec, ctx, &mut bad) as usize;
            if bad || (run == 0 && !first) || run > n - i {
                return Err(corrupt(&format!("bad run of {run} at pixel {i}")));
            }
            if valid {
                mask[i..i + run].fill(1);
            }
            i += run;
            valid = !valid;
            first = false;
        }

        // Residuals and reconstruction, row by row.
        let palette = hd.flags & FLAG_PALETTE != 0;
        let (lo, hi) = if palette {
            (0i32, hd.palette_len as i32 - 1)
        } else {
            (1i32, 65535i32)
        };
        let span = (hi - lo) as u16;
        rows.reset(w);
        cc.clear();
        cc.resize(w + 9, 0);
        zc.clear();
        zc.resize(w + 9, 0);
        let pal1: &[u16; PAL_LEN] = pal[..PAL_LEN].try_into().expect("padded above");
        #[cfg(target_arch = "x86_64")]
        let simd = super::grad_x86::available();
        let mut last = 0u32;
        for y in 0..h {
            let Rows {
                cm,
                pm,
                cv,
                pv,
                cz,
                pz,
                ctx,
                d,
                g,
                t,
            } = rows;
            cm[1..=w].copy_from_slice(&mask[y * w..(y + 1) * w]);
            match kind {
                Kind::Med => med::row_contexts(cm, pm, pv, pz, d, ctx),
                Kind::Grad | Kind::Grad32 => {
                    #[cfg(target_arch = "x86_64")]
                    if simd {
                        // SAFETY: the CPU has AVX2 (checked above).
                        unsafe { super::grad_x86::contexts(cm, pm, pv, pz, d, ctx) };
                    } else {
                        grad::grad_contexts(cm, pm, pv, pz, d, ctx);
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    grad::grad_contexts(cm, pm, pv, pz, d, ctx);
                    grad::grad_gradient(pv, g);
                }
            }
            // The contexts of the valid pixels, packed.
            #[cfg(target_arch = "x86_64")]
            let nv = if simd {
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe { super::grad_x86::pack_contexts(&cm[1..=w], &ctx[1..=w], cc) }
            } else {
                pack_contexts(&cm[1..=w], &ctx[1..=w], cc)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let nv = pack_contexts(&cm[1..=w], &ctx[1..=w], cc);
            if !dec.values(tables, &cc[..nv], &mut zc[..nv], &mut bits) {
                return Err(corrupt("unused context in the residual stream"));
            }
            let orow = &mut out[y * w..(y + 1) * w];
            #[cfg(target_arch = "x86_64")]
            if simd && kind != Kind::Med {
                let p = palette.then_some(pal1);
                // SAFETY: the CPU has AVX2 (checked above).
                let ok = unsafe {
                    super::grad_x86::reconstruct(
                        &cm[1..=w],
                        &g[1..=w],
                        zc,
                        &mut cv[1..=w],
                        &mut cz[1..=w],
                        orow,
                        p,
                        lo as u16,
                        span,
                    )
                };
                if !ok {
                    // The scalar pass finds the first bad pixel, for the message.
                    let x = grad::grad_reconstruct(cm, g, &zc[..nv], cv, cz, t, lo as u16, span);
                    return Err(corrupt(&format!(
                        "pixel {} decodes out of range",
                        y * w + x.unwrap_or(1) - 1
                    )));
                }
                rows.swap();
                continue;
            }
            let bad_pixel = match kind {
                Kind::Med => {
                    let row_last = last;
                    if med::reconstruct(cm, pm, pv, cv, cz, zc, &mut last, lo, hi) {
                        None
                    } else {
                        // Find the first bad pixel again, for the message.
                        let mut l = row_last;
                        Some(med::first_out_of_range(cm, pm, pv, zc, &mut l, lo, hi))
                    }
                }
                Kind::Grad | Kind::Grad32 => {
                    grad::grad_reconstruct(cm, g, &zc[..nv], cv, cz, t, lo as u16, span)
                }
            };
            if let Some(x) = bad_pixel {
                return Err(corrupt(&format!(
                    "pixel {} decodes out of range",
                    y * w + x - 1
                )));
            }
            // Holes are 0 (`grad-rans` keeps its fill values in `cv`).
            if palette {
                // `pal1[0]` is 0 (a hole), `pal1[i + 1]` the value of palette index `i`.
                for ((o, &v), &m) in orow.iter_mut().zip(&cv[1..=w]).zip(&cm[1..=w]) {
                    *o = pal1[(v as usize + 1) & 0usize.wrapping_sub(m as usize)];
                }
            } else {
                for ((o, &v), &m) in orow.iter_mut().zip(&cv[1..=w]).zip(&cm[1..=w]) {
                    *o = v & 0u16.wrapping_sub(m as u16);
                }
            }
            rows.swap();
        }
        if !dec.finish() || bits.bad() {
            return Err(corrupt(
                "entropy-coded streams do not end where they should",
            ));
        }
        Ok(())
    })
}
