//! Decoder-only chat models in GGUF (the llama architecture, quantized weights), run with
//! candle's `quantized_llama`: SmolLM2-135M-Instruct (Q4_1) writes `/nlp-query/ask` answers.
//!
//! - The tokenizer is rebuilt from the GGUF metadata: byte-level BPE over
//!   `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, digits split one by one before the
//!   byte-level split (the `smollm` pre-tokenizer), control tokens (`token_type` 3) as special
//!   tokens that the text may contain (`<|im_start|>`).
//! - Prompts use the ChatML turns of the model's chat template ([`chat_prompt`]).
//! - Generation keeps the KV cache across steps, decodes greedily or by sampling (temperature,
//!   nucleus, seeded), and stops at the end of the turn (`<|im_end|>`) or the end of text.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{InferenceError, Result};

/// GGUF token type of control tokens (`<|im_start|>`, `<|endoftext|>`, ...).
const CONTROL_TOKEN: i32 = 3;

/// How to pick each next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first on ties).
    Greedy,
    /// A draw from `softmax(logits / temperature)` restricted to the smallest set of tokens whose
    /// probability reaches `top_p`, from a generator seeded with `seed`.
    Sample {
        temperature: f64,
        top_p: f64,
        seed: u64,
    },
}

/// How to generate.
#[derive(Debug, Clone, Copy)]
pub struct ChatOptions {
    /// Most tokens to generate (the end-of-turn token included).
    pub max_new_tokens: usize,
    pub sampling: Sampling,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 160,
            sampling: Sampling::Greedy,
        }
    }
}

/// What one generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new tokens, the end-of-turn token included when it was produced.
    pub tokens: Vec<u32>,
    /// The new tokens decoded, special tokens left out.
    pub text: String,
    /// True when generation stopped at the end of the turn, false when it ran out of tokens.
    pub finished: bool,
}

/// A quantized chat model with its tokenizer.
#[derive(Clone)]
pub struct ChatModel {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    /// The same tokenizer reading special-token text (`<|im_end|>`) as plain text.
    plain: Tokenizer,
    /// Tokens that end the turn.
    stop: Vec<u32>,
    vocab_size: usize,
    id: String,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel").field("id", &self.id).finish()
    }
}

/// The system turn SmolLM2's chat template adds when a conversation has none.
pub const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// A ChatML prompt as SmolLM2's chat template writes it: the system turn (its default when
/// `None`), the user's turn, then an open assistant turn.
pub fn chat_prompt(system: Option<&str>, user: &str) -> String {
    let system = system.unwrap_or(DEFAULT_SYSTEM);
    let mut prompt = format!("<|im_start|>system\n{system}<|im_end|>\n");
    prompt.push_str(&format!(
        "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    ));
    prompt
}

fn metadata<'a>(content: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| InferenceError::Input(format!("the GGUF file has no `{key}`")))
}

fn strings(value: &gguf_file::Value, key: &str) -> Result<Vec<String>> {
    value
        .to_vec()
        .map_err(|e| InferenceError::Input(format!("`{key}`: {e}")))?
        .iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|e| InferenceError::Input(format!("`{key}`: {e}")))
        })
        .collect()
}

/// The byte-level BPE tokenizer described by a GGUF file's metadata.
pub fn tokenizer_from_gguf(content: &gguf_file::Content) -> Result<Tokenizer> {
    let model = metadata(content, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| InferenceError::Input(e.to_string()))?;
    if model != "gpt2" {
        return Err(InferenceError::Input(format!(
            "tokenizer model `{model}` is not byte-level BPE (gpt2)"
        )));
    }
    let tokens = strings(metadata(content, "tokenizer.ggml.tokens")?, "tokens")?;
    let merges = strings(metadata(content, "tokenizer.ggml.merges")?, "merges")?;
    let types: Vec<i32> = metadata(content, "tokenizer.ggml.token_type")?
        .to_vec()
        .map_err(|e| InferenceError::Input(e.to_string()))?
        .iter()
        .map(|v| v.to_i32().unwrap_or(1))
        .collect();
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .filter_map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| InferenceError::Input(format!("BPE from GGUF: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &t)| t == CONTROL_TOKEN)
        .map(|(token, _)| AddedToken::from(token.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

impl ChatModel {
    /// Loads a GGUF file (weights and tokenizer); `id` names it in `model_used`.
    pub fn load(path: &Path, id: &str) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(InferenceError::io(path))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| InferenceError::Input(format!("{}: {e}", path.display())))?;
        let tokenizer = tokenizer_from_gguf(&content)?;
        let vocab_size = strings(metadata(&content, "tokenizer.ggml.tokens")?, "tokens")?.len();
        let stop: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let weights = ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
        let mut plain = tokenizer.clone();
        plain.set_encode_special_tokens(true);
        Ok(Self {
            weights,
            tokenizer,
            plain,
            stop,
            vocab_size,
            id: id.to_string(),
        })
    }

    /// The id `model_used` names.
    pub fn model_id(&self) -> &str {
        &self.id
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text`; special tokens written in it (`<|im_start|>`) become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| InferenceError::Input(format!("tokenizer: {e}")))?
            .get_ids()
            .to_vec())
    }

    /// Token ids of `text` read as plain text: special-token text (`<|im_end|>`) in it is not a
    /// special token (what callers' text goes through, so it cannot end a turn early).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .plain
            .encode(text, false)
            .map_err(|e| InferenceError::Input(format!("tokenizer: {e}")))?
            .get_ids()
            .to_vec())
    }

    /// The ids of [`chat_prompt`]`(system, user)`, with the system and user texts read as plain
    /// text.
    pub fn chat_ids(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        let system = system.unwrap_or(DEFAULT_SYSTEM);
        let mut ids = self.encode("<|im_start|>system\n")?;
        ids.extend(self.encode_plain(system)?);
        ids.extend(self.encode("<|im_end|>\n<|im_start|>user\n")?);
        ids.extend(self.encode_plain(user)?);
        ids.extend(self.encode("<|im_end|>\n<|im_start|>assistant\n")?);
        Ok(ids)
    }

    /// The text of `tokens`, special tokens left out.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(tokens, true)
            .map_err(|e| InferenceError::Input(format!("tokenizer: {e}")))
    }

    fn check(&self, prompt: &[u32], new_tokens: usize) -> Result<()> {
        if prompt.is_empty() {
            return Err(InferenceError::Input(
                "cannot generate from an empty prompt".into(),
            ));
        }
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= self.vocab_size) {
            return Err(InferenceError::Input(format!(
                "token {bad} is outside the vocabulary of {}",
                self.vocab_size
            )));
        }
        if prompt.len() + new_tokens > MAX_SEQ_LEN {
            return Err(InferenceError::Input(format!(
                "{} prompt tokens + {new_tokens} new ones exceed the {MAX_SEQ_LEN}-token window",
                prompt.len()
            )));
        }
        Ok(())
    }

    /// The logits of the next token after the prompt and after each of `continuation`'s tokens
    /// (teacher forcing through the same cached path as generation): `continuation.len() + 1` rows.
    pub fn logits(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.check(prompt, continuation.len())?;
        let mut model = self.weights.clone();
        model.clear_kv_cache();
        let mut out = vec![step(&mut model, prompt, 0)?];
        for (i, &token) in continuation.iter().enumerate() {
            out.push(step(&mut model, &[token], prompt.len() + i)?);
        }
        Ok(out)
    }

    /// Generates the assistant's turn after `prompt` (token ids, e.g. of [`chat_prompt`]).
    pub fn generate(&self, prompt: &[u32], options: &ChatOptions) -> Result<Generation> {
        self.generate_until(prompt, options, &|| false)
    }

    /// [`ChatModel::generate`] that calls `stop` before each token and ends with
    /// [`InferenceError::Stopped`] once it returns true (a request that is gone stops
    /// generating).
    pub fn generate_until(
        &self,
        prompt: &[u32],
        options: &ChatOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<Generation> {
        self.check(prompt, options.max_new_tokens)?;
        let mut model = self.weights.clone();
        model.clear_kv_cache();
        let mut rng = match options.sampling {
            Sampling::Sample { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        let mut tokens = Vec::new();
        let mut finished = false;
        let mut logits = if options.max_new_tokens > 0 {
            step(&mut model, prompt, 0)?
        } else {
            Vec::new()
        };
        for i in 0..options.max_new_tokens {
            if stop() {
                return Err(InferenceError::Stopped { tokens: i });
            }
            let next = pick(&logits, options.sampling, &mut rng);
            tokens.push(next);
            if self.stop.contains(&next) {
                finished = true;
                break;
            }
            if i + 1 < options.max_new_tokens {
                logits = step(&mut model, &[next], prompt.len() + i)?;
            }
        }
        Ok(Generation {
            text: self.decode(&tokens)?.trim().to_string(),
            tokens,
            finished,
        })
    }
}

/// Feeds `tokens` at `position` and returns the last position's logits.
fn step(model: &mut ModelWeights, tokens: &[u32], position: usize) -> Result<Vec<f32>> {
    let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
    Ok(model
        .forward(&input, position)?
        .squeeze(0)?
        .to_vec1::<f32>()?)
}

/// SplitMix64 step: a uniform number in [0, 1).
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The next token under `sampling`.
fn pick(logits: &[f32], sampling: Sampling, rng: &mut u64) -> u32 {
    let argmax = || crate::first_argmax(logits) as u32;
    let Sampling::Sample {
        temperature, top_p, ..
    } = sampling
    else {
        return argmax();
    };
    if temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i, ((f64::from(l) - f64::from(max)) / temperature).exp()))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (n, p) in probs.iter().enumerate() {
        kept += p.1 / total;
        if kept >= top_p {
            cut = n + 1;
            break;
        }
    }
    let nucleus = &probs[..cut];
    let mass: f64 = nucleus.iter().map(|p| p.1).sum();
    let mut draw = uniform(rng) * mass;
    for &(i, p) in nucleus {
        if draw < p {
            return i as u32;
        }
        draw -= p;
    }
    nucleus.last().map_or(0, |p| p.0 as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_prompt() {
        assert_eq!(
            chat_prompt(Some("Be brief."), "Hi"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn picking_by_hand() {
        let logits = [0.0f32, 3.0, 1.0, 3.0];
        let mut rng = 1;
        assert_eq!(
            pick(&logits, Sampling::Greedy, &mut rng),
            1,
            "first maximum"
        );
        // top_p small keeps the single most likely token (the first of the tie): always 1.
        let nucleus = Sampling::Sample {
            temperature: 1.0,
            top_p: 0.1,
            seed: 0,
        };
        assert!((0..20).all(|_| pick(&logits, nucleus, &mut rng) == 1));
        // Full sampling draws both tied tokens, and with p(0) = e^0 / (2e^3 + e + 1) ~ 2% rarely 0.
        let full = Sampling::Sample {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        };
        let draws: Vec<u32> = (0..400).map(|_| pick(&logits, full, &mut rng)).collect();
        let share = |t: u32| draws.iter().filter(|&&d| d == t).count() as f64 / 400.0;
        assert!(
            (share(1) - share(3)).abs() < 0.12,
            "{} {}",
            share(1),
            share(3)
        );
        assert!(share(0) < 0.06);
    }
}
