//! The BERT -> DistilBERT conversion reproduces BERT's hidden states on real tokens.

mod common;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use common::max_abs_diff_real_tokens;
use mesh_inference::convert::convert_bert_dir;
use mesh_inference::encoder::{Encoder, EncoderConfig};
use mesh_inference::tokenize::{pad_batch, TextTokenizer};
use mesh_testing::require_local_model;

fn load(dir: &std::path::Path) -> Encoder {
    let config = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let weights = [dir.join("model.safetensors")];
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &Device::Cpu).unwrap() };
    Encoder::load(vb, &config).unwrap()
}

#[test]
fn converted_checkpoint_reproduces_bert_hidden_states() {
    let bert_dir = require_local_model("all-minilm-l6-v2");
    let out = tempfile::tempdir().unwrap();
    let distil_dir = out.path().join("distil");
    convert_bert_dir(&bert_dir, &distil_dir).unwrap();
    let config = EncoderConfig::from_file(&distil_dir.join("config.json")).unwrap();
    assert!(matches!(config, EncoderConfig::Distilbert(_)));

    let tokenizer = TextTokenizer::from_file(&bert_dir.join("tokenizer.json"), 256).unwrap();
    let texts = [
        "Suspicious PowerShell spawned from winword.exe on host FIN-LT-042.",
        "Quarterly revenue grew 12% while churn fell.",
        "hi",
        "The backup job for the SQL cluster has failed three nights in a row; escalate to tier 2 and open a P1 ticket.",
    ];
    let enc = tokenizer.encode_batch(&texts).unwrap();
    let rows: Vec<&[u32]> = enc.iter().map(|t| t.ids.as_slice()).collect();
    let batch = pad_batch(&rows, 0, &Device::Cpu).unwrap();
    let bert = load(&bert_dir)
        .forward(&batch.input_ids, &batch.attention_mask)
        .unwrap();
    let distil = load(&distil_dir)
        .forward(&batch.input_ids, &batch.attention_mask)
        .unwrap();
    let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
    let worst = max_abs_diff_real_tokens(&bert, &distil, &lengths);
    assert!(worst <= 1e-5, "max abs diff of hidden states {worst}");
    // The checkpoint is a plain DistilBERT: no BERT-only tensors remain.
    let tensors =
        candle_core::safetensors::load(distil_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(tensors
        .keys()
        .all(|k| k.starts_with("embeddings.") || k.starts_with("transformer.layer.")));
    assert!(!tensors.contains_key("embeddings.token_type_embeddings.weight"));
    assert_eq!(tensors.len(), 4 + 6 * 16);
}
