//! BERT and DistilBERT encoders on Candle, sharing one post-LayerNorm transformer.
//!
//! The two architectures compute the same thing; they differ in tensor names,
//! in config field names and in BERT's token-type embeddings. [`Encoder::load`]
//! picks the layout from `config.json`'s `model_type`. [`WeightFormat`] chooses whether the
//! linear layers keep the checkpoint's f32 weights or 8-bit ones.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use crate::{InferenceError, Result};

/// Feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact (erf) GELU, as Hugging Face's `gelu`.
    Gelu,
    /// Tanh approximation of GELU.
    #[serde(alias = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluApproximate,
    Relu,
}

impl Activation {
    fn apply(self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => crate::kernels::gelu_erf(xs)?,
            Activation::GeluApproximate => xs.gelu()?,
            Activation::Relu => xs.relu()?,
        })
    }
}

/// How the encoder keeps the weights of its linear layers (the attention and feed-forward
/// projections: 90-97% of the multiply-adds at 256-75 tokens). Embedding tables, LayerNorms
/// and the attention scores stay f32 either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightFormat {
    /// The checkpoint's f32 weights.
    #[default]
    F32,
    /// 8-bit weights in blocks of 32 with one f16 scale per block (GGML's `Q8_0`), a quarter
    /// of the memory; each matmul quantises its input rows the same way and multiplies in
    /// integers. Results differ from f32 (the encoder bench and `tests/minilm_reference.rs`
    /// measure by how much).
    Int8,
    /// f16 weights, half the memory; each matmul rounds its input to f16 and its output back
    /// to f32 (no per-block scaling, so outlier activations do not cost the others precision).
    F16,
}

impl WeightFormat {
    /// What is appended to a model's `id@version` when it runs in this format, so that
    /// `model_used` names the variant that produced a result (`""` for f32, `"+f16"`, `"+int8"`).
    pub fn id_suffix(self) -> &'static str {
        match self {
            Self::F32 => "",
            Self::Int8 => "+int8",
            Self::F16 => "+f16",
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
            Self::F16 => "f16",
        })
    }
}

impl FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "int8" | "q8" => Ok(Self::Int8),
            "f16" => Ok(Self::F16),
            other => Err(format!(
                "unknown weight format `{other}` (f32, f16 or int8)"
            )),
        }
    }
}

fn with_bias(ys: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    Ok(match bias {
        Some(b) => ys.broadcast_add(b)?,
        None => ys,
    })
}

/// Set (to anything) in the environment, f32 encoders keep candle's matmul instead of the
/// packed kernel: a measurement switch, so that both run from one binary in alternating rounds.
pub const UNPACKED_VARIABLE: &str = "MESH_ENCODER_UNPACKED";

/// A linear layer in one of the [`WeightFormat`]s.
enum Projection {
    Dense(Linear),
    /// f32 weights packed once for the AVX2/FMA kernel.
    Packed(crate::packed::PackedLinear),
    Int8 {
        weight: QMatMul,
        bias: Option<Tensor>,
    },
    /// The weight transposed, `(in, out)`, in f16.
    F16 {
        weight_t: Tensor,
        bias: Option<Tensor>,
    },
}

impl Projection {
    fn new(linear: Linear, format: WeightFormat) -> Result<Self> {
        Ok(match format {
            WeightFormat::F32
                if crate::packed::PackedLinear::supported()
                    && linear.weight().device().is_cpu()
                    && std::env::var_os(UNPACKED_VARIABLE).is_none() =>
            {
                Self::Packed(crate::packed::PackedLinear::new(
                    linear.weight(),
                    linear.bias(),
                )?)
            }
            WeightFormat::F32 => Self::Dense(linear),
            WeightFormat::Int8 => Self::Int8 {
                weight: QMatMul::from_qtensor(QTensor::quantize(
                    linear.weight(),
                    GgmlDType::Q8_0,
                )?)?,
                bias: linear.bias().cloned(),
            },
            WeightFormat::F16 => Self::F16 {
                weight_t: linear.weight().t()?.contiguous()?.to_dtype(DType::F16)?,
                bias: linear.bias().cloned(),
            },
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Dense(linear) => linear.forward(xs)?,
            Self::Packed(linear) => linear.forward(&xs.contiguous()?)?,
            Self::Int8 { weight, bias } => {
                with_bias(weight.forward(&xs.contiguous()?)?, bias.as_ref())?
            }
            Self::F16 { weight_t, bias } => {
                let ys = xs
                    .to_dtype(DType::F16)?
                    .broadcast_matmul(weight_t)?
                    .to_dtype(DType::F32)?;
                with_bias(ys, bias.as_ref())?
            }
        })
    }

    /// `forward(xs) + residual`, fused for packed weights.
    fn forward_add(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match self {
            Self::Packed(linear) => linear.forward_add(&xs.contiguous()?, &residual.contiguous()?),
            _ => Ok((self.forward(xs)? + residual)?),
        }
    }
}

/// `config.json` of a BERT checkpoint (the fields the encoder uses).
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
}

/// `config.json` of a DistilBERT checkpoint (the fields the encoder uses).
#[derive(Debug, Clone, Deserialize)]
pub struct DistilBertConfig {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub hidden_dim: usize,
    pub activation: Activation,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub pad_token_id: usize,
    /// Classification labels (`id2label`), when the checkpoint has a head.
    #[serde(default)]
    pub id2label: Option<std::collections::BTreeMap<String, String>>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_ln_eps() -> f64 {
    1e-12
}

/// A checkpoint's config, tagged by `model_type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "model_type", rename_all = "lowercase")]
pub enum EncoderConfig {
    Bert(BertConfig),
    Distilbert(DistilBertConfig),
}

impl EncoderConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(InferenceError::io(path))?;
        serde_json::from_str(&text).map_err(|e| InferenceError::Config {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Hidden size.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Bert(c) => c.hidden_size,
            Self::Distilbert(c) => c.dim,
        }
    }

    /// Longest sequence the position embeddings allow.
    pub fn max_position_embeddings(&self) -> usize {
        match self {
            Self::Bert(c) => c.max_position_embeddings,
            Self::Distilbert(c) => c.max_position_embeddings,
        }
    }

    fn dims(&self) -> Dims {
        match self {
            Self::Bert(c) => Dims {
                vocab: c.vocab_size,
                hidden: c.hidden_size,
                layers: c.num_hidden_layers,
                heads: c.num_attention_heads,
                ffn: c.intermediate_size,
                act: c.hidden_act,
                positions: c.max_position_embeddings,
                eps: c.layer_norm_eps,
            },
            Self::Distilbert(c) => Dims {
                vocab: c.vocab_size,
                hidden: c.dim,
                layers: c.n_layers,
                heads: c.n_heads,
                ffn: c.hidden_dim,
                act: c.activation,
                positions: c.max_position_embeddings,
                eps: 1e-12,
            },
        }
    }
}

struct Dims {
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    ffn: usize,
    act: Activation,
    positions: usize,
    eps: f64,
}

/// Tensor names of one layout.
struct Names {
    embeddings: &'static str,
    layer_prefix: &'static str,
    q: &'static str,
    k: &'static str,
    v: &'static str,
    attn_out: &'static str,
    attn_ln: &'static str,
    ffn_in: &'static str,
    ffn_out: &'static str,
    out_ln: &'static str,
}

const BERT_NAMES: Names = Names {
    embeddings: "embeddings",
    layer_prefix: "encoder.layer",
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    attn_out: "attention.output.dense",
    attn_ln: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    out_ln: "output.LayerNorm",
};

const DISTILBERT_NAMES: Names = Names {
    embeddings: "embeddings",
    layer_prefix: "transformer.layer",
    q: "attention.q_lin",
    k: "attention.k_lin",
    v: "attention.v_lin",
    attn_out: "attention.out_lin",
    attn_ln: "sa_layer_norm",
    ffn_in: "ffn.lin1",
    ffn_out: "ffn.lin2",
    out_ln: "output_layer_norm",
};

struct Layer {
    /// Query, key and value projections as one `(3 * hidden, hidden)` linear; the query rows
    /// are pre-scaled by `1 / sqrt(head_dim)`.
    qkv: Projection,
    attn_out: Projection,
    attn_ln: LayerNorm,
    ffn_in: Projection,
    ffn_out: Projection,
    out_ln: LayerNorm,
}

/// A BERT or DistilBERT encoder: token ids and attention mask in, last hidden states out.
pub struct Encoder {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    /// BERT only: row 0 of the token-type embeddings (single-segment input).
    token_type_row: Option<Tensor>,
    embeddings_ln: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    act: Activation,
    max_positions: usize,
    device: Device,
    span: tracing::Span,
}

impl Encoder {
    /// Loads the encoder with f32 weights from a `VarBuilder` rooted at the checkpoint (a
    /// `bert.` or `distilbert.` prefix, as in task checkpoints, is found on its own).
    pub fn load(vb: VarBuilder, config: &EncoderConfig) -> Result<Self> {
        Self::load_as(vb, config, WeightFormat::F32)
    }

    /// [`Encoder::load`], keeping the linear layers' weights in `format`.
    pub fn load_as(vb: VarBuilder, config: &EncoderConfig, format: WeightFormat) -> Result<Self> {
        let (names, prefix) = match config {
            EncoderConfig::Bert(_) => (&BERT_NAMES, "bert"),
            EncoderConfig::Distilbert(_) => (&DISTILBERT_NAMES, "distilbert"),
        };
        let vb = if vb.contains_tensor(&format!("{}.word_embeddings.weight", names.embeddings)) {
            vb
        } else {
            vb.pp(prefix)
        };
        let d = config.dims();
        if d.heads == 0 || !d.hidden.is_multiple_of(d.heads) {
            return Err(InferenceError::Input(format!(
                "hidden size {} is not divisible by {} heads",
                d.hidden, d.heads
            )));
        }
        let emb = vb.pp(names.embeddings);
        let word_embeddings = embedding(d.vocab, d.hidden, emb.pp("word_embeddings"))?;
        let position_embeddings = embedding(d.positions, d.hidden, emb.pp("position_embeddings"))?;
        let token_type_row = match config {
            EncoderConfig::Bert(c) => {
                let tt = emb.get(
                    (c.type_vocab_size, d.hidden),
                    "token_type_embeddings.weight",
                )?;
                Some(tt.get(0)?)
            }
            EncoderConfig::Distilbert(_) => None,
        };
        let embeddings_ln = layer_norm(d.hidden, d.eps, emb.pp("LayerNorm"))?;
        let mut layers = Vec::with_capacity(d.layers);
        let scale = 1.0 / ((d.hidden / d.heads) as f64).sqrt();
        for i in 0..d.layers {
            let l = vb.pp(format!("{}.{i}", names.layer_prefix));
            let (q, k, v) = (
                linear(d.hidden, d.hidden, l.pp(names.q))?,
                linear(d.hidden, d.hidden, l.pp(names.k))?,
                linear(d.hidden, d.hidden, l.pp(names.v))?,
            );
            let bias = |m: &Linear| -> Result<Tensor> {
                m.bias().cloned().ok_or_else(|| {
                    InferenceError::Input("attention projections need biases".into())
                })
            };
            let qkv = Linear::new(
                Tensor::cat(
                    &[
                        (q.weight() * scale)?,
                        k.weight().clone(),
                        v.weight().clone(),
                    ],
                    0,
                )?,
                Some(Tensor::cat(
                    &[(bias(&q)? * scale)?, bias(&k)?, bias(&v)?],
                    0,
                )?),
            );
            let project = |linear| Projection::new(linear, format);
            layers.push(Layer {
                qkv: project(qkv)?,
                attn_out: project(linear(d.hidden, d.hidden, l.pp(names.attn_out))?)?,
                attn_ln: layer_norm(d.hidden, d.eps, l.pp(names.attn_ln))?,
                ffn_in: project(linear(d.hidden, d.ffn, l.pp(names.ffn_in))?)?,
                ffn_out: project(linear(d.ffn, d.hidden, l.pp(names.ffn_out))?)?,
                out_ln: layer_norm(d.hidden, d.eps, l.pp(names.out_ln))?,
            });
        }
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type_row,
            embeddings_ln,
            layers,
            heads: d.heads,
            act: d.act,
            max_positions: d.positions,
            device: vb.device().clone(),
            span: tracing::span!(tracing::Level::TRACE, "encoder"),
        })
    }

    /// Device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the encoder.
    ///
    /// `input_ids`: `(batch, seq)` u32; `attention_mask`: `(batch, seq)` with 1 for real
    /// tokens and 0 for padding. Returns `(batch, seq, hidden)` f32. Padded keys get
    /// no attention, so each row equals the same text run alone.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let _enter = self.span.enter();
        let (_, seq) = input_ids.dims2()?;
        if seq > self.max_positions {
            return Err(InferenceError::Input(format!(
                "sequence of {seq} tokens exceeds the model's {} positions",
                self.max_positions
            )));
        }
        let positions = Tensor::arange(0u32, seq as u32, &self.device)?;
        let mut xs = self
            .word_embeddings
            .forward(input_ids)?
            .broadcast_add(&self.position_embeddings.forward(&positions)?)?;
        if let Some(tt) = &self.token_type_row {
            xs = xs.broadcast_add(tt)?;
        }
        let mut xs = self.embeddings_ln.forward(&xs)?;

        // Additive key bias (batch, seq): 0 for real keys, f32::MIN for padding.
        let mask = attention_mask.to_dtype(DType::F32)?;
        let key_bias = ((mask.ones_like()? - &mask)? * f64::from(f32::MIN))?;
        for layer in &self.layers {
            let ctx = crate::kernels::attention(&layer.qkv.forward(&xs)?, &key_bias, self.heads)?;
            let attn = layer
                .attn_ln
                .forward(&layer.attn_out.forward_add(&ctx, &xs)?)?;
            let ffn = match (&layer.ffn_in, &self.act) {
                (Projection::Packed(linear), Activation::Gelu) => {
                    linear.forward_gelu(&attn.contiguous()?)?
                }
                (ffn_in, act) => act.apply(&ffn_in.forward(&attn)?)?,
            };
            xs = layer
                .out_ln
                .forward(&layer.ffn_out.forward_add(&ffn, &attn)?)?;
        }
        Ok(xs)
    }
}

/// Mean of the hidden states over real tokens (mask 1), per row: `(batch, hidden)`.
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    Ok(summed.broadcast_div(&counts)?)
}

/// Scales each row to unit L2 norm (rows of norm 0 stay 0).
pub fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    let norm = xs
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(xs.broadcast_div(&norm)?)
}

/// L2-normalises plain vectors in place (same rule as [`l2_normalize`]).
pub fn l2_normalize_rows(rows: &mut [Vec<f32>]) {
    for row in rows {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
}
