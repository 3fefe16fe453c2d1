//! Inference core of the MSP Intelligence Mesh.
//!
//! - [`encoder`]: BERT and DistilBERT encoders (one post-LayerNorm transformer,
//!   two weight layouts), mask-aware mean pooling, L2 normalisation.
//! - [`classifier`]: DistilBERT sequence classification (`pre_classifier`, `classifier`).
//! - [`t5`]: T5 / FLAN-T5 generation, greedy and beam search, with a KV cache.
//! - [`chat`]: GGUF chat models (quantized llama, SmolLM2), tokenizer rebuilt from the GGUF
//!   metadata, greedy and nucleus sampling, stop at the end of the turn.
//! - [`tokenize`]: `tokenizers` with longest-in-batch padding and truncation reporting.
//! - [`embedder`]: sentence embeddings from a model folder.
//! - [`backend`]: the model on its own thread, dynamic batching behind channels.
//! - [`store`]: weight stores (local folder, S3, Hugging Face hub) behind [`store::WeightStore`].
//! - [`aws`]: the one AWS SDK configuration loader and `s3://` URI parser.
//! - [`convert`]: BERT checkpoint to DistilBERT-architecture checkpoint.

pub mod aws;
pub mod backend;
pub mod bundle;
pub mod chat;
pub mod classifier;
pub mod convert;
pub mod embedder;
pub mod encoder;
mod error;
pub mod kernels;
mod packed;
pub mod store;
pub mod t5;
mod tile;
pub mod tokenize;

pub use candle_core::Device;

/// Index of the largest value, the first one on ties (as `torch.argmax`); 0 for an empty slice.
pub fn first_argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}
pub use error::{InferenceError, Result};

/// How long candle's CPU helper threads spin waiting for the next operation before they
/// sleep (`CANDLE_BARRIER_POOL_SPIN_LIMIT`). candle's default, 25,000 spins, kept its helper
/// thread burning the cores the matrix products need: on 2 cores it took 12% of the
/// encoder's CPU time, and with 64 the encoder ran 20-30% faster at batch 1 (README,
/// "Where the encoder's time goes").
pub const CANDLE_SPIN_LIMIT: &str = "64";

/// Sets [`CANDLE_SPIN_LIMIT`] unless the environment sets its own. Call first thing in
/// `main`, before any thread starts (it writes the process environment, which candle reads
/// when its first CPU operation runs).
pub fn tune_cpu_threads() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, CANDLE_SPIN_LIMIT);
    }
}
