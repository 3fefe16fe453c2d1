//! Classification heads: DistilBERT's `pre_classifier` (dim x dim, ReLU) and `classifier`
//! (dim x labels) layers, trained in Rust ([`crate::train`]) on the encoder's pooled,
//! L2-normalised sentence embedding, with a temperature that calibrates the softmax.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::lexical::{LexicalModel, LEXICAL_FILE};
use crate::AgentError;

/// File name of a head's weights.
pub const HEAD_WEIGHTS: &str = "model.safetensors";
/// File name of a head's description (labels, temperature, training record).
pub const HEAD_CONFIG: &str = "head.json";
/// Name of the label-description embeddings `[labels, dim]` in the weights file.
pub const LABEL_PROTOTYPES: &str = "label_prototypes";

/// What a trained head records about itself (`head.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Manifest id of the head.
    pub id: String,
    pub version: String,
    /// `id@version` of the encoder whose pooled output the head reads.
    pub base_model: String,
    /// Other encoders (`id@version`) proven to produce the same pooled output (see the manifest's derivation).
    #[serde(default)]
    pub equivalent_encoders: Vec<String>,
    pub labels: Vec<String>,
    /// Input dimension.
    pub dim: usize,
    /// Softmax temperature fitted on out-of-fold logits (probabilities = softmax(logits / T)).
    pub temperature: f64,
    /// RFC 3339 time the head was trained.
    pub trained_at: String,
    /// Data sets (and parts) it was trained on.
    pub training_data: Vec<String>,
    /// sha256 of what it was trained on: each data set's package archive, and the committed
    /// training files (tickets) by content.
    #[serde(default)]
    pub data_sha256: BTreeMap<String, String>,
    /// Measured quality (cross-validation and held-out figures).
    pub metrics: BTreeMap<String, f64>,
    /// Training settings, for reproduction.
    pub hyperparameters: BTreeMap<String, f64>,
    /// One description per label whose embedding (the `label_prototypes` tensor) the head's
    /// logits are combined with; empty for heads without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_descriptions: Vec<String>,
    /// Weight of the cosine similarity to each label's description in the logits (fitted with
    /// the temperature on out-of-fold predictions): logits = head + weight x similarity.
    #[serde(default)]
    pub description_weight: f64,
    /// Weight of the word-level model's logits ([`crate::lexical`], `lexical.json` in the
    /// head folder) in the logits, fitted with the other weights; 0 for heads without one.
    #[serde(default)]
    pub lexical_weight: f64,
}

impl HeadConfig {
    /// `id@version`.
    pub fn versioned_id(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// True when `encoder` (an `id@version`), or the checkpoint whose answers it gives
    /// ([`mesh_models::Manifest::answers_as`]: the same network stored as f16), produces the
    /// pooled output this head was trained on.
    pub fn accepts_encoder(&self, encoder: &str) -> bool {
        let accepts =
            |e: &str| self.base_model == e || self.equivalent_encoders.iter().any(|x| x == e);
        accepts(encoder) || accepts(&mesh_models::Manifest::builtin().answers_as(encoder))
    }
}

/// A loaded head.
#[derive(Debug, Clone)]
pub struct ClassificationHead {
    pre_classifier: Linear,
    classifier: Linear,
    /// Embeddings of the label descriptions, `[labels, dim]`, when the head has them.
    prototypes: Option<Tensor>,
    /// The word-level model whose logits are added with `config.lexical_weight`.
    lexical: Option<LexicalModel>,
    config: HeadConfig,
}

impl ClassificationHead {
    /// Wraps trained layers.
    pub fn new(
        pre_classifier: Linear,
        classifier: Linear,
        prototypes: Option<Tensor>,
        config: HeadConfig,
    ) -> Self {
        Self {
            pre_classifier,
            classifier,
            prototypes,
            lexical: None,
            config,
        }
    }

    /// Adds the word-level model the logits are combined with.
    pub fn with_lexical(mut self, lexical: Option<LexicalModel>) -> Self {
        self.lexical = lexical;
        self
    }

    /// Loads `model.safetensors` + `head.json` from a head folder.
    pub fn load_dir(dir: &Path) -> Result<Self, AgentError> {
        let config_path = dir.join(HEAD_CONFIG);
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            AgentError::Unavailable(format!(
                "head {} is missing ({e}); run `msp-mesh models train`",
                config_path.display()
            ))
        })?;
        let config: HeadConfig = serde_json::from_str(&text)
            .map_err(|e| AgentError::Unavailable(format!("{}: {e}", config_path.display())))?;
        let weights = dir.join(HEAD_WEIGHTS);
        // SAFETY: the file is memory-mapped read-only and not modified while mapped.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu)? };
        let n = config.labels.len();
        let pre_classifier = candle_nn::linear(config.dim, config.dim, vb.pp("pre_classifier"))?;
        let classifier = candle_nn::linear(config.dim, n, vb.pp("classifier"))?;
        let prototypes = if config.label_descriptions.is_empty() {
            None
        } else {
            Some(vb.get((n, config.dim), LABEL_PROTOTYPES)?)
        };
        let lexical_path = dir.join(LEXICAL_FILE);
        let lexical = if lexical_path.is_file() {
            let model = LexicalModel::load(&lexical_path)?;
            if model.classes() != n {
                return Err(AgentError::Unavailable(format!(
                    "{}: {} classes, the head has {n}",
                    lexical_path.display(),
                    model.classes()
                )));
            }
            Some(model)
        } else {
            None
        };
        Ok(Self::new(pre_classifier, classifier, prototypes, config).with_lexical(lexical))
    }

    /// The label descriptions' embeddings, one row per label, when the head has them.
    pub fn label_prototypes(&self) -> Result<Option<Vec<Vec<f32>>>, AgentError> {
        Ok(match &self.prototypes {
            Some(p) => Some(p.to_vec2::<f32>()?),
            None => None,
        })
    }

    pub fn config(&self) -> &HeadConfig {
        &self.config
    }

    pub fn labels(&self) -> &[String] {
        &self.config.labels
    }

    /// Raw logits of a batch `[n, dim]`: the layers' output, plus the weighted similarity to
    /// each label's description when the head has them.
    pub fn logits(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        let logits = forward(&self.pre_classifier, &self.classifier, features)?;
        match &self.prototypes {
            Some(p) => with_descriptions(&logits, features, p, self.config.description_weight),
            None => Ok(logits),
        }
    }

    /// Calibrated class probabilities, one row per feature vector; `texts` are the texts the
    /// features were computed from (read by the word-level model when the head has one).
    pub fn probabilities<S: AsRef<str>>(
        &self,
        features: &[Vec<f32>],
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, AgentError> {
        if features.is_empty() {
            return Ok(Vec::new());
        }
        if features.len() != texts.len() {
            return Err(AgentError::Unavailable(format!(
                "head {}: {} feature rows for {} texts",
                self.config.versioned_id(),
                features.len(),
                texts.len()
            )));
        }
        if let Some(bad) = features.iter().find(|f| f.len() != self.config.dim) {
            return Err(AgentError::Unavailable(format!(
                "head {} reads {}-dimensional embeddings, got {}",
                self.config.versioned_id(),
                self.config.dim,
                bad.len()
            )));
        }
        let flat: Vec<f32> = features.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (features.len(), self.config.dim), &Device::Cpu)?;
        let mut logits = self.logits(&x)?.to_vec2::<f32>()?;
        if let Some(lexical) = &self.lexical {
            let weight = self.config.lexical_weight as f32;
            for (row, words) in logits.iter_mut().zip(lexical.logits(texts)) {
                row.iter_mut()
                    .zip(words)
                    .for_each(|(l, w)| *l += weight * w);
            }
        }
        Ok(logits
            .iter()
            .map(|row| softmax(row, self.config.temperature))
            .collect())
    }
}

/// The head's computation, `classifier(relu(pre_classifier(features)))`: raw logits of a batch
/// `[n, dim]`, for the loaded head and in training alike.
pub(crate) fn forward(
    pre_classifier: &Linear,
    classifier: &Linear,
    features: &Tensor,
) -> candle_core::Result<Tensor> {
    let hidden = pre_classifier.forward(features)?.relu()?;
    classifier.forward(&hidden)
}

/// `logits + weight x features . prototypesT`: the head's logits combined with the cosine
/// similarity of each (normalised) feature row to each label's description.
pub(crate) fn with_descriptions(
    logits: &Tensor,
    features: &Tensor,
    prototypes: &Tensor,
    weight: f64,
) -> candle_core::Result<Tensor> {
    let similarity = features.matmul(&prototypes.t()?)?;
    logits + similarity.affine(weight, 0.0)?
}

/// Softmax of `logits / temperature` (shared with the word-level model).
pub use mesh_numeric::stats::softmax;
