//! Constants of the rANS depth codecs, quoted from `format-spec.md` §8.4-8.6: the single
//! source of truth in code for the codec payload layouts. They live in the codec layer (as
//! lz4_flex keeps its block constants next to its codec) so that `codec` imports nothing from
//! the rest of the crate; `container::format` re-exports them. A change here changes the spec.

/// §3 Upper bound on width and height of an image stream; decoders refuse larger frames.
pub const MAX_DIMENSION: u32 = 16384;

/// §8.4 The `med-rans` codec (codec id 4).
pub mod med_rans {
    /// §8.4.1 Fixed header length.
    pub const HEADER_LEN: usize = 26;
    /// §8.4.1 `flags` bit 0: palette indices.
    pub const FLAG_PALETTE: u8 = 0x01;
    /// §8.4.4 Contexts: 0 palette, 1 valid runs, 2 hole runs, 3..=13 residuals.
    pub const NCTX: usize = 14;
    /// §8.4.4 Activity thresholds of contexts 3..=10.
    pub const ACT_THRESHOLDS: [u32; 7] = [1, 2, 4, 7, 12, 20, 40];
    /// §8.4.5 Frequencies of a used context sum to `2^PROB_BITS`.
    pub const PROB_BITS: u32 = 11;
    /// §8.4.5 Initial and final rANS state, and the renormalisation bound.
    pub const RANS_L: u32 = 1 << 16;
    /// §8.4.5 Interleaved rANS states.
    pub const STATES: usize = 4;
    /// §8.4.5 Tokens in the alphabet.
    pub const NTOK: usize = 80;
    /// §8.4.5 Values below this are their own token.
    pub const DIRECT: u32 = 32;
    /// §8.4.6 Largest relative bound, in parts per million (10 %).
    pub const MAX_RELATIVE_PPM: u32 = 100_000;
}

/// §8.5 The `grad-rans` codec (codec id 5): the layout, palette, hole runs, tokens, tables
/// and rANS of §8.4 (constants in [`med_rans`]), with a prediction whose decoding is a running
/// sum along the row, contexts from the row above only, and more rANS states.
pub mod grad_rans {
    /// §8.5 Interleaved rANS states (codec 4 has 4): more independent chains for the CPU.
    pub const STATES: usize = 8;
}

/// §8.6 The `grad-rans32` codec (codec id 6): exactly §8.5 with 32 rANS states, so that a
/// decoder can run the states as four 8-lane SIMD vectors.
pub mod grad_rans32 {
    /// §8.6 Interleaved rANS states: four vectors of eight 32-bit lanes.
    pub const STATES: usize = 32;
}
