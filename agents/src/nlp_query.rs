//! `POST /nlp-query/ask`: answers grounded in the knowledge base (ATT&CK techniques and
//! mitigations, CWE, the project's docs).
//!
//! The question is embedded and the `top_k` closest passages retrieved. When the best
//! passage's cosine similarity is below [`MIN_SIMILARITY`] the answer is "I don't know".
//! Otherwise, by default, the answer is extractive: the sentences of the three best passages
//! are embedded and the (up to two) sentences closest to the question, within 0.1 of the
//! best, are returned in passage order. When a T5 checkpoint is configured it writes the
//! answer instead, from the same passages. `confidence` is the best passage's similarity;
//! `sources` are the ids of the passages the answer was drawn from.

use std::path::Path;
use std::sync::Arc;

use mesh_inference::backend::EmbeddingBackend;
use mesh_inference::t5::{GenerationOptions, T5Generator};
use mesh_inference::tokenize::TextTokenizer;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::knowledge::{dot, embed_all, embed_one, KnowledgeIndex, PassageSource};
use crate::{now_iso8601, require_text, Agent, AgentError, AgentKind};

/// Below this best-passage similarity the agent says it does not know.
pub const MIN_SIMILARITY: f32 = 0.35;

/// Request of `/nlp-query/ask`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question.
    pub query: String,
    /// How many passages to retrieve (1-20, default 5).
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// A retrieved passage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetrievedPassage {
    pub id: String,
    pub title: String,
    pub source: PassageSource,
    pub similarity: f32,
    pub text: String,
}

/// Response of `/nlp-query/ask`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AskResponse {
    pub query: String,
    pub response: String,
    /// Same text as `response`.
    pub answer: String,
    pub model_used: String,
    /// Similarity of the best passage (0 when nothing was retrieved).
    pub confidence: f32,
    pub sources: Vec<String>,
    /// `extractive`, `t5-generation` or `none` (I don't know).
    pub answer_method: String,
    pub passages: Vec<RetrievedPassage>,
    pub timestamp: String,
}

/// A T5 checkpoint with its tokenizer, writing answers from retrieved passages.
pub struct T5Answerer {
    generator: T5Generator,
    tokenizer: TextTokenizer,
    id: String,
}

impl T5Answerer {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, AgentError> {
        let generator = T5Generator::load_dir(dir, &mesh_inference::Device::Cpu)?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 512)?;
        let id = dir
            .file_name()
            .map_or("t5".into(), |n| n.to_string_lossy().to_string());
        Ok(Self {
            generator,
            tokenizer,
            id,
        })
    }

    fn answer(&self, question: &str, context: &str) -> Result<String, AgentError> {
        let prompt = format!(
            "Answer the question from the context.\nquestion: {question}\ncontext: {context}"
        );
        let ids = self.tokenizer.encode(&prompt)?.ids;
        let options = GenerationOptions {
            max_new_tokens: 64,
            num_beams: 4,
            length_penalty: 1.0,
        };
        let out = self.generator.generate(&ids, &options)?;
        self.tokenizer
            .inner()
            .decode(&out, true)
            .map_err(|e| AgentError::Unavailable(format!("T5 tokenizer: {e}")))
    }
}

/// The NLP query agent.
pub struct NlpQueryAgent {
    encoder: EmbeddingBackend,
    knowledge: Arc<KnowledgeIndex>,
    generator: Option<Arc<T5Answerer>>,
}

impl NlpQueryAgent {
    pub fn new(
        encoder: EmbeddingBackend,
        knowledge: Arc<KnowledgeIndex>,
        generator: Option<Arc<T5Answerer>>,
    ) -> Self {
        Self {
            encoder,
            knowledge,
            generator,
        }
    }
}

impl Agent for NlpQueryAgent {
    type Request = AskRequest;
    type Response = AskResponse;
    const KIND: AgentKind = AgentKind::NlpQuery;

    fn model_used(&self) -> String {
        match &self.generator {
            Some(g) => format!(
                "{} (retrieval) + {} (generation)",
                self.encoder.model_id(),
                g.id
            ),
            None => format!("{} (retrieval, extractive)", self.encoder.model_id()),
        }
    }

    async fn handle(&self, request: AskRequest) -> Result<AskResponse, AgentError> {
        require_text("query", &request.query, 5_000)?;
        let top_k = request.top_k.unwrap_or(5);
        if !(1..=20).contains(&top_k) {
            return Err(AgentError::invalid(
                "top_k",
                "`top_k` must be between 1 and 20",
            ));
        }
        let query = embed_one(&self.encoder, &request.query).await?.vector;
        let hits = self.knowledge.search(&query, top_k, |_| true);
        let passages: Vec<RetrievedPassage> = hits
            .iter()
            .map(|h| RetrievedPassage {
                id: h.passage.id.clone(),
                title: h.passage.title.clone(),
                source: h.passage.source,
                similarity: h.score,
                text: h.passage.text.clone(),
            })
            .collect();
        let confidence = hits.first().map_or(0.0, |h| h.score.max(0.0));
        let respond = |answer: String, method: &str, sources: Vec<String>| AskResponse {
            query: request.query.clone(),
            response: answer.clone(),
            answer,
            model_used: self.model_used(),
            confidence,
            sources,
            answer_method: method.into(),
            passages: passages.clone(),
            timestamp: now_iso8601(),
        };
        if confidence < MIN_SIMILARITY {
            return Ok(respond(
                format!("I don't know: nothing in the knowledge base is close enough to the question (best match {confidence:.2}, needed {MIN_SIMILARITY})."),
                "none",
                Vec::new(),
            ));
        }
        let best: Vec<_> = hits.iter().take(3).collect();
        if let Some(generator) = &self.generator {
            let context: String = best
                .iter()
                .map(|h| h.passage.embedding_text())
                .collect::<Vec<_>>()
                .join("\n");
            let (g, q) = (generator.clone(), request.query.clone());
            let answer = tokio::task::spawn_blocking(move || g.answer(&q, &context))
                .await
                .map_err(|e| AgentError::Unavailable(format!("T5 generation stopped: {e}")))??;
            let sources = best.iter().map(|h| h.passage.id.clone()).collect();
            return Ok(respond(answer, "t5-generation", sources));
        }
        // Extractive: the sentences closest to the question.
        let mut candidates: Vec<(usize, usize, String)> = Vec::new();
        for (rank, h) in best.iter().enumerate() {
            for (i, s) in crate::text::sentences(&h.passage.text)
                .into_iter()
                .enumerate()
            {
                candidates.push((rank, i, s));
            }
        }
        if candidates.is_empty() {
            return Ok(respond(
                best[0].passage.text.clone(),
                "extractive",
                vec![best[0].passage.id.clone()],
            ));
        }
        let texts: Vec<String> = candidates.iter().map(|c| c.2.clone()).collect();
        let vectors = embed_all(&self.encoder, &texts, &|_| {}).await?;
        let mut scored: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (dot(&query, v), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top = scored[0].0;
        let mut chosen: Vec<usize> = scored
            .iter()
            .take(2)
            .filter(|(s, _)| *s >= top - 0.1)
            .map(|(_, i)| *i)
            .collect();
        chosen.sort_by_key(|&i| (candidates[i].0, candidates[i].1));
        let answer = chosen
            .iter()
            .map(|&i| candidates[i].2.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut sources: Vec<String> = chosen
            .iter()
            .map(|&i| best[candidates[i].0].passage.id.clone())
            .collect();
        sources.dedup();
        Ok(respond(answer, "extractive", sources))
    }
}
