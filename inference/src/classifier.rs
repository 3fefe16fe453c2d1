//! DistilBERT sequence classification (Hugging Face `DistilBertForSequenceClassification`).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

use crate::encoder::{Encoder, EncoderConfig, WeightFormat};
use crate::kernels::map_length_buckets;
use crate::tokenize::pad_batch;
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
        Self::load_as(vb, config, WeightFormat::F32)
    }

    /// [`DistilBertClassifier::load`] with the encoder's linear layers in `format` (the small
    /// head stays f32).
    pub fn load_as(vb: VarBuilder, config: &EncoderConfig, format: WeightFormat) -> Result<Self> {
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
        let encoder = Encoder::load_as(vb.clone(), config, format)?;
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
        Self::load_dir_as(dir, device, WeightFormat::F32)
    }

    /// [`DistilBertClassifier::load_dir`] with the encoder's linear layers in `format`.
    pub fn load_dir_as(dir: &Path, device: &Device, format: WeightFormat) -> Result<Self> {
        let config = EncoderConfig::from_file(&dir.join("config.json"))?;
        // SAFETY: read-only memory map of a file the store does not rewrite in place.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                device,
            )?
        };
        Self::load_as(vb, &config, format)
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

    /// Logits per row of already tokenized texts, run in batches of similar length
    /// ([`crate::kernels::length_buckets`], padded with `pad_id`); rows keep their order.
    pub fn logits_ids(&self, rows: &[&[u32]], pad_id: u32) -> Result<Vec<Vec<f32>>> {
        map_length_buckets(rows, |batch| {
            let padded = pad_batch(batch, pad_id, self.encoder.device())?;
            Ok(self
                .logits(&padded.input_ids, &padded.attention_mask)?
                .to_vec2::<f32>()?)
        })
    }
}
