//! Gradient-boosted trees for a binary target: the `forust-ml` crate's booster (histogram GBM
//! with log loss, as XGBoost's `hist`), with exact TreeSHAP contributions per feature. A thin
//! wrapper so the rest of the code speaks rows of `f64` and labels of `bool`, as
//! [`crate::logistic`] does. (`perpetual`, forust's successor, needs a nightly compiler.)
//!
//! The settings are scikit-learn `HistGradientBoostingClassifier`'s defaults, fixed before any
//! measurement: 100 rounds at learning rate 0.1, trees of depth 5 (at most 32 leaves; its
//! default is 31 leaves), 256 bins, L2 of 1 on leaf weights (XGBoost's default).

use forust_ml::gradientbooster::ContributionsMethod;
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};

/// Why a fit failed.
#[derive(Debug, thiserror::Error)]
pub enum GbmError {
    #[error("no rows to fit")]
    Empty,
    #[error("row {0} has a different number of features")]
    Ragged(usize),
    #[error("gradient boosting: {0}")]
    Booster(String),
}

/// A fitted booster over rows of `dim` features (serialised with its trees).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Gbm {
    booster: GradientBooster,
    dim: usize,
}

/// The booster has no `Clone`: a copy goes through its serialised form (a model is copied
/// rarely, and never on the request path).
impl Clone for Gbm {
    fn clone(&self) -> Self {
        let text = serde_json::to_string(self).expect("a booster serialises");
        serde_json::from_str(&text).expect("a serialised booster reads back")
    }
}

impl std::fmt::Debug for Gbm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gbm")
            .field("dim", &self.dim)
            .field("trees", &self.booster.trees.len())
            .finish()
    }
}

/// Boosting rounds.
pub const ROUNDS: usize = 100;
/// Shrinkage of each tree.
pub const LEARNING_RATE: f32 = 0.1;
/// Depth of each tree.
pub const MAX_DEPTH: usize = 5;

/// Rows as the booster's column-major matrix data.
fn column_major(rows: &[Vec<f64>], dim: usize) -> Vec<f64> {
    let mut data = vec![0.0; rows.len() * dim];
    for (i, row) in rows.iter().enumerate() {
        for (f, &x) in row.iter().enumerate() {
            data[f * rows.len() + i] = x;
        }
    }
    data
}

impl Gbm {
    /// Fits on rows `x` (equal length) and labels `y`, on one thread (a fit repeats).
    pub fn fit(x: &[Vec<f64>], y: &[bool]) -> Result<Self, GbmError> {
        if x.is_empty() || y.len() != x.len() {
            return Err(GbmError::Empty);
        }
        let dim = x[0].len();
        if let Some(i) = x.iter().position(|r| r.len() != dim) {
            return Err(GbmError::Ragged(i));
        }
        let data = column_major(x, dim);
        let matrix = Matrix::new(&data, x.len(), dim);
        let target: Vec<f64> = y.iter().map(|&l| f64::from(u8::from(l))).collect();
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(ROUNDS)
            .set_learning_rate(LEARNING_RATE)
            .set_max_depth(MAX_DEPTH)
            .set_l2(1.0)
            .set_nbins(256)
            .set_parallel(false)
            .set_seed(42);
        booster
            .fit(&matrix, &target, &vec![1.0; x.len()], None)
            .map_err(|e| GbmError::Booster(e.to_string()))?;
        Ok(Self { booster, dim })
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Log-odds of the positive class for each row.
    pub fn log_odds(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        if rows.is_empty() {
            return vec![];
        }
        let data = column_major(rows, self.dim);
        self.booster
            .predict(&Matrix::new(&data, rows.len(), self.dim), false)
    }

    /// Exact TreeSHAP contributions of one row to its log-odds: one per feature, then the
    /// bias; they sum to [`Gbm::log_odds`] of the row.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        let matrix = Matrix::new(row, 1, self.dim);
        self.booster
            .predict_contributions(&matrix, ContributionsMethod::Shapley, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Churn only when both features are high (an interaction no linear model can draw):
    /// the booster separates it, and each row's contributions add up to its log-odds.
    #[test]
    fn an_interaction_is_learned_and_contributions_add_up() {
        let x: Vec<Vec<f64>> = (0..800)
            .map(|i| vec![(i % 20) as f64, ((i * 7) % 20) as f64, (i % 3) as f64])
            .collect();
        let y: Vec<bool> = x.iter().map(|r| r[0] >= 10.0 && r[1] >= 10.0).collect();
        let model = Gbm::fit(&x, &y).unwrap();
        let scores = model.log_odds(&x);
        let auc = crate::tabular::roc_auc(&scores, &y);
        assert!(auc > 0.99, "AUC {auc}");
        for (row, score) in x.iter().zip(&scores).step_by(97) {
            let c = model.contributions(row);
            assert_eq!(c.len(), 4);
            let total: f64 = c.iter().sum();
            assert!((total - score).abs() < 1e-6, "{total} vs {score}");
            assert!(c[2].abs() < 0.05 * c[0].abs().max(c[1].abs()), "{c:?}");
        }
    }
}
