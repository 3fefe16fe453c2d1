//! L2-regularised binary logistic regression, fitted exactly by Newton's method.
//!
//! Minimises `sum_i logloss(y_i, sigmoid(w . x_i + b)) + (lambda / 2) |w|^2` (the intercept
//! is not penalised): with `lambda = 1` the objective of scikit-learn's
//! `LogisticRegression(C=1)`. Each Newton step solves `H d = g` with a Cholesky factorisation
//! (`H = X^T S X + lambda I`, S the diagonal of p (1 - p)); the objective is strictly convex,
//! so a step-halving line search makes it converge to the unique optimum in a few steps.
//!
//! Why not linfa-logistic: linfa 0.7 and 0.8 pin `sprs = "=0.11.2"` while the pure-Rust MILP
//! solver behind [`crate::allocation`] (microlp) needs sprs 0.11.4 or later, and Cargo
//! cannot hold both; this fit is small, exact and tested against scikit-learn's numbers.

use crate::stats::{cholesky_solve, sigmoid};

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// Newton steps taken.
    pub iterations: usize,
}

/// Why a fit failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogisticError {
    #[error("no rows to fit")]
    Empty,
    #[error("row {0} has a different number of features")]
    Ragged(usize),
    #[error("the Hessian is not positive definite (lambda must be > 0)")]
    NotPositiveDefinite,
    /// The caller's stop check turned true ([`Logistic::fit_until`]).
    #[error("stopped after {0} Newton steps")]
    Stopped(usize),
}

/// Rows of the Hessian between two calls of [`Logistic::fit_until`]'s stop check.
pub const STOP_CHECK_ROWS: usize = 256;

/// Log(1 + exp(z)) without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl Logistic {
    /// Fits on rows `x` (equal length) and labels `y`, with L2 strength `lambda` (> 0).
    pub fn fit(x: &[Vec<f64>], y: &[bool], lambda: f64) -> Result<Self, LogisticError> {
        Self::fit_until(x, y, lambda, &|| false)
    }

    /// [`Logistic::fit`] that calls `stop` before each Newton step and every
    /// [`STOP_CHECK_ROWS`] rows of the Hessian, and ends with [`LogisticError::Stopped`] once
    /// it returns true (a training whose request is gone stops computing).
    pub fn fit_until(
        x: &[Vec<f64>],
        y: &[bool],
        lambda: f64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Self, LogisticError> {
        let n = x.len();
        if n == 0 || y.len() != n {
            return Err(LogisticError::Empty);
        }
        let d = x[0].len();
        if let Some(i) = x.iter().position(|r| r.len() != d) {
            return Err(LogisticError::Ragged(i));
        }
        // Parameters: weights then intercept (index d).
        let mut beta = vec![0.0; d + 1];
        let objective = |beta: &[f64]| -> f64 {
            let mut loss = 0.0;
            for (row, &label) in x.iter().zip(y) {
                let z = dot(row, &beta[..d]) + beta[d];
                loss += if label { softplus(-z) } else { softplus(z) };
            }
            loss + 0.5 * lambda * dot(&beta[..d], &beta[..d])
        };
        let mut current = objective(&beta);
        let mut iterations = 0;
        for _ in 0..100 {
            iterations += 1;
            let mut grad = vec![0.0; d + 1];
            let mut hess = vec![0.0; (d + 1) * (d + 1)];
            for (i, (row, &label)) in x.iter().zip(y).enumerate() {
                if i % STOP_CHECK_ROWS == 0 && stop() {
                    return Err(LogisticError::Stopped(iterations - 1));
                }
                let p = sigmoid(dot(row, &beta[..d]) + beta[d]);
                let r = p - f64::from(u8::from(label));
                let s = p * (1.0 - p);
                for j in 0..=d {
                    let xj = if j == d { 1.0 } else { row[j] };
                    grad[j] += r * xj;
                    if xj == 0.0 {
                        continue;
                    }
                    for k in 0..=j {
                        let xk = if k == d { 1.0 } else { row[k] };
                        hess[j * (d + 1) + k] += s * xj * xk;
                    }
                }
            }
            for j in 0..d {
                grad[j] += lambda * beta[j];
                hess[j * (d + 1) + j] += lambda;
            }
            // Keep the intercept's pivot positive even when every p is 0 or 1.
            hess[d * (d + 1) + d] += 1e-12;
            for j in 0..=d {
                for k in 0..j {
                    hess[k * (d + 1) + j] = hess[j * (d + 1) + k];
                }
            }
            if grad.iter().all(|g| g.abs() < 1e-10 * n as f64) {
                break;
            }
            let step = cholesky_solve(&mut hess, &grad, d + 1)
                .ok_or(LogisticError::NotPositiveDefinite)?;
            let mut t = 1.0;
            let mut next;
            loop {
                next = beta
                    .iter()
                    .zip(&step)
                    .map(|(b, s)| b - t * s)
                    .collect::<Vec<_>>();
                let value = objective(&next);
                if value <= current + 1e-12 * current.abs() || t < 1e-10 {
                    break;
                }
                t *= 0.5;
            }
            let change = step.iter().map(|s| (t * s).abs()).fold(0.0, f64::max);
            current = objective(&next);
            beta = next;
            if change < 1e-12 {
                break;
            }
        }
        Ok(Self {
            intercept: beta[d],
            weights: beta[..d].to_vec(),
            iterations,
        })
    }

    /// Log-odds of the positive class.
    pub fn log_odds(&self, row: &[f64]) -> f64 {
        dot(row, &self.weights) + self.intercept
    }

    /// Probability of the positive class.
    pub fn probability(&self, row: &[f64]) -> f64 {
        sigmoid(self.log_odds(row))
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The optimum satisfies the first-order condition X^T (p - y) + lambda w = 0, sum (p - y) = 0.
    #[test]
    fn the_fit_satisfies_the_optimality_conditions() {
        let x: Vec<Vec<f64>> = (0..60)
            .map(|i| vec![(i as f64 * 0.37).sin() * 2.0, (i % 7) as f64 - 3.0])
            .collect();
        let y: Vec<bool> = x
            .iter()
            .enumerate()
            .map(|(i, r)| r[0] + 0.3 * r[1] + ((i * 13 % 5) as f64 - 2.0) * 0.4 > 0.0)
            .collect();
        let m = Logistic::fit(&x, &y, 1.0).unwrap();
        let mut grad = vec![0.0; 3];
        for (r, &l) in x.iter().zip(&y) {
            let e = m.probability(r) - f64::from(u8::from(l));
            grad[0] += e * r[0];
            grad[1] += e * r[1];
            grad[2] += e;
        }
        grad[0] += m.weights[0];
        grad[1] += m.weights[1];
        assert!(grad.iter().all(|g| g.abs() < 1e-8), "{grad:?}");
        assert!(m.weights[0] > 0.0 && m.iterations < 20);
    }

    /// The stop check is called between steps; once it is true the fit ends, and a check that
    /// never fires changes nothing.
    #[test]
    fn a_fit_stops_when_its_check_says_so() {
        let x: Vec<Vec<f64>> = (0..1_000)
            .map(|i| vec![(i % 17) as f64 / 17.0, (i % 5) as f64])
            .collect();
        let y: Vec<bool> = (0..1_000).map(|i| (i * 7919) % 3 == 0).collect();
        let calls = std::cell::Cell::new(0);
        let stopped = Logistic::fit_until(&x, &y, 1.0, &|| {
            calls.set(calls.get() + 1);
            calls.get() > 5
        });
        assert_eq!(stopped.unwrap_err(), LogisticError::Stopped(1));
        assert_eq!(
            calls.get(),
            6,
            "4 checks per step of 1,000 rows: stopped in the second step"
        );
        let never = Logistic::fit_until(&x, &y, 1.0, &|| false).unwrap();
        let plain = Logistic::fit(&x, &y, 1.0).unwrap();
        assert_eq!(
            (never.weights, never.intercept),
            (plain.weights, plain.intercept)
        );
    }

    /// One binary feature: the optimum has a closed form for the intercept-only model.
    #[test]
    fn intercept_only_matches_the_closed_form() {
        // No features: p = mean(y), intercept = log(k / (n - k)).
        let x = vec![Vec::<f64>::new(); 10];
        let y: Vec<bool> = (0..10).map(|i| i < 3).collect();
        let m = Logistic::fit(&x, &y, 1.0).unwrap();
        assert!((m.intercept - (3.0f64 / 7.0).ln()).abs() < 1e-9, "{m:?}");
    }
}
