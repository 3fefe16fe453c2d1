//! Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism
//! (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled
//! Gaussian Mechanism", arXiv:1908.10530).
//!
//! This is a line-by-line port of Google's `dp-accounting` 0.6.0
//! (`dp_accounting/rdp/rdp_privacy_accountant.py`):
//! * integer orders: binomial expansion of A_alpha in log space
//!   (`_compute_log_a_int`);
//! * fractional orders: the two-sided erfc series of Sec. 3.3 of the paper
//!   (`_compute_log_a_frac`), at most 1000 terms; an order whose series does
//!   not converge gets RDP = +inf and so is never selected (same as the reference);
//! * q = 1: plain Gaussian, alpha / (2 sigma^2); q = 0: 0.
//! * RDP -> (eps, delta): the improved conversion of Balle et al. 2020
//!   (arXiv:2004.00010, Prop. 12), `eps = r + log1p(-1/a) - log(delta*a)/(a-1)`
//!   for a > 1.01, plus the KL shortcut `delta^2 + expm1(-r) > 0 => eps = 0`,
//!   exactly as `dp_accounting.rdp.compute_epsilon`.
//! * Orders: [`DEFAULT_ORDERS`] = dp-accounting's `DEFAULT_RDP_ORDERS`
//!   (1.1, 1.2, ..., 10.9, 11, 12, ..., 63, 128, 256, 512, 1024).
//!
//! Neighbouring relation: add/remove one record (as in the reference).

// `!(x > 0.0)` is deliberate here: it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use thiserror::Error;

/// Errors from the accountant.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DpError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cannot reach target epsilon {target} (best eps {best} at noise multiplier {sigma})")]
    Unreachable { target: f64, best: f64, sigma: f64 },
}

/// dp-accounting 0.6.0 `DEFAULT_RDP_ORDERS`, as a function (floats built the
/// same way as the Python list comprehension, so integrality matches).
pub fn default_orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|x| 1.0 + x as f64 / 10.0).collect();
    v.extend((11..64).map(|x| x as f64));
    v.extend([128.0, 256.0, 512.0, 1024.0]);
    v
}

/// Number of orders in [`default_orders`].
pub const DEFAULT_ORDERS_LEN: usize = 99 + 53 + 4;

const MAX_STEPS_LOG_A_FRAC: usize = 1000;

fn log_add(x: f64, y: f64) -> f64 {
    let (a, b) = if x < y { (x, y) } else { (y, x) };
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// log|Gamma(x)| (same as scipy's gammaln).
fn gammaln(x: f64) -> f64 {
    libm::lgamma(x)
}

fn log_comb(n: f64, k: f64) -> f64 {
    gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
}

/// ln(erfc(x)), accurate also far in the right tail (where erfc underflows).
fn log_erfc(x: f64) -> f64 {
    if x < 20.0 {
        libm::erfc(x).ln()
    } else {
        // Asymptotic series erfc(x) ~ exp(-x^2)/(x sqrt(pi)) * sum_n (-1)^n (2n-1)!!/(2x^2)^n;
        // at x >= 20 the terms shrink by >= 1/800 * (2n-1) per step.
        let t = 1.0 / (2.0 * x * x);
        let mut term = 1.0;
        let mut sum = 1.0;
        for n in 1..12 {
            term *= -((2 * n - 1) as f64) * t;
            sum += term;
        }
        -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + sum.ln()
    }
}

fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    let log1mq = (-q).ln_1p();
    let lq = q.ln();
    let a = alpha as f64;
    for i in 0..=alpha {
        let fi = i as f64;
        let log_coef = log_comb(a, fi) + fi * lq + (a - fi) * log1mq;
        let s = log_coef + (fi * fi - fi) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log1mq = (-q).ln_1p();
    let lq = q.ln();
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let s2 = std::f64::consts::SQRT_2 * sigma;
    for i in 0..MAX_STEPS_LOG_A_FRAC {
        let fi = i as f64;
        let log_coef = log_comb(alpha, fi);
        let j = alpha - fi;
        let log_t0 = log_coef + fi * lq + j * log1mq;
        let log_t1 = log_coef + j * lq + fi * log1mq;
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / s2);
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / s2);
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY // not converged: order excluded, as in the reference
}

fn check_q_sigma(q: f64, sigma: f64) -> Result<(), DpError> {
    if !(0.0..=1.0).contains(&q) {
        return Err(DpError::InvalidArgument(format!(
            "sampling rate q must be in [0,1], got {q}"
        )));
    }
    if !(sigma > 0.0) || !sigma.is_finite() {
        return Err(DpError::InvalidArgument(format!(
            "noise multiplier must be finite and > 0, got {sigma}"
        )));
    }
    Ok(())
}

/// Per-step RDP of the Poisson-subsampled Gaussian mechanism at each order.
/// Invalid input (q outside [0,1], sigma <= 0 or non-finite, an order <= 1 or
/// non-finite) yields `+inf` entries rather than a panic; use
/// [`try_rdp_subsampled_gaussian`] for an error instead.
pub fn rdp_subsampled_gaussian(q: f64, noise_multiplier: f64, orders: &[f64]) -> Vec<f64> {
    try_rdp_subsampled_gaussian(q, noise_multiplier, orders)
        .unwrap_or_else(|_| vec![f64::INFINITY; orders.len()])
}

/// Checked version of [`rdp_subsampled_gaussian`].
pub fn try_rdp_subsampled_gaussian(
    q: f64,
    noise_multiplier: f64,
    orders: &[f64],
) -> Result<Vec<f64>, DpError> {
    check_q_sigma(q, noise_multiplier)?;
    if let Some(a) = orders.iter().find(|a| !(**a > 1.0) || !a.is_finite()) {
        return Err(DpError::InvalidArgument(format!(
            "RDP orders must be finite and > 1, got {a}"
        )));
    }
    let s = noise_multiplier;
    Ok(orders
        .iter()
        .map(|&alpha| {
            if q == 0.0 {
                0.0
            } else if q == 1.0 {
                alpha / (2.0 * s * s)
            } else if alpha.fract() == 0.0 {
                log_a_int(q, s, alpha as u64) / (alpha - 1.0)
            } else {
                log_a_frac(q, s, alpha) / (alpha - 1.0)
            }
        })
        .collect())
}

/// RDP curve -> (eps, optimal order) at `delta`, Balle et al. 2020 conversion
/// (port of `dp_accounting.rdp.compute_epsilon`).
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> Result<(f64, f64), DpError> {
    if !(delta > 0.0 && delta < 1.0) {
        return Err(DpError::InvalidArgument(format!(
            "delta must be in (0,1), got {delta}"
        )));
    }
    if orders.len() != rdp.len() || orders.is_empty() {
        return Err(DpError::InvalidArgument(
            "orders and rdp must be non-empty and of equal length".into(),
        ));
    }
    let mut best = (f64::INFINITY, orders[0]);
    for (&a, &r) in orders.iter().zip(rdp) {
        if !(a >= 1.0) {
            return Err(DpError::InvalidArgument(format!(
                "order must be >= 1, got {a}"
            )));
        }
        let eps = if r.is_nan() {
            f64::INFINITY
        } else if r < 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
            0.0 // negative RDP (numerical) or the KL bound already gives delta
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        if eps < best.0 {
            best = (eps, a); // strict '<' = first minimum, like np.argmin
        }
    }
    Ok((best.0.max(0.0), best.1))
}

/// (eps, optimal order) after `steps` compositions of the Poisson-subsampled
/// Gaussian with rate `q` and noise multiplier `noise_multiplier`, at `delta`,
/// over [`default_orders`].
pub fn epsilon(
    q: f64,
    noise_multiplier: f64,
    steps: u64,
    delta: f64,
) -> Result<(f64, f64), DpError> {
    if steps < 1 {
        return Err(DpError::InvalidArgument("steps must be >= 1".into()));
    }
    let orders = default_orders();
    let rdp = try_rdp_subsampled_gaussian(q, noise_multiplier, &orders)?;
    let total: Vec<f64> = rdp.iter().map(|r| r * steps as f64).collect();
    epsilon_from_rdp(&orders, &total, delta)
}

/// Smallest noise multiplier (to relative precision 1e-6) whose eps after
/// `steps` steps at rate `q` is <= `target_epsilon`. Bisection; the returned
/// sigma always satisfies the target.
pub fn calibrate_noise(
    target_epsilon: f64,
    q: f64,
    steps: u64,
    delta: f64,
) -> Result<f64, DpError> {
    if !(target_epsilon > 0.0) || !target_epsilon.is_finite() {
        return Err(DpError::InvalidArgument(format!(
            "target epsilon must be finite and > 0, got {target_epsilon}"
        )));
    }
    if !(q > 0.0 && q <= 1.0) {
        return Err(DpError::InvalidArgument(format!(
            "q must be in (0,1] for calibration, got {q}"
        )));
    }
    let eps = |s: f64| epsilon(q, s, steps, delta).map(|e| e.0);
    let mut hi = 1.0;
    let mut e_hi = eps(hi)?;
    while e_hi > target_epsilon {
        hi *= 2.0;
        if hi > 1e6 {
            return Err(DpError::Unreachable {
                target: target_epsilon,
                best: e_hi,
                sigma: hi / 2.0,
            });
        }
        e_hi = eps(hi)?;
    }
    let mut lo = hi / 2.0;
    if hi == 1.0 {
        // shrink lo until it violates the target (or becomes tiny)
        while lo > 1e-6 && eps(lo)? <= target_epsilon {
            hi = lo;
            lo /= 2.0;
        }
    }
    while (hi - lo) > 1e-6 * hi {
        let mid = 0.5 * (lo + hi);
        if eps(mid)? <= target_epsilon {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    // Expected values from scripts/ref_accountant.py:
    //   /tmp/h-fed/venv/bin/python scripts/ref_accountant.py
    //   dp-accounting 0.6.0, numpy 2.4.6, scipy 1.17.1, Python 3.11.7
    //   RdpAccountant() (DEFAULT_RDP_ORDERS, ADD_OR_REMOVE_ONE),
    //   compose(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps),
    //   get_epsilon_and_optimal_order(delta)
    // (q, sigma, steps, delta, eps, order)
    const REF: &[(f64, f64, u64, f64, f64, f64)] = &[
        (
            0.004266666666666667,
            1.1,
            14100,
            1e-05,
            2.6003429394461106,
            8.1,
        ),
        (0.01, 1.0, 1000, 1e-05, 2.101366525420273, 7.8),
        (1.0, 2.0, 10, 1e-05, 8.079406222420491, 3.9),
        (0.1, 0.8, 100, 1e-06, 13.95042830217513, 2.5),
        (0.05, 4.0, 500, 1e-05, 1.1904390752288427, 15.0),
        (0.02, 0.6, 2000, 1e-05, 22.15696872897047, 2.0),
        (0.5, 1.5, 50, 0.001, 11.97178211042037, 2.2),
        (0.001, 10.0, 1, 1e-05, 0.0035066090798109165, 1024.0),
    ];

    #[test]
    fn matches_dp_accounting_epsilon() {
        for &(q, s, t, d, e_ref, o_ref) in REF {
            let (e, o) = epsilon(q, s, t, d).unwrap();
            println!("q={q} sigma={s} steps={t} delta={d}: ours {e:.10} ref {e_ref:.10} rel {:.2e} order {o}", rel(e, e_ref));
            assert!(rel(e, e_ref) < 1e-6, "q={q} s={s}: {e} vs {e_ref}");
            assert_eq!(o, o_ref);
        }
    }

    #[test]
    fn matches_dp_accounting_rdp_per_order() {
        let orders = [
            1.5, 2.0, 2.5, 3.0, 4.5, 8.0, 10.9, 32.0, 63.0, 256.0, 1024.0,
        ];
        let refs: &[(f64, f64, [f64; 11])] = &[
            (
                0.01,
                1.0,
                [
                    0.00013236850293993048,
                    0.00017181342207455162,
                    0.00021777202424064354,
                    0.0002646375745846693,
                    0.0004149360312328416,
                    0.000893643907606041,
                    0.3876114113070222,
                    11.246275937048072,
                    26.820552875528232,
                    123.37677032308648,
                    507.39032818137656,
                ],
            ),
            (
                0.1,
                0.8,
                [
                    f64::INFINITY,
                    0.03701379105626625,
                    0.058617740418810405,
                    0.09505853907615289,
                    0.6467152932476008,
                    3.61865742244435,
                    5.9804574511228346,
                    22.623137968522272,
                    46.87902643776411,
                    197.6883851615432,
                    797.6951640906882,
                ],
            ),
            (
                0.004266666666666667,
                1.1,
                [
                    1.7713252208474904e-05,
                    2.339577600995332e-05,
                    2.936054929697007e-05,
                    3.536769897204122e-05,
                    5.3691738643180825e-05,
                    9.834106177992806e-05,
                    0.00013779841926648913,
                    7.59018834621011,
                    20.488120577148464,
                    100.30680187454402,
                    417.6782392360519,
                ],
            ),
        ];
        for (q, s, r_ref) in refs {
            let r = rdp_subsampled_gaussian(*q, *s, &orders);
            for (k, (a, b)) in r.iter().zip(r_ref).enumerate() {
                if b.is_infinite() {
                    assert!(a.is_infinite(), "order {} q={q}: {a}", orders[k]);
                } else {
                    assert!(rel(*a, *b) < 1e-6, "order {} q={q}: {a} vs {b}", orders[k]);
                }
            }
        }
    }

    #[test]
    fn special_cases() {
        let o = [2.0, 3.5, 10.0];
        assert_eq!(rdp_subsampled_gaussian(0.0, 1.0, &o), vec![0.0; 3]);
        let r = rdp_subsampled_gaussian(1.0, 2.0, &o);
        for (a, r) in o.iter().zip(r) {
            assert_eq!(r, a / 8.0);
        }
        assert_eq!(epsilon(0.0, 1.0, 100, 1e-5).unwrap().0, 0.0);
        assert_eq!(default_orders().len(), DEFAULT_ORDERS_LEN);
    }

    #[test]
    fn input_validation() {
        assert!(epsilon(1.5, 1.0, 10, 1e-5).is_err());
        assert!(epsilon(-0.1, 1.0, 10, 1e-5).is_err());
        assert!(epsilon(0.1, 0.0, 10, 1e-5).is_err());
        assert!(epsilon(0.1, f64::NAN, 10, 1e-5).is_err());
        assert!(epsilon(0.1, 1.0, 0, 1e-5).is_err());
        assert!(epsilon(0.1, 1.0, 10, 0.0).is_err());
        assert!(epsilon(0.1, 1.0, 10, 1.0).is_err());
        assert!(calibrate_noise(-1.0, 0.1, 10, 1e-5).is_err());
        assert!(calibrate_noise(1.0, 0.0, 10, 1e-5).is_err());
        assert!(try_rdp_subsampled_gaussian(0.1, 1.0, &[1.0]).is_err());
        assert!(rdp_subsampled_gaussian(0.1, -1.0, &[2.0])[0].is_infinite());
    }

    #[test]
    fn calibration_hits_target() {
        // sigma_ref: dp_accounting.mechanism_calibration.calibrate_dp_mechanism(RdpAccountant, ...,
        // delta=1e-5, tol=1e-7), same script/version as REF above.
        for &(target, q, t, sigma_ref) in &[
            (1.0, 0.01, 1000u64, 1.5131221642023396),
            (3.0, 256.0 / 60000.0, 14100, 1.0148002356921144),
            (8.0, 1.0, 10, 2.0164901812816183),
            (0.5, 0.1, 50, 5.709934394799346),
        ] {
            let s = calibrate_noise(target, q, t, 1e-5).unwrap();
            assert!(rel(s, sigma_ref) < 2e-6, "sigma {s} vs ref {sigma_ref}");
            let e = epsilon(q, s, t, 1e-5).unwrap().0;
            let e_below = epsilon(q, s * (1.0 - 1e-4), t, 1e-5).unwrap().0;
            println!(
                "target {target} q {q} steps {t}: sigma {s:.7} (ref {sigma_ref:.7}) eps {e:.7}"
            );
            assert!(e <= target && e > 0.999 * target, "{e}");
            assert!(e_below > target || e_below == e); // minimality (up to plateaus)
        }
    }
}
