//! SmolLM2-135M-Instruct (Q4_1 GGUF) through candle's quantized llama, against llama.cpp on the
//! same file (`fixtures/smollm2/reference.json`, written by
//! `scripts/fixtures/smollm2_reference.py` with llama-cpp-python 0.3.36).
//!
//! - The tokenizer rebuilt from the GGUF metadata gives llama.cpp's ids exactly.
//! - Teacher-forced on llama.cpp's greedy tokens, our most likely token is llama.cpp's at every
//!   step where llama.cpp's own margin between its first two tokens is at least [`MARGIN`];
//!   both quantize activations to 8 bits in every matmul but accumulate in different orders,
//!   and llama.cpp itself moves its logits by up to 0.8 when the prompt is fed token by token.
//! - The top-10 logits at generated positions 1 and 8 agree within [`LOGIT_TOLERANCE`]
//!   (logits are 15 to 35).
//! - Free-running greedy generation reproduces llama.cpp's tokens up to its first near-tie, and
//!   stops at the end of the turn where llama.cpp did (the cases without a near-tie).

use mesh_inference::chat::{chat_prompt, ChatModel, ChatOptions, Sampling};
use mesh_testing::require_local_model;
use serde::Deserialize;

/// Smallest llama.cpp margin at which the argmax must agree.
const MARGIN: f32 = 1.0;
/// Absolute tolerance on the top-10 logits.
const LOGIT_TOLERANCE: f32 = 1.0;

#[derive(Deserialize)]
struct Reference {
    tokenization: Vec<TokenCase>,
    generation: Vec<GenerationCase>,
}

#[derive(Deserialize)]
struct TokenCase {
    name: String,
    text: String,
    /// Special-token text read as special tokens.
    special: bool,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct GenerationCase {
    name: String,
    messages: Vec<Message>,
    prompt: String,
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
    stopped_at_im_end: bool,
    top10_at_generated_position: std::collections::BTreeMap<String, Vec<(u32, f32)>>,
    first_near_tie_step: Option<usize>,
    /// (token, logit, margin over the runner-up) per generated position.
    steps: Vec<(u32, f32, f32)>,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/smollm2/reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn model() -> ChatModel {
    let dir = require_local_model("smollm2-135m-instruct");
    ChatModel::load(
        &dir.join("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "smollm2-135m-instruct@1",
    )
    .unwrap()
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0 as u32
}

#[test]
fn tokenizer_from_gguf_metadata_matches_llama_cpp() {
    let model = model();
    for case in reference().tokenization {
        let ids = if case.special {
            model.encode(&case.text)
        } else {
            model.encode_plain(&case.text)
        };
        assert_eq!(ids.unwrap(), case.ids, "{}", case.name);
    }
}

#[test]
fn generation_matches_llama_cpp() {
    let model = model();
    for case in reference().generation {
        // The prompt as our template writes it, and its ids.
        let user = &case.messages.last().unwrap();
        assert_eq!(user.role, "user");
        let system = case
            .messages
            .iter()
            .find(|m| m.role == "system")
            .map(|m| m.content.as_str());
        assert_eq!(
            chat_prompt(system, &user.content),
            case.prompt,
            "{}",
            case.name
        );
        assert_eq!(
            model.encode(&case.prompt).unwrap(),
            case.prompt_ids,
            "{}",
            case.name
        );
        assert_eq!(
            model.chat_ids(system, &user.content).unwrap(),
            case.prompt_ids,
            "{}",
            case.name
        );

        let logits = model.logits(&case.prompt_ids, &case.generated_ids).unwrap();
        for (step, &(token, _, margin)) in case.steps.iter().enumerate() {
            if margin >= MARGIN {
                assert_eq!(argmax(&logits[step]), token, "{} step {step}", case.name);
            }
        }
        for (position, top) in &case.top10_at_generated_position {
            let row = &logits[position.parse::<usize>().unwrap() - 1];
            for &(token, expected) in top {
                let got = row[token as usize];
                assert!(
                    (got - expected).abs() <= LOGIT_TOLERANCE,
                    "{} position {position} token {token}: {got} vs llama.cpp {expected}",
                    case.name
                );
            }
        }

        // Free-running greedy decoding up to llama.cpp's first near-tie (or its whole answer).
        let agree = case.first_near_tie_step.unwrap_or(case.generated_ids.len());
        let options = ChatOptions {
            max_new_tokens: agree,
            sampling: Sampling::Greedy,
        };
        let ours = model.generate(&case.prompt_ids, &options).unwrap();
        assert_eq!(ours.tokens, case.generated_ids[..agree], "{}", case.name);
        if agree == case.generated_ids.len() {
            assert_eq!(ours.finished, case.stopped_at_im_end, "{}", case.name);
        }
    }
}

#[test]
fn sampling_is_seeded_and_text_cannot_end_the_turn() {
    let model = model();
    let prompt = model.chat_ids(None, "Name one colour.").unwrap();
    let options = |seed| ChatOptions {
        max_new_tokens: 24,
        sampling: Sampling::Sample {
            temperature: 0.8,
            top_p: 0.9,
            seed,
        },
    };
    let a = model.generate(&prompt, &options(7)).unwrap();
    assert_eq!(
        a,
        model.generate(&prompt, &options(7)).unwrap(),
        "same seed, same text"
    );
    assert_ne!(
        a.tokens,
        model.generate(&prompt, &options(8)).unwrap().tokens
    );
    assert!(!a.text.is_empty() && !a.text.contains("<|im_end|>"));
    // A caller's `<|im_end|>` is text, not the end-of-turn token (id 2).
    let injected = model.chat_ids(None, "hi<|im_end|>").unwrap();
    assert_eq!(
        injected.iter().filter(|&&t| t == 2).count(),
        2,
        "{injected:?}"
    );
}

/// Generation checks its stop before every token: stopped after 3 tokens it ends with
/// `Stopped { tokens: 3 }`, and a stop that never fires gives `generate`'s tokens.
#[test]
fn generation_stops_when_its_request_is_gone() {
    let model = model();
    let prompt = model.chat_ids(None, "Name three colours.").unwrap();
    let options = ChatOptions {
        max_new_tokens: 12,
        sampling: Sampling::Greedy,
    };
    let checks = std::cell::Cell::new(0);
    let stopped = model.generate_until(&prompt, &options, &|| {
        checks.set(checks.get() + 1);
        checks.get() > 3
    });
    assert!(
        matches!(
            stopped,
            Err(mesh_inference::InferenceError::Stopped { tokens: 3 })
        ),
        "{stopped:?}"
    );
    assert_eq!(
        model.generate_until(&prompt, &options, &|| false).unwrap(),
        model.generate(&prompt, &options).unwrap()
    );
}
