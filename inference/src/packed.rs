//! f32 linear layers whose weights are packed once at load for an AVX2/FMA kernel, instead of
//! re-packed by `gemm` on every call (10% of the encoder's profile, more at batch 1 where a
//! call multiplies few rows).
//!
//! The weight `(out, in)` is stored as panels of [`PANEL`] output columns, each panel `in`
//! rows of [`PANEL`] floats (the last panel zero-padded), so the kernel streams one panel with
//! two vector loads per input column. A tile of up to [`ROWS`] input rows times one panel keeps
//! its 12 accumulators in registers, started from the bias. The panels are split across the
//! rayon pool; each task walks its panels in groups that stay in L2, a block of rows at a time.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::tile::{tile_rows, PANEL, ROWS};
use crate::Result;

/// Input rows per cache block (each task walks a group of panels for one block).
const ROW_BLOCK: usize = 48;
/// Bytes of packed weights per group of panels: half of a 1 MiB L2, so a group stays cached
/// while every row block passes over it.
const PANEL_GROUP_BYTES: usize = 512 * 1024;

/// A linear layer `y = x Wᵀ + b` with `W` packed for the AVX2/FMA kernel.
#[derive(Debug)]
pub struct PackedLinear {
    /// `panels[p * in_dim * PANEL + k * PANEL + j] = W[p * PANEL + j][k]` (0 past `out_dim`).
    panels: Vec<f32>,
    /// The bias, zero-padded to whole panels.
    bias: Vec<f32>,
    in_dim: usize,
    out_dim: usize,
}

impl PackedLinear {
    /// Whether this CPU runs the kernel (AVX2 and FMA); callers keep candle's path otherwise.
    pub fn supported() -> bool {
        crate::tile::supported()
    }

    /// Packs `weight` `(out, in)` and the optional `bias` `(out)`, both f32.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let w = weight.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
        let n_panels = out_dim.div_ceil(PANEL);
        let mut panels = vec![0f32; n_panels * in_dim * PANEL];
        for (o, row) in w.iter().enumerate() {
            let (p, j) = (o / PANEL, o % PANEL);
            let panel = &mut panels[p * in_dim * PANEL..(p + 1) * in_dim * PANEL];
            for (k, &v) in row.iter().enumerate() {
                panel[k * PANEL + j] = v;
            }
        }
        let mut padded = vec![0f32; n_panels * PANEL];
        if let Some(b) = bias {
            let b = b.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            if b.len() != out_dim {
                return Err(candle_core::Error::Msg(format!(
                    "bias of {} for {out_dim} outputs",
                    b.len()
                ))
                .into());
            }
            padded[..out_dim].copy_from_slice(&b);
        }
        Ok(Self {
            panels,
            bias: padded,
            in_dim,
            out_dim,
        })
    }

    /// `xs (..., in) -> (..., out)`; `xs` must be a contiguous f32 CPU tensor on a CPU where
    /// [`PackedLinear::supported`] holds.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs.apply_op1_no_bwd(&PackedOp {
            linear: self,
            gelu: false,
        })?)
    }

    /// `gelu(x Wᵀ + b)` (erf form, as [`crate::kernels::gelu_erf`]) in one pass over the output.
    pub fn forward_gelu(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs.apply_op1_no_bwd(&PackedOp {
            linear: self,
            gelu: true,
        })?)
    }

    /// `x Wᵀ + b + residual` in one pass over the output; `residual` has the output's shape.
    pub fn forward_add(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        Ok(xs.apply_op2_no_bwd(residual, &PackedAdd(self))?)
    }

    fn n_panels(&self) -> usize {
        self.bias.len() / PANEL
    }

    /// `x (rows, in_dim) Wᵀ + b`, then the `epilogue`, as `(rows, out_dim)`; panels split
    /// across the rayon pool. The output is written once, never zeroed first.
    fn run(&self, x: &[f32], epilogue: Epilogue<'_>) -> Vec<f32> {
        let rows = x.len() / self.in_dim;
        let len = rows * self.out_dim;
        let mut out = Vec::<f32>::with_capacity(len);
        let n_panels = self.n_panels();
        let tasks = rayon::current_num_threads().clamp(1, n_panels);
        let per_task = n_panels.div_ceil(tasks);
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..tasks).into_par_iter().for_each(|t| {
            let first = t * per_task;
            let last = ((t + 1) * per_task).min(n_panels);
            let out_ptr = &out_ptr;
            // Panels in groups that stay in L2 while every row block passes over them.
            let group = (PANEL_GROUP_BYTES / (self.in_dim * PANEL * 4)).max(1);
            for group_first in (first..last).step_by(group) {
                let group_last = (group_first + group).min(last);
                for block in (0..rows).step_by(ROW_BLOCK) {
                    let block_rows = ROW_BLOCK.min(rows - block);
                    for p in group_first..group_last {
                        // SAFETY: tasks own disjoint panel ranges, so they write disjoint
                        // columns of `out`; every index stays within `rows * out_dim`.
                        unsafe { self.panel_block(x, out_ptr.0, p, block, block_rows, epilogue) };
                    }
                }
            }
        });
        // SAFETY: the panels cover columns 0..out_dim and the row blocks rows 0..rows, so every
        // element of the `len` reserved above has been written.
        unsafe { out.set_len(len) };
        out
    }

    /// One panel for rows `first..first + count`.
    ///
    /// # Safety
    /// `out` points to `rows * out_dim` floats and no other thread writes panel `p`'s columns.
    unsafe fn panel_block(
        &self,
        x: &[f32],
        out: *mut f32,
        p: usize,
        first: usize,
        count: usize,
        epilogue: Epilogue<'_>,
    ) {
        let k = self.in_dim;
        let panel = &self.panels[p * k * PANEL..(p + 1) * k * PANEL];
        let bias = &self.bias[p * PANEL..(p + 1) * PANEL];
        let cols = PANEL.min(self.out_dim - p * PANEL);
        // A partial last panel goes through a spill tile; whole panels are stored in place.
        let mut spill = [[0f32; PANEL]; ROWS];
        let mut r = first;
        while r < first + count {
            let n = ROWS.min(first + count - r);
            let at = r * self.out_dim + p * PANEL;
            let c = if cols == PANEL {
                (out.add(at), self.out_dim)
            } else {
                (spill.as_mut_ptr().cast(), PANEL)
            };
            tile_rows(
                n,
                (x[r * k..(r + n) * k].as_ptr(), k),
                (panel.as_ptr(), PANEL),
                k,
                bias.as_ptr(),
                c,
            );
            for (i, spilled) in spill.iter().take(n).enumerate() {
                let at = at + i * self.out_dim;
                if cols < PANEL {
                    std::ptr::copy_nonoverlapping(spilled.as_ptr(), out.add(at), cols);
                }
                let row = std::slice::from_raw_parts_mut(out.add(at), cols);
                match epilogue {
                    Epilogue::None => {}
                    Epilogue::Gelu => gelu_in_place(row),
                    Epilogue::Add(residual) => add_in_place(row, &residual[at..at + cols]),
                }
            }
            r += n;
        }
    }
}

/// `row[j] = gelu(row[j])`, eight lanes at a time.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn gelu_in_place(row: &mut [f32]) {
    row.iter_mut().for_each(|v| *v = crate::kernels::gelu(*v));
}

/// `row[j] += add[j]`, eight lanes at a time.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn add_in_place(row: &mut [f32], add: &[f32]) {
    row.iter_mut().zip(add).for_each(|(v, a)| *v += a);
}

/// What happens to each output tile before it is stored.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    None,
    Gelu,
    /// Adds the residual, laid out as the output.
    Add(&'a [f32]),
}

/// The contiguous f32 slice a CPU tensor's storage holds, or an error naming `op`.
fn contiguous_f32<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{op} takes contiguous f32 tensors"),
    }
}

impl PackedLinear {
    /// Checks `layout` is `(..., in_dim)` on a CPU with the kernel; returns the output shape.
    fn output_shape(&self, op: &str, layout: &Layout) -> candle_core::Result<Shape> {
        let dims = layout.shape().dims();
        if dims.last() != Some(&self.in_dim) || !Self::supported() {
            candle_core::bail!(
                "{op}: input {dims:?} for {} inputs (AVX2/FMA: {})",
                self.in_dim,
                Self::supported()
            )
        }
        let mut out = dims.to_vec();
        *out.last_mut().expect("checked above") = self.out_dim;
        Ok(Shape::from(out))
    }
}

/// [`PackedLinear::forward`] and [`PackedLinear::forward_gelu`] as a candle op.
struct PackedOp<'a> {
    linear: &'a PackedLinear,
    gelu: bool,
}

impl CustomOp1 for PackedOp<'_> {
    fn name(&self) -> &'static str {
        "mesh-packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), storage, layout)?;
        let shape = self.linear.output_shape(self.name(), layout)?;
        let epilogue = if self.gelu {
            Epilogue::Gelu
        } else {
            Epilogue::None
        };
        let out = self.linear.run(x, epilogue);
        Ok((CpuStorage::F32(out), shape))
    }
}

/// [`PackedLinear::forward_add`] as a candle op.
struct PackedAdd<'a>(&'a PackedLinear);

impl CustomOp2 for PackedAdd<'_> {
    fn name(&self) -> &'static str {
        "mesh-packed-linear-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), s1, l1)?;
        let residual = contiguous_f32(self.name(), s2, l2)?;
        let shape = self.0.output_shape(self.name(), l1)?;
        if l2.shape() != &shape {
            candle_core::bail!(
                "{}: residual {:?} for output {shape:?}",
                self.name(),
                l2.shape()
            )
        }
        let out = self.0.run(x, Epilogue::Add(residual));
        Ok((CpuStorage::F32(out), shape))
    }
}

struct SendPtr(*mut f32);
// SAFETY: only used to write disjoint columns from the tasks of one `PackedLinear::run`.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::max_abs_diff;
    use candle_core::{Device, Module};

    /// Against candle's `Linear` (its own `gemm`), on shapes with partial panels and tiles.
    #[test]
    fn matches_candle_linear() {
        if !PackedLinear::supported() {
            return;
        }
        let dev = Device::Cpu;
        for (rows, in_dim, out_dim) in [(1, 8, 3), (7, 384, 1152), (53, 40, 37), (13, 1536, 384)] {
            let w = Tensor::randn(0f32, 1.0, (out_dim, in_dim), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, out_dim, &dev).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, rows, in_dim), &dev).unwrap();
            let want = candle_nn::Linear::new(w.clone(), Some(b.clone()))
                .forward(&x)
                .unwrap();
            let got = PackedLinear::new(&w, Some(&b))
                .unwrap()
                .forward(&x)
                .unwrap();
            assert_eq!(got.dims(), want.dims());
            let diff = max_abs_diff(&got, &want);
            // Sums of `in_dim` products of unit normals: rounding differs only by order.
            assert!(
                diff < 2e-4 * (in_dim as f32).sqrt(),
                "{rows}x{in_dim}x{out_dim}: {diff}"
            );
        }
    }

    /// The fused epilogues against candle's separate operations.
    #[test]
    fn epilogues_match_separate_ops() {
        if !PackedLinear::supported() {
            return;
        }
        let dev = Device::Cpu;
        let (rows, in_dim, out_dim) = (11, 64, 40);
        let w = Tensor::randn(0f32, 1.0, (out_dim, in_dim), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, out_dim, &dev).unwrap();
        let x = Tensor::randn(0f32, 0.2, (rows, in_dim), &dev).unwrap();
        let res = Tensor::randn(0f32, 1.0, (rows, out_dim), &dev).unwrap();
        let linear = candle_nn::Linear::new(w.clone(), Some(b.clone()));
        let packed = PackedLinear::new(&w, Some(&b)).unwrap();
        let want = (linear.forward(&x).unwrap() + &res).unwrap();
        assert!(max_abs_diff(&packed.forward_add(&x, &res).unwrap(), &want) < 1e-5);
        let want = linear.forward(&x).unwrap().gelu_erf().unwrap();
        assert!(max_abs_diff(&packed.forward_gelu(&x).unwrap(), &want) < 1e-5);
        let wrong = Tensor::zeros((rows, out_dim + 1), candle_core::DType::F32, &dev).unwrap();
        assert!(packed.forward_add(&x, &wrong).is_err());
    }

    /// A case worked by hand: x = [1, 2], W = [[1, 0], [0, 1], [1, 1]], b = [0.5, 0, -1].
    #[test]
    fn hand_computed_case() {
        if !PackedLinear::supported() {
            return;
        }
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &dev).unwrap();
        let b = Tensor::new(&[0.5f32, 0.0, -1.0], &dev).unwrap();
        let x = Tensor::new(&[[1f32, 2.0]], &dev).unwrap();
        let y = PackedLinear::new(&w, Some(&b))
            .unwrap()
            .forward(&x)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(y, vec![vec![1.5, 2.0, 2.0]]);
    }
}
