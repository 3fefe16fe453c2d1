//! The register tile under the packed linear layers ([`crate::packed`]) and the fused
//! attention ([`crate::kernels::attention`]): `ROWS x PANEL` outputs in twelve AVX2 registers,
//! fed by strided rows of one matrix and 16-float rows of another.

/// Output columns per panel: two AVX registers of 8 floats.
pub(crate) const PANEL: usize = 16;
/// Input rows per register tile.
pub(crate) const ROWS: usize = 6;
/// The bias of a register tile that has none.
pub(crate) const ZERO_BIAS: [f32; PANEL] = [0.0; PANEL];

/// Whether this CPU runs the tile (AVX2 and FMA).
pub(crate) fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One register tile: `c = a b + bias` for `n` (1 to [`ROWS`]) rows of `a`, `k` deep, and
/// [`PANEL`] columns. Matrices are `(pointer, row stride)` with unit column stride: `a` is
/// `n x k`, `b` is `k x PANEL`, `c` is `n x PANEL`; `bias` is [`PANEL`] floats added to every
/// row. The packed layers pass a weight panel as `b`; attention passes packed keys or values.
///
/// # Safety
/// [`supported`] holds; every addressed element lies inside its allocation, and
/// `c` overlaps no input and is written by no one else meanwhile.
pub(crate) unsafe fn tile_rows(
    n: usize,
    a: (*const f32, usize),
    b: (*const f32, usize),
    k: usize,
    bias: *const f32,
    c: (*mut f32, usize),
) {
    match n {
        6 => tile_kernel::<6>(a, b, k, bias, c),
        5 => tile_kernel::<5>(a, b, k, bias, c),
        4 => tile_kernel::<4>(a, b, k, bias, c),
        3 => tile_kernel::<3>(a, b, k, bias, c),
        2 => tile_kernel::<2>(a, b, k, bias, c),
        1 => tile_kernel::<1>(a, b, k, bias, c),
        _ => unreachable!("a register tile has 1 to {ROWS} rows, not {n}"),
    }
}

/// [`tile_rows`] for `R` rows: 2R accumulators in registers, started from the bias.
///
/// # Safety
/// As [`tile_rows`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_kernel<const R: usize>(
    (a, lda): (*const f32, usize),
    (b, ldb): (*const f32, usize),
    k: usize,
    bias: *const f32,
    (c, ldc): (*mut f32, usize),
) {
    use std::arch::x86_64::*;
    let b0 = _mm256_loadu_ps(bias);
    let b1 = _mm256_loadu_ps(bias.add(8));
    let mut lo = [b0; R];
    let mut hi = [b1; R];
    for p in 0..k {
        let w = b.add(p * ldb);
        let w0 = _mm256_loadu_ps(w);
        let w1 = _mm256_loadu_ps(w.add(8));
        for r in 0..R {
            let v = _mm256_broadcast_ss(&*a.add(r * lda + p));
            lo[r] = _mm256_fmadd_ps(v, w0, lo[r]);
            hi[r] = _mm256_fmadd_ps(v, w1, hi[r]);
        }
    }
    for r in 0..R {
        _mm256_storeu_ps(c.add(r * ldc), lo[r]);
        _mm256_storeu_ps(c.add(r * ldc + 8), hi[r]);
    }
}

/// Never called: [`supported`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_kernel<const R: usize>(
    _: (*const f32, usize),
    _: (*const f32, usize),
    _: usize,
    _: *const f32,
    _: (*mut f32, usize),
) {
    unreachable!("the register tile runs on x86-64 only")
}
