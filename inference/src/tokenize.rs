//! Tokenization with longest-in-batch padding and truncation at the model's limit.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{InferenceError, Result};

/// One text after tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids, special tokens included, after truncation.
    pub ids: Vec<u32>,
    /// Whether the text was longer than the limit and was cut.
    pub truncated: bool,
}

/// A padded batch ready for an encoder.
#[derive(Debug)]
pub struct PaddedBatch {
    /// `(batch, longest)` u32.
    pub input_ids: Tensor,
    /// `(batch, longest)` u32, 1 for real tokens.
    pub attention_mask: Tensor,
}

/// A `tokenizers` tokenizer set up for an encoder: its file's fixed padding is
/// removed and truncation is set to `max_len` tokens (special tokens included).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
    pad_id: u32,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, truncating at `max_len` tokens.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| InferenceError::Tokenizer(format!("{}: {e}", path.display())))?;
        let pad_id = inner.get_padding().map(|p| p.pad_id).unwrap_or(0);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        Ok(Self {
            inner,
            max_len,
            pad_id,
        })
    }

    /// Truncation limit in tokens.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Id used for padding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Tokenizes one text (with special tokens).
    pub fn encode(&self, text: &str) -> Result<TokenizedText> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        Ok(TokenizedText {
            truncated: !enc.get_overflowing().is_empty(),
            ids: enc.get_ids().to_vec(),
        })
    }

    /// Tokenizes several texts.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<TokenizedText>> {
        texts.iter().map(|t| self.encode(t)).collect()
    }

    /// The underlying `tokenizers` tokenizer (for decoding generated ids).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// Right-pads token id rows to the longest one and builds the attention mask.
pub fn pad_batch(rows: &[&[u32]], pad_id: u32, device: &Device) -> Result<PaddedBatch> {
    let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if longest == 0 {
        return Err(InferenceError::Input("cannot run an empty batch".into()));
    }
    let mut ids = Vec::with_capacity(rows.len() * longest);
    let mut mask = Vec::with_capacity(rows.len() * longest);
    for row in rows {
        ids.extend_from_slice(row);
        ids.extend(std::iter::repeat_n(pad_id, longest - row.len()));
        mask.extend(std::iter::repeat_n(1u32, row.len()));
        mask.extend(std::iter::repeat_n(0u32, longest - row.len()));
    }
    Ok(PaddedBatch {
        input_ids: Tensor::from_vec(ids, (rows.len(), longest), device)?,
        attention_mask: Tensor::from_vec(mask, (rows.len(), longest), device)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_longest_with_mask() {
        let b = pad_batch(&[&[1, 2, 3], &[4]], 0, &Device::Cpu).unwrap();
        assert_eq!(
            b.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![1, 2, 3], vec![4, 0, 0]]
        );
        assert_eq!(
            b.attention_mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1], vec![1, 0, 0]]
        );
        assert!(pad_batch(&[], 0, &Device::Cpu).is_err());
    }
}
