//! T5 / FLAN-T5 encoder-decoder and generation (greedy and beam search).
//!
//! Written here rather than taken from candle-transformers, whose T5 computes
//! the decoder's relative-position buckets as if the decoder were bidirectional
//! and scales tied output embeddings by `sqrt(d_model)` instead of
//! `1/sqrt(d_model)`; both change the tokens generated. The decoder keeps a
//! [`DecoderCache`] (self-attention keys/values, and cross-attention
//! keys/values computed once from the encoder output), separate from the
//! weights, so each beam owns a cheap clone of its cache. Beam search follows
//! Hugging Face `generate(num_beams=N, early_stopping=True)` step for step, so
//! outputs can be checked token for token.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, linear_no_bias, Embedding, Linear, VarBuilder};
use serde::Deserialize;

use crate::{InferenceError, Result};

/// `config.json` of a T5 checkpoint (the fields generation needs).
#[derive(Debug, Clone, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_ff_proj")]
    pub feed_forward_proj: String,
    /// Activation name as transformers writes it (`relu`, `gelu_new`, ...); derived from
    /// `feed_forward_proj` when absent.
    #[serde(default)]
    pub dense_act_fn: Option<String>,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Scale decoder outputs by `d_model^-0.5` before the LM head (transformers >= 5 writes it;
    /// older configs imply it from `tie_word_embeddings`).
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "default_eos")]
    pub eos_token_id: usize,
    #[serde(default)]
    pub decoder_start_token_id: Option<usize>,
}

fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff_proj() -> String {
    "relu".into()
}
fn default_true() -> bool {
    true
}
fn default_eos() -> usize {
    1
}

#[derive(Debug, Clone, Copy)]
enum FfAct {
    Relu,
    GeluErf,
    GeluTanh,
    Silu,
}

impl FfAct {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "relu" => Self::Relu,
            "gelu" => Self::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Self::GeluTanh,
            "silu" | "swish" => Self::Silu,
            other => {
                return Err(InferenceError::Input(format!(
                    "unsupported T5 activation `{other}`"
                )))
            }
        })
    }
    fn apply(self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Relu => xs.relu()?,
            Self::GeluErf => xs.gelu_erf()?,
            Self::GeluTanh => xs.gelu()?,
            Self::Silu => xs.silu()?,
        })
    }
}

/// T5's LayerNorm: RMS scaling with a weight, no mean, no bias.
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let variance = xs.sqr()?.mean_keepdim(D::Minus1)?;
        let xs = xs.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        Ok(xs.broadcast_mul(&self.weight)?)
    }
}

struct FeedForward {
    wi: Linear,
    /// Present for gated activations (`wi_0` activated, times `wi_1`).
    wi_gate: Option<Linear>,
    wo: Linear,
    act: FfAct,
    norm: RmsNorm,
}

impl FeedForward {
    fn load(vb: VarBuilder, cfg: &T5Config, gated: bool, act: FfAct) -> Result<Self> {
        let dense = vb.pp("DenseReluDense");
        let (wi, wi_gate) = if gated {
            (
                linear_no_bias(cfg.d_model, cfg.d_ff, dense.pp("wi_0"))?,
                Some(linear_no_bias(cfg.d_model, cfg.d_ff, dense.pp("wi_1"))?),
            )
        } else {
            (linear_no_bias(cfg.d_model, cfg.d_ff, dense.pp("wi"))?, None)
        };
        Ok(Self {
            wi,
            wi_gate,
            wo: linear_no_bias(cfg.d_ff, cfg.d_model, dense.pp("wo"))?,
            act,
            norm: RmsNorm::load(vb.pp("layer_norm"), cfg.d_model, cfg.layer_norm_epsilon)?,
        })
    }
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(xs)?;
        let mut inner = self.act.apply(&self.wi.forward(&h)?)?;
        if let Some(gate) = &self.wi_gate {
            inner = (inner * gate.forward(&h)?)?;
        }
        Ok((xs + self.wo.forward(&inner)?)?)
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    d_kv: usize,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &T5Config) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        Ok(Self {
            q: linear_no_bias(cfg.d_model, inner, vb.pp("q"))?,
            k: linear_no_bias(cfg.d_model, inner, vb.pp("k"))?,
            v: linear_no_bias(cfg.d_model, inner, vb.pp("v"))?,
            o: linear_no_bias(inner, cfg.d_model, vb.pp("o"))?,
            heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        })
    }

    /// `(1, seq, inner)` -> `(1, heads, seq, d_kv)`.
    fn split(&self, xs: Tensor) -> Result<Tensor> {
        let seq = xs.dim(1)?;
        Ok(xs
            .reshape((1, seq, self.heads, self.d_kv))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn project_kv(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split(self.k.forward(xs)?)?,
            self.split(self.v.forward(xs)?)?,
        ))
    }

    /// Attention of `xs` (queries) over `k`/`v`; T5 does not scale scores.
    fn attend(&self, xs: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let q = self.split(self.q.forward(xs)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let seq = xs.dim(1)?;
        let ctx = probs
            .matmul(v)?
            .transpose(1, 2)?
            .reshape((1, seq, self.heads * self.d_kv))?;
        Ok(self.o.forward(&ctx)?)
    }
}

/// Hugging Face's `_relative_position_bucket`, in f32 as torch computes it.
fn relative_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> u32 {
    let mut buckets = num_buckets as i64;
    let mut base = 0i64;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            base = buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    let bucket = if distance < max_exact {
        distance
    } else {
        let scaled = ((distance as f32 / max_exact as f32).ln()
            / (max_distance as f64 / max_exact as f64).ln() as f32)
            * (buckets - max_exact) as f32;
        (max_exact + scaled as i64).min(buckets - 1)
    };
    (base + bucket) as u32
}

/// Relative-position bias `(1, heads, queries, keys)` for absolute query positions.
fn position_bias(
    table: &Embedding,
    queries: std::ops::Range<usize>,
    keys: usize,
    bidirectional: bool,
    cfg: &T5Config,
    device: &Device,
) -> Result<Tensor> {
    let n_q = queries.len();
    let buckets: Vec<u32> = queries
        .flat_map(|i| {
            (0..keys).map(move |j| {
                relative_bucket(
                    j as i64 - i as i64,
                    bidirectional,
                    cfg.relative_attention_num_buckets,
                    cfg.relative_attention_max_distance,
                )
            })
        })
        .collect();
    let buckets = Tensor::from_vec(buckets, (n_q, keys), device)?;
    Ok(table.forward(&buckets)?.permute((2, 0, 1))?.unsqueeze(0)?)
}

struct EncoderBlock {
    attn: Attention,
    attn_norm: RmsNorm,
    ff: FeedForward,
}

struct DecoderBlock {
    self_attn: Attention,
    self_norm: RmsNorm,
    cross_attn: Attention,
    cross_norm: RmsNorm,
    ff: FeedForward,
}

/// Per-sequence decoder state: self-attention keys/values so far, the
/// cross-attention keys/values of the encoder output, and the next position.
#[derive(Clone)]
pub struct DecoderCache {
    self_kv: Vec<Option<(Tensor, Tensor)>>,
    cross_kv: Vec<(Tensor, Tensor)>,
    position: usize,
}

/// A T5 / FLAN-T5 checkpoint loaded for generation (one sequence at a time).
pub struct T5Model {
    shared: Embedding,
    encoder: Vec<EncoderBlock>,
    encoder_bias: Embedding,
    encoder_norm: RmsNorm,
    decoder: Vec<DecoderBlock>,
    decoder_bias: Embedding,
    decoder_norm: RmsNorm,
    /// `(vocab, d_model)`, as stored (the tied embedding table itself when tied): the decoder
    /// multiplies by its transposed view, so loading copies nothing.
    lm_head: Tensor,
    output_scale: f64,
    config: T5Config,
    device: Device,
}

impl T5Model {
    /// Loads from a `VarBuilder` rooted at the checkpoint (Hugging Face tensor names).
    pub fn load(vb: VarBuilder, config: T5Config) -> Result<Self> {
        let cfg = &config;
        let (gated, act_name) = match cfg.feed_forward_proj.split_once('-') {
            Some(("gated", act)) => (true, act.to_string()),
            _ => (false, cfg.feed_forward_proj.clone()),
        };
        let act_name = match (&cfg.dense_act_fn, act_name.as_str()) {
            (Some(name), _) => name.clone(),
            (None, "gelu") if gated => "gelu_new".into(),
            (None, other) => other.to_string(),
        };
        let act = FfAct::parse(&act_name)?;
        let shared = embedding(cfg.vocab_size, cfg.d_model, vb.pp("shared"))?;
        let bias_table =
            |p: &str| embedding(cfg.relative_attention_num_buckets, cfg.num_heads, vb.pp(p));
        let norm = |vb: VarBuilder| RmsNorm::load(vb, cfg.d_model, cfg.layer_norm_epsilon);

        let mut encoder = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let b = vb.pp(format!("encoder.block.{i}.layer"));
            encoder.push(EncoderBlock {
                attn: Attention::load(b.pp("0.SelfAttention"), cfg)?,
                attn_norm: norm(b.pp("0.layer_norm"))?,
                ff: FeedForward::load(b.pp("1"), cfg, gated, act)?,
            });
        }
        let n_dec = cfg.num_decoder_layers.unwrap_or(cfg.num_layers);
        let mut decoder = Vec::with_capacity(n_dec);
        for i in 0..n_dec {
            let b = vb.pp(format!("decoder.block.{i}.layer"));
            decoder.push(DecoderBlock {
                self_attn: Attention::load(b.pp("0.SelfAttention"), cfg)?,
                self_norm: norm(b.pp("0.layer_norm"))?,
                cross_attn: Attention::load(b.pp("1.EncDecAttention"), cfg)?,
                cross_norm: norm(b.pp("1.layer_norm"))?,
                ff: FeedForward::load(b.pp("2"), cfg, gated, act)?,
            });
        }
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            vb.get((cfg.vocab_size, cfg.d_model), "lm_head.weight")?
        } else {
            shared.embeddings().clone()
        };
        let scale = cfg.scale_decoder_outputs.unwrap_or(cfg.tie_word_embeddings);
        Ok(Self {
            encoder_bias: bias_table(
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias",
            )?,
            encoder_norm: norm(vb.pp("encoder.final_layer_norm"))?,
            decoder_bias: bias_table(
                "decoder.block.0.layer.0.SelfAttention.relative_attention_bias",
            )?,
            decoder_norm: norm(vb.pp("decoder.final_layer_norm"))?,
            shared,
            encoder,
            decoder,
            lm_head,
            output_scale: if scale {
                (cfg.d_model as f64).powf(-0.5)
            } else {
                1.0
            },
            device: vb.device().clone(),
            config,
        })
    }

    /// Encodes one token sequence: `(1, seq, d_model)`.
    pub fn encode(&self, input_ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(input_ids, &self.device)?.unsqueeze(0)?;
        let mut xs = self.shared.forward(&ids)?;
        let n = input_ids.len();
        let bias = position_bias(
            &self.encoder_bias,
            0..n,
            n,
            true,
            &self.config,
            &self.device,
        )?;
        for block in &self.encoder {
            let h = block.attn_norm.forward(&xs)?;
            let (k, v) = block.attn.project_kv(&h)?;
            xs = (&xs + block.attn.attend(&h, &k, &v, Some(&bias))?)?;
            xs = block.ff.forward(&xs)?;
        }
        self.encoder_norm.forward(&xs)
    }

    /// A fresh decoder cache for an encoder output.
    pub fn new_cache(&self, encoded: &Tensor) -> Result<DecoderCache> {
        let cross_kv = self
            .decoder
            .iter()
            .map(|b| b.cross_attn.project_kv(encoded))
            .collect::<Result<_>>()?;
        Ok(DecoderCache {
            self_kv: vec![None; self.decoder.len()],
            cross_kv,
            position: 0,
        })
    }

    /// Feeds one decoder token and returns the next-token logits `(vocab)`.
    pub fn decode_step(&self, token: u32, cache: &mut DecoderCache) -> Result<Tensor> {
        let pos = cache.position;
        let ids = Tensor::new(&[token], &self.device)?.unsqueeze(0)?;
        let mut xs = self.shared.forward(&ids)?;
        let bias = position_bias(
            &self.decoder_bias,
            pos..pos + 1,
            pos + 1,
            false,
            &self.config,
            &self.device,
        )?;
        for (i, block) in self.decoder.iter().enumerate() {
            let h = block.self_norm.forward(&xs)?;
            let (k_new, v_new) = block.self_attn.project_kv(&h)?;
            let (k, v) = match cache.self_kv[i].take() {
                Some((k, v)) => (
                    Tensor::cat(&[&k, &k_new], 2)?,
                    Tensor::cat(&[&v, &v_new], 2)?,
                ),
                None => (k_new, v_new),
            };
            xs = (&xs + block.self_attn.attend(&h, &k, &v, Some(&bias))?)?;
            cache.self_kv[i] = Some((k, v));
            let h = block.cross_norm.forward(&xs)?;
            let (ck, cv) = &cache.cross_kv[i];
            xs = (&xs + block.cross_attn.attend(&h, ck, cv, None)?)?;
            xs = block.ff.forward(&xs)?;
        }
        cache.position += 1;
        let out = (self.decoder_norm.forward(&xs)? * self.output_scale)?;
        Ok(out.squeeze(0)?.matmul(&self.lm_head.t()?)?.squeeze(0)?)
    }
}

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

/// A T5 checkpoint ready to generate.
pub struct T5Generator {
    model: T5Model,
}

struct Beam {
    tokens: Vec<u32>,
    score: f32,
    cache: DecoderCache,
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
        Ok(Self {
            model: T5Model::load(vb, config)?,
        })
    }

    /// End-of-sequence token id.
    pub fn eos_token_id(&self) -> u32 {
        self.model.config.eos_token_id as u32
    }

    fn start_token(&self) -> u32 {
        let c = &self.model.config;
        c.decoder_start_token_id.unwrap_or(c.pad_token_id) as u32
    }

    fn next_log_probs(&self, token: u32, cache: &mut DecoderCache) -> Result<Vec<f32>> {
        let logits = self.model.decode_step(token, cache)?;
        Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec1::<f32>()?)
    }

    /// Log-probability of each token of `continuation` given the input and the tokens
    /// before it (teacher forcing through the same cached decoder path as generation).
    pub fn score(&self, input_ids: &[u32], continuation: &[u32]) -> Result<Vec<f32>> {
        let encoded = self.encode(input_ids)?;
        let mut cache = self.model.new_cache(&encoded)?;
        let mut last = self.start_token();
        let mut out = Vec::with_capacity(continuation.len());
        for &token in continuation {
            let log_probs = self.next_log_probs(last, &mut cache)?;
            let lp = log_probs.get(token as usize).ok_or_else(|| {
                InferenceError::Input(format!("token {token} is outside the vocabulary"))
            })?;
            out.push(*lp);
            last = token;
        }
        Ok(out)
    }

    /// The encoder's output `(1, seq, d_model)` for one input (what generation starts from);
    /// an empty input or a token outside the vocabulary is an input error.
    pub fn encode(&self, input_ids: &[u32]) -> Result<Tensor> {
        if input_ids.is_empty() {
            return Err(InferenceError::Input(
                "cannot generate from an empty input".into(),
            ));
        }
        let vocab = self.model.config.vocab_size as u32;
        if let Some(bad) = input_ids.iter().find(|t| **t >= vocab) {
            return Err(InferenceError::Input(format!(
                "token {bad} is outside the vocabulary of {vocab}"
            )));
        }
        self.model.encode(input_ids)
    }

    /// Generates from one tokenized input; returns the new tokens (decoder start
    /// excluded, EOS included when it was produced).
    pub fn generate(&self, input_ids: &[u32], options: &GenerationOptions) -> Result<Vec<u32>> {
        let encoded = self.encode(input_ids)?;
        if options.max_new_tokens == 0 {
            return Ok(Vec::new());
        }
        let cache = self.model.new_cache(&encoded)?;
        if options.num_beams <= 1 {
            self.greedy(cache, options.max_new_tokens)
        } else {
            self.beam_search(cache, options)
        }
    }

    fn greedy(&self, mut cache: DecoderCache, max_new: usize) -> Result<Vec<u32>> {
        let eos = self.eos_token_id();
        let mut out = Vec::with_capacity(max_new);
        let mut last = self.start_token();
        for _ in 0..max_new {
            let log_probs = self.next_log_probs(last, &mut cache)?;
            // First maximum on ties, as torch.argmax.
            let next = crate::first_argmax(&log_probs) as u32;
            out.push(next);
            if next == eos {
                break;
            }
            last = next;
        }
        Ok(out)
    }

    fn beam_search(&self, cache: DecoderCache, options: &GenerationOptions) -> Result<Vec<u32>> {
        const MASKED: f32 = -1.0e9;
        let width = options.num_beams;
        let keep = 2 * width; // candidates per step: (1 EOS + 1) * beams, as the reference
        let eos = self.eos_token_id();
        let lp = options.length_penalty;
        let start = self.start_token();

        let mut running = vec![Beam {
            tokens: Vec::new(),
            score: 0.0,
            cache,
        }];
        // Finished hypotheses (tokens, length-normalised score), best first, at most `width`.
        let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
        let mut improvable = true;

        for step in 0..options.max_new_tokens {
            let generated_len = step + 1;
            let norm = (generated_len as f64).powf(lp) as f32;
            // Score every continuation of every running beam.
            let mut candidates: Vec<(f32, usize, u32)> = Vec::new();
            for (b, beam) in running.iter_mut().enumerate() {
                let last = beam.tokens.last().copied().unwrap_or(start);
                let log_probs = self.next_log_probs(last, &mut beam.cache)?;
                candidates.extend(
                    log_probs
                        .iter()
                        .enumerate()
                        .map(|(t, l)| (beam.score + l, b, t as u32)),
                );
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            candidates.truncate(keep);
            let at_max = generated_len >= options.max_new_tokens;
            let hits: Vec<bool> = candidates.iter().map(|c| at_max || c.2 == eos).collect();

            // Finished: hits among the top `width` candidates, unless the set is full or cannot improve.
            if improvable && finished.len() < width {
                for (rank, (c, hit)) in candidates.iter().zip(&hits).enumerate() {
                    if *hit && rank < width {
                        let mut tokens = running[c.1].tokens.clone();
                        tokens.push(c.2);
                        finished.push((tokens, c.0 / norm));
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
                        cache: parent.cache.clone(),
                    }
                })
                .collect();

            // Early-stop heuristic of the reference (early_stopping=True).
            let best_running = running[0].score / norm;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_buckets_match_reference_values() {
        // Values of transformers' T5Attention._relative_position_bucket, num_buckets=32, max_distance=128.
        let bi = |r| relative_bucket(r, true, 32, 128);
        let uni = |r| relative_bucket(r, false, 32, 128);
        assert_eq!(
            [bi(0), bi(1), bi(-1), bi(7), bi(-7), bi(8), bi(-8)],
            [0, 17, 1, 23, 7, 24, 8]
        );
        assert_eq!([bi(20), bi(-20), bi(127), bi(-500)], [26, 10, 31, 15]);
        assert_eq!(
            [
                uni(0),
                uni(3),
                uni(-3),
                uni(-15),
                uni(-16),
                uni(-40),
                uni(-1000)
            ],
            [0, 0, 3, 15, 16, 23, 31]
        );
    }
}
