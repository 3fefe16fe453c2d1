//! Sentence embeddings: tokenizer + encoder + mask-aware mean pooling + L2 normalisation.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use mesh_models::ModelEntry;

use crate::encoder::{l2_normalize, mean_pool, Encoder, EncoderConfig, WeightFormat};
use crate::tokenize::{pad_batch, TextTokenizer, TokenizedText};
use crate::Result;

/// A sentence-embedding model loaded from a folder holding `config.json`,
/// `tokenizer.json` and `model.safetensors`.
pub struct SentenceEmbedder {
    encoder: Encoder,
    tokenizer: TextTokenizer,
    normalize: bool,
    model_id: String,
    dim: usize,
}

impl SentenceEmbedder {
    /// Loads the model described by `entry` from `dir`, its linear layers in `format`
    /// ([`WeightFormat::Int8`] appends `+int8` to [`SentenceEmbedder::model_id`]).
    pub fn load(
        dir: &Path,
        entry: &ModelEntry,
        device: &Device,
        format: WeightFormat,
    ) -> Result<Self> {
        let config = EncoderConfig::from_file(&dir.join("config.json"))?;
        let max_len = entry
            .max_seq_length
            .unwrap_or(usize::MAX)
            .min(config.max_position_embeddings());
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_len)?;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only; the store never rewrites a
        // verified model in place (it renames new folders into place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device)? };
        let encoder = Encoder::load_as(vb, &config, format)?;
        Ok(Self {
            encoder,
            tokenizer,
            normalize: entry.normalize,
            model_id: format!("{}{}", entry.versioned_id(), format.id_suffix()),
            dim: config.hidden_size(),
        })
    }

    /// `id@version` of the loaded model.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The tokenizer (callers tokenize before queueing so batches can be bounded by tokens).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Embeds already tokenized texts, in batches of similar length
    /// ([`crate::kernels::length_buckets`]) so little compute goes to padding; the vectors come
    /// back in the rows' order.
    pub fn embed_ids(&self, rows: &[&[u32]], normalize: bool) -> Result<Vec<Vec<f32>>> {
        crate::kernels::map_length_buckets(rows, |batch| self.embed_padded(batch, normalize))
    }

    /// Embeds already tokenized texts as one padded batch.
    pub fn embed_padded(&self, rows: &[&[u32]], normalize: bool) -> Result<Vec<Vec<f32>>> {
        let batch = pad_batch(rows, self.tokenizer.pad_id(), self.encoder.device())?;
        let hidden = self
            .encoder
            .forward(&batch.input_ids, &batch.attention_mask)?;
        let mut pooled = mean_pool(&hidden, &batch.attention_mask)?;
        if normalize {
            pooled = l2_normalize(&pooled)?;
        }
        Ok(pooled.to_vec2::<f32>()?)
    }

    /// Tokenizes and embeds texts, normalising as the model's manifest entry says.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let tokenized = self.tokenizer.encode_batch(texts)?;
        let rows: Vec<&[u32]> = tokenized
            .iter()
            .map(|t: &TokenizedText| t.ids.as_slice())
            .collect();
        self.embed_ids(&rows, self.normalize)
    }

    /// Whether the model's embeddings are L2-normalised by default.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }
}
