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
//!
//! With Amazon Bedrock configured (`--nlp-query-provider`), Claude writes the answer from the
//! same three passages (told to answer only from them) under `cloud-first`, when the retrieval
//! confidence is below the threshold under `local-first`, or beside the local answer under
//! `compare`; `provider` and `fallback_reason` say who answered and why.

use std::path::Path;
use std::sync::Arc;

use mesh_inference::backend::EmbeddingBackend;
use mesh_inference::t5::{GenerationOptions, T5Generator};
use mesh_inference::tokenize::TextTokenizer;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cloud::{plan, AnswerProvider, Plan, ProviderReport};
use crate::knowledge::{dot, embed_all, embed_one, KnowledgeIndex, PassageSource};
use crate::{now_iso8601, require_text, Agent, AgentError, AgentKind};
use mesh_cloud::FallbackPolicy;

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
    /// `extractive`, `llm-generation` (the local chat model), `t5-generation`,
    /// `bedrock-generation` or `none` (I don't know).
    pub answer_method: String,
    pub passages: Vec<RetrievedPassage>,
    /// Who answered under which policy, and what the cloud call took.
    pub provider: ProviderReport,
    /// Why the local model answered although the policy asked the cloud (the cloud's error).
    pub fallback_reason: Option<String>,
    /// Under `compare`: the cloud's answer (or its error) beside the local one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<serde_json::Value>,
    pub timestamp: String,
}

/// Instructions Bedrock gets with every question.
pub const BEDROCK_SYSTEM_PROMPT: &str =
    "You answer questions from managed service providers about security. \
Answer only from the numbered context passages, in at most three sentences. If the passages do not \
contain the answer, say that you don't know.";

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

/// Instructions the local chat model gets with every question.
pub const CHAT_SYSTEM_PROMPT: &str = "You answer questions from managed service providers about security. Answer only from the numbered passages, in at most three sentences, and cite the passages you used like [1]. If the passages do not answer the question, say that you don't know.";

/// Characters of each passage the local chat model reads.
const CHAT_PASSAGE_CHARS: usize = 700;

/// A GGUF chat model (SmolLM2) writing answers from the numbered passages, with citations.
pub struct ChatAnswerer {
    model: mesh_inference::chat::ChatModel,
}

impl ChatAnswerer {
    /// Loads the GGUF file; `id` names it in `model_used`.
    pub fn load(path: &Path, id: &str) -> Result<Self, AgentError> {
        Ok(Self {
            model: mesh_inference::chat::ChatModel::load(path, id)?,
        })
    }

    /// The answer and the (0-based) passages it cites; an answer citing none cites them all.
    fn answer(
        &self,
        question: &str,
        passages: &[String],
        stop: &dyn Fn() -> bool,
    ) -> Result<(String, Vec<usize>), AgentError> {
        let context: String = passages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let text: String = p.chars().take(CHAT_PASSAGE_CHARS).collect();
                format!("[{}] {text}", i + 1)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let user = format!("Passages:\n{context}\n\nQuestion: {question}");
        let ids = self.model.chat_ids(Some(CHAT_SYSTEM_PROMPT), &user)?;
        let out =
            self.model
                .generate_until(&ids, &mesh_inference::chat::ChatOptions::default(), stop)?;
        let cited: Vec<usize> = (0..passages.len())
            .filter(|i| out.text.contains(&format!("[{}]", i + 1)))
            .collect();
        let cited = if cited.is_empty() {
            (0..passages.len()).collect()
        } else {
            cited
        };
        Ok((out.text, cited))
    }
}

/// The local model that writes answers instead of extracting them.
pub enum AnswerWriter {
    T5(Box<T5Answerer>),
    Chat(Box<ChatAnswerer>),
}

impl AnswerWriter {
    /// The id `model_used` names.
    pub fn id(&self) -> &str {
        match self {
            Self::T5(t) => &t.id,
            Self::Chat(c) => c.model.model_id(),
        }
    }

    /// `answer_method` of its answers.
    pub fn method(&self) -> &'static str {
        match self {
            Self::T5(_) => "t5-generation",
            Self::Chat(_) => "llm-generation",
        }
    }

    /// The answer from the passages (id, text) and the ids it cites. The chat model checks
    /// `stop` before each token; T5 only before it starts.
    fn write(
        &self,
        question: &str,
        passages: &[(String, String)],
        stop: &dyn Fn() -> bool,
    ) -> Result<(String, Vec<String>), AgentError> {
        if stop() {
            return Err(mesh_inference::InferenceError::Stopped { tokens: 0 }.into());
        }
        match self {
            Self::T5(t) => {
                let context: Vec<&str> = passages.iter().map(|p| p.1.as_str()).collect();
                let answer = t.answer(question, &context.join("\n"))?;
                Ok((answer, passages.iter().map(|p| p.0.clone()).collect()))
            }
            Self::Chat(c) => {
                let texts: Vec<String> = passages.iter().map(|p| p.1.clone()).collect();
                let (answer, cited) = c.answer(question, &texts, stop)?;
                Ok((
                    answer,
                    cited.into_iter().map(|i| passages[i].0.clone()).collect(),
                ))
            }
        }
    }
}

/// The NLP query agent.
pub struct NlpQueryAgent {
    encoder: EmbeddingBackend,
    knowledge: Arc<KnowledgeIndex>,
    generator: Option<Arc<AnswerWriter>>,
    cloud: Option<AnswerProvider>,
}

impl NlpQueryAgent {
    pub fn new(
        encoder: EmbeddingBackend,
        knowledge: Arc<KnowledgeIndex>,
        generator: Option<Arc<AnswerWriter>>,
    ) -> Self {
        Self {
            encoder,
            knowledge,
            generator,
            cloud: None,
        }
    }

    /// Adds Amazon Bedrock under its policy.
    pub fn with_cloud(mut self, cloud: Option<AnswerProvider>) -> Self {
        self.cloud = cloud;
        self
    }
}

impl crate::Answer for AskResponse {
    fn model_used(&self) -> &str {
        &self.model_used
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
                g.id()
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
        let hits = self.knowledge.search(&query, top_k, |p| {
            p.source != PassageSource::AttackProcedure
        });
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
        let policy = self
            .cloud
            .as_ref()
            .map_or(FallbackPolicy::LocalOnly, |c| c.policy);
        let report = ProviderReport::local(&policy);
        let respond = |answer: String, method: &str, sources: Vec<String>| AskResponse {
            query: request.query.clone(),
            response: answer.clone(),
            answer,
            model_used: self.model_used(),
            confidence,
            sources,
            answer_method: method.into(),
            passages: passages.clone(),
            provider: report.clone(),
            fallback_reason: None,
            comparison: None,
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
        let Some(cloud) = &self.cloud else {
            let (answer, method, sources) =
                self.local_answer(&request.query, &query, &best).await?;
            return Ok(respond(answer, method, sources));
        };
        let sources: Vec<String> = best.iter().map(|h| h.passage.id.clone()).collect();
        let context: String = best
            .iter()
            .enumerate()
            .map(|(i, h)| format!("[{}] {}", i + 1, h.passage.embedding_text()))
            .collect::<Vec<_>>()
            .join("\n");
        let prompt = format!(
            "Context passages:\n{context}\n\nQuestion: {}",
            request.query
        );
        let model = cloud.bedrock.model_id().to_string();
        let cloud_model_used = format!(
            "{model} (generation) + {} (retrieval)",
            self.encoder.model_id()
        );
        let ask_cloud = || cloud.bedrock.generate(BEDROCK_SYSTEM_PROMPT, &prompt, 400);
        let plan = plan(&policy, Some(confidence));
        if matches!(plan, Plan::CloudThenLocal | Plan::LocalThenCloud) {
            let call = ask_cloud().await;
            let mut report = report.clone().with_call(&model, &call);
            if plan == Plan::LocalThenCloud {
                report.upgrade_reason = Some(format!(
                    "retrieval confidence {confidence:.3} is below the policy's threshold"
                ));
            }
            return match call {
                Ok(c) => Ok(AskResponse {
                    model_used: cloud_model_used,
                    provider: ProviderReport {
                        answered_by: "cloud".into(),
                        ..report
                    },
                    ..respond(c.value.text, "bedrock-generation", sources)
                }),
                Err(e) => {
                    let (answer, method, sources) =
                        self.local_answer(&request.query, &query, &best).await?;
                    Ok(AskResponse {
                        provider: report,
                        fallback_reason: Some(format!("{e}; answered by the local model")),
                        ..respond(answer, method, sources)
                    })
                }
            };
        }
        let (answer, method, local_sources) =
            self.local_answer(&request.query, &query, &best).await?;
        if plan != Plan::Both {
            return Ok(respond(answer, method, local_sources));
        }
        let call = ask_cloud().await;
        let comparison = match &call {
            Ok(c) => serde_json::json!({"model_used": cloud_model_used, "answer": c.value.text,
                "sources": sources, "input_tokens": c.value.input_tokens, "output_tokens": c.value.output_tokens}),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        Ok(AskResponse {
            provider: report.clone().with_call(&model, &call),
            comparison: Some(comparison),
            ..respond(answer, method, local_sources)
        })
    }
}

impl NlpQueryAgent {
    /// The local answer from the best passages: the generator's when configured (and not
    /// empty), else extractive.
    async fn local_answer(
        &self,
        question: &str,
        query: &[f32],
        best: &[&crate::knowledge::Hit<'_>],
    ) -> Result<(String, &'static str, Vec<String>), AgentError> {
        if let Some(generator) = &self.generator {
            let (answer, sources) = self.written_answer(generator, question, best).await?;
            if !answer.trim().is_empty() {
                return Ok((answer, generator.method(), sources));
            }
        }
        self.extractive_answer(query, best).await
    }

    /// The generator's answer from the passages and the ids it cites.
    async fn written_answer(
        &self,
        generator: &Arc<AnswerWriter>,
        question: &str,
        best: &[&crate::knowledge::Hit<'_>],
    ) -> Result<(String, Vec<String>), AgentError> {
        let passages: Vec<(String, String)> = best
            .iter()
            .map(|h| (h.passage.id.clone(), h.passage.embedding_text()))
            .collect();
        let (g, q) = (generator.clone(), question.to_string());
        crate::cancel::run_blocking("generation", move |gone| g.write(&q, &passages, gone)).await?
    }

    /// The (up to two) sentences of the passages closest to the question, in passage order.
    async fn extractive_answer(
        &self,
        query: &[f32],
        best: &[&crate::knowledge::Hit<'_>],
    ) -> Result<(String, &'static str, Vec<String>), AgentError> {
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
            return Ok((
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
            .map(|(i, v)| (dot(query, v), i))
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
        Ok((answer, "extractive", sources))
    }
}

/// Words by which a written answer says it cannot answer.
const ABSTENTIONS: [&str; 3] = ["don't know", "do not know", "don’t know"];

impl NlpQueryAgent {
    /// Retrieval recall@`k` and, for the extractive answer and the generator's (when one is
    /// loaded), how well the answers are supported by the passages they cite, on `questions`
    /// (see [`crate::answer_quality`]). `progress` is told how many questions are done.
    pub async fn evaluate(
        &self,
        questions: &[crate::answer_quality::Question],
        k: usize,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<crate::answer_quality::QaReport, AgentError> {
        use crate::answer_quality::{MethodReport, QaReport};
        let mut hits_at_k = Vec::new();
        let mut recall_at_k = Vec::new();
        let mut by_kind: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        let mut extractive = Vec::new();
        let mut written = Vec::new();
        for (done, q) in questions.iter().enumerate() {
            let query = embed_one(&self.encoder, &q.question).await?.vector;
            let hits = self.knowledge.search(&query, k.max(3), |p| {
                p.source != PassageSource::AttackProcedure
            });
            if !q.relevant.is_empty() {
                let found = q
                    .relevant
                    .iter()
                    .filter(|id| hits.iter().take(k).any(|h| &h.passage.id == *id))
                    .count();
                hits_at_k.push(f64::from(u8::from(found > 0)));
                recall_at_k.push(found as f64 / q.relevant.len() as f64);
                let entry = by_kind.entry(q.kind.clone()).or_default();
                entry.0 += usize::from(found > 0);
                entry.1 += 1;
            }
            let best: Vec<_> = hits.iter().take(3).collect();
            let confident = best.first().is_some_and(|h| h.score >= MIN_SIMILARITY);
            let started = std::time::Instant::now();
            let answer = if confident {
                let (text, _, sources) = self.extractive_answer(&query, &best).await?;
                Some((text, sources))
            } else {
                None
            };
            extractive.push(
                self.answer_figures(q, &best, answer, started.elapsed())
                    .await?,
            );
            if let Some(generator) = &self.generator {
                let started = std::time::Instant::now();
                let answer = if confident {
                    Some(self.written_answer(generator, &q.question, &best).await?)
                } else {
                    None
                };
                written.push(
                    self.answer_figures(q, &best, answer, started.elapsed())
                        .await?,
                );
            }
            progress(done + 1);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let mut methods = vec![MethodReport::from_figures(
            "extractive",
            &format!("{} (retrieval, extractive)", self.encoder.model_id()),
            questions,
            &extractive,
        )];
        if let Some(generator) = &self.generator {
            methods.push(MethodReport::from_figures(
                generator.method(),
                &self.model_used(),
                questions,
                &written,
            ));
        }
        Ok(QaReport {
            questions: questions.len(),
            k,
            retrieval_hit_at_k: mean(&hits_at_k),
            retrieval_recall_at_k: mean(&recall_at_k),
            hit_at_k_by_kind: by_kind
                .into_iter()
                .map(|(kind, (hit, n))| (kind, hit as f64 / n as f64))
                .collect(),
            methods,
            support_similarity: crate::answer_quality::SUPPORT_SIMILARITY,
        })
    }

    /// Figures of one answer (`None`: "I don't know" below the retrieval threshold) against
    /// the passages it cites.
    async fn answer_figures(
        &self,
        question: &crate::answer_quality::Question,
        best: &[&crate::knowledge::Hit<'_>],
        answer: Option<(String, Vec<String>)>,
        took: std::time::Duration,
    ) -> Result<crate::answer_quality::AnswerFigures, AgentError> {
        use crate::answer_quality::{content_precision, without_citations, SUPPORT_SIMILARITY};
        let latency_ms = took.as_secs_f64() * 1e3;
        let Some((text, sources)) = answer else {
            return Ok(crate::answer_quality::AnswerFigures {
                abstained: true,
                latency_ms,
                ..Default::default()
            });
        };
        let lower = text.to_lowercase();
        if text.trim().is_empty() || ABSTENTIONS.iter().any(|a| lower.contains(a)) {
            return Ok(crate::answer_quality::AnswerFigures {
                abstained: true,
                latency_ms,
                ..Default::default()
            });
        }
        let cited: Vec<String> = best
            .iter()
            .filter(|h| sources.contains(&h.passage.id))
            .map(|h| h.passage.embedding_text())
            .collect();
        let cited: Vec<&str> = cited.iter().map(String::as_str).collect();
        let plain = without_citations(&text);
        let answer_sentences = crate::text::sentences(&plain);
        let source_sentences: Vec<String> = cited
            .iter()
            .flat_map(|t| crate::text::sentences(t))
            .collect();
        let supported = if answer_sentences.is_empty() || source_sentences.is_empty() {
            false
        } else {
            let a = embed_all(&self.encoder, &answer_sentences, &|_| {}).await?;
            let s = embed_all(&self.encoder, &source_sentences, &|_| {}).await?;
            a.iter()
                .all(|x| s.iter().map(|y| dot(x, y)).fold(f32::MIN, f32::max) >= SUPPORT_SIMILARITY)
        };
        Ok(crate::answer_quality::AnswerFigures {
            abstained: false,
            supported,
            content_precision: content_precision(&plain, &cited),
            cites_relevant: sources.iter().any(|s| question.relevant.contains(s)),
            latency_ms,
        })
    }
}
