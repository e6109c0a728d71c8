//! The inner loops over synapses and the one place where the instruction set
//! is chosen.
//!
//! Every kernel is written once, against [`Lanes`]: a vector of [`WIDTH`] = 16
//! lanes with lane-by-lane IEEE additions, multiplications, fused multiply-adds
//! (one rounding; the portable code calls `mul_add`) and masked additions.
//! [`Lanes`] is one AVX-512 register, two AVX2 registers (with FMA), or a plain
//! array ([`Portable16`]: every CPU, and `f64` always). A kernel is compiled
//! once per instruction set by [`dispatch`], which picks the widest set the CPU
//! has; since every lane computes what the plain array computes, all
//! instruction sets give the same bits. Sums over synapses use a fixed order
//! (see [`Lanes::sum`] and the kernels' docs), and blocks of inputs that hold no
//! spike in a sample are skipped without changing any bit.
//!
//! The instruction set reaches a kernel only through inlining: [`IsaTask::run`]
//! and everything it calls on the hot path are `#[inline(always)]`, and kernels
//! use plain loops rather than closures (a closure or function that is not
//! inlined into the `#[target_feature]` wrapper is compiled for the baseline
//! CPU, and its vector operations become calls: correct, but many times slower).

use super::Float;

/// Lanes of a [`Lanes`] vector. Input `i` of a row lives in block `i / WIDTH`,
/// lane `i % WIDTH`.
pub const WIDTH: usize = 16;

/// A vector of [`WIDTH`] lanes of `F`; every operation acts lane by lane.
///
/// # Safety
/// The methods of an implementation for a wider instruction set may only be
/// called on a CPU that has it: kernels call them with the token of an [`Isa`],
/// which exists only on such a CPU. Pointers must address `WIDTH` valid entries.
#[allow(clippy::missing_safety_doc)] // the trait's `# Safety` covers every method
pub trait Lanes<F: Copy>: Copy {
    unsafe fn zero() -> Self;
    unsafe fn splat(x: F) -> Self;
    unsafe fn load(p: *const F) -> Self;
    unsafe fn store(self, p: *mut F);
    unsafe fn add(self, other: Self) -> Self;
    unsafe fn mul(self, other: Self) -> Self;
    /// `self * a + b` with one rounding (fused multiply-add).
    unsafe fn mul_add(self, a: Self, b: Self) -> Self;
    /// `self + other` in the lanes whose bit is set in `mask`, `self` elsewhere.
    unsafe fn add_where(self, mask: u16, other: Self) -> Self;
    /// The sum of the lanes in a fixed tree: `a_l += a_{l+w}` for `w = 8, 4, 2, 1`,
    /// then `a_0`.
    unsafe fn sum(self) -> F;
    /// Bit `l` set where lane `l` differs from `other`'s (NaN included, as `!=` has it).
    unsafe fn unequal(self, other: Self) -> u16;
    /// Bit `l` set where lane `l` is not zero (NaN included).
    #[inline(always)]
    unsafe fn nonzero(self) -> u16 {
        self.unequal(Self::zero())
    }
    /// The `len < WIDTH` entries at `p` in the first lanes, zeros in the others
    /// (entries past `len` are not read).
    #[inline(always)]
    unsafe fn load_first(p: *const F, len: usize) -> Self {
        // zeros, then the entries (`len >= 1`: `*p` exists)
        let mut block = [*p; WIDTH];
        Self::zero().store(block.as_mut_ptr());
        for (l, b) in block.iter_mut().enumerate().take(len) {
            *b = *p.add(l);
        }
        Self::load(block.as_ptr())
    }
    /// Stores the first `len < WIDTH` lanes at `p` (entries past `len` are not written).
    #[inline(always)]
    unsafe fn store_first(self, p: *mut F, len: usize) {
        let mut block = [*p; WIDTH];
        self.store(block.as_mut_ptr());
        for (l, b) in block.iter().enumerate().take(len) {
            *p.add(l) = *b;
        }
    }
    /// `[v_0.sum(), .., v_15.sum()]`, the same additions for 16 vectors at once.
    #[inline(always)]
    unsafe fn sums(v: &[Self; WIDTH]) -> [F; WIDTH] {
        let mut out = [v[0].sum(); WIDTH];
        for (o, v) in out.iter_mut().zip(v).skip(1) {
            *o = v.sum();
        }
        out
    }
}

/// [`Lanes`] as a plain array: the reference every instruction set reproduces.
#[derive(Debug, Clone, Copy)]
pub struct Portable16<F>([F; WIDTH]);

impl<F: Float> Lanes<F> for Portable16<F> {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Portable16([F::zero(); WIDTH])
    }
    #[inline(always)]
    unsafe fn splat(x: F) -> Self {
        Portable16([x; WIDTH])
    }
    #[inline(always)]
    unsafe fn load(p: *const F) -> Self {
        Portable16(std::ptr::read_unaligned(p as *const [F; WIDTH]))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F) {
        std::ptr::write_unaligned(p as *mut [F; WIDTH], self.0)
    }
    #[inline(always)]
    unsafe fn add(mut self, other: Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
        self
    }
    #[inline(always)]
    unsafe fn mul(mut self, other: Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a *= b;
        }
        self
    }
    #[inline(always)]
    unsafe fn mul_add(mut self, a: Self, b: Self) -> Self {
        for ((s, a), b) in self.0.iter_mut().zip(a.0).zip(b.0) {
            *s = s.mul_add(a, b);
        }
        self
    }
    #[inline(always)]
    unsafe fn add_where(mut self, mask: u16, other: Self) -> Self {
        for (l, (a, b)) in self.0.iter_mut().zip(other.0).enumerate() {
            if mask >> l & 1 != 0 {
                *a += b;
            }
        }
        self
    }
    #[inline(always)]
    unsafe fn unequal(self, other: Self) -> u16 {
        let mut mask = 0u16;
        for (l, (v, o)) in self.0.iter().zip(&other.0).enumerate() {
            mask |= u16::from(v != o) << l;
        }
        mask
    }
    #[inline(always)]
    unsafe fn sum(self) -> F {
        let mut a = self.0;
        let mut width = WIDTH;
        while width > 1 {
            width /= 2;
            let (low, high) = a.split_at_mut(width);
            for (x, y) in low.iter_mut().zip(high.iter()) {
                *x += *y;
            }
        }
        a[0]
    }
}

/// An instruction set the kernels are compiled for. A token of a wider set than
/// [`Portable`] exists only on a CPU that has it.
pub trait Isa: Copy + Send + Sync + 'static {
    /// `f32` lanes in this instruction set (`f64` always uses [`Portable16`]).
    type F32: Lanes<f32>;
    /// Blocks of [`WIDTH`] synapses a row kernel keeps in registers at once.
    /// It does not change any result, only how many registers are used.
    const GROUP: usize;
    /// Rows (neurons) a row kernel runs at once, sharing the loads of the
    /// input's bit masks; 1, 2 or 4. It does not change any result either.
    const ROWS: usize;
}

/// Plain Rust, any CPU.
#[derive(Debug, Clone, Copy)]
pub struct Portable;

impl Isa for Portable {
    type F32 = Portable16<f32>;
    const GROUP: usize = 4;
    const ROWS: usize = 1;
}

/// The instruction sets [`dispatch`] chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstructionSet {
    Portable,
    Avx2,
    Avx512,
}

impl InstructionSet {
    /// Whether this CPU has the instruction set.
    pub fn available(self) -> bool {
        match self {
            InstructionSet::Portable => true,
            #[cfg(target_arch = "x86_64")]
            InstructionSet::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            InstructionSet::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest instruction set of this CPU, or a narrower one if the
    /// environment variable `HETSYN_ISA` asks for it (`portable`, `avx2`,
    /// `avx512`; for benchmarks and tests: results are the same on every set).
    pub fn chosen() -> Self {
        static CHOSEN: std::sync::OnceLock<InstructionSet> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let best = [InstructionSet::Avx512, InstructionSet::Avx2]
                .into_iter()
                .find(|set| set.available())
                .unwrap_or(InstructionSet::Portable);
            let asked = match std::env::var("HETSYN_ISA").as_deref() {
                Ok("portable") => InstructionSet::Portable,
                Ok("avx2") => InstructionSet::Avx2,
                _ => best,
            };
            asked.min(best)
        })
    }
}

/// Work to run with an instruction set: [`IsaTask::run`] is compiled once per set.
pub trait IsaTask {
    type Output;
    fn run<I: Isa>(self, isa: I) -> Self::Output;
}

/// Runs `task` with [`InstructionSet::chosen`].
pub fn dispatch<T: IsaTask>(task: T) -> T::Output {
    match run_with(InstructionSet::chosen(), task) {
        Ok(out) => out,
        Err(task) => task.run(Portable),
    }
}

/// Runs `task` with `set`, or gives it back if this CPU does not have `set`.
pub fn run_with<T: IsaTask>(set: InstructionSet, task: T) -> Result<T::Output, T> {
    if !set.available() {
        return Err(task);
    }
    match set {
        InstructionSet::Portable => Ok(task.run(Portable)),
        // SAFETY: the CPU has the instruction set (checked above).
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx2 => Ok(unsafe { x86::run_avx2(task) }),
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx512 => Ok(unsafe { x86::run_avx512(task) }),
        #[cfg(not(target_arch = "x86_64"))]
        _ => Err(task),
    }
}

/// The lanes of `F` in instruction set `I`.
pub type V<F, I> = <F as Float>::Lanes<I>;

// ---------------------------------------------------------------------------
// Buffers aligned to cache lines
// ---------------------------------------------------------------------------

/// A buffer of `len` numbers whose first entry lies on a 64-byte boundary, so
/// that blocks of [`WIDTH`] `f32` at multiples of `WIDTH` never straddle two
/// cache lines (where a block of a `Vec` falls depends on the allocator).
pub struct Aligned<F> {
    buffer: Vec<F>,
    start: usize,
    len: usize,
}

impl<F: Float> Aligned<F> {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let buffer = vec![F::zero(); len + 64 / std::mem::size_of::<F>()];
        let start = buffer.as_ptr().align_offset(64);
        assert!(start + len <= buffer.len(), "64-byte alignment of the buffer");
        Aligned { buffer, start, len }
    }
}

impl<F> std::ops::Deref for Aligned<F> {
    type Target = [F];
    fn deref(&self) -> &[F] {
        &self.buffer[self.start..self.start + self.len]
    }
}

impl<F> std::ops::DerefMut for Aligned<F> {
    fn deref_mut(&mut self) -> &mut [F] {
        &mut self.buffer[self.start..self.start + self.len]
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for Aligned<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.buffer[self.start..self.start + self.len]).finish()
    }
}

// ---------------------------------------------------------------------------
// Inputs of a set of synapses, in blocks of WIDTH
// ---------------------------------------------------------------------------

/// The input `x_i^t` of a set of synapses over all steps, arranged for the row
/// kernels: per step and block of [`WIDTH`] inputs a bit mask of the non-zero
/// inputs, their values ([`Values`]), and the blocks that hold any non-zero
/// input at all. Block `blocks` is an extra block that is always zero (the row
/// kernels pad their last group with it).
#[derive(Debug, Clone, Default)]
pub struct BlockInput<F> {
    pub steps: usize,
    /// Inputs `m`.
    pub width: usize,
    /// `ceil(m / WIDTH)`.
    pub blocks: usize,
    /// `[blocks + 1, steps]`: bit `l` of entry `(b, t)` is set when `x_{bW+l}^t != 0`.
    masks: Vec<u16>,
    values: Values<F>,
    /// First step with a non-zero input in each block (`steps` if none).
    first: Vec<usize>,
    /// The blocks with a non-zero input at some step, in increasing order.
    active: Vec<usize>,
}

/// The values of the non-zero inputs of a [`BlockInput`].
#[derive(Debug, Clone, Default)]
pub enum Values<F> {
    /// All 1 (spikes).
    #[default]
    Ones,
    /// All equal to this (e.g. spikes scaled by dropout).
    Uniform(F),
    /// `[steps, (blocks + 1) * WIDTH]`, zero-padded.
    Dense(Vec<F>),
}

impl<F: Float> BlockInput<F> {
    fn empty(steps: usize, width: usize) -> Self {
        let blocks = width.div_ceil(WIDTH);
        BlockInput {
            steps,
            width,
            blocks,
            masks: vec![0; steps * (blocks + 1)],
            values: Values::Ones,
            first: vec![steps; blocks + 1],
            active: Vec::new(),
        }
    }

    /// Spike events: the inputs with value 1 at step `t` are
    /// `active[offsets[t]..offsets[t + 1]]`; with `counts`, input `active[k]` has
    /// value `counts[k]` instead.
    #[inline(always)]
    pub fn from_events(offsets: &[u32], active: &[u32], counts: Option<&[u16]>, steps: usize, width: usize) -> Self {
        assert!(offsets.len() > steps, "spike input must have steps + 1 offsets");
        if let Some(c) = counts {
            assert_eq!(c.len(), active.len(), "spike counts must parallel the active inputs");
        }
        let mut input = Self::empty(steps, width);
        let mut seen = Seen::default();
        if counts.is_none() {
            // spikes: every value is 1, the masks are all there is to build
            for t in 0..steps {
                for &i in &active[offsets[t] as usize..offsets[t + 1] as usize] {
                    let i = i as usize;
                    assert!(i < width, "spike input channel {i} out of range");
                    input.mark(t, i);
                }
            }
            input.finish(0, seen);
            return input;
        }
        for pass in 0..2 {
            for t in 0..steps {
                for k in offsets[t] as usize..offsets[t + 1] as usize {
                    let i = active[k] as usize;
                    assert!(i < width, "spike input channel {i} out of range");
                    let value = counts.map_or(F::one(), |c| F::of(f64::from(c[k])));
                    if value != F::zero() {
                        input.note(pass, t, i, value, &mut seen);
                    }
                }
            }
            if !input.finish(pass, seen) {
                break;
            }
        }
        input
    }

    /// Dense rows `x` (`[steps, width]`), read `shift` steps late: the input of
    /// step `t` is row `t - shift` (zero for `t < shift`).
    #[inline(always)]
    pub fn from_dense<I: Isa>(isa: I, x: &[F], steps: usize, width: usize, shift: usize) -> Self {
        assert!(x.len() >= steps.saturating_sub(shift) * width, "layer input must be [steps, inputs]");
        let mut input = Self::empty(steps, width);
        let mut seen = Seen::default();
        let rows = || (shift..steps).map(|t| (t, &x[(t - shift) * width..(t - shift + 1) * width]));
        // the masks block by block, without a branch on the values (a block of
        // spikes is non-empty at random); the values are looked at again only
        // if some non-zero one is not 1
        // SAFETY (the vector operations): `load_block` reads the entries of
        // `chunk` that exist; the token of `I` proves the instruction set.
        let one = unsafe { V::<F, I>::splat(F::one()) };
        let mut not_one = 0;
        for (t, row) in rows() {
            for (b, chunk) in row.chunks(WIDTH).enumerate() {
                let block = unsafe { load_block::<F, V<F, I>>(chunk.as_ptr(), 0, chunk.len()) };
                let mask = unsafe { block.nonzero() };
                input.masks[b * steps + t] = mask;
                let first = input.first[b];
                input.first[b] = if mask != 0 { first.min(t) } else { first };
                not_one |= unsafe { block.unequal(one) } & mask;
            }
        }
        if not_one != 0 {
            for (_, row) in rows() {
                for_each_nonzero(isa, row, |i| seen.note(row[i]));
            }
        }
        if input.finish(0, seen) {
            for (t, row) in rows() {
                for_each_nonzero(isa, row, |i| input.note(1, t, i, row[i], &mut seen));
            }
        }
        input
    }

    /// Pass 0 records the masks and what the values are like, pass 1 (only
    /// when they differ) the values.
    #[inline(always)]
    fn note(&mut self, pass: usize, t: usize, i: usize, value: F, seen: &mut Seen<F>) {
        if pass == 0 {
            self.mark(t, i);
            seen.note(value);
        } else if let Values::Dense(values) = &mut self.values {
            values[(t * (self.blocks + 1)) * WIDTH + i] = value;
        }
    }

    /// Input `i` is non-zero at step `t`: its bit in the mask of its block and
    /// step, and the block's first step.
    #[inline(always)]
    fn mark(&mut self, t: usize, i: usize) {
        let b = i / WIDTH;
        self.masks[b * self.steps + t] |= 1 << (i % WIDTH);
        self.first[b] = self.first[b].min(t);
    }

    /// Ends a pass; whether another is needed (for the values).
    fn finish(&mut self, pass: usize, seen: Seen<F>) -> bool {
        if pass > 0 {
            return false;
        }
        self.active = (0..self.blocks).filter(|&b| self.first[b] < self.steps).collect();
        self.values = match seen {
            Seen { differ: true, .. } => Values::Dense(vec![F::zero(); self.steps * (self.blocks + 1) * WIDTH]),
            Seen { value: Some(v), .. } if v != F::one() => Values::Uniform(v),
            _ => Values::Ones,
        };
        matches!(self.values, Values::Dense(_))
    }

    /// Whether every non-zero input is 1.
    pub fn is_binary(&self) -> bool {
        matches!(self.values, Values::Ones)
    }

    /// The value of every non-zero input, if they are all equal but not 1, and
    /// the padded rows of values, if they differ.
    #[inline(always)]
    fn value_rows(&self) -> (Option<F>, &[F]) {
        match &self.values {
            Values::Ones => (None, &[]),
            Values::Uniform(v) => (Some(*v), &[]),
            Values::Dense(rows) => (None, rows),
        }
    }
}

/// What the values of an input seen so far are like.
#[derive(Debug, Clone, Copy, Default)]
struct Seen<F> {
    value: Option<F>,
    differ: bool,
}

impl<F: Float> Seen<F> {
    /// Takes in the non-zero value of one more input: the first is kept, and
    /// `differ` set once another is not equal to it.
    #[inline(always)]
    fn note(&mut self, value: F) {
        match self.value {
            None => self.value = Some(value),
            Some(v) => self.differ |= v != value,
        }
    }
}

/// A scratch buffer of values kept per thread, lent out by [`Scratch::take`]
/// and given back when dropped. It is reused from use to use, so it holds what
/// the previous user left there (only new entries are zero): each entry must
/// be written before it is read. (A guard rather than a closure: a closure
/// that is not inlined would lose the instruction set of its caller.)
pub struct Scratch<F: Float>(Vec<F>);

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<dyn std::any::Any>>> = const { std::cell::Cell::new(None) };
}

impl<F: Float> Scratch<F> {
    /// At least `len` values (a nested take, which none makes, gets a new buffer).
    pub fn take(len: usize) -> Self {
        let mut buffer: Vec<F> = SCRATCH.take().and_then(|b| b.downcast().ok()).map_or_else(Vec::new, |b| *b);
        if buffer.len() < len {
            buffer.resize(len, F::zero());
        }
        Scratch(buffer)
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [F] {
        &mut self.0
    }
}

impl<F: Float> Drop for Scratch<F> {
    fn drop(&mut self) {
        SCRATCH.set(Some(Box::new(std::mem::take(&mut self.0))));
    }
}

/// Calls `f(i)` for the index `i` of every non-zero entry of `x`, in
/// increasing order: a bit mask per block of [`WIDTH`] entries (the compare
/// vectorises), then its set bits.
#[inline(always)]
pub fn for_each_nonzero<F: Float, I: Isa>(isa: I, x: &[F], mut f: impl FnMut(usize)) {
    for (b, chunk) in x.chunks(WIDTH).enumerate() {
        let mut mask = nonzero_bits(isa, chunk);
        while mask != 0 {
            f(b * WIDTH + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
    }
}

/// Bit `l` set for the non-zero `x[l]` (`x` at most [`WIDTH`] long).
#[inline(always)]
fn nonzero_bits<F: Float, I: Isa>(_isa: I, x: &[F]) -> u32 {
    // SAFETY: `load_block` reads the entries of `x` that exist; the token of `I`
    // proves the instruction set.
    u32::from(unsafe { load_block::<F, V<F, I>>(x.as_ptr(), 0, x.len().min(WIDTH)).nonzero() })
}

/// Block `b` of a row of `width` entries: zeros past the end (the padding
/// block), the last, partial block through a zero-padded copy.
///
/// # Safety
/// `row` addresses `width` entries; the CPU has the instruction set of `V`.
#[inline(always)]
unsafe fn load_block<F: Float, V: Lanes<F>>(row: *const F, b: usize, width: usize) -> V {
    let start = b * WIDTH;
    if start + WIDTH <= width {
        V::load(row.add(start))
    } else if start >= width {
        V::zero()
    } else {
        V::load_first(row.add(start), width - start)
    }
}

/// Writes block `b` of a row of `width` entries (the entries that exist).
///
/// # Safety
/// As [`load_block`].
#[inline(always)]
unsafe fn store_block<F: Float, V: Lanes<F>>(v: V, row: *mut F, b: usize, width: usize) {
    let start = b * WIDTH;
    if start + WIDTH <= width {
        v.store(row.add(start))
    } else if start < width {
        v.store_first(row.add(start), width - start)
    }
}

/// The blocks of a group of at most `G` blocks, padded with the zero block.
#[inline(always)]
fn group_blocks<const G: usize>(group: &[usize], zero_block: usize) -> [usize; G] {
    let mut blocks = [zero_block; G];
    blocks[..group.len()].copy_from_slice(group);
    blocks
}

// ---------------------------------------------------------------------------
// Input synapses: rows of neurons over all steps
// ---------------------------------------------------------------------------

/// The summed input currents of `rows` neurons over all steps (model.md §1),
///
/// ```text
/// I_i^t = r_i I_i^{t-1} + w_i x_i^t      (the input term only where x_i^t != 0)
/// drive^t = sum_i I_i^t
/// ```
///
/// `weight`, `decay`: the neurons' rows of `input.width` entries, one after the
/// other; `acc`: scratch of `rows * steps * WIDTH` (need not be zero); `drive[r + t *
/// stride]` receives `drive^t` of row `r`. The sum adds, in lane `l`, the blocks
/// in increasing order (`acc_l += I_{bW+l}`), then the lanes by [`Lanes::sum`].
/// The currents of a block stay in registers over all steps, and several rows
/// share each load of the input's bit masks ([`Isa::ROWS`]); a block without
/// input in the sample is all zeros and is skipped, which changes no bit (a zero
/// added to a sum started at +0).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn input_rows_drive<F: Float, I: Isa>(
    _isa: I,
    weight: &[F],
    decay: &[F],
    rows: usize,
    input: &BlockInput<F>,
    acc: &mut [F],
    drive: &mut [F],
    stride: usize,
) {
    let (steps, width) = (input.steps, input.width);
    assert!(weight.len() >= rows * width && decay.len() >= rows * width && acc.len() >= rows * steps * WIDTH);
    assert!(rows == 0 || steps == 0 || drive.len() > rows - 1 + (steps - 1) * stride);
    if input.active.is_empty() {
        acc[..rows * steps * WIDTH].fill(F::zero());
    }
    // as many blocks in registers as the input has active ones, up to the
    // instruction set's group (padding blocks would add zeros)
    let active = input.active.len();
    let mut r0 = 0;
    while r0 < rows {
        // two rows at a time measured fastest here (four in the reverse sweep)
        let take = if I::ROWS >= 2 && rows - r0 >= 2 { 2 } else { 1 };
        let (w, d) = (&weight[r0 * width..], &decay[r0 * width..]);
        let a = &mut acc[r0 * steps * WIDTH..];
        macro_rules! go {
            ($r:literal, $g:literal) => {
                if input.is_binary() {
                    drive_groups::<F, I, $r, $g, true>(w, d, input, a)
                } else {
                    drive_groups::<F, I, $r, $g, false>(w, d, input, a)
                }
            };
        }
        match (take, I::GROUP, active) {
            (2, _, ..=1) => go!(2, 1),
            (2, _, 2) => go!(2, 2),
            (2, _, _) => go!(2, 4),
            (_, _, ..=2) => go!(1, 2),
            (_, 8, 3..=4) | (_, 4, _) => go!(1, 4),
            (_, 8, _) => go!(1, 8),
            _ => go!(1, 2),
        }
        r0 += take;
    }
    for r in 0..rows {
        // SAFETY: `acc` holds `rows * steps * WIDTH` entries (asserted); the
        // token of `I` proves the CPU has its instruction set.
        unsafe {
            let row = acc.as_ptr().add(r * steps * WIDTH);
            let mut t = 0;
            while t + WIDTH <= steps {
                let mut v = [V::<F, I>::zero(); WIDTH];
                for (s, v) in v.iter_mut().enumerate() {
                    *v = V::<F, I>::load(row.add((t + s) * WIDTH));
                }
                for (s, sum) in V::<F, I>::sums(&v).iter().enumerate() {
                    drive[r + (t + s) * stride] = *sum;
                }
                t += WIDTH;
            }
            for t in t..steps {
                drive[r + t * stride] = V::<F, I>::load(row.add(t * WIDTH)).sum();
            }
        }
    }
}

/// The summed input currents of a layer with a single input (e.g. a pixel
/// stream), all its `n` neurons at once, the lanes running over neurons:
///
/// ```text
/// I_j^t = r_j I_j^{t-1} + w_j x^t      (the input term only where x^t != 0)
/// drive_j^t = I_j^t + 0
/// ```
///
/// These are the bits of [`input_rows_drive`] on a one-entry row, whose sums
/// add the row's zero padding (`+0` turns a `-0` into `+0` and changes nothing
/// else), at a sixteenth of its work. `weight`, `decay` are `[n]`; `drive[t * n
/// + j]` receives `drive_j^t`.
#[inline(always)]
pub fn single_input_drive<F: Float, I: Isa>(
    _isa: I,
    weight: &[F],
    decay: &[F],
    input: &BlockInput<F>,
    drive: &mut [F],
) {
    let (n, steps) = (weight.len(), input.steps);
    assert!(input.width == 1 && decay.len() == n && drive.len() >= steps * n);
    let (uniform, values) = input.value_rows();
    let binary = input.is_binary();
    let row = (input.blocks + 1) * WIDTH;
    for b in 0..n.div_ceil(WIDTH) {
        // SAFETY: `load_block`/`store_block` stay within the `n` entries of
        // `weight`, `decay` and each step's row of `drive` (asserted); the
        // values of a dense input are `[steps, row]`; the token of `I` proves
        // the instruction set.
        unsafe {
            let (w, r) = (load_block::<F, V<F, I>>(weight.as_ptr(), b, n), load_block(decay.as_ptr(), b, n));
            let mut current = V::<F, I>::zero();
            for t in 0..steps {
                current = current.mul(r);
                if *input.masks.get_unchecked(t) & 1 != 0 {
                    let term = match (binary, uniform) {
                        (true, _) => w,
                        (false, Some(v)) => w.mul(V::<F, I>::splat(v)),
                        (false, None) => w.mul(V::<F, I>::splat(*values.get_unchecked(t * row))),
                    };
                    current = current.add(term);
                }
                store_block(current.add(V::<F, I>::zero()), drive.as_mut_ptr().add(t * n), b, n);
            }
        }
    }
}

/// `R` rows of [`input_rows_drive`], `G` blocks of each in registers at a time.
#[inline(always)]
fn drive_groups<F: Float, I: Isa, const R: usize, const G: usize, const BINARY: bool>(
    weight: &[F],
    decay: &[F],
    input: &BlockInput<F>,
    acc: &mut [F],
) {
    let (steps, width) = (input.steps, input.width);
    let stride = input.blocks + 1;
    let masks = &input.masks;
    let (uniform, values) = input.value_rows();
    assert!(weight.len() >= R * width && decay.len() >= R * width && acc.len() >= R * steps * WIDTH);
    let (w, r, a) = (weight.as_ptr(), decay.as_ptr(), acc.as_mut_ptr());
    for (k, group) in input.active.chunks(G).enumerate() {
        let blocks = group_blocks::<G>(group, input.blocks);
        let start = blocks.iter().map(|&b| input.first[b]).min().unwrap_or(steps);
        // the first group writes the sums (from +0, as adding to zeros would),
        // and zeros before its first input
        let first = k == 0;
        // SAFETY: rows of `width` entries (asserted; `load_block` stays within a
        // row); blocks are `<= input.blocks`, so loads of `values` (`[steps,
        // stride * WIDTH]`) are in bounds; `acc` holds `R * steps * WIDTH`. The
        // token of `I` proves the instruction set.
        unsafe {
            // plain loops: a closure that is not inlined loses the instruction set
            let (mut wv, mut rv) = ([[V::<F, I>::zero(); G]; R], [[V::<F, I>::zero(); G]; R]);
            for q in 0..R {
                for g in 0..G {
                    wv[q][g] = load_block(w.add(q * width), blocks[g], width);
                    rv[q][g] = load_block(r.add(q * width), blocks[g], width);
                }
            }
            if first {
                for q in 0..R {
                    for t in 0..start {
                        V::<F, I>::zero().store(a.add((q * steps + t) * WIDTH));
                    }
                }
            }
            let mut cur = [[V::<F, I>::zero(); G]; R];
            for t in start..steps {
                let mut sum = [V::<F, I>::zero(); R];
                if !first {
                    for (q, sum) in sum.iter_mut().enumerate() {
                        *sum = V::<F, I>::load(a.add((q * steps + t) * WIDTH));
                    }
                }
                for g in 0..G {
                    let mask = *masks.get_unchecked(blocks[g] * steps + t);
                    let x = match (BINARY, uniform) {
                        (true, _) => V::<F, I>::zero(),
                        (false, Some(v)) => V::<F, I>::splat(v),
                        (false, None) => V::<F, I>::load(values.as_ptr().add((t * stride + blocks[g]) * WIDTH)),
                    };
                    for q in 0..R {
                        let drive = if BINARY { wv[q][g] } else { wv[q][g].mul(x) };
                        cur[q][g] = cur[q][g].mul(rv[q][g]).add_where(mask, drive);
                        sum[q] = sum[q].add(cur[q][g]);
                    }
                }
                for (q, sum) in sum.iter().enumerate() {
                    sum.store(a.add((q * steps + t) * WIDTH));
                }
            }
        }
    }
}

/// The reverse sweep of `rows` neurons' input synapses over all steps
/// (model.md §5.3), `t = steps-1 .. 0`, with `g[t * g_stride + r]` the adjoint
/// `g^t` of row `r`'s potential:
///
/// ```text
/// K_i   = lam_i + r_i K_i          (K^t = lam^{t+1} + r K^{t+1}, fused)
/// lam_i = g^t + r_i lam_i          (lam^t = g^t + r lam^{t+1}, fused)
/// dw_i += x_i^t lam_i,  dk_i += x_i^t K_i     (only where x_i^t != 0)
/// dx_i^t += w_i lam_i              (only with `dx`, fused; rows in order)
/// ```
///
/// `weight`, `decay`, `dw`, `dk` hold the rows of `input.width` entries, one
/// after the other (`dw`, `dk` accumulate: each entry adds its terms in
/// decreasing `t`); `dx` is `[steps, input.width]`. `lam` and `K` of a
/// block stay in registers over all steps, and several rows share each load of
/// the bit masks (and of `dx`). Without `dx`, blocks without input are skipped
/// and a block's sweep stops at its first input, which changes no bit.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn input_rows_sweep<F: Float, I: Isa>(
    _isa: I,
    rows: usize,
    g: &[F],
    g_stride: usize,
    weight: &[F],
    decay: &[F],
    input: &BlockInput<F>,
    dw: &mut [F],
    dk: &mut [F],
    mut dx: Option<&mut [F]>,
) {
    let (steps, width) = (input.steps, input.width);
    assert!(rows == 0 || steps == 0 || g.len() > (steps - 1) * g_stride + rows - 1);
    for v in [weight.len(), decay.len(), dw.len(), dk.len()] {
        assert!(v >= rows * width);
    }
    if let Some(dx) = dx.as_deref() {
        assert!(dx.len() >= steps * width);
    }
    let mut r0 = 0;
    while r0 < rows {
        let take = match (I::ROWS, rows - r0) {
            (4.., 4..) => 4,
            (2.., 2..) => 2,
            _ => 1,
        };
        let (gr, w, d) = (&g[r0..], &weight[r0 * width..], &decay[r0 * width..]);
        let (pw, pk) = (&mut dw[r0 * width..], &mut dk[r0 * width..]);
        macro_rules! go {
            ($r:literal, $g:literal) => {
                match (input.is_binary(), dx.as_deref_mut()) {
                    (true, None) => {
                        sweep_groups::<F, I, $r, $g, true, false>(gr, g_stride, w, d, input, pw, pk, &mut [])
                    }
                    (false, None) => {
                        sweep_groups::<F, I, $r, $g, false, false>(gr, g_stride, w, d, input, pw, pk, &mut [])
                    }
                    (true, Some(x)) => sweep_groups::<F, I, $r, $g, true, true>(gr, g_stride, w, d, input, pw, pk, x),
                    (false, Some(x)) => sweep_groups::<F, I, $r, $g, false, true>(gr, g_stride, w, d, input, pw, pk, x),
                }
            };
        }
        match (take, I::GROUP) {
            (4, _) => go!(4, 1),
            (2, _) => go!(2, 2),
            (_, 2) => go!(1, 2),
            _ => go!(1, 4),
        }
        r0 += take;
    }
}

/// `R` rows of [`input_rows_sweep`], `G` blocks of each in registers at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn sweep_groups<F: Float, I: Isa, const R: usize, const G: usize, const BINARY: bool, const DX: bool>(
    g: &[F],
    g_stride: usize,
    weight: &[F],
    decay: &[F],
    input: &BlockInput<F>,
    dw: &mut [F],
    dk: &mut [F],
    dx: &mut [F],
) {
    let (steps, width, stride) = (input.steps, input.width, input.blocks + 1);
    assert!(steps == 0 || g.len() > (steps - 1) * g_stride + R - 1);
    assert!(weight.len() >= R * width && decay.len() >= R * width);
    assert!(dw.len() >= R * width && dk.len() >= R * width && (!DX || dx.len() >= steps * width));
    let masks = &input.masks;
    let (uniform, values) = input.value_rows();
    let all: Vec<usize>;
    let blocks_to_do: &[usize] = if DX {
        all = (0..input.blocks).collect();
        &all
    } else {
        &input.active
    };
    let (w, r, pw, pk, px) = (weight.as_ptr(), decay.as_ptr(), dw.as_mut_ptr(), dk.as_mut_ptr(), dx.as_mut_ptr());
    for group in blocks_to_do.chunks(G) {
        let blocks = group_blocks::<G>(group, input.blocks);
        let stop = if DX { 0 } else { blocks.iter().map(|&b| input.first[b]).min().unwrap_or(steps) };
        // SAFETY: as in `drive_groups`; `dx` holds `[steps, width]` (asserted) and
        // is read and written by `load_block` and `store_block`.
        unsafe {
            let (mut wv, mut rv) = ([[V::<F, I>::zero(); G]; R], [[V::<F, I>::zero(); G]; R]);
            let (mut dwv, mut dkv) = ([[V::<F, I>::zero(); G]; R], [[V::<F, I>::zero(); G]; R]);
            for q in 0..R {
                for b in 0..G {
                    wv[q][b] = load_block(w.add(q * width), blocks[b], width);
                    rv[q][b] = load_block(r.add(q * width), blocks[b], width);
                    dwv[q][b] = load_block(pw.add(q * width), blocks[b], width);
                    dkv[q][b] = load_block(pk.add(q * width), blocks[b], width);
                }
            }
            let mut lam = [[V::<F, I>::zero(); G]; R];
            let mut k = [[V::<F, I>::zero(); G]; R];
            for t in (stop..steps).rev() {
                let mut gv = [V::<F, I>::zero(); R];
                for (q, gv) in gv.iter_mut().enumerate() {
                    *gv = V::<F, I>::splat(*g.get_unchecked(t * g_stride + q));
                }
                for b in 0..G {
                    let mask = *masks.get_unchecked(blocks[b] * steps + t);
                    let x = match (BINARY, uniform) {
                        (true, _) => V::<F, I>::zero(),
                        (false, Some(v)) => V::<F, I>::splat(v),
                        (false, None) => V::<F, I>::load(values.as_ptr().add((t * stride + blocks[b]) * WIDTH)),
                    };
                    let pd = px.add(t * width);
                    let mut d = if DX { load_block(pd, blocks[b], width) } else { V::<F, I>::zero() };
                    for q in 0..R {
                        k[q][b] = rv[q][b].mul_add(k[q][b], lam[q][b]);
                        lam[q][b] = rv[q][b].mul_add(lam[q][b], gv[q]);
                        if BINARY {
                            dwv[q][b] = dwv[q][b].add_where(mask, lam[q][b]);
                            dkv[q][b] = dkv[q][b].add_where(mask, k[q][b]);
                        } else {
                            dwv[q][b] = dwv[q][b].add_where(mask, x.mul(lam[q][b]));
                            dkv[q][b] = dkv[q][b].add_where(mask, x.mul(k[q][b]));
                        }
                        if DX {
                            d = wv[q][b].mul_add(lam[q][b], d);
                        }
                    }
                    if DX {
                        store_block(d, pd, blocks[b], width);
                    }
                }
            }
            for q in 0..R {
                for b in 0..G {
                    store_block(dwv[q][b], pw.add(q * width), blocks[b], width);
                    store_block(dkv[q][b], pk.add(q * width), blocks[b], width);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Recurrent synapses: one step of one neuron's row
// ---------------------------------------------------------------------------

/// One step of a layer's recurrent synapses (model.md §1), all neurons at once:
///
/// ```text
/// R_jk = q_jk R_jk + u_jk z_k     (the input term only where z_k != 0)
/// out_j = sum_k R_jk              (k = 0, 1, .. in order, from +0)
/// ```
///
/// The matrices are stored transposed, row `k` holding the synapses leaving
/// neuron `k` (`[n, stride]`, rows zero-padded to a multiple of [`WIDTH`]), so
/// that the sums run down the lanes. A row whose currents are all zero (neuron `k`
/// has not spiked yet: `started[k]` false) is skipped, which changes no bit.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn recurrent_step<F: Float, I: Isa>(
    _isa: I,
    weight_t: &[F],
    decay_t: &[F],
    stride: usize,
    z: &[F],
    binary: bool,
    started: &mut [bool],
    current_t: &mut [F],
    out: &mut [F],
) {
    const R: usize = 8;
    let n = z.len();
    assert!(stride.is_multiple_of(WIDTH) && n <= stride && started.len() >= n && out.len() >= stride);
    assert!(weight_t.len() >= n * stride && decay_t.len() >= n * stride && current_t.len() >= n * stride);
    for (s, z) in started.iter_mut().zip(z) {
        *s |= *z != F::zero();
    }
    let blocks = stride / WIDTH;
    let mut b0 = 0;
    while b0 < blocks {
        let nb = R.min(blocks - b0);
        // SAFETY: rows `k < n` of `stride` entries (asserted), blocks `b0..b0+nb`
        // within them; the token of `I` proves the instruction set.
        unsafe {
            let mut acc = [V::<F, I>::zero(); R];
            for (k, (&zk, _)) in z.iter().zip(started.iter()).enumerate().filter(|(_, (_, on))| **on) {
                let offset = k * stride + b0 * WIDTH;
                let (pc, pq, pw) =
                    (current_t.as_mut_ptr().add(offset), decay_t.as_ptr().add(offset), weight_t.as_ptr().add(offset));
                if zk == F::zero() {
                    for (b, a) in acc.iter_mut().enumerate().take(nb) {
                        let c = V::<F, I>::load(pc.add(b * WIDTH)).mul(V::<F, I>::load(pq.add(b * WIDTH)));
                        c.store(pc.add(b * WIDTH));
                        *a = a.add(c);
                    }
                } else {
                    let zv = V::<F, I>::splat(zk);
                    for (b, a) in acc.iter_mut().enumerate().take(nb) {
                        let w = V::<F, I>::load(pw.add(b * WIDTH));
                        let drive = if binary { w } else { w.mul(zv) };
                        let c = V::<F, I>::load(pc.add(b * WIDTH)).mul(V::<F, I>::load(pq.add(b * WIDTH))).add(drive);
                        c.store(pc.add(b * WIDTH));
                        *a = a.add(c);
                    }
                }
            }
            for (b, a) in acc.iter().enumerate().take(nb) {
                a.store(out.as_mut_ptr().add((b0 + b) * WIDTH));
            }
        }
        b0 += nb;
    }
}

/// One step of the reverse sweep of a layer's recurrent synapses (model.md
/// §5.2, §5.5), all neurons at once, with `g[j]` the adjoint of neuron `j`:
///
/// ```text
/// lam_jk = g_j + q_jk lam_jk          (fused)
/// carry_k += u_jk lam_jk              (j = 0, 1, .. in order, fused)
/// ```
///
/// `weight`, `decay` are `[n, stride]` with rows zero-padded to a multiple of
/// [`WIDTH`]. The samples of a group go through the step together, each load of
/// `u` and `q` serving all of them (the loop is bound by cache traffic, not
/// arithmetic): `g` is `[samples, n]`, `lam` `[samples, n, stride]` and `carry`
/// `[samples, stride]`, the carries kept in registers while the rows pass. Every
/// sample's numbers are those of a step on its own. The weight and decay
/// gradients are summed after the time loop by [`input_rows_sweep`] with the
/// input `z^{t-1}`, which recomputes the same `lam`.
#[inline(always)]
pub fn recurrent_adjoint<F: Float, I: Isa>(
    isa: I,
    g: &[F],
    weight: &[F],
    decay: &[F],
    stride: usize,
    lam: &mut [F],
    carry: &mut [F],
) {
    assert!(stride.is_multiple_of(WIDTH) && stride > 0 && carry.len().is_multiple_of(stride));
    let samples = carry.len() / stride;
    assert!(samples > 0 && g.len().is_multiple_of(samples));
    let n = g.len() / samples;
    assert!(n <= stride && weight.len() >= n * stride && decay.len() >= n * stride && lam.len() == samples * n * stride);
    let mut s0 = 0;
    while s0 < samples {
        let group = (samples - s0).min(4);
        let (g, lam, carry) =
            (&g[s0 * n..(s0 + group) * n], &mut lam[s0 * n * stride..], &mut carry[s0 * stride..(s0 + group) * stride]);
        match group {
            1 => adjoint_group::<F, I, 1, 8>(isa, g, weight, decay, stride, lam, carry),
            2 => adjoint_group::<F, I, 2, 4>(isa, g, weight, decay, stride, lam, carry),
            3 => adjoint_group::<F, I, 3, 4>(isa, g, weight, decay, stride, lam, carry),
            _ => adjoint_group::<F, I, 4, 4>(isa, g, weight, decay, stride, lam, carry),
        }
        s0 += group;
    }
}

/// [`recurrent_adjoint`] for `S` samples, `G` blocks of each row at a time.
#[allow(clippy::needless_range_loop)] // `acc[s][b]`: two indices into registers
#[inline(always)]
fn adjoint_group<F: Float, I: Isa, const S: usize, const G: usize>(
    _isa: I,
    g: &[F],
    weight: &[F],
    decay: &[F],
    stride: usize,
    lam: &mut [F],
    carry: &mut [F],
) {
    let n = g.len() / S;
    assert!(g.len() == S * n && lam.len() >= S * n * stride && carry.len() == S * stride);
    assert!(weight.len() >= n * stride && decay.len() >= n * stride);
    let blocks = stride / WIDTH;
    let mut b0 = 0;
    while b0 < blocks {
        let nb = G.min(blocks - b0);
        // SAFETY: rows `j < n` of `stride` entries in `weight` and `decay`, of
        // each sample's `lam` (asserted), blocks `b0..b0+nb` within them; the
        // token of `I` proves the instruction set.
        unsafe {
            let mut acc = [[V::<F, I>::zero(); G]; S];
            for (s, acc) in acc.iter_mut().enumerate() {
                for (b, a) in acc.iter_mut().enumerate().take(nb) {
                    *a = V::<F, I>::load(carry.as_ptr().add(s * stride + (b0 + b) * WIDTH));
                }
            }
            for j in 0..n {
                let offset = j * stride + b0 * WIDTH;
                let mut gv = [V::<F, I>::zero(); S];
                for (s, v) in gv.iter_mut().enumerate() {
                    *v = V::<F, I>::splat(*g.get_unchecked(s * n + j));
                }
                let (pq, pw) = (decay.as_ptr().add(offset), weight.as_ptr().add(offset));
                for b in 0..nb {
                    let (q, w) = (V::<F, I>::load(pq.add(b * WIDTH)), V::<F, I>::load(pw.add(b * WIDTH)));
                    for s in 0..S {
                        let pl = lam.as_mut_ptr().add(s * n * stride + offset + b * WIDTH);
                        let l = q.mul_add(V::<F, I>::load(pl), gv[s]);
                        l.store(pl);
                        acc[s][b] = w.mul_add(l, acc[s][b]);
                    }
                }
            }
            for (s, acc) in acc.iter().enumerate() {
                for (b, a) in acc.iter().enumerate().take(nb) {
                    a.store(carry.as_mut_ptr().add(s * stride + (b0 + b) * WIDTH));
                }
            }
        }
        b0 += nb;
    }
}

// ---------------------------------------------------------------------------
// Neuron-level models: sparse products
// ---------------------------------------------------------------------------

/// `out_j = sum_i x_i c_ij` over the `active` inputs `i` in their order, from
/// +0, each product rounded before it is added (`acc += c_ij x_i`): the drive of every neuron of a collapsed
/// layer at one step, with `c` the transposed weights (`[inputs, stride]`, rows
/// padded to a multiple of [`WIDTH`]), vectorised over neurons. `out` has `stride`
/// entries.
#[inline(always)]
pub fn sparse_row_sum<F: Float, I: Isa>(_isa: I, c: &[F], stride: usize, x: &[F], active: &[usize], out: &mut [F]) {
    const R: usize = 8;
    assert!(stride.is_multiple_of(WIDTH) && out.len() >= stride);
    for &i in active {
        assert!((i + 1) * stride <= c.len() && i < x.len());
    }
    let blocks = stride / WIDTH;
    let mut b0 = 0;
    while b0 < blocks {
        let nb = R.min(blocks - b0);
        // SAFETY: rows `i` of `c` hold `stride` entries (asserted) and the blocks
        // `b0..b0+nb` lie within them; the token of `I` proves the instruction set.
        unsafe {
            let mut acc = [V::<F, I>::zero(); R];
            for &i in active {
                let xi = V::<F, I>::splat(*x.get_unchecked(i));
                let row = c.as_ptr().add(i * stride + b0 * WIDTH);
                for (b, a) in acc.iter_mut().enumerate().take(nb) {
                    *a = a.add(V::<F, I>::load(row.add(b * WIDTH)).mul(xi));
                }
            }
            for (b, a) in acc.iter().enumerate().take(nb) {
                a.store(out.as_mut_ptr().add((b0 + b) * WIDTH));
            }
        }
        b0 += nb;
    }
}

/// The rows of an input over all steps, with the indices of their non-zero
/// entries.
pub trait StepRows<F> {
    /// Row `t` and its active (non-zero) entries, in increasing order.
    fn at(&self, t: usize) -> (&[F], &[usize]);
}

/// `drive_j^t = sum_i x_i^t w_ji` for every step `t < steps` and neuron
/// `j < n`: the input drive of a collapsed layer (model.md §2.2). Each entry
/// adds the active inputs of its step in their order, from +0, each product
/// rounded before it is added (`acc += w_ji x_i`). A block of 16 neurons at a
/// time, with the block's weights transposed into `slab` (`[m, 16]`) so that
/// each active input adds one row of it. `w` is `[n, m]`, `drive` `[steps, n]`
/// (overwritten).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn input_columns_drive<F: Float, I: Isa, S: StepRows<F>>(
    _isa: I,
    w: &[F],
    n: usize,
    m: usize,
    steps: usize,
    inputs: &S,
    slab: &mut Vec<F>,
    drive: &mut [F],
) {
    assert!(w.len() >= n * m && drive.len() >= steps * n);
    slab.clear();
    slab.resize(m * WIDTH, F::zero());
    for j0 in (0..n).step_by(WIDTH) {
        let lanes = WIDTH.min(n - j0);
        // in tiles of 16 x 16, so that the lines written stay in cache
        for i0 in (0..m).step_by(WIDTH) {
            for l in 0..lanes {
                let row = &w[(j0 + l) * m + i0..(j0 + l) * m + (i0 + WIDTH).min(m)];
                for (i, v) in row.iter().enumerate() {
                    slab[(i0 + i) * WIDTH + l] = *v;
                }
            }
        }
        for t in 0..steps {
            let (x, active) = inputs.at(t);
            for &i in active {
                assert!(i < m && i < x.len());
            }
            // SAFETY: rows `i < m` of the slab (asserted), row `t < steps` of
            // `drive` (asserted; `store_block` writes the entries `< n`); the token
            // of `I` proves the instruction set.
            unsafe {
                let mut acc = V::<F, I>::zero();
                for &i in active {
                    let row = V::<F, I>::load(slab.as_ptr().add(i * WIDTH));
                    acc = acc.add(row.mul(V::<F, I>::splat(*x.get_unchecked(i))));
                }
                store_block(acc, drive.as_mut_ptr().add(t * n), j0 / WIDTH, n);
            }
        }
    }
}

/// The events of an input over all steps grouped by input (channel): the
/// events of channel `i` are `steps[offsets[i]..offsets[i + 1]]` with values
/// `values[..]`, in decreasing step.
#[derive(Debug, Clone, Default)]
pub struct ChannelEvents<F> {
    pub offsets: Vec<usize>,
    pub steps: Vec<u32>,
    pub values: Vec<F>,
}

/// `grad_ji += sum_t x_i^t mu_j^t` for every neuron `j < n` and input `i`: the
/// weight gradient of a collapsed layer (model.md §5.5). Each entry adds the
/// events of channel `i` in decreasing `t`, each product rounded before it is
/// added (the per-step loop `grad_ji += mu_j^t x_i^t`), vectorised over 16
/// neurons at a time. `mu` is `[steps, n]`, `grad` `[n, m]`; channels without
/// events are skipped.
#[inline(always)]
pub fn channel_outer_product<F: Float, I: Isa>(
    _isa: I,
    events: &ChannelEvents<F>,
    mu: &[F],
    n: usize,
    grad: &mut [F],
    m: usize,
) {
    assert!(grad.len() >= n * m && events.offsets.len() > m);
    let steps = mu.len() / n.max(1);
    assert!(events.steps.iter().all(|&t| (t as usize) < steps) && events.values.len() == events.steps.len());
    for j0 in (0..n).step_by(WIDTH) {
        let lanes = WIDTH.min(n - j0);
        for i in 0..m {
            let range = events.offsets[i]..events.offsets[i + 1];
            if range.is_empty() {
                continue;
            }
            let mut column = [F::zero(); WIDTH];
            for (l, c) in column.iter_mut().enumerate().take(lanes) {
                *c = grad[(j0 + l) * m + i];
            }
            // SAFETY: every event step is `< steps` (asserted), so the rows of `mu`
            // read hold `n` entries, of which `load_block` reads those that exist;
            // the token of `I` proves the instruction set.
            unsafe {
                let mut acc = V::<F, I>::load(column.as_ptr());
                for (t, x) in events.steps[range.clone()].iter().zip(&events.values[range]) {
                    let row = mu.as_ptr().add(*t as usize * n);
                    acc = acc.add(V::<F, I>::splat(*x).mul(load_block(row, j0 / WIDTH, n)));
                }
                acc.store(column.as_mut_ptr());
            }
            for (l, c) in column.iter().enumerate().take(lanes) {
                grad[(j0 + l) * m + i] = *c;
            }
        }
    }
}

/// `dx^t += sum_j mu_j^t w_j·` for every step: `mu` is `[steps, mu_stride]`
/// (`n` used), `weight` `[n, m]`, `dx` `[steps, m]`. Each entry adds `j = 0, 1,
/// ..` in order with fused multiply-adds, the per-step loop
/// `dx = mul_add(mu_j, w_j·, dx)`; tiles of 4 steps x 64 columns stay in
/// registers.
#[inline(always)]
pub fn adjoint_product<F: Float, I: Isa>(
    _isa: I,
    mu: &[F],
    mu_stride: usize,
    weight: &[F],
    n: usize,
    m: usize,
    dx: &mut [F],
) {
    assert!(n <= mu_stride);
    let steps = mu.len() / mu_stride.max(1);
    assert!(weight.len() >= n * m && dx.len() >= steps * m);
    let full = m / WIDTH * WIDTH;
    // no closures here: a closure that is not inlined loses the instruction set
    let mut t = 0;
    while t < steps {
        let rows = if steps - t >= 4 { 4 } else { 1 };
        let mut i = 0;
        while i < full {
            let blocks = match (rows, full - i) {
                (1, left) if left >= 8 * WIDTH => 8,
                (_, left) if left >= 4 * WIDTH => 4,
                _ => 1,
            };
            match (rows, blocks) {
                (1, 8) => product_tile::<F, I, 1, 8>(mu, mu_stride, weight, n, m, t, i, dx),
                (4, 4) => product_tile::<F, I, 4, 4>(mu, mu_stride, weight, n, m, t, i, dx),
                (4, _) => product_tile::<F, I, 4, 1>(mu, mu_stride, weight, n, m, t, i, dx),
                (_, 4) => product_tile::<F, I, 1, 4>(mu, mu_stride, weight, n, m, t, i, dx),
                _ => product_tile::<F, I, 1, 1>(mu, mu_stride, weight, n, m, t, i, dx),
            }
            i += blocks * WIDTH;
        }
        for s in t..t + rows {
            for c in full..m {
                let mut acc = dx[s * m + c];
                for j in 0..n {
                    acc = mu[s * mu_stride + j].mul_add(weight[j * m + c], acc);
                }
                dx[s * m + c] = acc;
            }
        }
        t += rows;
    }
}

/// One tile of [`adjoint_product`]: steps `t..t+T`, columns `i..i+B*WIDTH`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn product_tile<F: Float, I: Isa, const T: usize, const B: usize>(
    mu: &[F],
    mu_stride: usize,
    weight: &[F],
    n: usize,
    m: usize,
    t: usize,
    i: usize,
    dx: &mut [F],
) {
    assert!((t + T) * mu_stride <= mu.len() && i + B * WIDTH <= m && (t + T) * m <= dx.len());
    // SAFETY: the rows and columns of the tile are in bounds (asserted; `weight`
    // holds `n * m`); the token of `I` proves the instruction set.
    unsafe {
        let mut acc = [[V::<F, I>::zero(); B]; T];
        for (s, row) in acc.iter_mut().enumerate() {
            for (b, acc) in row.iter_mut().enumerate() {
                *acc = V::<F, I>::load(dx.as_ptr().add((t + s) * m + i + b * WIDTH));
            }
        }
        for j in 0..n {
            let w = weight.as_ptr().add(j * m + i);
            let mut wv = [V::<F, I>::zero(); B];
            for (b, wv) in wv.iter_mut().enumerate() {
                *wv = V::<F, I>::load(w.add(b * WIDTH));
            }
            for (s, row) in acc.iter_mut().enumerate() {
                let a = V::<F, I>::splat(*mu.get_unchecked((t + s) * mu_stride + j));
                for (acc, w) in row.iter_mut().zip(&wv) {
                    *acc = a.mul_add(*w, *acc);
                }
            }
        }
        for (s, row) in acc.iter().enumerate() {
            for (b, acc) in row.iter().enumerate() {
                acc.store(dx.as_mut_ptr().add((t + s) * m + i + b * WIDTH));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Exponential for the surrogate derivative
// ---------------------------------------------------------------------------

/// `e^x` in plain arithmetic (no branches, no library call), so that a loop of
/// it vectorises and gives the same bits on every CPU: `x = k ln2 + r`,
/// `|r| <= ln2 / 2`, `e^r` by its Taylor polynomial of degree 13, `2^k` by
/// building the exponent. Within 2 ulp of the correctly rounded value for
/// `-708 <= x <= 709`; 0 below, infinity above, NaN for NaN.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // ln 2 split: the high part has 32 trailing zero bits, so `k * LN2_HI` is exact
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    let clamped = x.clamp(-708.0, 709.0);
    let shifted = clamped * LOG2E + ROUND;
    let k = shifted - ROUND; // round(x / ln 2), to nearest
    let r = (clamped - k * LN2_HI) - k * LN2_LO;
    // 1 + r + r^2/2! + .. + r^13/13!, Horner
    let mut p = 1.0 / 6_227_020_800.0;
    for d in
        [479_001_600.0, 39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0]
    {
        p = p * r + 1.0 / d;
    }
    let ki = (shifted.to_bits() as i64).wrapping_sub(ROUND.to_bits() as i64);
    let scale = f64::from_bits(((ki + 1023) as u64) << 52);
    let y = p * scale;
    let y = if x < -708.0 { 0.0 } else { y };
    let y = if x > 709.0 { f64::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// [`exp`] in `f32`: `x = k ln2 + r`, `e^r` by its Taylor polynomial of degree
/// 7, `2^k` by building the exponent. Within 2 ulp for `-87 <= x <= 88`; 0
/// below, infinity above, NaN for NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split: the high part has 12 trailing zero bits, so `k * LN2_HI` is exact
    const LN2_HI: f32 = f32::from_bits(0x3F31_7200);
    const LN2_LO: f32 = f32::from_bits(0x35BF_BE8E);
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let clamped = x.clamp(-87.0, 88.0);
    let shifted = clamped * LOG2E + ROUND;
    let k = shifted - ROUND; // round(x / ln 2), to nearest
    let r = (clamped - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 5_040.0;
    for d in [720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / d;
    }
    let ki = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((ki + 127) as u32) << 23);
    let y = p * scale;
    let y = if x < -87.0 { 0.0 } else { y };
    let y = if x > 88.0 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

// ---------------------------------------------------------------------------
// x86: AVX2 and AVX-512
// ---------------------------------------------------------------------------

/// [`Lanes`] and [`Isa`] for AVX2 and AVX-512.
#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use super::{Isa, IsaTask, Lanes};
    use std::arch::x86_64::*;

    /// Token of a CPU with AVX2 and FMA.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2(());

    /// Token of a CPU with AVX-512F.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx512(());

    impl Isa for Avx2 {
        type F32 = Avx2F32;
        const GROUP: usize = 2;
        const ROWS: usize = 1;
    }

    impl Isa for Avx512 {
        type F32 = Avx512F32;
        const GROUP: usize = 4;
        const ROWS: usize = 4;
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run_avx2<T: IsaTask>(task: T) -> T::Output {
        task.run(Avx2(()))
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run_avx512<T: IsaTask>(task: T) -> T::Output {
        task.run(Avx512(()))
    }

    /// 16 `f32` lanes in one AVX-512 register.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx512F32(__m512);

    impl Lanes<f32> for Avx512F32 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512F32(_mm512_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx512F32(_mm512_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512F32(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, other: Self) -> Self {
            Avx512F32(_mm512_add_ps(self.0, other.0))
        }
        #[inline(always)]
        unsafe fn mul(self, other: Self) -> Self {
            Avx512F32(_mm512_mul_ps(self.0, other.0))
        }
        #[inline(always)]
        unsafe fn mul_add(self, a: Self, b: Self) -> Self {
            Avx512F32(_mm512_fmadd_ps(self.0, a.0, b.0))
        }
        #[inline(always)]
        unsafe fn add_where(self, mask: u16, other: Self) -> Self {
            Avx512F32(_mm512_mask_add_ps(self.0, mask, self.0, other.0))
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            let lo = _mm512_castps512_ps256(self.0);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            sum8(_mm256_add_ps(lo, hi))
        }
        #[inline(always)]
        unsafe fn unequal(self, other: Self) -> u16 {
            _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(self.0, other.0)
        }
        /// A masked load: the lanes past `len` are neither read nor faulted on.
        #[inline(always)]
        unsafe fn load_first(p: *const f32, len: usize) -> Self {
            Avx512F32(_mm512_maskz_loadu_ps(((1u32 << len) - 1) as u16, p))
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f32, len: usize) {
            _mm512_mask_storeu_ps(p, ((1u32 << len) - 1) as u16, self.0)
        }
        /// The tree of [`Lanes::sum`] for 16 registers at once: each level adds
        /// the same pairs of lanes, with the registers' halves, quarters and pairs
        /// shuffled side by side (results in the order 0 2 1 3 8 10 9 11 4 6 5 7
        /// 12 14 13 15, put right by one permutation).
        #[inline(always)]
        unsafe fn sums(v: &[Self; 16]) -> [f32; 16] {
            // l + 8: u_k = [v_k halves added | v_{k+8} halves added]
            let mut u = [_mm512_setzero_ps(); 8];
            for (k, u) in u.iter_mut().enumerate() {
                *u = Self::fold::<0x44, 0xEE>(v[k].0, v[k + 8].0);
            }
            // l + 4 within each half: quarters v_k, v_{k+8}, v_{k+4}, v_{k+12}
            let mut w = [_mm512_setzero_ps(); 4];
            for (k, w) in w.iter_mut().enumerate() {
                *w = Self::fold::<0x88, 0xDD>(u[k], u[k + 4]);
            }
            // l + 2, then l + 1, within each quarter
            let y0 = Self::fold_in_quarters::<0x44, 0xEE>(w[0], w[2]);
            let y1 = Self::fold_in_quarters::<0x44, 0xEE>(w[1], w[3]);
            let z = Self::fold_in_quarters::<0x88, 0xDD>(y0, y1);
            let order = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
            let mut out = [0.0f32; 16];
            _mm512_storeu_ps(out.as_mut_ptr(), _mm512_permutexvar_ps(order, z));
            out
        }
    }

    impl Avx512F32 {
        /// Level `l + w` of the tree of 16 sums: pairs `(a, b)` of registers
        /// whose 128-bit quarters (`SHUFFLE_*` pick them) hold the halves to add.
        #[inline(always)]
        unsafe fn fold<const LO: i32, const HI: i32>(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(_mm512_shuffle_f32x4::<LO>(a, b), _mm512_shuffle_f32x4::<HI>(a, b))
        }

        #[inline(always)]
        unsafe fn fold_in_quarters<const LO: i32, const HI: i32>(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(_mm512_shuffle_ps::<LO>(a, b), _mm512_shuffle_ps::<HI>(a, b))
        }
    }

    /// Lanes `l + 4`, `l + 2`, `l + 1` of 8, the tree of [`Lanes::sum`].
    #[inline(always)]
    unsafe fn sum8(x: __m256) -> f32 {
        let x = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_add_ss(x, _mm_shuffle_ps::<1>(x, x));
        _mm_cvtss_f32(x)
    }

    /// 16 `f32` lanes in two AVX2 registers (lanes 0..8, 8..16); needs FMA too.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2F32(__m256, __m256);

    /// All bits set in the lanes of `bits` (8 lanes).
    #[inline(always)]
    unsafe fn mask8(bits: u16) -> __m256 {
        let lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(i32::from(bits)), lane), lane))
    }

    impl Lanes<f32> for Avx2F32 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx2F32(_mm256_setzero_ps(), _mm256_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx2F32(_mm256_set1_ps(x), _mm256_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2F32(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0);
            _mm256_storeu_ps(p.add(8), self.1)
        }
        #[inline(always)]
        unsafe fn add(self, other: Self) -> Self {
            Avx2F32(_mm256_add_ps(self.0, other.0), _mm256_add_ps(self.1, other.1))
        }
        #[inline(always)]
        unsafe fn mul(self, other: Self) -> Self {
            Avx2F32(_mm256_mul_ps(self.0, other.0), _mm256_mul_ps(self.1, other.1))
        }
        #[inline(always)]
        unsafe fn mul_add(self, a: Self, b: Self) -> Self {
            Avx2F32(_mm256_fmadd_ps(self.0, a.0, b.0), _mm256_fmadd_ps(self.1, a.1, b.1))
        }
        #[inline(always)]
        unsafe fn add_where(self, mask: u16, other: Self) -> Self {
            let lo = _mm256_blendv_ps(self.0, _mm256_add_ps(self.0, other.0), mask8(mask & 0xff));
            let hi = _mm256_blendv_ps(self.1, _mm256_add_ps(self.1, other.1), mask8(mask >> 8));
            Avx2F32(lo, hi)
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            sum8(_mm256_add_ps(self.0, self.1))
        }
        #[inline(always)]
        unsafe fn unequal(self, other: Self) -> u16 {
            let lo = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(self.0, other.0)) as u16;
            let hi = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(self.1, other.1)) as u16;
            lo | hi << 8
        }
        /// Masked loads: the lanes past `len` are neither read nor faulted on.
        #[inline(always)]
        unsafe fn load_first(p: *const f32, len: usize) -> Self {
            let (lo, hi) = first_lanes(len);
            Avx2F32(_mm256_maskload_ps(p, lo), _mm256_maskload_ps(p.add(8), hi))
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f32, len: usize) {
            let (lo, hi) = first_lanes(len);
            _mm256_maskstore_ps(p, lo, self.0);
            _mm256_maskstore_ps(p.add(8), hi, self.1)
        }
    }

    /// All bits set in lanes `0..len` of the two halves.
    #[inline(always)]
    unsafe fn first_lanes(len: usize) -> (__m256i, __m256i) {
        let n = _mm256_set1_epi32(len as i32);
        let lo = _mm256_cmpgt_epi32(n, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        let hi = _mm256_cmpgt_epi32(n, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15));
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with every instruction set this CPU has.
    fn on_every_set<T: IsaTask + Clone>(task: T) -> Vec<(InstructionSet, T::Output)> {
        [InstructionSet::Portable, InstructionSet::Avx2, InstructionSet::Avx512]
            .into_iter()
            .filter_map(|set| run_with(set, task.clone()).ok().map(|out| (set, out)))
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A reproducible pseudo-random number in [0, 1).
    fn unit(i: usize, salt: u64) -> f64 {
        let mut z = (i as u64).wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `rows` neurons' input synapses over `steps` steps of `m` inputs.
    #[derive(Clone)]
    struct Rows {
        rows: usize,
        m: usize,
        steps: usize,
        weight: Vec<f32>,
        decay: Vec<f32>,
        x: Vec<f32>,
        g: Vec<f32>,
    }

    /// The values of the non-zero inputs of a test.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Ones,
        Uniform,
        Analog,
    }

    impl Rows {
        fn new(rows: usize, m: usize, steps: usize, density: f64, kind: Kind, salt: u64) -> Self {
            let weight = (0..rows * m).map(|i| (unit(i, salt) * 2.0 - 0.7) as f32).collect();
            let decay = (0..rows * m).map(|i| (0.5 + 0.49 * unit(i, salt + 1)) as f32).collect();
            let x = (0..steps * m)
                .map(|k| {
                    // every third block of 16 inputs stays silent
                    let silent = (k % m) / WIDTH % 3 == 2;
                    match kind {
                        _ if silent || unit(k, salt + 2) >= density => 0.0,
                        Kind::Ones => 1.0,
                        Kind::Uniform => 1.25,
                        Kind::Analog => (0.25 + unit(k, salt + 3)) as f32,
                    }
                })
                .collect();
            // [steps, rows]
            let g = (0..steps * rows).map(|t| (unit(t, salt + 4) * 2.0 - 1.0) as f32).collect();
            Rows { rows, m, steps, weight, decay, x, g }
        }
    }

    /// The drive of [`input_rows_drive`] (`[steps, rows]`), and
    /// [`input_rows_sweep`]'s gradients without and with `dx`.
    #[derive(Clone)]
    struct RowTask(Rows, Option<BlockInput<f32>>);

    type RowResult = (Vec<f32>, [(Vec<f32>, Vec<f32>, Vec<f32>); 2]);

    impl IsaTask for RowTask {
        type Output = RowResult;
        fn run<I: Isa>(self, isa: I) -> RowResult {
            let r = self.0;
            let input = self.1.unwrap_or_else(|| BlockInput::from_dense(isa, &r.x, r.steps, r.m, 0));
            let (w, d) = (&r.weight, &r.decay);
            let mut acc = vec![0.0; r.rows * r.steps * WIDTH];
            let mut drive = vec![0.0; r.steps * r.rows];
            input_rows_drive(isa, w, d, r.rows, &input, &mut acc, &mut drive, r.rows);
            let sweep = |with_dx: bool| {
                let mut dw = vec![0.1f32; r.rows * r.m];
                let mut dk = dw.clone();
                let mut dx = vec![0.0f32; r.steps * r.m];
                let dxr = with_dx.then_some(&mut dx[..]);
                input_rows_sweep(isa, r.rows, &r.g, r.rows, w, d, &input, &mut dw, &mut dk, dxr);
                (dw, dk, dx)
            };
            (drive, [sweep(false), sweep(true)])
        }
    }

    /// The row kernels compute the equations of model.md §1 and §5.3, written
    /// out plainly here in f64, for one row and for several (rows run in groups).
    #[test]
    fn row_kernels_match_plain_loops() {
        let cases = [
            (1, 1, 5, Kind::Ones),
            (3, 17, 40, Kind::Ones),
            (5, 40, 33, Kind::Analog),
            (9, 100, 61, Kind::Ones),
            (2, 70, 50, Kind::Analog),
            (6, 37, 30, Kind::Uniform),
        ];
        for (rows, m, steps, kind) in cases {
            let task = Rows::new(rows, m, steps, 0.1, kind, m as u64);
            let (drive, sweeps) = RowTask(task.clone(), None).run(Portable);
            let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-4 * (1.0 + b.abs());
            let mut dx = vec![0.0f64; steps * m];
            for q in 0..rows {
                let (w, r) = (&task.weight[q * m..(q + 1) * m], &task.decay[q * m..(q + 1) * m]);
                let (x, g): (_, Vec<f32>) = (&task.x, (0..steps).map(|t| task.g[t * rows + q]).collect());
                let mut cur = vec![0.0f64; m];
                for t in 0..steps {
                    let mut sum = 0.0;
                    for i in 0..m {
                        cur[i] = f64::from(r[i]) * cur[i] + f64::from(w[i]) * f64::from(x[t * m + i]);
                        sum += cur[i];
                    }
                    assert!(close(drive[t * rows + q], sum), "drive rows {rows} m {m} row {q} t {t}");
                }
                let (mut lam, mut k) = (vec![0.0f64; m], vec![0.0f64; m]);
                let (mut dw, mut dk) = (vec![0.1f64; m], vec![0.1f64; m]);
                for t in (0..steps).rev() {
                    for i in 0..m {
                        let ri = f64::from(r[i]);
                        k[i] = lam[i] + ri * k[i];
                        lam[i] = f64::from(g[t]) + ri * lam[i];
                        dw[i] += f64::from(x[t * m + i]) * lam[i];
                        dk[i] += f64::from(x[t * m + i]) * k[i];
                        dx[t * m + i] += f64::from(w[i]) * lam[i];
                    }
                }
                for (s, (gw, gk, _)) in sweeps.iter().enumerate() {
                    for i in 0..m {
                        let e = q * m + i;
                        assert!(
                            close(gw[e], dw[i]) && close(gk[e], dk[i]),
                            "sweep {s} rows {rows} m {m} row {q} i {i}"
                        );
                    }
                }
            }
            for t in 0..steps {
                for i in 0..m {
                    assert!(close(sweeps[1].2[t * m + i], dx[t * m + i]), "dx rows {rows} m {m} t {t} i {i}");
                }
            }
        }
    }

    /// Every instruction set computes the bits of the portable code.
    #[test]
    fn row_kernels_are_the_same_on_every_instruction_set() {
        let cases = [
            (1, 1, 3, Kind::Ones),
            (4, 16, 20, Kind::Ones),
            (6, 33, 47, Kind::Analog),
            (5, 700, 30, Kind::Ones),
            (3, 128, 25, Kind::Analog),
            (7, 50, 18, Kind::Uniform),
        ];
        for (rows, m, steps, kind) in cases {
            let results = on_every_set(RowTask(Rows::new(rows, m, steps, 0.05, kind, 7 + m as u64), None));
            let (_, (drive, sweeps)) = &results[0];
            for (set, (d, s)) in &results[1..] {
                assert_eq!(bits(drive), bits(d), "{set:?} drive, rows {rows} m {m}");
                for (a, b) in sweeps.iter().zip(s) {
                    assert_eq!(bits(&a.0), bits(&b.0), "{set:?} dw, rows {rows} m {m}");
                    assert_eq!(bits(&a.1), bits(&b.1), "{set:?} dk, rows {rows} m {m}");
                    assert_eq!(bits(&a.2), bits(&b.2), "{set:?} dx, rows {rows} m {m}");
                }
            }
        }
    }

    /// Skipping silent blocks changes no bit: the same rows with the silent
    /// blocks' masks forced on (their inputs stay zero) give the same results.
    #[test]
    fn skipping_silent_blocks_changes_nothing() {
        let rows = Rows::new(5, 100, 40, 0.05, Kind::Analog, 3);
        let (drive, sweeps) = RowTask(rows.clone(), None).run(Portable);
        let mut input = BlockInput::from_dense(Portable, &rows.x, rows.steps, rows.m, 0);
        assert!(input.active.len() < input.blocks, "the test needs silent blocks");
        input.active = (0..input.blocks).collect();
        input.first.iter_mut().for_each(|f| *f = 0);
        let (all, all_sweeps) = RowTask(rows, Some(input)).run(Portable);
        assert_eq!(bits(&drive), bits(&all));
        assert_eq!(bits(&sweeps[0].0), bits(&all_sweeps[0].0));
        assert_eq!(bits(&sweeps[0].1), bits(&all_sweeps[0].1));
    }

    /// Three steps of a layer's recurrent synapses ([`recurrent_step`]) and of
    /// their adjoints ([`recurrent_adjoint`]).
    #[derive(Clone)]
    struct StepTask {
        n: usize,
    }

    impl StepTask {
        fn matrix(&self, salt: u64, lo: f64, hi: f64) -> Vec<f32> {
            let (n, stride) = (self.n, self.n.div_ceil(WIDTH) * WIDTH);
            (0..n * stride)
                .map(|e| if e % stride < n { (lo + (hi - lo) * unit(e, salt)) as f32 } else { 0.0 })
                .collect()
        }

        /// Currents of a layer in which only neuron 0 has spiked before.
        fn initial_currents(&self) -> Vec<f32> {
            let stride = self.n.div_ceil(WIDTH) * WIDTH;
            let mut cur = self.matrix(2, -1.0, 1.0);
            cur[stride..].fill(0.0);
            cur
        }

        fn z(&self, t: usize) -> Vec<f32> {
            (0..self.n)
                .map(|k| match (unit(k + 97 * t, 5) < 0.3, t) {
                    (false, _) => 0.0,
                    (true, 1) => 0.5,
                    (true, _) => 1.0,
                })
                .collect()
        }
    }

    impl IsaTask for StepTask {
        type Output = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
        fn run<I: Isa>(self, isa: I) -> Self::Output {
            let (n, stride) = (self.n, self.n.div_ceil(WIDTH) * WIDTH);
            let (u, q, mut cur) = (self.matrix(0, -0.5, 0.5), self.matrix(1, 0.3, 0.99), self.initial_currents());
            let mut lam = self.matrix(3, -1.0, 1.0);
            let mut carry = self.matrix(4, -1.0, 1.0)[..stride].to_vec();
            let mut started = vec![false; n];
            started[0] = true;
            let mut sums = Vec::new();
            let mut out = vec![0.0; stride];
            for t in 0..3 {
                let z = self.z(t);
                recurrent_step(isa, &u, &q, stride, &z, t != 1, &mut started, &mut cur, &mut out);
                sums.extend_from_slice(&out[..n]);
                let g: Vec<f32> = (0..n).map(|j| 0.3 - t as f32 + 0.01 * j as f32).collect();
                recurrent_adjoint(isa, &g, &u, &q, stride, &mut lam, &mut carry);
            }
            (sums, cur, lam, carry)
        }
    }

    #[test]
    fn recurrent_steps_match_plain_loops_on_every_instruction_set() {
        for n in [1, 16, 37, 128] {
            let task = StepTask { n };
            let results = on_every_set(task.clone());
            let (_, p) = &results[0];
            for (set, o) in &results[1..] {
                assert_eq!(bits(&p.0), bits(&o.0), "{set:?} n {n}");
                assert_eq!(bits(&p.1), bits(&o.1), "{set:?} n {n}");
                assert_eq!(bits(&p.2), bits(&o.2), "{set:?} n {n}");
                assert_eq!(bits(&p.3), bits(&o.3), "{set:?} n {n}");
            }
            // the equations in f64: rows of the transposed matrices are k, columns j
            let stride = n.div_ceil(WIDTH) * WIDTH;
            let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
            let (u, q) = (f(task.matrix(0, -0.5, 0.5)), f(task.matrix(1, 0.3, 0.99)));
            let mut cur = f(task.initial_currents());
            let (mut lam, mut carry) = (f(task.matrix(3, -1.0, 1.0)), f(task.matrix(4, -1.0, 1.0)));
            for t in 0..3 {
                let z = task.z(t);
                for j in 0..n {
                    let mut sum = 0.0;
                    for (k, zk) in z.iter().enumerate() {
                        let e = k * stride + j;
                        cur[e] = q[e] * cur[e] + u[e] * f64::from(*zk);
                        sum += cur[e];
                    }
                    let got = f64::from(p.0[t * n + j]);
                    assert!((got - sum).abs() < 1e-4 * (1.0 + sum.abs()), "n {n} t {t} j {j}: {got} vs {sum}");
                }
                for j in 0..n {
                    let g = f64::from(0.3 - t as f32 + 0.01 * j as f32);
                    for (k, carry) in carry.iter_mut().enumerate().take(n) {
                        let e = j * stride + k;
                        lam[e] = g + q[e] * lam[e];
                        *carry += u[e] * lam[e];
                    }
                }
            }
            for e in (0..n * stride).filter(|e| e % stride < n) {
                assert!((f64::from(p.2[e]) - lam[e]).abs() < 1e-5 * (1.0 + lam[e].abs()), "lam n {n} entry {e}");
            }
            for (k, (got, want)) in p.3.iter().zip(&carry).take(n).enumerate() {
                assert!((f64::from(*got) - want).abs() < 1e-4 * (1.0 + want.abs()), "carry n {n} k {k}");
            }
        }
    }

    /// [`single_input_drive`] and [`input_rows_drive`] on the same one-input layer.
    #[derive(Clone)]
    struct SingleInputTask(Rows);

    impl IsaTask for SingleInputTask {
        type Output = [Vec<f32>; 2];
        fn run<I: Isa>(self, isa: I) -> [Vec<f32>; 2] {
            let r = self.0;
            let input = BlockInput::from_dense(isa, &r.x, r.steps, 1, 0);
            let mut rows = vec![0.0; r.steps * r.rows];
            let mut acc = vec![0.0; r.rows * r.steps * WIDTH];
            input_rows_drive(isa, &r.weight, &r.decay, r.rows, &input, &mut acc, &mut rows, r.rows);
            let mut single = vec![7.0; r.steps * r.rows];
            single_input_drive(isa, &r.weight, &r.decay, &input, &mut single);
            [rows, single]
        }
    }

    /// A one-input layer's drive has the bits of the row kernel's, for spikes,
    /// uniform and analog values, a silent input, and on every instruction set.
    #[test]
    fn single_input_drive_equals_the_row_kernel() {
        for (n, density, kind) in [
            (1, 0.3, Kind::Ones),
            (5, 0.3, Kind::Uniform),
            (16, 0.5, Kind::Analog),
            (37, 0.2, Kind::Analog),
            (64, 0.0, Kind::Analog),
            (70, 0.9, Kind::Ones),
        ] {
            let mut rows = Rows::new(n, 1, 50, density, kind, 21);
            // some weights negative, so that currents cross zero
            rows.weight.iter_mut().step_by(3).for_each(|w| *w = -*w);
            let results = on_every_set(SingleInputTask(rows));
            for (set, [by_rows, single]) in &results {
                assert_eq!(bits(single), bits(by_rows), "{set:?} n {n} {kind:?}");
                assert_eq!(bits(single), bits(&results[0].1[0]), "{set:?} against portable");
            }
        }
    }

    /// Three steps of [`recurrent_adjoint`] for a group of samples at once, and
    /// for each sample on its own: `(lam, carry)` of both.
    #[derive(Clone)]
    struct GroupAdjointTask {
        n: usize,
        samples: usize,
    }

    impl IsaTask for GroupAdjointTask {
        type Output = [(Vec<f32>, Vec<f32>); 2];
        fn run<I: Isa>(self, isa: I) -> Self::Output {
            let (n, samples) = (self.n, self.samples);
            let stride = n.div_ceil(WIDTH) * WIDTH;
            let step = StepTask { n };
            let (u, q) = (step.matrix(0, -0.5, 0.5), step.matrix(1, 0.3, 0.99));
            let lam: Vec<f32> = (0..samples).flat_map(|s| step.matrix(3 + 10 * s as u64, -1.0, 1.0)).collect();
            let carry: Vec<f32> = (0..samples * stride).map(|e| (unit(e, 4) * 2.0 - 1.0) as f32).collect();
            let g = |t: usize| -> Vec<f32> { (0..samples * n).map(|e| (unit(e + 1000 * t, 6) - 0.5) as f32).collect() };
            let (mut lam_group, mut carry_group) = (lam.clone(), carry.clone());
            let (mut lam_alone, mut carry_alone) = (lam, carry);
            for t in 0..3 {
                let g = g(t);
                recurrent_adjoint(isa, &g, &u, &q, stride, &mut lam_group, &mut carry_group);
                for s in 0..samples {
                    let lam = &mut lam_alone[s * n * stride..(s + 1) * n * stride];
                    let carry = &mut carry_alone[s * stride..(s + 1) * stride];
                    recurrent_adjoint(isa, &g[s * n..(s + 1) * n], &u, &q, stride, lam, carry);
                }
            }
            [(lam_group, carry_group), (lam_alone, carry_alone)]
        }
    }

    /// Samples through [`recurrent_adjoint`] together (groups of up to 4) get
    /// the bits each gets on its own, on every instruction set.
    #[test]
    fn recurrent_adjoint_of_a_group_equals_each_sample_alone() {
        for (n, samples) in [(1, 3), (16, 4), (37, 6), (100, 5), (128, 2)] {
            let results = on_every_set(GroupAdjointTask { n, samples });
            for (set, [(lam_group, carry_group), (lam_alone, carry_alone)]) in &results {
                assert_eq!(bits(lam_group), bits(lam_alone), "lam, {set:?} n {n} samples {samples}");
                assert_eq!(bits(carry_group), bits(carry_alone), "carry, {set:?} n {n} samples {samples}");
                assert_eq!(bits(lam_group), bits(&results[0].1[0].0), "lam, {set:?} against portable");
                assert_eq!(bits(carry_group), bits(&results[0].1[0].1), "carry, {set:?} against portable");
            }
        }
    }

    #[derive(Clone)]
    struct ProductTask {
        steps: usize,
        n: usize,
        m: usize,
    }

    impl IsaTask for ProductTask {
        type Output = Vec<f32>;
        fn run<I: Isa>(self, isa: I) -> Vec<f32> {
            let mu: Vec<f32> = (0..self.steps * self.n).map(|k| (unit(k, 11) * 2.0 - 1.0) as f32).collect();
            let w: Vec<f32> = (0..self.n * self.m).map(|k| (unit(k, 12) * 2.0 - 1.0) as f32).collect();
            let mut dx = vec![7.0; self.steps * self.m];
            adjoint_product(isa, &mu, self.n, &w, self.n, self.m, &mut dx);
            dx
        }
    }

    /// The product equals the per-step loop `dx = mul_add(mu_j, w_j·, dx)` bit for bit.
    #[test]
    fn adjoint_product_is_the_per_step_loop() {
        for (steps, n, m) in [(1, 1, 1), (7, 20, 64), (9, 64, 128), (5, 3, 37)] {
            let task = ProductTask { steps, n, m };
            let mu: Vec<f32> = (0..steps * n).map(|k| (unit(k, 11) * 2.0 - 1.0) as f32).collect();
            let w: Vec<f32> = (0..n * m).map(|k| (unit(k, 12) * 2.0 - 1.0) as f32).collect();
            let mut want = vec![7.0f32; steps * m];
            for t in 0..steps {
                for j in 0..n {
                    for i in 0..m {
                        want[t * m + i] = mu[t * n + j].mul_add(w[j * m + i], want[t * m + i]);
                    }
                }
            }
            for (set, got) in on_every_set(task) {
                assert_eq!(bits(&want), bits(&got), "{set:?} {steps}x{n}x{m}");
            }
        }
    }

    #[test]
    fn exp_f32_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for k in 0..200_000 {
            let x = (-87.0 + 175.0 * unit(k, 98)) as f32;
            let (a, b) = (f64::from(exp_f32(x)), f64::from(x).exp());
            worst = worst.max((a - b).abs() / b);
        }
        assert!(worst <= 2.0 * f64::from(f32::EPSILON), "relative error {worst:e}");
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for k in 0..200_000 {
            let x = -708.0 + 1417.0 * unit(k, 99);
            let (a, b) = (exp(x), x.exp());
            worst = worst.max((a - b).abs() / b);
        }
        for x in [-1e-300, 0.0, 1e-300, -0.5, 0.5, -3.0, 20.0, -708.0, 709.0] {
            let (a, b) = (exp(x), f64::exp(x));
            worst = worst.max((a - b).abs() / b);
        }
        assert!(worst <= 2.0 * f64::EPSILON, "relative error {worst:e}");
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }
}
