//! `POST /market-intelligence/analyze`: sentiment of market text from the sentiment head,
//! sentence by sentence for long texts, and entities found by a documented rule set.
//!
//! - The head has three trained classes, NEGATIVE, NEUTRAL and POSITIVE. A text's distribution is
//!   the head's calibrated probabilities for a one-sentence text, their mean over sentences
//!   otherwise.
//! - `sentiment`: MIXED when one sentence is POSITIVE and another NEGATIVE, each with probability
//!   at least 0.6; else the most likely class of the distribution. `market_impact` follows it
//!   (Positive / Neutral / Negative).
//! - `sentiment_score` = P(positive) + P(neutral) / 2: the expected polarity on 0 (negative) to 1
//!   (positive).
//! - Entities ([`entities`]): money, percentages and dates by pattern; organisations as runs of
//!   capitalised words ending in a company suffix (Inc, Corp, Ltd, LLC, GmbH, Group, ...);
//!   products as capitalised names followed by a model or version number (`Windows 11`,
//!   `Microsoft 365`). The prototype's trends, pricing and competitive fields are not
//!   returned: nothing here can compute them honestly.
//! - With Amazon Comprehend configured (`--market-provider`), its sentiment, entities and key
//!   phrases answer instead under `cloud-first`, when the local confidence max(p, 1 - p) is
//!   below the threshold under `local-first`, or beside the local answer under `compare`;
//!   `provider` says who answered and `fallback_reason` why the local model did when the cloud
//!   failed.

use std::sync::LazyLock;

use mesh_inference::backend::EmbeddingBackend;
use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cloud::{plan, Plan, ProviderReport, SentimentProvider};
use crate::head::ClassificationHead;
use crate::{now_iso8601, require_text, Agent, AgentError, AgentKind};
use mesh_cloud::{CloudCall, ComprehendAnalysis, FallbackPolicy, COMPREHEND_MODEL};

/// Longest `query` accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 50_000;
/// Most sentences one request may hold (each is scored on its own).
pub const MAX_SENTENCES: usize = 200;

/// Request of `/market-intelligence/analyze`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketRequest {
    /// Market text: news, analyst notes, customer feedback.
    pub query: String,
    /// Echoed back; it does not change the analysis.
    #[serde(default)]
    pub industry_segment: Option<String>,
}

/// Sentiment of one sentence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SentenceSentiment {
    pub text: String,
    /// NEGATIVE, NEUTRAL or POSITIVE.
    pub sentiment: String,
    pub positive_probability: f32,
    pub neutral_probability: f32,
    pub negative_probability: f32,
}

/// Probabilities of the three sentiment classes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct SentimentDistribution {
    pub negative: f32,
    pub neutral: f32,
    pub positive: f32,
}

impl SentimentDistribution {
    /// The most likely class.
    pub fn label(&self) -> &'static str {
        if self.positive >= self.neutral && self.positive >= self.negative {
            "POSITIVE"
        } else if self.negative >= self.neutral {
            "NEGATIVE"
        } else {
            "NEUTRAL"
        }
    }

    /// Expected polarity on 0 (negative) to 1 (positive).
    pub fn score(&self) -> f32 {
        self.positive + self.neutral / 2.0
    }

    /// Probability of the most likely class.
    pub fn confidence(&self) -> f32 {
        self.positive.max(self.neutral).max(self.negative)
    }

    fn mean(all: &[SentimentDistribution]) -> SentimentDistribution {
        let n = all.len().max(1) as f32;
        SentimentDistribution {
            negative: all.iter().map(|d| d.negative).sum::<f32>() / n,
            neutral: all.iter().map(|d| d.neutral).sum::<f32>() / n,
            positive: all.iter().map(|d| d.positive).sum::<f32>() / n,
        }
    }
}

/// An entity found in the text.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Entity {
    /// `organisation`, `product`, `money`, `percentage` or `date`.
    pub kind: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// Response of `/market-intelligence/analyze`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MarketResponse {
    pub query: String,
    pub industry_segment: Option<String>,
    /// POSITIVE, NEGATIVE, NEUTRAL or MIXED.
    pub sentiment: String,
    /// Expected polarity, P(positive) + P(neutral) / 2 (Comprehend's P(positive) when it answered).
    pub sentiment_score: f32,
    /// The local head's distribution over NEGATIVE, NEUTRAL and POSITIVE (whole text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<SentimentDistribution>,
    pub model_used: String,
    /// Positive, Neutral or Negative.
    pub market_impact: String,
    /// Per-sentence sentiment (texts of more than one sentence).
    pub sentences: Vec<SentenceSentiment>,
    pub entities: Vec<Entity>,
    pub entity_method: String,
    /// Key phrases (Comprehend's, when it answered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_phrases: Vec<String>,
    /// Who answered under which policy, and what the cloud call took.
    pub provider: ProviderReport,
    /// Why the local model answered although the policy asked the cloud (the cloud's error).
    pub fallback_reason: Option<String>,
    /// Under `compare`: the cloud's answer (or its error) beside the local one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<serde_json::Value>,
    pub timestamp: String,
}

/// The market-intelligence agent.
pub struct MarketAgent {
    encoder: EmbeddingBackend,
    sentiment_head: ClassificationHead,
    cloud: Option<SentimentProvider>,
}

impl MarketAgent {
    pub fn new(
        encoder: EmbeddingBackend,
        sentiment_head: ClassificationHead,
    ) -> Result<Self, AgentError> {
        crate::ensure_head_fits(&sentiment_head, &encoder)?;
        Ok(Self {
            encoder,
            sentiment_head,
            cloud: None,
        })
    }

    /// Adds Amazon Comprehend under its policy.
    pub fn with_cloud(mut self, cloud: Option<SentimentProvider>) -> Self {
        self.cloud = cloud;
        self
    }

    fn policy(&self) -> FallbackPolicy {
        self.cloud
            .as_ref()
            .map_or(FallbackPolicy::LocalOnly, |c| c.policy)
    }

    /// The answer from Comprehend's analysis.
    fn cloud_answer(
        request: &MarketRequest,
        call: &CloudCall<ComprehendAnalysis>,
        provider: ProviderReport,
    ) -> MarketResponse {
        let a = &call.value;
        let market_impact = match a.sentiment.as_str() {
            "POSITIVE" => "Positive",
            "NEGATIVE" => "Negative",
            _ => "Neutral",
        };
        MarketResponse {
            query: request.query.clone(),
            industry_segment: request.industry_segment.clone(),
            sentiment: a.sentiment.clone(),
            sentiment_score: a.positive,
            probabilities: None,
            model_used: COMPREHEND_MODEL.into(),
            market_impact: market_impact.into(),
            sentences: Vec::new(),
            entities: a
                .entities
                .iter()
                .map(|e| Entity {
                    kind: e.entity_type.to_ascii_lowercase(),
                    text: e.text.clone(),
                    start: e.begin,
                    end: e.end,
                })
                .collect(),
            entity_method: "aws-comprehend DetectEntities".into(),
            key_phrases: a.key_phrases.iter().map(|k| k.text.clone()).collect(),
            provider: ProviderReport {
                answered_by: "cloud".into(),
                ..provider
            },
            fallback_reason: None,
            comparison: None,
            timestamp: now_iso8601(),
        }
    }

    /// The head's distribution over the three classes, for each text.
    pub async fn distributions(
        &self,
        texts: &[String],
    ) -> Result<Vec<SentimentDistribution>, AgentError> {
        let embeddings = self.encoder.embed(texts, true).await?;
        let features: Vec<Vec<f32>> = embeddings.into_iter().map(|e| e.vector).collect();
        let labels = self.sentiment_head.labels();
        let index = |name: &str| {
            labels.iter().position(|l| l == name).ok_or_else(|| {
                AgentError::Unavailable(format!("sentiment head has no {name} label"))
            })
        };
        let (negative, neutral, positive) =
            (index("NEGATIVE")?, index("NEUTRAL")?, index("POSITIVE")?);
        Ok(self
            .sentiment_head
            .probabilities(&features, texts)?
            .into_iter()
            .map(|p| SentimentDistribution {
                negative: p[negative],
                neutral: p[neutral],
                positive: p[positive],
            })
            .collect())
    }
}

/// The documented sentiment label of a text from its distribution and its sentences'.
pub fn sentiment_label(
    text: &SentimentDistribution,
    sentences: &[SentimentDistribution],
) -> &'static str {
    let confident = |label: &str| {
        sentences
            .iter()
            .any(|d| d.label() == label && d.confidence() >= MIXED_CONFIDENCE)
    };
    if sentences.len() > 1 && confident("POSITIVE") && confident("NEGATIVE") {
        "MIXED"
    } else {
        text.label()
    }
}

/// Probability a sentence's class needs to make a text MIXED.
pub const MIXED_CONFIDENCE: f32 = 0.6;

impl crate::Answer for MarketResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }
}

impl Agent for MarketAgent {
    type Request = MarketRequest;
    type Response = MarketResponse;
    const KIND: AgentKind = AgentKind::MarketIntelligence;

    fn model_used(&self) -> String {
        format!(
            "{} on {}",
            self.sentiment_head.config().versioned_id(),
            self.encoder.model_id()
        )
    }

    async fn handle(&self, request: MarketRequest) -> Result<MarketResponse, AgentError> {
        require_text("query", &request.query, MAX_QUERY_CHARS)?;
        let policy = self.policy();
        let report = ProviderReport::local(&policy);
        let Some(cloud) = &self.cloud else {
            return self.local_answer(request, report).await;
        };
        if plan(&policy, None) == Plan::CloudThenLocal {
            let call = cloud.comprehend.analyze(&request.query).await;
            let report = report.with_call(COMPREHEND_MODEL, &call);
            return match call {
                Ok(c) => Ok(Self::cloud_answer(&request, &c, report)),
                Err(e) => {
                    let mut local = self.local_answer(request, report).await?;
                    local.fallback_reason = Some(format!("{e}; answered by the local model"));
                    Ok(local)
                }
            };
        }
        let local = self.local_answer(request.clone(), report.clone()).await?;
        let confidence = local.probabilities.map_or(0.0, |d| d.confidence());
        match plan(&policy, Some(confidence)) {
            Plan::LocalThenCloud => {
                let call = cloud.comprehend.analyze(&request.query).await;
                let mut report = report.with_call(COMPREHEND_MODEL, &call);
                report.upgrade_reason = Some(format!(
                    "local confidence {confidence:.3} is below the policy's threshold"
                ));
                match call {
                    Ok(c) => Ok(Self::cloud_answer(&request, &c, report)),
                    Err(e) => Ok(MarketResponse {
                        provider: report,
                        fallback_reason: Some(format!("{e}; kept the local answer")),
                        ..local
                    }),
                }
            }
            Plan::Both => {
                let call = cloud.comprehend.analyze(&request.query).await;
                let comparison = match &call {
                    Ok(c) => {
                        let cloud = Self::cloud_answer(&request, c, report.clone());
                        serde_json::json!({
                            "model_used": cloud.model_used,
                            "sentiment": cloud.sentiment,
                            "sentiment_score": cloud.sentiment_score,
                            "scores": {"positive": c.value.positive, "negative": c.value.negative,
                                       "neutral": c.value.neutral, "mixed": c.value.mixed},
                            "entities": cloud.entities,
                            "key_phrases": cloud.key_phrases,
                            "agrees_with_local": cloud.sentiment == local.sentiment,
                        })
                    }
                    Err(e) => serde_json::json!({"error": e.to_string()}),
                };
                Ok(MarketResponse {
                    provider: report.with_call(COMPREHEND_MODEL, &call),
                    comparison: Some(comparison),
                    ..local
                })
            }
            _ => Ok(local),
        }
    }
}

impl MarketAgent {
    /// The local model's answer.
    async fn local_answer(
        &self,
        request: MarketRequest,
        provider: ProviderReport,
    ) -> Result<MarketResponse, AgentError> {
        let sentences = crate::text::sentences(&request.query);
        if sentences.len() > MAX_SENTENCES {
            return Err(AgentError::invalid(
                "query",
                format!(
                    "`query` holds {} sentences; at most {MAX_SENTENCES} per request",
                    sentences.len()
                ),
            ));
        }
        let (text, per_sentence) = if sentences.len() <= 1 {
            let d = self
                .distributions(std::slice::from_ref(&request.query))
                .await?[0];
            (d, Vec::new())
        } else {
            let all = self.distributions(&sentences).await?;
            (
                SentimentDistribution::mean(&all),
                sentences.into_iter().zip(all).collect(),
            )
        };
        let sentence_distributions: Vec<SentimentDistribution> =
            per_sentence.iter().map(|(_, d)| *d).collect();
        let sentiment = sentiment_label(&text, &sentence_distributions);
        let market_impact = match sentiment {
            "POSITIVE" => "Positive",
            "NEGATIVE" => "Negative",
            _ => "Neutral",
        };
        let per_sentence: Vec<SentenceSentiment> = per_sentence
            .into_iter()
            .map(|(text, d)| SentenceSentiment {
                text,
                sentiment: d.label().into(),
                positive_probability: d.positive,
                neutral_probability: d.neutral,
                negative_probability: d.negative,
            })
            .collect();
        let score = text.score();
        Ok(MarketResponse {
            entities: entities(&request.query),
            query: request.query,
            industry_segment: request.industry_segment,
            sentiment: sentiment.into(),
            sentiment_score: score,
            probabilities: Some(text),
            model_used: self.model_used(),
            market_impact: market_impact.into(),
            sentences: per_sentence,
            entity_method: "patterns: money, percentages, dates; organisations by company suffix; products as capitalised names with a model/version number".into(),
            key_phrases: Vec::new(),
            provider,
            fallback_reason: None,
            comparison: None,
            timestamp: now_iso8601(),
        })
    }
}

const MONTHS: &str = "January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec";

static MONEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:[$€£¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:k|m|bn|b|million|billion|thousand|trillion)\b)?|\b\d[\d,]*(?:\.\d+)?\s?(?:million|billion|thousand)?\s?(?:USD|EUR|GBP|dollars|euros|pounds)\b)").expect("valid pattern")
});
static PERCENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[-+]?\b\d+(?:\.\d+)?\s?(?:%|percent\b|per cent\b)").expect("valid pattern")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}\s+(?:{MONTHS})\s+\d{{4}}|(?:{MONTHS})\s+\d{{4}}|Q[1-4]\s?(?:FY)?\s?\d{{2,4}}|(?:FY|fiscal year)\s?\d{{2,4}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}})\b"
    ))
    .expect("valid pattern")
});
static ORGANISATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:[A-Z][A-Za-z0-9&'-]*\s+){1,4}(?:Inc|Corp|Corporation|Ltd|Limited|LLC|PLC|plc|GmbH|AG|SA|NV|Group|Holdings|Technologies|Systems|Networks|Software|Labs|Partners)\b\.?").expect("valid pattern")
});
static PRODUCT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+){0,2}\s(?:v?\d{1,4}(?:\.\d+)*)\b")
        .expect("valid pattern")
});

static LEADING_MONTH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^(?:{MONTHS})\b")).expect("valid pattern"));

/// Most entities returned for one text.
pub const MAX_ENTITIES: usize = 200;

/// A product candidate is not a month, a year (`In 2024`) or a sentence opener (`Top 10`).
fn plausible_product(value: &str) -> bool {
    let (name, number) = value.rsplit_once(' ').unwrap_or((value, ""));
    let year = number.len() == 4 && (number.starts_with("19") || number.starts_with("20"));
    let opener = [
        "In", "By", "Top", "Since", "Until", "From", "For", "The", "On", "At", "Over", "Under",
        "About",
    ]
    .contains(&name);
    !(LEADING_MONTH.is_match(value) || year || opener)
}

/// Entities found by the documented patterns, in order of appearance, without overlaps
/// (money, percentages and dates win over organisations and products).
pub fn entities(text: &str) -> Vec<Entity> {
    let mut found: Vec<Entity> = Vec::new();
    let patterns: [(&str, &Regex); 5] = [
        ("money", &MONEY),
        ("percentage", &PERCENT),
        ("date", &DATE),
        ("organisation", &ORGANISATION),
        ("product", &PRODUCT),
    ];
    for (kind, re) in patterns {
        for m in re.find_iter(text) {
            if found.len() >= MAX_ENTITIES {
                break;
            }
            let overlaps = found.iter().any(|e| m.start() < e.end && e.start < m.end());
            let value = m.as_str().trim();
            if overlaps || value.is_empty() || (kind == "product" && !plausible_product(value)) {
                continue;
            }
            found.push(Entity {
                kind: kind.into(),
                text: value.to_string(),
                start: m.start(),
                end: m.start() + value.len(),
            });
        }
    }
    found.sort_by_key(|e| e.start);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_by_hand() {
        let text = "Acme Networks Inc. grew revenue 12.5% to $3.2 million in Q3 2024, and Windows 11 upgrades start March 15, 2025.";
        let got: Vec<(String, String)> = entities(text)
            .into_iter()
            .map(|e| (e.kind, e.text))
            .collect();
        let want = [
            ("organisation", "Acme Networks Inc."),
            ("percentage", "12.5%"),
            ("money", "$3.2 million"),
            ("date", "Q3 2024"),
            ("product", "Windows 11"),
            ("date", "March 15, 2025"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, t)| (k.to_string(), t.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_entities_from_lone_suffixes_or_years() {
        let text = "Partners expect growth. In 2024 sales rose, and Top 10 lists ignore Systems.";
        assert_eq!(entities(text), vec![]);
    }

    #[test]
    fn labels_by_hand() {
        let d = |negative, neutral, positive| SentimentDistribution {
            negative,
            neutral,
            positive,
        };
        assert_eq!(sentiment_label(&d(0.1, 0.2, 0.7), &[]), "POSITIVE");
        assert_eq!(sentiment_label(&d(0.2, 0.6, 0.2), &[]), "NEUTRAL");
        assert_eq!(sentiment_label(&d(0.5, 0.3, 0.2), &[]), "NEGATIVE");
        let mixed = [d(0.05, 0.1, 0.85), d(0.7, 0.2, 0.1)];
        assert_eq!(
            sentiment_label(&SentimentDistribution::mean(&mixed), &mixed),
            "MIXED"
        );
        let calm = [d(0.05, 0.1, 0.85), d(0.5, 0.3, 0.2)];
        assert_eq!(
            sentiment_label(&SentimentDistribution::mean(&calm), &calm),
            "POSITIVE"
        );
        assert!((d(0.2, 0.4, 0.4).score() - 0.6).abs() < 1e-6);
    }
}
