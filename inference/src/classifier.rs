//! DistilBERT sequence classification (Hugging Face `DistilBertForSequenceClassification`).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

use crate::encoder::{Encoder, EncoderConfig};
use crate::{InferenceError, Result};

/// Encoder + `pre_classifier` (dim -> dim, ReLU) + `classifier` (dim -> labels) on the first token.
pub struct DistilBertClassifier {
    encoder: Encoder,
    pre_classifier: Linear,
    classifier: Linear,
    labels: Vec<String>,
}

impl DistilBertClassifier {
    /// Loads a checkpoint with `distilbert.*`, `pre_classifier.*` and `classifier.*` tensors.
    pub fn load(vb: VarBuilder, config: &EncoderConfig) -> Result<Self> {
        let EncoderConfig::Distilbert(c) = config else {
            return Err(InferenceError::Input(
                "a DistilBERT classifier needs a distilbert config".into(),
            ));
        };
        let labels: Vec<String> = match &c.id2label {
            Some(map) => {
                let mut pairs: Vec<(usize, String)> = map
                    .iter()
                    .map(|(k, v)| k.parse::<usize>().map(|k| (k, v.clone())))
                    .collect::<Result<_, _>>()
                    .map_err(|e| InferenceError::Input(format!("id2label key: {e}")))?;
                pairs.sort();
                pairs.into_iter().map(|(_, v)| v).collect()
            }
            None => {
                return Err(InferenceError::Input(
                    "classifier config has no id2label".into(),
                ))
            }
        };
        let encoder = Encoder::load(vb.clone(), config)?;
        let pre_classifier = linear(c.dim, c.dim, vb.pp("pre_classifier"))?;
        let classifier = linear(c.dim, labels.len(), vb.pp("classifier"))?;
        Ok(Self {
            encoder,
            pre_classifier,
            classifier,
            labels,
        })
    }

    /// Loads `config.json` + `model.safetensors` from a folder.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config = EncoderConfig::from_file(&dir.join("config.json"))?;
        // SAFETY: read-only memory map of a file the store does not rewrite in place.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                device,
            )?
        };
        Self::load(vb, &config)
    }

    /// Label names in logit order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Logits `(batch, labels)` for a padded batch.
    pub fn logits(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let hidden = self.encoder.forward(input_ids, attention_mask)?;
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pre_classifier.forward(&first)?.relu()?;
        Ok(self.classifier.forward(&pooled)?)
    }
}
