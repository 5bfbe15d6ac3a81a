//! Static rANS entropy coding for `med-rans` (`format-spec.md` §8.4.3-§8.4.5): hybrid-uint
//! tokens with raw extra bits, per-context frequency tables, four interleaved 32-bit rANS
//! states with 16-bit renormalisation, and an LSB-first bit stream for the extra bits.
//!
//! The decoder never fails in its inner loop: reading past the end of a stream yields zeros
//! and sets a flag, and a token from an unused context is a sentinel. Callers check
//! [`Decoder::finish`] and [`BitReader::bad`] once per frame.

pub use super::spec::med_rans::{DIRECT, NTOK, PROB_BITS, RANS_L};

/// Sum of every used context's frequencies.
pub const PROB_SCALE: u32 = 1 << PROB_BITS;
/// Decoder-table sentinel for a context that the frame does not use.
pub const BAD_TOKEN: u8 = 0xFF;

/// Splits `v` into (token, number of extra bits, extra bits).
#[inline]
pub fn tokenize(v: u32) -> (u8, u32, u32) {
    if v < DIRECT {
        (v as u8, 0, 0)
    } else {
        let k = 32 - v.leading_zeros(); // bit length, >= 6
        let n = k - 2;
        let tok = DIRECT + 2 * (k - 6) + ((v >> n) & 1);
        (tok as u8, n, v & ((1 << n) - 1))
    }
}

/// The token of value `v`; its extra bits (if any) go to `bits`.
#[inline(always)]
pub fn token_with_bits(v: u32, bits: &mut BitWriter) -> u32 {
    if v < DIRECT {
        v
    } else {
        let (t, n, e) = tokenize(v);
        bits.put(e, n);
        t as u32
    }
}

/// Number of extra bits of token `t` (`t < NTOK`) and the value without them.
#[inline]
pub fn token_base(t: u32) -> (u32, u32) {
    if t < DIRECT {
        (0, t)
    } else {
        let k = (t - DIRECT) / 2 + 6;
        let n = k - 2;
        (n, (1 << (k - 1)) | ((t & 1) << n))
    }
}

/// Scales `counts` to frequencies summing to [`PROB_SCALE`], every used symbol at least 1.
/// Returns the number of symbols up to the last used one (0 if none is used).
pub fn normalize(counts: &[u32; NTOK], freqs: &mut [u16; NTOK]) -> usize {
    *freqs = [0; NTOK];
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    if total == 0 {
        return 0;
    }
    let mut sum: i64 = 0;
    let mut best = 0;
    for (i, (&c, f)) in counts.iter().zip(freqs.iter_mut()).enumerate() {
        if c > 0 {
            *f = ((c as u64 * PROB_SCALE as u64 + total / 2) / total).max(1) as u16;
            sum += *f as i64;
            if c > counts[best] {
                best = i;
            }
        }
    }
    let mut excess = sum - PROB_SCALE as i64;
    if excess < 0 {
        freqs[best] += (-excess) as u16;
    }
    // Too much: take from the largest frequencies first, never below 1.
    while excess > 0 {
        let (i, _) = freqs
            .iter()
            .enumerate()
            .max_by_key(|(_, &f)| f)
            .expect("NTOK > 0");
        let take = (excess as u16).min(freqs[i] - 1).min(freqs[i] / 2).max(1);
        freqs[i] -= take;
        excess -= take as i64;
    }
    NTOK - freqs.iter().rev().take_while(|&&f| f == 0).count()
}

/// Encoder-side symbol parameters. The encoder divides by multiplying: `x / freq ==
/// (x * (2^32 + rcp)) >> (32 + shift)` for every `x < 2^32` (Granlund-Montgomery round-up
/// method; the reciprocal is always in `[2^32, 2^33)`, so only its low 32 bits are stored and
/// the product fits in 64 bits as `x + (x * rcp >> 32)`).
#[derive(Clone, Copy, Default)]
pub struct EncSym {
    rcp: u32,
    /// Renormalise (emit 16 bits) before coding when `state >> RENORM_SHIFT >= freq`.
    freq: u16,
    cum: u16,
    /// `PROB_SCALE - freq`: the new state is `x + cum + (x / freq) * cmpl`.
    cmpl: u16,
    shift: u16,
}

/// `state >= freq << RENORM_SHIFT` is the renormalisation bound of a symbol of frequency
/// `freq` (`((RANS_L >> PROB_BITS) << 16) * freq`).
pub(super) const RENORM_SHIFT: u32 = RANS_L.trailing_zeros() - PROB_BITS + 16;

impl EncSym {
    pub fn new(freq: u32, cum: u32) -> Self {
        if freq == 0 {
            return EncSym::default();
        }
        // shift = ceil(log2 freq); rcp = ceil(2^(32 + shift) / freq) in [2^32, 2^33).
        let shift = 32 - (freq - 1).leading_zeros();
        let rcp = (1u128 << (32 + shift)).div_ceil(freq as u128);
        debug_assert!(rcp >> 32 == 1);
        EncSym {
            rcp: rcp as u32,
            freq: freq as u16,
            cum: cum as u16,
            cmpl: (PROB_SCALE - freq) as u16,
            shift: shift as u16,
        }
    }

    /// The SIMD encoder's view: the reciprocal, and `freq | cum << 12 | shift << 23`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn packed(&self) -> (u32, u32) {
        (
            self.rcp,
            self.freq as u32 | (self.cum as u32) << 12 | (self.shift as u32) << 23,
        )
    }

    /// `x / freq`.
    #[inline(always)]
    pub fn div(&self, x: u32) -> u32 {
        ((x as u64 + ((x as u64 * self.rcp as u64) >> 32)) >> self.shift) as u32
    }
}

/// Symbols as the encoder takes them: `ctx << SYM_CTX_SHIFT | token`.
pub const SYM_CTX_SHIFT: u32 = 7;
/// Size of the encoder table, indexed by symbol.
pub const ENC_SLOTS: usize = CTX_SLOTS << SYM_CTX_SHIFT;

/// Builds the encoder table of context `ctx` from its frequencies.
pub fn enc_table(ctx: usize, freqs: &[u16; NTOK], table: &mut [EncSym; ENC_SLOTS]) {
    let mut cum = 0u32;
    for (f, e) in freqs.iter().zip(&mut table[ctx << SYM_CTX_SHIFT..]) {
        *e = EncSym::new(*f as u32, cum);
        cum += *f as u32;
    }
}

/// One encoder step of state `st` with symbol `s`: renormalises (the low 16 bits of the state
/// are always written at `buf[*wp]`, and `*wp` advances only when they are emitted), then
/// codes the symbol.
#[inline(always)]
pub(super) fn put(
    st: &mut u32,
    s: u16,
    table: &[EncSym; ENC_SLOTS],
    buf: &mut [u16],
    wp: &mut usize,
) {
    let s = table[s as usize & (ENC_SLOTS - 1)];
    debug_assert!(s.freq > 0);
    let x = *st;
    let emit = x >> RENORM_SHIFT >= s.freq as u32;
    if let Some(w) = buf.get_mut(*wp) {
        *w = x as u16;
    }
    *wp += emit as usize;
    let x = x >> (16 * emit as u32);
    let q = s.div(x);
    *st = x
        .wrapping_add(s.cum as u32)
        .wrapping_add(q.wrapping_mul(s.cmpl as u32));
}

/// rANS-encodes `symbols` (see [`SYM_CTX_SHIFT`]) given in **decode order** with `N`
/// interleaved states (symbol j uses state `j % N`); returns the `N` initial states and leaves
/// in `words` the `u16` words in the order the decoder reads them.
pub fn encode<const N: usize>(
    symbols: &[u16],
    table: &[EncSym; ENC_SLOTS],
    words: &mut Vec<u16>,
) -> [u32; N] {
    #[cfg(target_arch = "x86_64")]
    if N % 8 == 0 && N >= 16 && super::rans_x86::available() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { super::rans_x86::encode::<N>(symbols, table, words) };
    }
    // At most one word per symbol (after emitting one, the state is below 2^16), plus the
    // slot that the last symbol writes without emitting.
    words.clear();
    words.resize(symbols.len() + 1, 0);
    let buf = &mut words[..];
    let mut wp = 0usize;
    let mut x = [RANS_L; N];
    // The tail beyond the last multiple of N, then groups of N with the states in a local
    // array (symbol j always uses state j % N).
    let full = symbols.len() / N * N;
    for j in (full..symbols.len()).rev() {
        put(&mut x[j % N], symbols[j], table, buf, &mut wp);
    }
    for s in symbols[..full].chunks_exact(N).rev() {
        for j in (0..N).rev() {
            put(&mut x[j], s[j], table, buf, &mut wp);
        }
    }
    words.truncate(wp);
    words.reverse();
    x
}

/// Contexts rounded up to a power of two: a context index is masked to 4 bits, so that every
/// table lookup is in bounds by construction.
const CTX_SLOTS: usize = 16;

/// Decoder tables of all contexts, small enough to stay in the L1 cache: for context `c` and
/// slot `s`, `tok[c << PROB_BITS | s]` is the token (2 KiB per context), and
/// `sym[c << 8 | token]` is `freq | cum << 16`. A decode step is two dependent loads that hit
/// the cache, instead of one load from a 4-byte-per-slot table (8 KiB per context) that
/// misses it.
pub struct DecTables {
    tok: Box<[u8; TOK_LEN]>,
    sym: Box<[u32; CTX_SLOTS << 8]>,
    /// For the SIMD decoder, one gather per step: `packed[c << PROB_BITS | s]` is
    /// `freq | (s - cum) << 12 | token << 23` (see [`pack_slot`]); filled by
    /// [`DecTables::set_packed`] only.
    packed: Box<[u32; CTX_SLOTS << PROB_BITS]>,
}

/// A [`DecTables::packed`] entry: with it, a step is `x' = freq * (x >> PROB_BITS) + bias`
/// (12 + 11 + 8 bits).
#[inline]
const fn pack_slot(freq: u32, bias: u32, token: u32) -> u32 {
    freq | bias << 12 | token << 23
}

/// `sym` entry of the sentinel token of an unused context: a step that leaves the state as
/// it is (`freq = PROB_SCALE`, `cum = 0`).
const BAD_SYM: u32 = PROB_SCALE;

/// Length of the token table: one byte per slot of every context.
const TOK_LEN: usize = CTX_SLOTS << PROB_BITS;

impl Default for DecTables {
    fn default() -> Self {
        let mut sym = vec![0u32; CTX_SLOTS << 8];
        for c in 0..CTX_SLOTS {
            sym[c << 8 | BAD_TOKEN as usize] = BAD_SYM;
        }
        DecTables {
            tok: vec![BAD_TOKEN; TOK_LEN]
                .into_boxed_slice()
                .try_into()
                .expect("length"),
            sym: sym.into_boxed_slice().try_into().expect("length"),
            packed: (0..CTX_SLOTS << PROB_BITS)
                .map(|i| pack_slot(PROB_SCALE, i as u32 & (PROB_SCALE - 1), BAD_TOKEN as u32))
                .collect::<Box<[u32]>>()
                .try_into()
                .expect("length"),
        }
    }
}

impl DecTables {
    /// The packed table (see [`DecTables::set_packed`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn packed(&self) -> &[u32; CTX_SLOTS << PROB_BITS] {
        &self.packed
    }

    /// Fills the packed table of context `ctx` (`< 16`) for the SIMD decoder, which reads
    /// only this one; an unused context gets the sentinel token and a step that leaves the
    /// state as it is (`freq = PROB_SCALE`, `bias = slot`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn set_packed(&mut self, ctx: usize, freqs: &[u16; NTOK]) {
        let table = &mut self.packed[ctx << PROB_BITS..(ctx + 1) << PROB_BITS];
        let mut cum = 0usize;
        for (tok, &f) in freqs.iter().enumerate() {
            for (bias, e) in table[cum..cum + f as usize].iter_mut().enumerate() {
                *e = pack_slot(f as u32, bias as u32, tok as u32);
            }
            cum += f as usize;
        }
        if cum == 0 {
            for (slot, e) in table.iter_mut().enumerate() {
                *e = pack_slot(PROB_SCALE, slot as u32, BAD_TOKEN as u32);
            }
        }
    }

    /// Fills the table of context `ctx` (`< 16`); an unused context gets the sentinel token.
    pub fn set(&mut self, ctx: usize, freqs: &[u16; NTOK]) {
        let table = &mut self.tok[ctx << PROB_BITS..(ctx + 1) << PROB_BITS];
        let mut cum = 0usize;
        for (tok, &f) in freqs.iter().enumerate() {
            table[cum..cum + f as usize].fill(tok as u8);
            self.sym[ctx << 8 | tok] = f as u32 | (cum as u32) << 16;
            cum += f as usize;
        }
        if cum == 0 {
            table.fill(BAD_TOKEN);
        }
    }
}

/// One rANS decode step of state `x` in context `ctx`; renormalises from `words` at `*pos`.
/// Reading past the end yields zeros; the position still advances, so that
/// [`Decoder::finish`] sees the overrun.
#[inline(always)]
fn step(x: &mut u32, tables: &DecTables, ctx: u8, words: &[u8], pos: &mut usize) -> u32 {
    let c = (ctx as usize) & (CTX_SLOTS - 1);
    let slot = *x & (PROB_SCALE - 1);
    let t = tables.tok[c << PROB_BITS | slot as usize];
    let e = tables.sym[c << 8 | t as usize];
    let mut y = (e & 0xFFFF) * (*x >> PROB_BITS) + slot - (e >> 16);
    if y < RANS_L {
        let w = match words.get(*pos..*pos + 2) {
            Some(b) => u16::from_le_bytes([b[0], b[1]]) as u32,
            None => 0,
        };
        *pos += 2;
        y = y << 16 | w;
    }
    *x = y;
    t as u32
}

/// The value of token `t` (`>= DIRECT`), with its extra bits; `None` for a token outside the
/// alphabet (the sentinel of an unused context).
#[cold]
#[inline(never)]
pub(super) fn slow_value(t: u32, bits: &mut BitReader) -> Option<u32> {
    if t as usize >= NTOK {
        return None;
    }
    let (nb, base) = token_base(t);
    Some(base | bits.get(nb))
}

/// `N` interleaved rANS states reading `u16` words forward. Symbol j uses state `j % N`.
pub struct Decoder<'a, const N: usize> {
    x: [u32; N],
    /// [`Decoder::values`] runs the SIMD decoder (see [`Decoder::simd`]).
    simd: bool,
    /// Index of the state that decodes the next symbol.
    next: usize,
    words: &'a [u8],
    pos: usize,
}

impl<'a, const N: usize> Decoder<'a, N> {
    /// `states` are the initial states, `words` the little-endian `u16` words.
    pub fn new(states: [u32; N], words: &'a [u8]) -> Self {
        Decoder {
            x: states,
            simd: Self::simd(),
            next: 0,
            words,
            pos: 0,
        }
    }

    /// True if decoders with `N` states use the SIMD decoder on this thread, which reads
    /// the packed tables ([`DecTables::set_packed`]) instead of the others. Fixed for a
    /// thread unless [`super::set_scalar_only`] changes it.
    pub fn simd() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            N % 8 == 0 && N >= 16 && super::rans_x86::available()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Decodes the next token with context `ctx`'s table.
    #[inline(always)]
    pub fn get(&mut self, tables: &DecTables, ctx: u8) -> u32 {
        let x = &mut self.x[self.next % N];
        let s = step(x, tables, ctx, self.words, &mut self.pos);
        self.next = (self.next + 1) % N;
        s
    }

    /// Decodes one value (token and extra bits) per entry of `ctxs` into `out` (same length).
    /// Returns false if a token is outside the alphabet (a corrupt stream).
    pub fn values(
        &mut self,
        tables: &DecTables,
        ctxs: &[u8],
        out: &mut [u32],
        bits: &mut BitReader,
    ) -> bool {
        // Rotate the states so that the next symbol's state is first: the unrolled loop
        // below then always starts at lane 0.
        self.x.rotate_left(self.next);
        self.next = 0;
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            let n = ctxs.len().min(out.len());
            // SAFETY: the CPU supports AVX2 (checked above).
            let ok = unsafe {
                super::rans_x86::values(
                    &mut self.x,
                    tables,
                    self.words,
                    &mut self.pos,
                    ctxs,
                    out,
                    bits,
                )
            };
            self.next = n % N;
            return ok;
        }
        self.values_scalar(tables, ctxs, out, bits)
    }

    /// [`Self::values`] without SIMD; the states are rotated so that `x[0]` is next.
    fn values_scalar(
        &mut self,
        tables: &DecTables,
        ctxs: &[u8],
        out: &mut [u32],
        bits: &mut BitReader,
    ) -> bool {
        let mut x = self.x;
        let words = self.words;
        let mut pos = self.pos;
        let mut ok = true;
        let mut value = |x: &mut u32, c: u8, pos: &mut usize| -> u32 {
            let t = step(x, tables, c, words, pos);
            if t < DIRECT {
                t
            } else {
                slow_value(t, bits).unwrap_or_else(|| {
                    ok = false;
                    0
                })
            }
        };
        let n = ctxs.len().min(out.len());
        let (ctxs, out) = (&ctxs[..n], &mut out[..n]);
        let mut cs = ctxs.chunks_exact(N);
        let mut os = out.chunks_exact_mut(N);
        // The states in locals (registers), one statement per lane.
        macro_rules! lanes {
            ($($j:literal),*) => {{
                let mut xs = [$(x[$j]),*];
                for (c, o) in (&mut cs).zip(&mut os) {
                    $(o[$j] = value(&mut xs[$j], c[$j], &mut pos);)*
                }
                x[..xs.len()].copy_from_slice(&xs);
            }};
        }
        match N {
            8 => lanes!(0, 1, 2, 3, 4, 5, 6, 7),
            4 => lanes!(0, 1, 2, 3),
            _ => {
                for (c, o) in (&mut cs).zip(&mut os) {
                    for j in 0..N {
                        o[j] = value(&mut x[j], c[j], &mut pos);
                    }
                }
            }
        }
        let rest = cs.remainder().len();
        for (j, (&c, o)) in cs.remainder().iter().zip(os.into_remainder()).enumerate() {
            *o = value(&mut x[j], c, &mut pos);
        }
        self.x = x;
        self.next = rest;
        self.pos = pos;
        ok
    }

    /// True if the stream was consumed exactly and every state is back at its start value.
    pub fn finish(&self) -> bool {
        self.pos == self.words.len() && self.x.iter().all(|&x| x == RANS_L)
    }
}

/// LSB-first bit writer for the extra bits.
#[derive(Default)]
pub struct BitWriter {
    pub bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.acc = 0;
        self.n = 0;
    }

    /// Appends the `n <= 29` low bits of `bits`.
    #[inline]
    pub fn put(&mut self, bits: u32, n: u32) {
        self.acc |= (bits as u64) << self.n;
        self.n += n;
        if self.n >= 32 {
            self.bytes
                .extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Writes the remaining bits, the last byte padded with zero bits.
    pub fn flush(&mut self) {
        while self.n > 0 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
        self.acc = 0;
    }
}

/// LSB-first bit reader; past the end it reads zeros and remembers the overrun.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    overrun: bool,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            pos: 0,
            acc: 0,
            n: 0,
            overrun: false,
        }
    }

    /// Reads `n <= 27` bits.
    #[inline]
    pub fn get(&mut self, n: u32) -> u32 {
        while self.n < n {
            match self.bytes.get(self.pos) {
                Some(&b) => self.acc |= (b as u64) << self.n,
                None => self.overrun = true,
            }
            self.pos += 1;
            self.n += 8;
        }
        let v = (self.acc & ((1u64 << n) - 1)) as u32;
        self.acc >>= n;
        self.n -= n;
        v
    }

    /// True if more bits were read than the stream holds, or whole unread bytes remain.
    pub fn bad(&self) -> bool {
        self.overrun || self.pos < self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for v in (0..5000).chain([65535, 131069, 1 << 20, (1 << 29) - 1]) {
            let (t, n, e) = tokenize(v);
            assert!((t as usize) < NTOK, "{v}");
            let (n2, base) = token_base(t as u32);
            assert_eq!(n, n2);
            assert_eq!(base | e, v);
        }
    }

    #[test]
    fn normalize_sums_to_scale() {
        let mut f = [0u16; NTOK];
        let mut c = [0u32; NTOK];
        c[0] = 1_000_000;
        for (i, x) in c.iter_mut().enumerate().skip(1) {
            *x = (i % 3) as u32;
        }
        normalize(&c, &mut f);
        assert_eq!(f.iter().map(|&x| x as u32).sum::<u32>(), PROB_SCALE);
        assert!(c.iter().zip(&f).all(|(&c, &f)| (c > 0) == (f > 0)));
    }

    /// Encodes with `N` states, decodes the first half one token at a time and the rest
    /// in chunks of odd sizes, so that the state rotation of both paths is exercised.
    fn rans_round_trip_with<const N: usize>() {
        let syms: Vec<(u8, u8)> = (0..10_000u32)
            .map(|i| ((i % 2) as u8, ((i * 7919) % 13 % (5 + i % 2 * 30)) as u8))
            .collect();
        let mut counts = [[0u32; NTOK]; 2];
        for &(c, t) in &syms {
            counts[c as usize][t as usize] += 1;
        }
        let mut enc = [EncSym::default(); ENC_SLOTS];
        let mut dec = DecTables::default();
        for (c, cnt) in counts.iter().enumerate() {
            let mut f = [0u16; NTOK];
            normalize(cnt, &mut f);
            enc_table(c, &f, &mut enc);
            dec.set(c, &f);
            dec.set_packed(c, &f);
        }
        let mut words = Vec::new();
        let packed: Vec<u16> = syms
            .iter()
            .map(|&(c, t)| (c as u16) << SYM_CTX_SHIFT | t as u16)
            .collect();
        let states = encode::<N>(&packed, &enc, &mut words);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut d = Decoder::new(states, &bytes);
        let (first, rest) = syms.split_at(syms.len() / 2 + 1);
        for &(c, t) in first {
            assert_eq!(d.get(&dec, c), t as u32);
        }
        let mut bits = BitReader::new(&[]);
        for (k, chunk) in rest.chunks(13).enumerate() {
            let ctxs: Vec<u8> = chunk.iter().map(|&(c, _)| c).collect();
            let mut out = vec![0u32; chunk.len()];
            if k % 3 == 2 {
                for (o, &c) in out.iter_mut().zip(&ctxs) {
                    *o = d.get(&dec, c);
                }
            } else {
                assert!(d.values(&dec, &ctxs, &mut out, &mut bits));
            }
            let want: Vec<u32> = chunk.iter().map(|&(_, t)| t as u32).collect();
            assert_eq!(out, want, "chunk {k}");
        }
        assert!(d.finish());
    }

    #[test]
    fn rans_round_trip() {
        rans_round_trip_with::<4>();
        rans_round_trip_with::<8>();
        rans_round_trip_with::<1>();
        rans_round_trip_with::<32>();
    }

    /// The SIMD decoder (where the CPU has it) against the scalar one on random, mostly
    /// corrupt input: random tables (some contexts unused), states, words, contexts, chunk
    /// sizes and extra bits. Every output, the states, both stream positions and the
    /// corrupt-token flag must agree.
    #[test]
    fn simd_values_match_scalar() {
        #[cfg(target_arch = "x86_64")]
        if !super::super::rans_x86::available() {
            eprintln!("SKIP simd_values_match_scalar: this CPU has no AVX2");
            return;
        }
        let mut rnd = super::super::xorshift(0x2545_F491_4F6C_DD1Du64);
        for case in 0..300 {
            let mut dec = DecTables::default();
            for c in 0..CTX_SLOTS {
                if rnd() % 4 == 0 {
                    continue; // unused context
                }
                let mut cnt = [0u32; NTOK];
                let used = 1 + rnd() as usize % NTOK;
                for x in cnt.iter_mut().take(used) {
                    *x = (rnd() % 1000) as u32 * (rnd() % 3 != 0) as u32;
                }
                cnt[rnd() as usize % used] += 1;
                let mut f = [0u16; NTOK];
                normalize(&cnt, &mut f);
                dec.set(c, &f);
                dec.set_packed(c, &f);
            }
            let nwords = rnd() as usize % 3000 + case % 7;
            let words: Vec<u8> = (0..nwords).map(|_| rnd() as u8).collect();
            let bits: Vec<u8> = (0..rnd() as usize % 2000).map(|_| rnd() as u8).collect();
            let states: [u32; 32] = std::array::from_fn(|_| match rnd() % 4 {
                0 => RANS_L,
                1 => rnd() as u32 | RANS_L,
                _ => rnd() as u32,
            });
            let mut a = Decoder::<32>::new(states, &words);
            let mut b = Decoder::<32>::new(states, &words);
            assert!(a.simd);
            let (mut ba, mut bb) = (BitReader::new(&bits), BitReader::new(&bits));
            for _ in 0..20 {
                let n = rnd() as usize % 100;
                let ctxs: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
                let (mut oa, mut ob) = (vec![0u32; n], vec![0u32; n]);
                let ka = a.values(&dec, &ctxs, &mut oa, &mut ba);
                b.x.rotate_left(b.next);
                b.next = 0;
                let kb = b.values_scalar(&dec, &ctxs, &mut ob, &mut bb);
                assert_eq!((ka, &oa), (kb, &ob), "case {case}");
                a.x.rotate_left(a.next);
                a.next = 0;
                b.x.rotate_left(b.next);
                b.next = 0;
                assert_eq!((a.x, a.pos), (b.x, b.pos), "case {case}");
                assert_eq!(ba, bb, "case {case}");
            }
        }
    }

    /// The SIMD encoder (where the CPU has it) writes exactly the scalar encoder's words and
    /// states: random tables with frequencies from 1 to 2048 (a context with one symbol),
    /// random symbol streams of every length around the group size.
    #[test]
    fn simd_encode_matches_scalar() {
        #[cfg(target_arch = "x86_64")]
        if !super::super::rans_x86::available() {
            eprintln!("SKIP simd_encode_matches_scalar: this CPU has no AVX2");
            return;
        }
        let mut rnd = super::super::xorshift(0x853C_49E6_748F_EA9Bu64);
        for case in 0..200 {
            let mut enc = [EncSym::default(); ENC_SLOTS];
            let mut used: Vec<Vec<u8>> = Vec::new();
            for c in 0..CTX_SLOTS {
                let mut cnt = [0u32; NTOK];
                match rnd() % 4 {
                    0 => cnt[rnd() as usize % NTOK] = 1, // one symbol: frequency 2048
                    // Frequencies 2047 and 1: states near 2^32, the largest `x + x * rcp >> 32`.
                    3 => (cnt[0], cnt[1]) = (1_000_000, 1),
                    1 => cnt.iter_mut().for_each(|x| *x = 1), // many frequencies of 25-26
                    _ => {
                        for x in cnt.iter_mut() {
                            *x = [0, 1, 1, 5, 1000, 100_000][rnd() as usize % 6];
                        }
                        cnt[0] += 1;
                    }
                }
                let mut f = [0u16; NTOK];
                normalize(&cnt, &mut f);
                enc_table(c, &f, &mut enc);
                used.push((0..NTOK as u8).filter(|&t| f[t as usize] > 0).collect());
            }
            let len = rnd() as usize % 4000 + case % 64;
            let syms: Vec<u16> = (0..len)
                .map(|_| {
                    let c = rnd() as usize % CTX_SLOTS;
                    let t = used[c][rnd() as usize % used[c].len()];
                    (c as u16) << SYM_CTX_SHIFT | t as u16
                })
                .collect();
            let (mut wa, mut wb) = (Vec::new(), Vec::new());
            let a = encode::<32>(&syms, &enc, &mut wa);
            super::super::set_scalar_only(true);
            let b = encode::<32>(&syms, &enc, &mut wb);
            super::super::set_scalar_only(false);
            assert_eq!((a, &wa), (b, &wb), "case {case}");
        }
    }

    /// The SIMD encoder divides in 32 bits: for every frequency and every state it can
    /// meet (below `freq << RENORM_SHIFT` after renormalisation), `x + (x * rcp >> 32)`
    /// does not overflow.
    #[test]
    fn reciprocal_division_fits_32_bits_below_the_renormalisation_bound() {
        for f in 1..=PROB_SCALE {
            let (rcp, info) = EncSym::new(f, 0).packed();
            let shift = info >> 23;
            // The largest state: (f << RENORM_SHIFT) - 1, which is u32::MAX at f = 2048.
            let top = (((f as u64) << RENORM_SHIFT) - 1) as u32;
            for x in [top, top - 1, top / 2, top - f, RANS_L, 1 << 16 | 12345, 0] {
                let sum = x as u64 + ((x as u64 * rcp as u64) >> 32);
                assert!(sum < 1 << 32, "f {f} x {x}");
                assert_eq!((sum as u32) >> shift, x / f, "f {f} x {x}");
            }
        }
    }

    #[test]
    fn reciprocal_division_is_exact() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for f in 1..=PROB_SCALE {
            let e = EncSym::new(f, 0);
            for k in 0..200 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let x = match k {
                    0 => u32::MAX,
                    1 => u32::MAX - u32::MAX % f,
                    2 => u32::MAX - u32::MAX % f - 1,
                    3 => f - 1,
                    4 => f,
                    _ => seed as u32 >> (k % 32),
                };
                assert_eq!(e.div(x), x / f, "{x} / {f}");
            }
        }
    }

    #[test]
    fn bits_round_trip() {
        let mut w = BitWriter::default();
        for i in 0..100u32 {
            w.put(i & ((1 << (i % 28)) - 1), i % 28);
        }
        w.flush();
        let mut r = BitReader::new(&w.bytes);
        for i in 0..100u32 {
            assert_eq!(r.get(i % 28), i & ((1 << (i % 28)) - 1));
        }
        assert!(!r.bad());
    }
}
