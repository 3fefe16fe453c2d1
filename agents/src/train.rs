//! Training classification heads with candle's autograd: weighted cross-entropy,
//! AdamW, deterministic initialisation and shuffling (seeded [`SplitMix64`]), stratified
//! k-fold cross-validation and temperature calibration. The metrics the training reports
//! are [`mesh_numeric::validation`]'s.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};
use candle_nn::{Linear, Optimizer, VarMap};

use mesh_numeric::rng::SplitMix64;
use mesh_numeric::validation::stratified_folds;

use crate::head::{self, softmax, HeadConfig};
use crate::AgentError;

/// Settings of one training run.
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub seed: u64,
    /// Weight each class by `n / (classes * n_class)` so rare classes count as much as common ones.
    pub balance_classes: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 20,
            learning_rate: 1e-3,
            weight_decay: 1e-2,
            batch_size: 64,
            seed: 17,
            balance_classes: true,
        }
    }
}

impl TrainOptions {
    /// The settings as numbers, for the head's record.
    pub fn record(&self) -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("epochs".into(), self.epochs as f64),
            ("learning_rate".into(), self.learning_rate),
            ("weight_decay".into(), self.weight_decay),
            ("batch_size".into(), self.batch_size as f64),
            ("seed".into(), self.seed as f64),
            (
                "balance_classes".into(),
                f64::from(u8::from(self.balance_classes)),
            ),
        ])
    }
}

/// The two trained layers and the variables behind them.
pub struct TrainedLayers {
    pub pre_classifier: Linear,
    pub classifier: Linear,
    varmap: VarMap,
}

impl TrainedLayers {
    /// Raw logits for feature rows.
    pub fn logits(&self, x: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, AgentError> {
        let logits = head::forward(&self.pre_classifier, &self.classifier, &rows_tensor(x)?)?;
        Ok(logits.to_vec2::<f32>()?)
    }

    /// Writes `model.safetensors` (with the label descriptions' embeddings, when given) and
    /// `head.json` into `dir`.
    pub fn save(
        &self,
        dir: &std::path::Path,
        config: &HeadConfig,
        prototypes: Option<&[Vec<f32>]>,
    ) -> Result<(), AgentError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| AgentError::Unavailable(format!("{}: {e}", dir.display())))?;
        if let Some(p) = prototypes {
            let var = Var::from_tensor(&rows_tensor(p)?)?;
            let mut data = self.varmap.data().lock().expect("varmap lock");
            data.insert(head::LABEL_PROTOTYPES.to_string(), var);
        }
        self.varmap.save(dir.join(head::HEAD_WEIGHTS))?;
        let json = serde_json::to_string_pretty(config).expect("head config serialises");
        std::fs::write(dir.join(head::HEAD_CONFIG), json)
            .map_err(|e| AgentError::Unavailable(format!("{}: {e}", dir.display())))?;
        Ok(())
    }
}

fn rows_tensor(x: &[Vec<f32>]) -> candle_core::Result<Tensor> {
    let dim = x.first().map_or(0, Vec::len);
    let flat: Vec<f32> = x.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (x.len(), dim), &Device::Cpu)
}

/// A `[out, in]` weight and `[out]` bias, uniform in ±1/sqrt(in) like PyTorch's `nn.Linear`.
fn init_linear(
    varmap: &VarMap,
    name: &str,
    fan_in: usize,
    fan_out: usize,
    rng: &mut SplitMix64,
) -> candle_core::Result<Linear> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let mut uniform = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect()
    };
    let w = Var::from_vec(uniform(fan_out * fan_in), (fan_out, fan_in), &Device::Cpu)?;
    let b = Var::from_vec(uniform(fan_out), fan_out, &Device::Cpu)?;
    let mut data = varmap.data().lock().expect("varmap lock");
    data.insert(format!("{name}.weight"), w.clone());
    data.insert(format!("{name}.bias"), b.clone());
    Ok(Linear::new(
        w.as_tensor().clone(),
        Some(b.as_tensor().clone()),
    ))
}

/// Trains the two layers on feature rows `x` with labels `y` (in `0..n_labels`).
pub fn fit(
    x: &[Vec<f32>],
    y: &[usize],
    n_labels: usize,
    options: &TrainOptions,
) -> Result<TrainedLayers, AgentError> {
    assert_eq!(x.len(), y.len(), "one label per row");
    let dim = x.first().map_or(0, Vec::len);
    let mut rng = SplitMix64::new(options.seed);
    let varmap = VarMap::new();
    let pre_classifier = init_linear(&varmap, "pre_classifier", dim, dim, &mut rng)?;
    let classifier = init_linear(&varmap, "classifier", dim, n_labels, &mut rng)?;
    let class_weight = class_weights(y, n_labels, options.balance_classes);
    let params = candle_nn::ParamsAdamW {
        lr: options.learning_rate,
        weight_decay: options.weight_decay,
        ..Default::default()
    };
    let mut optimizer = candle_nn::AdamW::new(varmap.all_vars(), params)?;
    let features = rows_tensor(x)?;
    let mut order: Vec<usize> = (0..x.len()).collect();
    let layers = TrainedLayers {
        pre_classifier,
        classifier,
        varmap,
    };
    for _ in 0..options.epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(options.batch_size.max(1)) {
            let idx: Vec<u32> = batch.iter().map(|&i| i as u32).collect();
            let idx = Tensor::new(idx.as_slice(), &Device::Cpu)?;
            let xb = features.index_select(&idx, 0)?;
            let yb: Vec<u32> = batch.iter().map(|&i| y[i] as u32).collect();
            let wb: Vec<f32> = batch.iter().map(|&i| class_weight[y[i]]).collect();
            let yb = Tensor::new(yb.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
            let wb = Tensor::new(wb.as_slice(), &Device::Cpu)?;
            let logits = head::forward(&layers.pre_classifier, &layers.classifier, &xb)?;
            let log_p = candle_nn::ops::log_softmax(&logits, 1)?;
            let picked = log_p.gather(&yb, 1)?.squeeze(1)?;
            let total_weight = f64::from(wb.sum_all()?.to_scalar::<f32>()?);
            let loss = (picked * &wb)?
                .sum_all()?
                .affine(-1.0 / total_weight, 0.0)?;
            optimizer.backward_step(&loss)?;
        }
    }
    Ok(layers)
}

fn class_weights(y: &[usize], n_labels: usize, balance: bool) -> Vec<f32> {
    if !balance {
        return vec![1.0; n_labels];
    }
    let mut counts = vec![0usize; n_labels];
    for &l in y {
        counts[l] += 1;
    }
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                y.len() as f32 / (n_labels as f32 * c as f32)
            }
        })
        .collect()
}

/// Out-of-fold logits of `k`-fold cross-validation: every row is scored by a head that did not see it.
pub fn cross_validate(
    x: &[Vec<f32>],
    y: &[usize],
    n_labels: usize,
    k: usize,
    options: &TrainOptions,
    progress: &dyn Fn(usize),
) -> Result<Vec<Vec<f32>>, AgentError> {
    let folds = stratified_folds(y, k, options.seed ^ 0x5EED);
    let mut out = vec![Vec::new(); x.len()];
    for f in 0..k {
        let (train, test): (Vec<usize>, Vec<usize>) = (0..x.len()).partition(|&i| folds[i] != f);
        let tx: Vec<Vec<f32>> = train.iter().map(|&i| x[i].clone()).collect();
        let ty: Vec<usize> = train.iter().map(|&i| y[i]).collect();
        let layers = fit(&tx, &ty, n_labels, options)?;
        let ex: Vec<Vec<f32>> = test.iter().map(|&i| x[i].clone()).collect();
        for (i, l) in test.into_iter().zip(layers.logits(&ex)?) {
            out[i] = l;
        }
        progress(f + 1);
    }
    Ok(out)
}

/// The temperature minimising the negative log-likelihood of `logits` (grid over 0.05..20, log-spaced).
pub fn fit_temperature(logits: &[Vec<f32>], y: &[usize]) -> f64 {
    let nll = |t: f64| -> f64 {
        logits
            .iter()
            .zip(y)
            .map(|(l, &c)| -(softmax(l, t)[c].max(1e-12) as f64).ln())
            .sum::<f64>()
    };
    (0..=240)
        .map(|i| 0.05 * 400f64.powf(i as f64 / 240.0))
        .min_by(|a, b| nll(*a).total_cmp(&nll(*b)))
        .unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_numeric::validation::{accuracy, argmax};

    /// Two Gaussian blobs: a trained head separates them and generalises to held-out points.
    #[test]
    fn learns_a_separable_problem() {
        let mut rng = SplitMix64::new(3);
        let mut point = |label: usize| -> Vec<f32> {
            (0..8)
                .map(|d| {
                    let centre = if d == 0 { [-1.0, 1.0][label] } else { 0.0 };
                    (centre + (rng.next_f64() - 0.5) * 0.8) as f32
                })
                .collect()
        };
        let y: Vec<usize> = (0..200).map(|i| i % 2).collect();
        let x: Vec<Vec<f32>> = y.iter().map(|&l| point(l)).collect();
        let options = TrainOptions {
            epochs: 100,
            learning_rate: 1e-2,
            ..Default::default()
        };
        let oof = cross_validate(&x, &y, 2, 4, &options, &|_| {}).unwrap();
        let pred: Vec<usize> = oof.iter().map(|l| argmax(l)).collect();
        assert!(accuracy(&pred, &y) > 0.97, "{}", accuracy(&pred, &y));
    }

    /// Logits (4, 0) right three times out of four: the NLL-optimal temperature makes
    /// softmax(4 / T) = 0.75, i.e. T = 4 / ln 3 = 3.641 (grid steps are 2.5%).
    #[test]
    fn temperature_matches_the_closed_form() {
        let logits = vec![vec![4.0, 0.0]; 4];
        let t = fit_temperature(&logits, &[0, 0, 0, 1]);
        assert!((t - 4.0 / 3f64.ln()).abs() < 0.1, "{t}");
    }
}
