//! T5 encoder-decoder generation (greedy and beam search) over candle's T5.
//!
//! The decoder keeps a KV cache per beam: candle's model is cheap to clone
//! (weights are shared), and its cache is per clone, so a beam that continues
//! another takes a clone of that beam's model and feeds only its newest token.
//! Beam search follows Hugging Face `generate(num_beams=N, early_stopping=True)`
//! step for step, so its output can be checked token for token.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::t5::{Config as T5Config, T5ForConditionalGeneration};

use crate::{InferenceError, Result};

/// How to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenerationOptions {
    /// Most tokens to generate (EOS included).
    pub max_new_tokens: usize,
    /// 1 for greedy decoding; more for beam search.
    pub num_beams: usize,
    /// Beam scores are divided by `length ^ length_penalty`.
    pub length_penalty: f64,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            num_beams: 1,
            length_penalty: 1.0,
        }
    }
}

/// A T5 (or FLAN-T5) checkpoint ready to generate.
pub struct T5Generator {
    model: T5ForConditionalGeneration,
    config: T5Config,
    device: Device,
}

struct Beam {
    tokens: Vec<u32>,
    score: f32,
    model: T5ForConditionalGeneration,
}

impl T5Generator {
    /// Loads `config.json` + `model.safetensors` from a folder.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&config_path).map_err(InferenceError::io(&config_path))?;
        let config: T5Config = serde_json::from_str(&text).map_err(|e| InferenceError::Config {
            path: config_path.clone(),
            detail: e.to_string(),
        })?;
        // SAFETY: read-only memory map of a file the store does not rewrite in place.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                device,
            )?
        };
        let model = T5ForConditionalGeneration::load(vb, &config)?;
        Ok(Self {
            model,
            config,
            device: device.clone(),
        })
    }

    /// End-of-sequence token id.
    pub fn eos_token_id(&self) -> u32 {
        self.config.eos_token_id as u32
    }

    /// Generates from one tokenized input; returns the new tokens (decoder start
    /// excluded, EOS included when it was produced).
    pub fn generate(&self, input_ids: &[u32], options: &GenerationOptions) -> Result<Vec<u32>> {
        if input_ids.is_empty() {
            return Err(InferenceError::Input(
                "cannot generate from an empty input".into(),
            ));
        }
        if options.max_new_tokens == 0 {
            return Ok(Vec::new());
        }
        let mut model = self.model.clone();
        model.clear_kv_cache();
        let input = Tensor::new(input_ids, &self.device)?.unsqueeze(0)?;
        let encoded = model.encode(&input)?;
        if options.num_beams <= 1 {
            self.greedy(model, &encoded, options.max_new_tokens)
        } else {
            self.beam_search(model, &encoded, options)
        }
    }

    /// Log-probability of each token of `continuation` given the input and the tokens
    /// before it (teacher forcing through the same cached decoder path as generation).
    pub fn score(&self, input_ids: &[u32], continuation: &[u32]) -> Result<Vec<f32>> {
        let mut model = self.model.clone();
        model.clear_kv_cache();
        let input = Tensor::new(input_ids, &self.device)?.unsqueeze(0)?;
        let encoded = model.encode(&input)?;
        let mut last = self.start_token();
        let mut out = Vec::with_capacity(continuation.len());
        for &token in continuation {
            let log_probs = self.next_log_probs(&mut model, last, &encoded)?;
            out.push(log_probs.get(token as usize)?.to_scalar::<f32>()?);
            last = token;
        }
        Ok(out)
    }

    fn start_token(&self) -> u32 {
        self.config
            .decoder_start_token_id
            .unwrap_or(self.config.pad_token_id) as u32
    }

    /// Log-probabilities of the next token after feeding `token`, shape `(vocab)`.
    fn next_log_probs(
        &self,
        model: &mut T5ForConditionalGeneration,
        token: u32,
        encoded: &Tensor,
    ) -> Result<Tensor> {
        let input = Tensor::new(&[token], &self.device)?.unsqueeze(0)?;
        let mut logits = model
            .decode(&input, encoded)?
            .squeeze(0)?
            .to_dtype(DType::F32)?;
        if self.config.tie_word_embeddings {
            // candle scales tied decoder outputs by sqrt(d_model) where the reference
            // scales by 1/sqrt(d_model): divide by d_model to get the reference logits.
            logits = (logits / self.config.d_model as f64)?;
        }
        Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?)
    }

    fn greedy(
        &self,
        mut model: T5ForConditionalGeneration,
        encoded: &Tensor,
        max_new: usize,
    ) -> Result<Vec<u32>> {
        let eos = self.eos_token_id();
        let mut out = Vec::with_capacity(max_new);
        let mut last = self.start_token();
        for _ in 0..max_new {
            let log_probs = self.next_log_probs(&mut model, last, encoded)?;
            let next = log_probs.argmax(D::Minus1)?.to_scalar::<u32>()?;
            out.push(next);
            if next == eos {
                break;
            }
            last = next;
        }
        Ok(out)
    }

    fn beam_search(
        &self,
        model: T5ForConditionalGeneration,
        encoded: &Tensor,
        options: &GenerationOptions,
    ) -> Result<Vec<u32>> {
        const MASKED: f32 = -1.0e9;
        let width = options.num_beams;
        let keep = 2 * width; // candidates per step: (1 EOS + 1) * beams, as the reference
        let eos = self.eos_token_id();
        let lp = options.length_penalty;
        let start = self.start_token();

        let mut running = vec![Beam {
            tokens: Vec::new(),
            score: 0.0,
            model,
        }];
        // Finished hypotheses (tokens, length-normalised score), best first, at most `width`.
        let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
        let mut improvable = true;

        for step in 0..options.max_new_tokens {
            let generated_len = step + 1;
            // Score every continuation of every running beam.
            let mut candidates: Vec<(f32, usize, u32)> = Vec::new();
            for (b, beam) in running.iter_mut().enumerate() {
                let last = beam.tokens.last().copied().unwrap_or(start);
                let log_probs = self
                    .next_log_probs(&mut beam.model, last, encoded)?
                    .to_vec1::<f32>()?;
                candidates.extend(
                    log_probs
                        .iter()
                        .enumerate()
                        .map(|(t, lp)| (beam.score + lp, b, t as u32)),
                );
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            candidates.truncate(keep);
            let at_max = generated_len >= options.max_new_tokens;
            let hits: Vec<bool> = candidates.iter().map(|c| at_max || c.2 == eos).collect();

            // Finished: hits among the top `width` candidates, unless the set is full or cannot improve.
            let full = finished.len() >= width;
            if improvable && !full {
                for (rank, (c, hit)) in candidates.iter().zip(&hits).enumerate() {
                    if *hit && rank < width {
                        let mut tokens = running[c.1].tokens.clone();
                        tokens.push(c.2);
                        let norm = c.0 / (generated_len as f64).powf(lp) as f32;
                        finished.push((tokens, norm));
                    }
                }
                finished.sort_by(|a, b| b.1.total_cmp(&a.1));
                finished.truncate(width);
            }

            // Next running beams: the best `width` candidates, hits pushed to the bottom.
            let mut ranked: Vec<(f32, usize, u32)> = candidates
                .iter()
                .zip(&hits)
                .map(|(c, hit)| (if *hit { c.0 + MASKED } else { c.0 }, c.1, c.2))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            ranked.truncate(width);
            let all_hit = hits.iter().all(|h| *h);
            running = ranked
                .into_iter()
                .map(|(score, b, t)| {
                    let parent = &running[b];
                    let mut tokens = parent.tokens.clone();
                    tokens.push(t);
                    Beam {
                        tokens,
                        score,
                        model: parent.model.clone(),
                    }
                })
                .collect();

            // Early-stop heuristic of the reference (early_stopping=True).
            let best_running = running[0].score / (generated_len as f64).powf(lp) as f32;
            let worst_finished = if finished.len() >= width {
                finished.iter().map(|f| f.1).fold(f32::INFINITY, f32::min)
            } else {
                MASKED
            };
            improvable = improvable && best_running > worst_finished;
            if !improvable || finished.len() >= width || all_hit {
                break;
            }
        }
        Ok(finished.into_iter().next().map(|f| f.0).unwrap_or_default())
    }
}
