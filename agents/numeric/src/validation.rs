//! Cross-validation folds and classification metrics (accuracy, precision / recall / F1,
//! macro F1, expected calibration error), shared by the heads' training and the benches.

use crate::rng::SplitMix64;

/// Assigns every sample to one of `k` folds, keeping class proportions (stratified).
pub fn stratified_folds(y: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let n_labels = y.iter().copied().max().map_or(0, |m| m + 1);
    let mut fold = vec![0; y.len()];
    for label in 0..n_labels {
        let mut members: Vec<usize> = (0..y.len()).filter(|&i| y[i] == label).collect();
        rng.shuffle(&mut members);
        for (j, i) in members.into_iter().enumerate() {
            fold[i] = j % k;
        }
    }
    fold
}

/// Index of the largest value.
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Fraction of predictions equal to the labels.
pub fn accuracy(pred: &[usize], y: &[usize]) -> f64 {
    pred.iter().zip(y).filter(|(p, t)| p == t).count() as f64 / y.len().max(1) as f64
}

/// Precision, recall and F1 of class `positive`.
pub fn precision_recall_f1(pred: &[usize], y: &[usize], positive: usize) -> (f64, f64, f64) {
    let tp = pred
        .iter()
        .zip(y)
        .filter(|(p, t)| **p == positive && **t == positive)
        .count() as f64;
    let fp = pred
        .iter()
        .zip(y)
        .filter(|(p, t)| **p == positive && **t != positive)
        .count() as f64;
    let fnn = pred
        .iter()
        .zip(y)
        .filter(|(p, t)| **p != positive && **t == positive)
        .count() as f64;
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fnn > 0.0 { tp / (tp + fnn) } else { 0.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// Unweighted mean of the per-class F1 over the classes present in `y`.
pub fn macro_f1(pred: &[usize], y: &[usize], n_labels: usize) -> f64 {
    let present: Vec<usize> = (0..n_labels).filter(|c| y.contains(c)).collect();
    present
        .iter()
        .map(|&c| precision_recall_f1(pred, y, c).2)
        .sum::<f64>()
        / present.len().max(1) as f64
}

/// Expected calibration error over 10 equal-width confidence bins.
pub fn expected_calibration_error(probabilities: &[Vec<f32>], y: &[usize]) -> f64 {
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for (p, &t) in probabilities.iter().zip(y) {
        let c = argmax(p);
        let conf = p[c] as f64;
        let b = ((conf * 10.0) as usize).min(9);
        bins[b].0 += conf;
        bins[b].1 += f64::from(u8::from(c == t));
        bins[b].2 += 1;
    }
    let n = y.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|(conf, correct, _)| (conf - correct).abs() / n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computation() {
        let y = [1, 1, 1, 0, 0, 0];
        let p = [1, 1, 0, 1, 0, 0];
        assert!((accuracy(&p, &y) - 4.0 / 6.0).abs() < 1e-12);
        let (pr, re, f1) = precision_recall_f1(&p, &y, 1);
        assert!((pr - 2.0 / 3.0).abs() < 1e-12 && (re - 2.0 / 3.0).abs() < 1e-12);
        assert!((f1 - 2.0 / 3.0).abs() < 1e-12);
        // Two predictions at confidence 0.9 (one right) and two at 0.6 (both right):
        // ECE = (|1.8 - 1| + |1.2 - 2|) / 4 = 0.4.
        let probs = vec![
            vec![0.1, 0.9],
            vec![0.1, 0.9],
            vec![0.6, 0.4],
            vec![0.6, 0.4],
        ];
        let ece = expected_calibration_error(&probs, &[1, 0, 0, 0]);
        assert!((ece - 0.4).abs() < 1e-6, "{ece}");
    }

    #[test]
    fn folds_are_stratified() {
        let y: Vec<usize> = (0..100).map(|i| usize::from(i < 30)).collect();
        let folds = stratified_folds(&y, 5, 1);
        for f in 0..5 {
            let members: Vec<_> = (0..100).filter(|&i| folds[i] == f).collect();
            assert_eq!(members.len(), 20);
            assert_eq!(members.iter().filter(|&&i| y[i] == 1).count(), 6);
        }
    }
}
