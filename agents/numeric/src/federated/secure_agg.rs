//! Secure aggregation by pairwise additive masking (Bonawitz et al. 2017,
//! "Practical Secure Aggregation for Privacy-Preserving Machine Learning"),
//! simplified: no dropouts, no key agreement, no secret sharing.
//!
//! * Fixed point: each value is clamped to `[-CLIP_RANGE, CLIP_RANGE]`, then
//!   `round(v * scale)` as `i64`, stored as `u64` (two's complement). Rounding
//!   error is <= 0.5/scale per value, so the decoded sum of n clients is within
//!   n * 0.5 / scale of the true (clamped) sum. `scale * CLIP_RANGE * n_clients`
//!   must be <= 2^62 so the true sum cannot wrap.
//! * Masks: for each pair i < j a ChaCha20 stream is seeded with the 32 bytes
//!   `round_seed (LE u64) || i (LE u64) || j (LE u64) || b"hfed-sa1"`; client i adds
//!   the stream, client j subtracts it (wrapping u64), so all masks cancel in
//!   the server's sum.
//! * Security caveat: in this simulation the pair seeds derive from one round
//!   seed; in the real protocol they come from pairwise Diffie-Hellman keys the
//!   server never sees. With `n_clients == 1` there is nothing to mask with.

// `!(x > 0.0)` is deliberate here: it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use thiserror::Error;

/// Largest absolute value representable before clamping.
pub const CLIP_RANGE: f64 = 1.0e6;
/// Default fixed-point scale, 2^32 (resolution ~2.3e-10); supports up to 1024 clients.
pub const DEFAULT_SCALE: f64 = 4294967296.0;

/// Errors from secure aggregation.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SecAggError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn check_scale(scale: f64, n_clients: usize) -> Result<(), SecAggError> {
    if !(scale > 0.0) || !scale.is_finite() {
        return Err(SecAggError::InvalidArgument(format!(
            "scale must be finite and > 0, got {scale}"
        )));
    }
    if scale * CLIP_RANGE * n_clients as f64 > 2f64.powi(62) {
        return Err(SecAggError::InvalidArgument(format!(
            "scale {scale} x CLIP_RANGE x {n_clients} clients overflows the 2^62 sum budget"
        )));
    }
    Ok(())
}

/// Clamp to `[-CLIP_RANGE, CLIP_RANGE]` and encode as two's-complement fixed point.
pub fn quantise(v: f64, scale: f64) -> u64 {
    (v.clamp(-CLIP_RANGE, CLIP_RANGE) * scale).round() as i64 as u64
}

/// Decode a (summed) fixed-point value.
pub fn dequantise(x: u64, scale: f64) -> f64 {
    x as i64 as f64 / scale
}

fn pair_rng(round_seed: u64, i: usize, j: usize) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    seed[0..8].copy_from_slice(&round_seed.to_le_bytes());
    seed[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    seed[16..24].copy_from_slice(&(j as u64).to_le_bytes());
    seed[24..32].copy_from_slice(b"hfed-sa1");
    ChaCha20Rng::from_seed(seed)
}

/// Client side: quantise `update` and add all pairwise masks of `client`.
pub fn mask_update(
    client: usize,
    n_clients: usize,
    round_seed: u64,
    update: &[f64],
    scale: f64,
) -> Result<Vec<u64>, SecAggError> {
    if n_clients == 0 || client >= n_clients {
        return Err(SecAggError::InvalidArgument(format!(
            "client {client} not in 0..{n_clients}"
        )));
    }
    check_scale(scale, n_clients)?;
    if let Some(v) = update.iter().find(|v| !v.is_finite()) {
        return Err(SecAggError::InvalidArgument(format!(
            "non-finite update value {v}"
        )));
    }
    let mut out: Vec<u64> = update.iter().map(|&v| quantise(v, scale)).collect();
    for other in 0..n_clients {
        if other == client {
            continue;
        }
        let (i, j) = if client < other {
            (client, other)
        } else {
            (other, client)
        };
        let mut rng = pair_rng(round_seed, i, j);
        for o in out.iter_mut() {
            let m = rng.next_u64();
            *o = if client == i {
                o.wrapping_add(m)
            } else {
                o.wrapping_sub(m)
            };
        }
    }
    Ok(out)
}

/// Server side: wrapping sum of all masked vectors, decoded to f64.
/// Only correct if every client of the round contributed exactly once.
pub fn aggregate(masked: &[Vec<u64>], scale: f64) -> Result<Vec<f64>, SecAggError> {
    let first = masked
        .first()
        .ok_or_else(|| SecAggError::InvalidArgument("no masked vectors".into()))?;
    check_scale(scale, masked.len())?;
    let d = first.len();
    if masked.iter().any(|m| m.len() != d) {
        return Err(SecAggError::InvalidArgument(
            "masked vectors differ in length".into(),
        ));
    }
    let mut acc = vec![0u64; d];
    for m in masked {
        for (a, &x) in acc.iter_mut().zip(m) {
            *a = a.wrapping_add(x);
        }
    }
    Ok(acc.into_iter().map(|x| dequantise(x, scale)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_clients_hand_checked() {
        // scale 2^16: all values below are exact binary fractions.
        let s = 65536.0;
        let ups = [
            vec![1.5, -2.25, 0.0],
            vec![0.25, 1.0, -3.0],
            vec![-0.75, 0.5, 7.125],
        ];
        // by hand: 1.5*65536 = 98304; -2.25*65536 = -147456 -> 2^64 - 147456
        assert_eq!(quantise(1.5, s), 98304);
        assert_eq!(quantise(-2.25, s), u64::MAX - 147456 + 1);
        let masked: Vec<Vec<u64>> = (0..3)
            .map(|c| mask_update(c, 3, 42, &ups[c], s).unwrap())
            .collect();
        let sum = aggregate(&masked, s).unwrap();
        assert_eq!(sum, vec![1.0, -0.75, 4.125]); // 1.5+0.25-0.75, -2.25+1+0.5, 0-3+7.125
    }

    #[test]
    fn masked_sum_equals_plain_sum_within_quantisation() {
        let n = 7;
        let ups: Vec<Vec<f64>> = (0..n)
            .map(|c| {
                (0..50)
                    .map(|k| ((c * 31 + k * 17) as f64).sin() * 0.1)
                    .collect()
            })
            .collect();
        let masked: Vec<Vec<u64>> = (0..n)
            .map(|c| mask_update(c, n, 9, &ups[c], DEFAULT_SCALE).unwrap())
            .collect();
        let sum = aggregate(&masked, DEFAULT_SCALE).unwrap();
        for k in 0..50 {
            let plain: f64 = ups.iter().map(|u| u[k]).sum();
            assert!(
                (sum[k] - plain).abs() <= n as f64 * 0.5 / DEFAULT_SCALE + 1e-15,
                "{k}"
            );
        }
    }

    #[test]
    fn single_masked_vector_hides_update() {
        let up = vec![0.01; 64];
        let m = mask_update(1, 3, 5, &up, DEFAULT_SCALE).unwrap();
        let dec: Vec<f64> = m.iter().map(|&x| dequantise(x, DEFAULT_SCALE)).collect();
        // uniform u64 masks decode to magnitudes ~2^31 at scale 2^32
        assert!(dec.iter().all(|v| (v - 0.01).abs() > 1e3), "{dec:?}");
        // and differs per round seed
        assert_ne!(m, mask_update(1, 3, 6, &up, DEFAULT_SCALE).unwrap());
    }

    #[test]
    fn wrong_round_seed_breaks_sum() {
        let ups = [vec![0.5; 8], vec![0.25; 8], vec![-0.125; 8]];
        let masked: Vec<Vec<u64>> = (0..3)
            .map(|c| {
                mask_update(c, 3, if c == 2 { 100 } else { 99 }, &ups[c], DEFAULT_SCALE).unwrap()
            })
            .collect();
        let sum = aggregate(&masked, DEFAULT_SCALE).unwrap();
        assert!(sum.iter().all(|v| (v - 0.625).abs() > 1e3), "{sum:?}");
    }

    #[test]
    fn bad_inputs() {
        assert!(mask_update(3, 3, 0, &[1.0], DEFAULT_SCALE).is_err());
        assert!(mask_update(0, 0, 0, &[1.0], DEFAULT_SCALE).is_err());
        assert!(mask_update(0, 2, 0, &[f64::NAN], DEFAULT_SCALE).is_err());
        assert!(mask_update(0, 2, 0, &[1.0], 0.0).is_err());
        assert!(mask_update(0, 5000, 0, &[1.0], DEFAULT_SCALE).is_err());
        assert!(aggregate(&[], DEFAULT_SCALE).is_err());
        assert!(aggregate(&[vec![1], vec![1, 2]], DEFAULT_SCALE).is_err());
        // clamping documented
        assert_eq!(dequantise(quantise(1e9, 1.0), 1.0), CLIP_RANGE);
    }
}
