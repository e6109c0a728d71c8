//! The words of a ChaCha8 stream (`rand_chacha::ChaCha8Rng`) computed 16
//! blocks at a time, for [`super::BulkUniform`]: the same `u64` words as
//! `rng.fill(&mut out[..])`, and the generator left where that leaves it.
//!
//! A ChaCha block is the 4x4 matrix of 32-bit words
//!
//! ```text
//! c0  c1  c2  c3       c = "expand 32-byte k"
//! k0  k1  k2  k3       k = the 32-byte seed (little-endian words)
//! k4  k5  k6  k7
//! n0  n1  s0  s1       n = 64-bit block counter, s = 64-bit stream (low word first)
//! ```
//!
//! put through 4 double rounds (ChaCha8) and added to its input; block `n` holds
//! words `16 n .. 16 n + 16` of the stream, and a `u64` is two consecutive
//! words, the earlier one in its low half (as `rand_chacha` and `rand_core`
//! have it).

use super::kernels::{dispatch, InstructionSet, Isa, IsaTask};
use rand_chacha::ChaCha8Rng;

/// Blocks computed at once, each in one lane of a `[u32; LANES]` per state word.
const LANES: usize = 16;

/// `u64` words of one group of [`LANES`] blocks.
const GROUP_WORDS: usize = LANES * 8;

/// "expand 32-byte k" as little-endian words.
const CONSTANTS: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Below this many `u64` words `rng.fill` is used: a group gives 128 words,
/// and for short requests much of a group's work is thrown away (measured:
/// `rng.fill` is faster for 64 words; for 128 words groups are 1.1-1.8 times
/// faster with AVX-512 but 0.6-1.1 times as fast with AVX2).
const MIN_WORDS: usize = 256;

/// Fills `out` with the next `u64` words of `rng` and advances it past them:
/// exactly what `rng.fill(out)` does, computed 16 blocks at a time with AVX2
/// or AVX-512 ([`dispatch`]). Short requests, and CPUs with neither (where the
/// portable loops are slower than rand_chacha's own SIMD code), use `rng.fill`.
pub fn fill_words(rng: &mut ChaCha8Rng, out: &mut [u64]) {
    if out.len() < MIN_WORDS || InstructionSet::chosen() == InstructionSet::Portable {
        rand::Rng::fill(rng, out);
    } else {
        fill_in_groups(rng, out);
    }
}

/// [`fill_words`] without its shortcuts: always in groups of blocks, with
/// [`InstructionSet::chosen`].
fn fill_in_groups(rng: &mut ChaCha8Rng, out: &mut [u64]) {
    let pos = rng.get_word_pos();
    dispatch(Fill { key: rng.get_seed(), stream: rng.get_stream(), pos, out: &mut *out });
    rng.set_word_pos(pos + 2 * out.len() as u128);
}

/// [`fill_words`]' work: the `u64` words of the stream from 32-bit word `pos` on.
struct Fill<'a> {
    key: [u8; 32],
    stream: u64,
    pos: u128,
    out: &'a mut [u64],
}

impl IsaTask for Fill<'_> {
    type Output = ();

    /// Computes the groups of blocks from the one holding word `pos` on and
    /// copies their words from `pos` on. With `P[m]` = word `2m` | word
    /// `2m + 1` << 32 (the pairs a group gives), the output from an even `pos`
    /// is `P[pos / 2 + j]`, from an odd one `P[m + j] >> 32 | P[m + j + 1] << 32`
    /// with `m = (pos - 1) / 2`. From an even `pos`, whole groups are written
    /// in place, the others through a buffer.
    #[inline(always)]
    fn run<I: Isa>(self, _isa: I) -> Self::Output {
        let Fill { key, stream, pos, mut out } = self;
        let mut state = [0u32; 16];
        state[..4].copy_from_slice(&CONSTANTS);
        for (word, bytes) in state[4..12].iter_mut().zip(key.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        state[14] = stream as u32;
        state[15] = (stream >> 32) as u32;
        // the block counter wraps at 2^64, as rand_chacha's does
        let mut block = (pos / 16) as u64;
        // pairs of the first group before the first one used
        let mut skip = (pos % 16 / 2) as usize;
        let odd = pos % 2 == 1;
        let mut buffer = [0u64; GROUP_WORDS];
        // odd `pos`: the pair whose high word is the next output's low word
        let mut low = None;
        while !out.is_empty() {
            let in_place = !odd && skip == 0 && out.len() >= GROUP_WORDS;
            let pairs = if in_place { &mut out[..GROUP_WORDS] } else { &mut buffer[..] };
            group(&state, block, pairs.try_into().expect("a group's words"));
            block = block.wrapping_add(LANES as u64);
            if in_place {
                out = &mut std::mem::take(&mut out)[GROUP_WORDS..];
                continue;
            }
            let mut pairs = &buffer[skip..];
            skip = 0;
            if odd && low.is_none() {
                low = Some(pairs[0]);
                pairs = &pairs[1..];
            }
            let n = pairs.len().min(out.len());
            let (head, rest) = std::mem::take(&mut out).split_at_mut(n);
            if let Some(low) = &mut low {
                let mut last = *low;
                for (o, &high) in head.iter_mut().zip(pairs) {
                    *o = last >> 32 | high << 32;
                    last = high;
                }
                *low = last;
            } else {
                head.copy_from_slice(&pairs[..n]);
            }
            out = rest;
        }
    }
}

/// The ChaCha quarter round on words `a, b, c, d` of every lane:
/// `a += b; d ^= a; d <<<= 16; c += d; b ^= c; b <<<= 12;`
/// `a += b; d ^= a; d <<<= 8; c += d; b ^= c; b <<<= 7` (additions mod 2^32).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `x[a][l]` .. `x[d][l]`: four rows of one lane
fn quarter_round(x: &mut [[u32; LANES]; 16], [a, b, c, d]: [usize; 4]) {
    for l in 0..LANES {
        x[a][l] = x[a][l].wrapping_add(x[b][l]);
        x[d][l] = (x[d][l] ^ x[a][l]).rotate_left(16);
        x[c][l] = x[c][l].wrapping_add(x[d][l]);
        x[b][l] = (x[b][l] ^ x[c][l]).rotate_left(12);
        x[a][l] = x[a][l].wrapping_add(x[b][l]);
        x[d][l] = (x[d][l] ^ x[a][l]).rotate_left(8);
        x[c][l] = x[c][l].wrapping_add(x[d][l]);
        x[b][l] = (x[b][l] ^ x[c][l]).rotate_left(7);
    }
}

/// Blocks `block .. block + 16` (counter mod 2^64) of the stream whose other
/// words are `state`'s, as pairs of words: `pairs[8 l + p]` = word `2p` |
/// word `2p + 1` << 32 of block `block + l`.
///
/// The blocks are kept "vertically", word `i` of block `l` in `x[i][l]`, so
/// that each step of a round is one operation on 16 lanes. Every loop runs over
/// the lanes outermost (the loop over words inside is unrolled): a loop over
/// words whose lanes had been unrolled would be vectorised across words, with
/// gathers and scatters. The words are then put in block order without either:
/// `even[h][l]` and `odd[h][l]` are pairs `2h` and `2h + 1` of block `l`; laid
/// side by side they give pairs `2h, 2h + 1` of block `l` at `both[16 h + l]`,
/// and these 16-byte pieces are copied to their places.
#[inline(always)]
fn group(state: &[u32; 16], block: u64, pairs: &mut [u64; GROUP_WORDS]) {
    let mut input = [[0u32; LANES]; 16];
    for l in 0..LANES {
        for (row, &word) in input.iter_mut().zip(state) {
            row[l] = word;
        }
        let counter = block.wrapping_add(l as u64);
        input[12][l] = counter as u32;
        input[13][l] = (counter >> 32) as u32;
    }
    let mut x = input;
    for _ in 0..4 {
        // columns, then diagonals
        for q in [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]] {
            quarter_round(&mut x, q);
        }
        for q in [[0, 5, 10, 15], [1, 6, 11, 12], [2, 7, 8, 13], [3, 4, 9, 14]] {
            quarter_round(&mut x, q);
        }
    }
    let pair = |p: usize, l: usize| {
        let word = |i: usize| x[i][l].wrapping_add(input[i][l]);
        u64::from(word(2 * p)) | u64::from(word(2 * p + 1)) << 32
    };
    let (mut even, mut odd) = ([[0u64; LANES]; 4], [[0u64; LANES]; 4]);
    for l in 0..LANES {
        for h in 0..4 {
            even[h][l] = pair(2 * h, l);
            odd[h][l] = pair(2 * h + 1, l);
        }
    }
    let mut both = [[0u64; 2]; 4 * LANES];
    for (b, (&e, &o)) in both.iter_mut().zip(even.as_flattened().iter().zip(odd.as_flattened())) {
        *b = [e, o];
    }
    for (l, block) in pairs.chunks_exact_mut(8).enumerate() {
        for (h, piece) in block.chunks_exact_mut(2).enumerate() {
            piece.copy_from_slice(&both[LANES * h + l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::run_with;
    use rand::{Rng, RngCore, SeedableRng};

    /// `rng` after `skip` single 32-bit words, at word `pos` (if any).
    fn generator(seed: u64, stream: u64, pos: Option<u128>, skip: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        if let Some(pos) = pos {
            rng.set_word_pos(pos);
        }
        for _ in 0..skip {
            rng.next_u32();
        }
        rng
    }

    const POSITIONS: [Option<u128>; 11] = [
        None,
        Some(0),
        Some(1),
        Some(5),
        Some(15),
        Some(16),
        Some(17),
        Some(63),
        Some(64),
        Some(65),
        // a block counter just below 2^32: its low word carries into the high
        Some((1 << 36) - 40),
    ];

    const LENGTHS: [usize; 12] = [0, 1, 7, 8, 31, 32, 33, 64, 100, 129, 1000, 2500];

    type Filler = fn(&mut ChaCha8Rng, &mut [u64]);
    const FILLS: [(&str, Filler); 2] = [("fill_words", fill_words), ("fill_in_groups", fill_in_groups)];

    /// The words and the generator's state afterwards are those of `rng.fill`,
    /// with and without [`fill_words`]' shortcuts.
    #[test]
    fn words_are_those_of_fill() {
        for seed in [0u64, 1, 7, 12345] {
            for stream in [0u64, 1, (1 << 40) + 3] {
                for pos in POSITIONS {
                    for skip in [0, 1, 3] {
                        for n in LENGTHS {
                            for (name, fill) in FILLS {
                                let mut a = generator(seed, stream, pos, skip);
                                let mut b = a.clone();
                                let mut got = vec![0u64; n];
                                fill(&mut a, &mut got);
                                let mut want = vec![0u64; n];
                                b.fill(&mut want[..]);
                                let case = format!(
                                    "{name}: seed {seed}, stream {stream}, pos {pos:?}, skip {skip}, {n} words"
                                );
                                assert_eq!(got, want, "{case}");
                                assert_eq!(a.get_word_pos(), b.get_word_pos(), "{case}");
                                assert_eq!(a.next_u32(), b.next_u32(), "{case}");
                                assert_eq!(a.next_u64(), b.next_u64(), "{case}");
                                assert_eq!(a, b, "{case}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The block counter wraps at 2^64 as rand_chacha's does.
    #[test]
    fn the_block_counter_wraps() {
        for pos in [(1u128 << 68) - 40, (1 << 68) - 33] {
            let mut a = generator(3, 9, Some(pos), 0);
            let mut b = a.clone();
            let (mut got, mut want) = (vec![0u64; 300], vec![0u64; 300]);
            fill_in_groups(&mut a, &mut got);
            b.fill(&mut want[..]);
            assert_eq!(got, want);
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    /// Every instruction set of this CPU gives the words of `rng.fill`.
    #[test]
    fn every_instruction_set_gives_the_same_words() {
        for pos in POSITIONS {
            for skip in [0, 1] {
                let rng = generator(42, 5, pos, skip);
                let mut want = vec![0u64; 1000];
                rng.clone().fill(&mut want[..]);
                let pos = rng.get_word_pos();
                for set in [InstructionSet::Portable, InstructionSet::Avx2, InstructionSet::Avx512] {
                    let mut out = vec![0u64; want.len()];
                    let task = Fill { key: rng.get_seed(), stream: rng.get_stream(), pos, out: &mut out };
                    if run_with(set, task).is_ok() {
                        assert_eq!(out, want, "{set:?}, pos {pos}");
                    }
                }
            }
        }
    }

    /// Throughput of `rng.fill` and of [`Fill`] per instruction set, from an
    /// even and an odd word position (not an assertion):
    /// `cargo test --release --lib keystream::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        use std::time::Instant;
        for n in [16usize, 32, 64, 128, 2500, 100_000] {
            for odd in [false, true] {
                let rounds = 50_000_000 / n;
                let mut out = vec![0u64; n];
                let mut time = |f: &mut dyn FnMut(&mut ChaCha8Rng, &mut [u64])| {
                    let mut rng = generator(1, 0, None, usize::from(odd));
                    let start = Instant::now();
                    for _ in 0..rounds {
                        f(&mut rng, &mut out);
                        std::hint::black_box(&mut out);
                    }
                    (rounds * n) as f64 / start.elapsed().as_secs_f64() / 1e6
                };
                let fill = time(&mut |rng, out| rng.fill(out));
                let mut line =
                    format!("{n:>6} words, {} position: rng.fill {fill:5.0}", ["even", "odd"][usize::from(odd)]);
                for set in [InstructionSet::Portable, InstructionSet::Avx2, InstructionSet::Avx512] {
                    if set.available() {
                        let ours = time(&mut |rng, out| {
                            let pos = rng.get_word_pos();
                            let task = Fill { key: rng.get_seed(), stream: rng.get_stream(), pos, out: &mut *out };
                            assert!(run_with(set, task).is_ok());
                            rng.set_word_pos(pos + 2 * out.len() as u128);
                        });
                        line += &format!(", {set:?} {ours:5.0} ({:.2}x)", ours / fill);
                    }
                }
                println!("{line} M words/s");
            }
        }
    }
}
