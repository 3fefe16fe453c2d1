//! CPU kernels faster than candle's generic paths where the encoder's profile says time goes,
//! and length-bucketed batching (no padding waste).
//!
//! - [`gelu_erf`]: exact-form GELU with a rational erf approximation (no `libm` call per
//!   element), vectorisable and split across the rayon pool; within 2e-6 of `gelu_erf`.
//! - [`softmax_last_dim`]: row softmax with a polynomial `exp` (no `libm` call per element),
//!   rows split across the rayon pool; within 1e-6 of candle's.
//! - [`attention`]: multi-head self-attention straight from the fused QKV projection, one
//!   rayon task per (text, head): no head permute copy, no `(batch, heads, seq, seq)` tensor,
//!   and no thread synchronisation per small matmul. With AVX2 and heads of whole panels it
//!   runs the packed layers' register tile a tile of query rows at a time (scores in L1,
//!   vectorised exponentials); otherwise single-threaded `gemm` calls.
//! - [`length_buckets`]: groups texts of similar length so a padded batch wastes at most a
//!   bounded share of its tokens on padding, and holds at most [`MAX_BUCKET_TOKENS`] tokens so
//!   its activations stay in cache.

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::tile::{tile_rows, PANEL, ROWS, ZERO_BIAS};
use crate::Result;

/// Elements per parallel chunk of an element-wise kernel.
const CHUNK: usize = 16 * 1024;

/// erf(x) for f32: the rational approximation Eigen uses for `erf<float>` (x clamped to
/// [-4, 4], where erf is 1 to f32 precision); absolute error below 2e-7.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    p *= x;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    p / q
}

/// GELU of one value, erf form, with [`erf`]'s approximation.
#[inline(always)]
pub(crate) fn gelu(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// Runs `kernel(input, output)` over a contiguous f32 CPU tensor in parallel chunks of whole
/// rows of `row_width` elements (about [`CHUNK`] elements each); the output has its shape.
fn par_map_rows(
    storage: &CpuStorage,
    layout: &Layout,
    op: &str,
    row_width: usize,
    kernel: impl Fn(&[f32], &mut [f32]) + Sync + Send,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
        candle_core::bail!("{op} takes contiguous f32 tensors")
    };
    let input = &data[start..end];
    let mut out = vec![0f32; input.len()];
    let chunk = (CHUNK / row_width).max(1) * row_width;
    out.par_chunks_mut(chunk)
        .zip(input.par_chunks(chunk))
        .for_each(|(o, i)| kernel(i, o));
    Ok((CpuStorage::F32(out), layout.shape().clone()))
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "mesh-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        par_map_rows(storage, layout, self.name(), 1, |i, o| {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = gelu(v);
            }
        })
    }
}

/// GELU (erf form, as Hugging Face's `gelu`): the fast kernel for contiguous f32 tensors on
/// the CPU, candle's `gelu_erf` otherwise.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        Ok(xs.apply_op1_no_bwd(&GeluErf)?)
    } else {
        Ok(xs.gelu_erf()?)
    }
}

/// e^x for f32 without a library call: x = n ln 2 + r, |r| <= ln 2 / 2, e^r by its degree-6
/// Taylor polynomial (relative error below 3e-7), 2^n put in the exponent bits. Below -87 it
/// is 0 (the masked scores' case).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer (no `round` call, which would not
    // vectorise without SSE4.1).
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 88.0);
    let n = (clamped * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// Independent accumulators of a row's max and sum: one running value is a serial chain the
/// compiler may not reorder, eight side by side become vector instructions.
const LANES: usize = 8;

/// Softmax of one row, in place. The max, the exponentials and the sum each run as vector
/// loops (the profile had the scalar version at 11% of the encoder's time).
#[inline]
fn softmax_in_place(row: &mut [f32]) {
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &v) in maxes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&maxes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    row.iter_mut().for_each(|v| *v = exp(*v - max));
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &v) in sums.iter_mut().zip(chunk) {
            *s += v;
        }
    }
    let sum: f32 = sums.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "mesh-softmax-last-dim"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let width = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        par_map_rows(storage, layout, self.name(), width, |i, o| {
            for (o, i) in o.chunks_exact_mut(width).zip(i.chunks_exact(width)) {
                o.copy_from_slice(i);
                softmax_in_place(o);
            }
        })
    }
}

/// Softmax over the last dimension: the fast kernel for contiguous f32 tensors on the CPU,
/// candle's otherwise.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        Ok(xs.apply_op1_no_bwd(&SoftmaxLastDim)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(xs)?)
    }
}

/// A raw output pointer shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every task writes only its own (text, head) block of the buffer.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The element `offset` places in (a method, so closures capture the whole `Send` wrapper).
    ///
    /// # Safety
    /// `offset` must stay inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// `dst = lhs rhs` for `(m, n, k)`, single-threaded: `dst` is `(pointer, row stride)` with
/// unit column stride, `lhs` and `rhs` are `(pointer, row stride, column stride)`.
///
/// # Safety
/// Every addressed element must lie inside its allocation, and `dst` must not overlap the
/// inputs or be written by anyone else meanwhile.
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, isize),
    (lhs, lhs_rs, lhs_cs): (*const f32, isize, isize),
    (rhs, rhs_rs, rhs_cs): (*const f32, isize, isize),
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs,
        false,
        lhs,
        lhs_cs,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

struct FusedAttention {
    heads: usize,
}

impl CustomOp2 for FusedAttention {
    fn name(&self) -> &'static str {
        "mesh-attention"
    }

    fn cpu_fwd(
        &self,
        qkv_storage: &CpuStorage,
        qkv_layout: &Layout,
        bias_storage: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(qkv), Some((q0, q1))) = (qkv_storage, qkv_layout.contiguous_offsets())
        else {
            candle_core::bail!("attention takes a contiguous f32 qkv tensor")
        };
        let (CpuStorage::F32(bias), Some((b0, b1))) =
            (bias_storage, bias_layout.contiguous_offsets())
        else {
            candle_core::bail!("attention takes a contiguous f32 key bias")
        };
        let (batch, seq, width) = qkv_layout.shape().dims3()?;
        if bias_layout.shape().dims2()? != (batch, seq) || width % (3 * self.heads) != 0 {
            candle_core::bail!(
                "attention: qkv {:?} and key bias {:?} do not fit {} heads",
                qkv_layout.shape(),
                bias_layout.shape(),
                self.heads
            )
        }
        let (qkv, bias) = (&qkv[q0..q1], &bias[b0..b1]);
        let hidden = width / 3;
        let head_dim = hidden / self.heads;
        let mut out = vec![0f32; batch * seq * hidden];
        let shared = SharedOut(out.as_mut_ptr());
        let tiled = crate::tile::supported() && head_dim.is_multiple_of(PANEL);
        (0..batch * self.heads).into_par_iter().for_each(|task| {
            let (b, h) = (task / self.heads, task % self.heads);
            let head = HeadTask {
                text: &qkv[b * seq * width..(b + 1) * seq * width],
                key_bias: &bias[b * seq..(b + 1) * seq],
                seq,
                hidden,
                head_dim,
                head: h,
            };
            // SAFETY: this (text, head)'s block of `out` starts at its first row and the head's
            // columns; rows are `hidden` apart, and no other task writes it.
            let dst = unsafe { shared.at(b * seq * hidden + h * head_dim) };
            if tiled {
                // SAFETY: the CPU has AVX2 and FMA and `head_dim` is whole panels.
                unsafe { head.attend_tiled(dst) }
            } else {
                head.attend_with_gemm(SharedOut(dst));
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((batch, seq, hidden))))
    }
}

/// One (text, head) of [`FusedAttention`]: the text's rows of the fused projection and its
/// key bias.
struct HeadTask<'a> {
    /// `seq` rows of `3 * hidden`: queries, keys, values.
    text: &'a [f32],
    key_bias: &'a [f32],
    seq: usize,
    hidden: usize,
    head_dim: usize,
    head: usize,
}

/// Per-thread buffers of [`HeadTask::attend_tiled`]: keys packed as panels, the key bias padded
/// to whole panels, and one register tile's rows of scores.
#[derive(Default)]
struct TiledScratch {
    keys: Vec<f32>,
    key_bias: Vec<f32>,
    scores: Vec<f32>,
}

impl HeadTask<'_> {
    /// The head's queries, keys and values: pointers to their first row (rows `3 * hidden`
    /// apart).
    fn qkv(&self) -> (*const f32, *const f32, *const f32) {
        let at = self.head * self.head_dim;
        (
            self.text[at..].as_ptr(),
            self.text[self.hidden + at..].as_ptr(),
            self.text[2 * self.hidden + at..].as_ptr(),
        )
    }

    /// Scores in a per-thread `(seq, seq)` buffer with single-threaded `gemm` products: the
    /// path for heads that are not whole panels or CPUs without AVX2 and FMA.
    fn attend_with_gemm(&self, dst: SharedOut) {
        thread_local! {
            static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        let (seq, head_dim) = (self.seq, self.head_dim);
        let (q, k, v) = self.qkv();
        SCORES.with(|cell| {
            let mut scores = cell.borrow_mut();
            scores.resize(seq * seq, 0.0);
            let (w, s) = ((3 * self.hidden) as isize, seq as isize);
            // SAFETY: the strides address q, k, v of this head inside the text's rows, the
            // (seq, seq) scores buffer, and this task's block of the output.
            unsafe {
                // scores = q k^T: k read column by column (its rows are the keys).
                matmul(
                    (seq, seq, head_dim),
                    (scores.as_mut_ptr(), s),
                    (q, w, 1),
                    (k, 1, w),
                );
            }
            for row in scores.chunks_exact_mut(seq) {
                row.iter_mut()
                    .zip(self.key_bias)
                    .for_each(|(score, kb)| *score += kb);
                softmax_in_place(row);
            }
            unsafe {
                // context = softmax(scores) v.
                matmul(
                    (seq, head_dim, seq),
                    (dst.0, self.hidden as isize),
                    (scores.as_ptr(), s, 1),
                    (v, w, 1),
                );
            }
        });
    }

    /// The head with the packed layers' register tile, a tile of query rows at a time: their
    /// scores against keys packed once per head (the key bias added as the tile's bias), the
    /// rows' exponentials in place (AVX2, no normalising pass), their products with the values
    /// read in place, each scaled by its row's `1 / sum` as it is stored. Scores stay in L1.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA, `head_dim` is a multiple of [`PANEL`], and `dst` is this
    /// task's block of the output (rows `hidden` apart), written by no one else.
    unsafe fn attend_tiled(&self, dst: *mut f32) {
        thread_local! {
            static SCRATCH: RefCell<TiledScratch> = RefCell::new(TiledScratch::default());
        }
        let (seq, head_dim, width) = (self.seq, self.head_dim, 3 * self.hidden);
        let panels = seq.div_ceil(PANEL);
        let padded = panels * PANEL;
        let (q, k, v) = self.qkv();
        SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            // keys[p][d][j] = K[p * PANEL + j][d]: panel p is `k x PANEL` for the tile.
            scratch.keys.clear();
            scratch.keys.resize(padded * head_dim, 0.0);
            for j in 0..seq {
                let (p, lane) = (j / PANEL, j % PANEL);
                let panel = &mut scratch.keys[p * head_dim * PANEL..(p + 1) * head_dim * PANEL];
                let key = std::slice::from_raw_parts(k.add(j * width), head_dim);
                for (d, &x) in key.iter().enumerate() {
                    panel[d * PANEL + lane] = x;
                }
            }
            scratch.key_bias.clear();
            scratch.key_bias.extend_from_slice(self.key_bias);
            scratch.key_bias.resize(padded, f32::MIN);
            scratch.scores.resize(ROWS * padded, 0.0);
            let scores = scratch.scores.as_mut_ptr();
            let mut tile = [[0f32; PANEL]; ROWS];
            for first in (0..seq).step_by(ROWS) {
                let n = ROWS.min(seq - first);
                for p in 0..panels {
                    tile_rows(
                        n,
                        (q.add(first * width), width),
                        (scratch.keys[p * head_dim * PANEL..].as_ptr(), PANEL),
                        head_dim,
                        scratch.key_bias[p * PANEL..].as_ptr(),
                        (scores.add(p * PANEL), padded),
                    );
                }
                let mut inverse_sums = [0f32; ROWS];
                for (i, inverse) in inverse_sums.iter_mut().take(n).enumerate() {
                    let row = std::slice::from_raw_parts_mut(scores.add(i * padded), seq);
                    *inverse = 1.0 / exp_shifted_in_place(row);
                }
                for c in (0..head_dim).step_by(PANEL) {
                    tile_rows(
                        n,
                        (scores, padded),
                        (v.add(c), width),
                        seq,
                        ZERO_BIAS.as_ptr(),
                        (tile.as_mut_ptr().cast(), PANEL),
                    );
                    for (i, row) in tile.iter().take(n).enumerate() {
                        let out = std::slice::from_raw_parts_mut(
                            dst.add((first + i) * self.hidden + c),
                            PANEL,
                        );
                        for (o, &x) in out.iter_mut().zip(row) {
                            *o = x * inverse_sums[i];
                        }
                    }
                }
            }
        });
    }
}

/// `row[j] = e^(row[j] - max(row))`; returns the sum. Eight lanes at a time with [`exp`]'s
/// polynomial (the scalar loop did not vectorise and was 11% of the long-input profile).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_in_place(row: &mut [f32]) -> f32 {
    use std::arch::x86_64::*;
    let mut chunks = row.chunks_exact(8);
    let mut maxes = _mm256_set1_ps(f32::NEG_INFINITY);
    for chunk in &mut chunks {
        maxes = _mm256_max_ps(maxes, _mm256_loadu_ps(chunk.as_ptr()));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), maxes);
    let max = lanes
        .iter()
        .chain(chunks.remainder())
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let shift = _mm256_set1_ps(max);
    let mut sums = _mm256_setzero_ps();
    let mut chunks = row.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(chunk.as_ptr()), shift));
        _mm256_storeu_ps(chunk.as_mut_ptr(), e);
        sums = _mm256_add_ps(sums, e);
    }
    let mut tail = 0f32;
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        tail += *x;
    }
    _mm256_storeu_ps(lanes.as_mut_ptr(), sums);
    lanes.iter().sum::<f32>() + tail
}

/// Never called: the tiled attention runs on x86-64 only.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn exp_shifted_in_place(_: &mut [f32]) -> f32 {
    unreachable!("the tiled attention runs on x86-64 only")
}

/// [`exp`] on eight lanes: the same reduction and polynomial, so the two agree to rounding.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let clamped = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
        _mm256_set1_ps(88.0),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        clamped,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), clamped);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    let e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    // Below -87 the answer is 0, as in `exp`.
    _mm256_and_ps(e, _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(-87.0)))
}

/// Multi-head self-attention from a fused projection: `qkv` is `(batch, seq, 3 * hidden)`
/// (queries, keys, values side by side, queries already scaled by `1 / sqrt(head_dim)`),
/// `key_bias` `(batch, seq)` is added to every query's score for that key (0 for real tokens,
/// a large negative number for padding). Returns the context `(batch, seq, hidden)`, heads
/// side by side. The fused kernel on the CPU for f32; candle's ops elsewhere.
pub fn attention(qkv: &Tensor, key_bias: &Tensor, heads: usize) -> Result<Tensor> {
    let qkv = qkv.contiguous()?;
    if qkv.device().is_cpu() && qkv.dtype() == candle_core::DType::F32 {
        let key_bias = key_bias.to_dtype(candle_core::DType::F32)?.contiguous()?;
        return Ok(qkv.apply_op2_no_bwd(&key_bias, &FusedAttention { heads })?);
    }
    attention_with_candle_ops(&qkv, key_bias, heads)
}

/// [`attention`] with candle's generic ops (the reference the fused kernel is tested against).
pub fn attention_with_candle_ops(qkv: &Tensor, key_bias: &Tensor, heads: usize) -> Result<Tensor> {
    let (batch, seq, width) = qkv.dims3()?;
    let head_dim = width / 3 / heads;
    // (batch, seq, 3 * hidden) -> (3, batch, heads, seq, head_dim), one copy.
    let qkv = qkv
        .reshape((batch, seq, 3, heads, head_dim))?
        .permute((2, 0, 3, 1, 4))?
        .contiguous()?;
    let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
    let bias = key_bias.reshape((batch, 1, 1, seq))?;
    let scores = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((batch, seq, heads * head_dim))?)
}

/// Most padding a bucket may carry, as a share of its padded tokens.
pub const MAX_PADDING_SHARE: f64 = 0.2;
/// Most texts in one bucket.
pub const MAX_BUCKET_ROWS: usize = 64;
/// Most padded tokens in one bucket (unless one text alone is longer). A bucket's largest
/// activation, MiniLM's feed-forward layer, is tokens x 1,536 f32s: 3 MiB at this bound, so a
/// layer's input and output stay within the two cores' L2 and the L3 around it. With the packed
/// kernel, 512 ran faster than 2,048 (12 MiB) on 256-token inputs at batch 8 and 32 in 7 of 8
/// alternating rounds (about 27-29 against 23-26 texts/s) and on mixed text at batch 32 in 4 of
/// 4 (`cargo bench --bench encoder`, 2 threads, 2026-12-04); before the packed kernel, 2,048
/// had beaten one call of 32 x 256 tokens (48 MiB) by 25-30 %.
pub const MAX_BUCKET_TOKENS: usize = 512;

/// Splits rows (given by their token lengths) into buckets of similar length: rows sorted by
/// length, a bucket grown while its padding stays at most [`MAX_PADDING_SHARE`] of its
/// padded tokens and it holds at most [`MAX_BUCKET_ROWS`] rows and [`MAX_BUCKET_TOKENS`]
/// padded tokens. Every index appears in exactly one bucket.
pub fn length_buckets(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut buckets: Vec<Vec<usize>> = vec![];
    let mut current: Vec<usize> = vec![];
    let mut real = 0usize;
    for i in order {
        let len = lengths[i].max(1);
        // Sorted ascending: the new row sets the bucket's padded length.
        let padded = len * (current.len() + 1);
        let fits = current.len() < MAX_BUCKET_ROWS
            && padded <= MAX_BUCKET_TOKENS
            && (real + len) as f64 >= (1.0 - MAX_PADDING_SHARE) * padded as f64;
        if !fits && !current.is_empty() {
            buckets.push(std::mem::take(&mut current));
            real = 0;
        }
        current.push(i);
        real += len;
    }
    if !current.is_empty() {
        buckets.push(current);
    }
    buckets
}

/// Runs `run` on the [`length_buckets`] of `rows` (one padded batch each) and puts its
/// per-row outputs back in the rows' order.
pub fn map_length_buckets<T: Clone + Default>(
    rows: &[&[u32]],
    mut run: impl FnMut(&[&[u32]]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
    let mut out = vec![T::default(); rows.len()];
    for bucket in length_buckets(&lengths) {
        let batch: Vec<&[u32]> = bucket.iter().map(|&i| rows[i]).collect();
        for (i, value) in bucket.into_iter().zip(run(&batch)?) {
            out[i] = value;
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The largest absolute element-wise difference of two f32 tensors of one shape.
    pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Both fused paths against candle's ops: heads of 8 (the `gemm` path) and of 32 (the
    /// register-tile path where the CPU has AVX2), with sequences that are not whole tiles or
    /// panels, and padded keys.
    #[test]
    fn fused_attention_matches_candles_ops() {
        let device = candle_core::Device::Cpu;
        for (seq, heads, head_dim) in [
            (37usize, 4usize, 8usize),
            (37, 2, 32),
            (5, 3, 16),
            (70, 1, 64),
        ] {
            let batch = 3;
            let qkv =
                Tensor::randn(0f32, 1.0, (batch, seq, 3 * heads * head_dim), &device).unwrap();
            // Text 0 has no padding, text 1 four padded keys, text 2 all but one.
            let lengths = [seq, seq - 4, 1];
            let bias: Vec<f32> = lengths
                .iter()
                .flat_map(|&n| (0..seq).map(move |j| if j < n { 0.0 } else { f32::MIN }))
                .collect();
            let bias = Tensor::from_vec(bias, (batch, seq), &device).unwrap();
            let ours = attention(&qkv, &bias, heads).unwrap();
            let reference = attention_with_candle_ops(&qkv, &bias, heads).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            let worst = max_abs_diff(&ours, &reference);
            assert!(
                worst < 1e-5,
                "seq {seq}, head {head_dim}: largest difference {worst}"
            );
        }
    }

    /// The eight-lane exponential against the scalar one and `f32::exp`, over the scores'
    /// range, the underflow cut-off and the padded keys' bias.
    #[test]
    fn exp_lanes_match_scalar_exp() {
        if !crate::tile::supported() {
            return;
        }
        let mut row: Vec<f32> = (-1000..=50).map(|i| i as f32 / 10.0).collect();
        row.extend([f32::MIN, -87.5, -86.9]);
        let want: Vec<f64> = row.iter().map(|&x| f64::from(x - 5.0).exp()).collect();
        let sum = unsafe { exp_shifted_in_place(&mut row) };
        for (got, want) in row.iter().zip(&want) {
            assert!(
                (f64::from(*got) - want).abs() <= 1e-6 * want + 1e-30,
                "{got} vs {want}"
            );
        }
        let want_sum: f64 = want.iter().sum();
        assert!((f64::from(sum) - want_sum).abs() < 1e-5 * want_sum);
    }

    #[test]
    fn gelu_matches_candles_exact_gelu() {
        let values: Vec<f32> = (-6000..=6000).map(|i| i as f32 / 1000.0).collect();
        let xs = Tensor::new(values.as_slice(), &candle_core::Device::Cpu).unwrap();
        let ours = gelu_erf(&xs).unwrap().to_vec1::<f32>().unwrap();
        let reference = xs.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        // Within 2e-6, relative to the value where it exceeds 1 (a few f32 ulps).
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 2e-6, "largest difference {worst}");
        // A non-contiguous view takes candle's path and gives the same values.
        let m = Tensor::new(&[[1f32, -2.0], [0.5, 3.0]], &candle_core::Device::Cpu).unwrap();
        let t = m.t().unwrap();
        assert_eq!(
            gelu_erf(&t).unwrap().to_vec2::<f32>().unwrap(),
            t.gelu_erf().unwrap().to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn softmax_matches_candles() {
        // Rows of scores as attention makes them, one with masked (f32::MIN) keys.
        let mut values: Vec<f32> = (0..64 * 75)
            .map(|i| ((i * 7919) % 2000) as f32 / 100.0 - 10.0)
            .collect();
        values[75..80].iter_mut().for_each(|v| *v = f32::MIN);
        let xs = Tensor::from_vec(values, (64, 75), &candle_core::Device::Cpu).unwrap();
        let ours = softmax_last_dim(&xs).unwrap().to_vec2::<f32>().unwrap();
        let reference = candle_nn::ops::softmax_last_dim(&xs)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (a, b) in ours.iter().flatten().zip(reference.iter().flatten()) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} vs {b}");
        }
        assert!(
            ours[1][..5].iter().all(|p| *p == 0.0),
            "masked keys get nothing"
        );
        for x in [-80.0f32, -20.0, -1.0, -0.3, 0.0, 0.2, 1.0, 10.0, 80.0] {
            assert!((exp(x) - x.exp()).abs() <= 3e-7 * x.exp(), "exp({x})");
        }
    }

    #[test]
    fn buckets_cover_every_row_once_and_bound_padding() {
        let lengths: Vec<usize> = (0..500).map(|i| 8 + (i * 37) % 249).collect();
        let buckets = length_buckets(&lengths);
        let mut seen: Vec<usize> = buckets.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        for b in &buckets {
            assert!(b.len() <= MAX_BUCKET_ROWS);
            let max = b.iter().map(|&i| lengths[i]).max().unwrap();
            let real: usize = b.iter().map(|&i| lengths[i]).sum();
            assert!(real as f64 >= (1.0 - MAX_PADDING_SHARE) * (max * b.len()) as f64);
            assert!(max * b.len() <= MAX_BUCKET_TOKENS, "{} x {max}", b.len());
        }
        // Buckets at least half full on average.
        let tokens: usize = lengths.iter().sum();
        let fewest = tokens.div_ceil(MAX_BUCKET_TOKENS);
        assert!(
            buckets.len() <= 2 * fewest,
            "{} buckets for {fewest}",
            buckets.len()
        );
        // Equal lengths make full buckets; one row makes one bucket.
        assert_eq!(length_buckets(&[5; 130]).len(), 3);
        assert_eq!(length_buckets(&[7]), vec![vec![0]]);
        // 32 texts of 256 tokens: 16 buckets of 2 (512 tokens each); a text longer than the
        // bound is a bucket of its own.
        let long = length_buckets(&[256; 32]);
        assert_eq!(long.iter().map(Vec::len).collect::<Vec<_>>(), [2; 16]);
        assert_eq!(length_buckets(&[3000, 3000]).len(), 2);
        assert!(length_buckets(&[]).is_empty());
    }
}
