//! Derived checkpoints: BERT -> DistilBERT architecture, and f32 weights stored as f16.
//!
//! BERT -> DistilBERT: MiniLM's BERT layers have DistilBERT's shapes. Recipe: add row 0 of the
//! token-type embeddings to every position embedding (single-segment input),
//! drop the pooler, and rename attention / feed-forward / LayerNorm tensors to
//! DistilBERT's names. The result runs in any DistilBERT implementation and
//! reproduces BERT's last hidden state.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::json;

use crate::encoder::{BertConfig, EncoderConfig};
use crate::{InferenceError, Result};

/// Files copied unchanged from the BERT folder when present.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Renames one BERT tensor (without a `bert.` prefix) to its DistilBERT name;
/// `None` for tensors the recipe drops or folds.
fn distilbert_name(bert: &str) -> Option<String> {
    const LAYER_RENAMES: &[(&str, &str)] = &[
        ("attention.self.query.", "attention.q_lin."),
        ("attention.self.key.", "attention.k_lin."),
        ("attention.self.value.", "attention.v_lin."),
        ("attention.output.dense.", "attention.out_lin."),
        ("attention.output.LayerNorm.", "sa_layer_norm."),
        ("intermediate.dense.", "ffn.lin1."),
        ("output.dense.", "ffn.lin2."),
        ("output.LayerNorm.", "output_layer_norm."),
    ];
    if let Some(rest) = bert.strip_prefix("encoder.layer.") {
        let (index, tail) = rest.split_once('.')?;
        let (from, to) = LAYER_RENAMES
            .iter()
            .find(|(from, _)| tail.starts_with(from))?;
        return Some(format!(
            "transformer.layer.{index}.{to}{}",
            &tail[from.len()..]
        ));
    }
    match bert {
        "embeddings.word_embeddings.weight"
        | "embeddings.LayerNorm.weight"
        | "embeddings.LayerNorm.bias" => Some(bert.to_string()),
        _ => None,
    }
}

/// Converts the tensors of a BERT checkpoint; errors on any tensor the recipe does not know.
pub fn convert_tensors(bert: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let bert: HashMap<String, Tensor> = bert
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("bert.").map(str::to_string).unwrap_or(k), v))
        .collect();
    let take = |name: &str| {
        bert.get(name)
            .cloned()
            .ok_or_else(|| InferenceError::Input(format!("BERT checkpoint lacks `{name}`")))
    };
    let positions = take("embeddings.position_embeddings.weight")?;
    let token_type_0 = take("embeddings.token_type_embeddings.weight")?.get(0)?;
    let mut out = HashMap::new();
    out.insert(
        "embeddings.position_embeddings.weight".to_string(),
        positions.broadcast_add(&token_type_0)?.contiguous()?,
    );
    for (name, tensor) in &bert {
        if let Some(new) = distilbert_name(name) {
            out.insert(new, tensor.clone());
        } else if !(name.starts_with("pooler.")
            || name == "embeddings.position_ids"
            || name == "embeddings.position_embeddings.weight"
            || name == "embeddings.token_type_embeddings.weight")
        {
            return Err(InferenceError::Input(format!(
                "unexpected BERT tensor `{name}`"
            )));
        }
    }
    Ok(out)
}

/// DistilBERT `config.json` equivalent to a BERT config.
pub fn convert_config(bert: &BertConfig) -> serde_json::Value {
    let activation = match bert.hidden_act {
        crate::encoder::Activation::Gelu => "gelu",
        crate::encoder::Activation::GeluApproximate => "gelu_new",
        crate::encoder::Activation::Relu => "relu",
    };
    json!({
        "model_type": "distilbert",
        "architectures": ["DistilBertModel"],
        "vocab_size": bert.vocab_size,
        "dim": bert.hidden_size,
        "n_layers": bert.num_hidden_layers,
        "n_heads": bert.num_attention_heads,
        "hidden_dim": bert.intermediate_size,
        "activation": activation,
        "max_position_embeddings": bert.max_position_embeddings,
        "pad_token_id": bert.pad_token_id,
        "sinusoidal_pos_embds": false,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "initializer_range": 0.02,
        "tie_weights_": true
    })
}

/// Converts the BERT checkpoint in `src` into a DistilBERT checkpoint in `dst`
/// (written to a staging folder, then renamed into place).
pub fn convert_bert_dir(src: &Path, dst: &Path) -> Result<()> {
    let config_path = src.join("config.json");
    let EncoderConfig::Bert(bert_config) = EncoderConfig::from_file(&config_path)? else {
        return Err(InferenceError::Config {
            path: config_path,
            detail: "model_type is not bert".into(),
        });
    };
    if bert_config.layer_norm_eps != 1e-12 {
        return Err(InferenceError::Config {
            path: config_path,
            detail: "DistilBERT fixes layer_norm_eps at 1e-12".into(),
        });
    }
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu)?;
    let converted = convert_tensors(tensors)?;
    let config = serde_json::to_string_pretty(&convert_config(&bert_config)).expect("json") + "\n";
    write_checkpoint(src, dst, &converted, Some(&config))
}

/// Writes the checkpoint `src` into `dst` with every f32 tensor stored as f16 (round to nearest
/// even; other tensors as they are) and the config and tokenizer files copied. Loaded with
/// `DType::F32`, the weights are widened back and the network computes in f32.
pub fn store_f16_dir(src: &Path, dst: &Path) -> Result<()> {
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu)?;
    let stored = tensors
        .into_iter()
        .map(|(name, t)| {
            let t = if t.dtype() == DType::F32 {
                t.to_dtype(DType::F16)?
            } else {
                t
            };
            Ok((name, t))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    write_checkpoint(src, dst, &stored, None)
}

/// Writes `tensors` as `dst/model.safetensors` with `config` (else `src`'s `config.json`) and
/// `src`'s tokenizer files, in a staging folder renamed into place.
fn write_checkpoint(
    src: &Path,
    dst: &Path,
    tensors: &HashMap<String, Tensor>,
    config: Option<&str>,
) -> Result<()> {
    let parent = dst.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(InferenceError::io(parent))?;
    let staging = parent.join(format!(
        ".convert-{}-{}",
        dst.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(InferenceError::io(&staging))?;
    let result = (|| {
        candle_core::safetensors::save(tensors, staging.join("model.safetensors"))?;
        match config {
            Some(config) => std::fs::write(staging.join("config.json"), config)
                .map_err(InferenceError::io(&staging))?,
            None => {
                let from = src.join("config.json");
                std::fs::copy(&from, staging.join("config.json"))
                    .map_err(InferenceError::io(&from))?;
            }
        }
        for name in TOKENIZER_FILES {
            let from = src.join(name);
            if from.is_file() {
                std::fs::copy(&from, staging.join(name)).map_err(InferenceError::io(&from))?;
            }
        }
        if dst.exists() {
            std::fs::remove_dir_all(dst).map_err(InferenceError::io(dst))?;
        }
        std::fs::rename(&staging, dst).map_err(InferenceError::io(dst))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_every_layer_tensor() {
        let cases = [
            (
                "encoder.layer.3.attention.self.query.weight",
                "transformer.layer.3.attention.q_lin.weight",
            ),
            (
                "encoder.layer.0.attention.output.dense.bias",
                "transformer.layer.0.attention.out_lin.bias",
            ),
            (
                "encoder.layer.5.attention.output.LayerNorm.weight",
                "transformer.layer.5.sa_layer_norm.weight",
            ),
            (
                "encoder.layer.1.intermediate.dense.weight",
                "transformer.layer.1.ffn.lin1.weight",
            ),
            (
                "encoder.layer.1.output.dense.bias",
                "transformer.layer.1.ffn.lin2.bias",
            ),
            (
                "encoder.layer.2.output.LayerNorm.bias",
                "transformer.layer.2.output_layer_norm.bias",
            ),
            ("embeddings.LayerNorm.weight", "embeddings.LayerNorm.weight"),
        ];
        for (from, to) in cases {
            assert_eq!(distilbert_name(from).as_deref(), Some(to), "{from}");
        }
        assert_eq!(distilbert_name("pooler.dense.weight"), None);
    }

    #[test]
    fn folds_token_type_zero_into_positions_and_rejects_unknown() {
        let dev = Device::Cpu;
        let mut t = HashMap::new();
        t.insert(
            "embeddings.position_embeddings.weight".into(),
            Tensor::new(&[[1f32, 2.], [3., 4.]], &dev).unwrap(),
        );
        t.insert(
            "embeddings.token_type_embeddings.weight".into(),
            Tensor::new(&[[10f32, 20.], [7., 7.]], &dev).unwrap(),
        );
        t.insert(
            "pooler.dense.weight".into(),
            Tensor::new(&[1f32], &dev).unwrap(),
        );
        let out = convert_tensors(t.clone()).unwrap();
        let pos = out["embeddings.position_embeddings.weight"]
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(pos, vec![vec![11., 22.], vec![13., 24.]]);
        assert!(!out.contains_key("pooler.dense.weight"));
        t.insert(
            "cls.predictions.bias".into(),
            Tensor::new(&[1f32], &dev).unwrap(),
        );
        assert!(convert_tensors(t).is_err());
    }
}
