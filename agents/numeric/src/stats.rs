//! Small descriptive statistics shared by the numeric methods and the agents.

/// Arithmetic mean (0 for no values).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (0 for fewer than two values).
pub fn std_dev(v: &[f64], mean: f64) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// The `q` quantile (0..=1, clamped) of `values` in any order, interpolated linearly between
/// order statistics (NumPy's default, `numpy.quantile(values, q)`); `None` for no values.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Median (the mean of the middle two for an even count); NaN for no values.
pub fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5).unwrap_or(f64::NAN)
}

/// Median absolute deviation from `center`.
pub fn mad(v: &[f64], center: f64) -> f64 {
    median(&v.iter().map(|x| (x - center).abs()).collect::<Vec<_>>())
}

/// The logistic function 1 / (1 + e^-z). Accurate to rounding for every `z` in f64: for
/// z < -709 `e^-z` overflows to infinity and the result is 0, never NaN.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Solves `A x = b` for symmetric positive definite `A` (row-major `n x n`, lower triangle
/// read, overwritten by its Cholesky factor); `None` when `A` is not positive definite.
pub fn cholesky_solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut diag = a[j * n + j];
        for k in 0..j {
            diag -= a[j * n + k] * a[j * n + k];
        }
        if diag.is_nan() || diag <= 0.0 || !diag.is_finite() {
            return None;
        }
        let diag = diag.sqrt();
        a[j * n + j] = diag;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / diag;
        }
    }
    let mut z = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            z[i] -= a[i * n + k] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= a[k * n + i] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    Some(z)
}

/// Softmax of `logits / temperature` (computed in f64, max-shifted).
pub fn softmax(logits: &[f32], temperature: f64) -> Vec<f32> {
    let t = temperature.max(1e-6);
    let scaled: Vec<f64> = logits.iter().map(|&l| l as f64 / t).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_by_hand() {
        let v = [1.0, 2.0, 4.0, 9.0];
        assert_eq!(mean(&v), 4.0);
        assert_eq!(median(&v), 3.0);
        // |x - 3| = 2, 1, 1, 6: median 1.5.
        assert_eq!(mad(&v, 3.0), 1.5);
        assert!((std_dev(&v, 4.0) - (38.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_match_numpy_linear_interpolation() {
        // numpy.quantile([1, 2, 3, 4], [0.5, 0.95]) == [2.5, 3.85], in any order.
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert!((quantile(&v, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
        // numpy.percentile(range(1, 101), [50, 99]) == [50.5, 99.01]; q outside 0..=1 clamps.
        let r: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((quantile(&r, 0.5).unwrap() - 50.5).abs() < 1e-9);
        assert!((quantile(&r, 0.99).unwrap() - 99.01).abs() < 1e-9);
        assert_eq!(quantile(&r, 1.5), Some(100.0));
    }

    #[test]
    fn sigmoid_by_hand_and_at_the_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2f64.ln()) - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(sigmoid(800.0), 1.0);
        assert_eq!(sigmoid(-800.0), 0.0);
    }

    #[test]
    fn cholesky_solves_a_hand_system() {
        // [[4, 2], [2, 3]] x = [2, 1]: x = [0.5, 0].
        let mut a = [4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&mut a, &[2.0, 1.0], 2).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
        assert!(cholesky_solve(&mut [1.0, 2.0, 2.0, 1.0], &[1.0, 1.0], 2).is_none());
    }

    #[test]
    fn softmax_matches_hand_computation() {
        // softmax([1, 2, 3]) = [0.0900, 0.2447, 0.6652]; at T = 2: softmax([.5, 1, 1.5]) = [0.1863, 0.3072, 0.5065].
        let p = softmax(&[1.0, 2.0, 3.0], 1.0);
        assert!((p[0] - 0.090_031).abs() < 1e-5 && (p[2] - 0.665_241).abs() < 1e-5);
        let p = softmax(&[1.0, 2.0, 3.0], 2.0);
        assert!((p[0] - 0.186_324).abs() < 1e-5 && (p[1] - 0.307_196).abs() < 1e-5);
    }
}
