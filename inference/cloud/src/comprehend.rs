//! Amazon Comprehend: sentiment, entities and key phrases of one text (three calls at once).

#[cfg(feature = "aws")]
use aws_sdk_comprehend::types::LanguageCode;
use serde::Serialize;

use super::{call_resilient, CircuitBreaker, CloudCall, CloudError, Resilience};

/// `model_used` of Comprehend answers.
pub const COMPREHEND_MODEL: &str =
    "aws-comprehend (DetectSentiment, DetectEntities, DetectKeyPhrases)";
/// Largest text Comprehend's real-time APIs take (UTF-8 bytes).
pub const MAX_TEXT_BYTES: usize = 5000;
const SERVICE: &str = "comprehend";

/// Comprehend's reading of one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComprehendAnalysis {
    /// POSITIVE, NEGATIVE, NEUTRAL or MIXED.
    pub sentiment: String,
    pub positive: f32,
    pub negative: f32,
    pub neutral: f32,
    pub mixed: f32,
    pub entities: Vec<CloudEntity>,
    pub key_phrases: Vec<KeyPhrase>,
    /// The text was cut to [`MAX_TEXT_BYTES`].
    pub truncated: bool,
}

/// An entity Comprehend found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudEntity {
    pub text: String,
    /// PERSON, ORGANIZATION, COMMERCIAL_ITEM, QUANTITY, DATE, ...
    pub entity_type: String,
    pub score: f32,
    /// Character offsets in the text.
    pub begin: usize,
    pub end: usize,
}

/// A key phrase Comprehend found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyPhrase {
    pub text: String,
    pub score: f32,
}

#[cfg(feature = "aws")]
type Client = aws_sdk_comprehend::Client;
#[cfg(not(feature = "aws"))]
type Client = super::NoSdk;

/// A Comprehend client with its resilience policy and circuit breaker.
pub struct Comprehend {
    client: Client,
    resilience: Resilience,
    breaker: CircuitBreaker,
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Comprehend {
    #[cfg(feature = "aws")]
    pub fn new(config: &aws_config::SdkConfig, resilience: Resilience) -> Self {
        Self {
            client: aws_sdk_comprehend::Client::new(config),
            resilience,
            breaker: CircuitBreaker::default(),
        }
    }

    /// Whether calls fail fast now (circuit open).
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Sentiment, entities and key phrases of `text` (English; cut to 5,000 bytes).
    pub async fn analyze(&self, text: &str) -> Result<CloudCall<ComprehendAnalysis>, CloudError> {
        let cut = truncate_utf8(text, MAX_TEXT_BYTES);
        let truncated = cut.len() < text.len();
        call_resilient(SERVICE, &self.resilience, &self.breaker, || {
            self.detect_all(cut, truncated)
        })
        .await
    }
}

#[cfg(not(feature = "aws"))]
impl Comprehend {
    async fn detect_all(&self, _: &str, _: bool) -> Result<ComprehendAnalysis, CloudError> {
        match self.client {}
    }

    async fn detect_sentiment(&self, _: &str) -> Result<(String, [f32; 4]), CloudError> {
        match self.client {}
    }
}

#[cfg(feature = "aws")]
impl Comprehend {
    /// DetectSentiment, DetectEntities and DetectKeyPhrases of `cut`, at once.
    async fn detect_all(
        &self,
        cut: &str,
        truncated: bool,
    ) -> Result<ComprehendAnalysis, CloudError> {
        let sentiment = self
            .client
            .detect_sentiment()
            .text(cut)
            .language_code(LanguageCode::En)
            .send();
        let entities = self
            .client
            .detect_entities()
            .text(cut)
            .language_code(LanguageCode::En)
            .send();
        let phrases = self
            .client
            .detect_key_phrases()
            .text(cut)
            .language_code(LanguageCode::En)
            .send();
        let (sentiment, entities, phrases) = tokio::join!(sentiment, entities, phrases);
        let sentiment = sentiment.map_err(|e| CloudError::from_sdk(SERVICE, &e))?;
        let entities = entities.map_err(|e| CloudError::from_sdk(SERVICE, &e))?;
        let phrases = phrases.map_err(|e| CloudError::from_sdk(SERVICE, &e))?;
        let label = sentiment
            .sentiment()
            .ok_or_else(|| CloudError::BadResponse {
                service: SERVICE.into(),
                message: "DetectSentiment answered without `Sentiment`".into(),
            })?;
        let scores = sentiment.sentiment_score();
        let score = |f: fn(&aws_sdk_comprehend::types::SentimentScore) -> Option<f32>| {
            scores.and_then(f).unwrap_or(0.0)
        };
        Ok(ComprehendAnalysis {
            sentiment: label.as_str().to_string(),
            positive: score(|s| s.positive()),
            negative: score(|s| s.negative()),
            neutral: score(|s| s.neutral()),
            mixed: score(|s| s.mixed()),
            entities: entities
                .entities()
                .iter()
                .map(|e| CloudEntity {
                    text: e.text().unwrap_or_default().to_string(),
                    entity_type: e
                        .r#type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    score: e.score().unwrap_or(0.0),
                    begin: e.begin_offset().unwrap_or(0).max(0) as usize,
                    end: e.end_offset().unwrap_or(0).max(0) as usize,
                })
                .collect(),
            key_phrases: phrases
                .key_phrases()
                .iter()
                .map(|k| KeyPhrase {
                    text: k.text().unwrap_or_default().to_string(),
                    score: k.score().unwrap_or(0.0),
                })
                .collect(),
            truncated,
        })
    }
}

impl Comprehend {
    /// Sentiment alone (one DetectSentiment call, a third of [`Comprehend::analyze`]'s cost):
    /// the label and the scores of POSITIVE, NEGATIVE, NEUTRAL and MIXED.
    pub async fn sentiment(&self, text: &str) -> Result<CloudCall<(String, [f32; 4])>, CloudError> {
        let cut = truncate_utf8(text, MAX_TEXT_BYTES);
        call_resilient(SERVICE, &self.resilience, &self.breaker, || {
            self.detect_sentiment(cut)
        })
        .await
    }
}

#[cfg(feature = "aws")]
impl Comprehend {
    /// DetectSentiment of `cut`: the label and the four scores.
    async fn detect_sentiment(&self, cut: &str) -> Result<(String, [f32; 4]), CloudError> {
        let out = self
            .client
            .detect_sentiment()
            .text(cut)
            .language_code(LanguageCode::En)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk(SERVICE, &e))?;
        let label = out.sentiment().ok_or_else(|| CloudError::BadResponse {
            service: SERVICE.into(),
            message: "DetectSentiment answered without `Sentiment`".into(),
        })?;
        let s = out.sentiment_score();
        let score = |f: fn(&aws_sdk_comprehend::types::SentimentScore) -> Option<f32>| {
            s.and_then(f).unwrap_or(0.0)
        };
        Ok((
            label.as_str().to_string(),
            [
                score(|s| s.positive()),
                score(|s| s.negative()),
                score(|s| s.neutral()),
                score(|s| s.mixed()),
            ],
        ))
    }
}

/// Comprehend's list price per unit of 100 characters (minimum 3 units a request), USD.
pub const COMPREHEND_USD_PER_UNIT: f64 = 0.0001;

/// The list price of one DetectSentiment request on `text`.
pub fn request_cost_usd(text: &str) -> f64 {
    let chars = truncate_utf8(text, MAX_TEXT_BYTES).chars().count();
    chars.div_ceil(100).max(3) as f64 * COMPREHEND_USD_PER_UNIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("abc", 5), "abc");
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
    }
}
