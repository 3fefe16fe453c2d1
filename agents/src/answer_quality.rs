//! How good `/nlp-query/ask` answers are, on a question set written by hand from the
//! knowledge base (`agents/data/qa/questions.jsonl`, never trained or tuned on): retrieval
//! recall@k of the passages that answer each question, and for each way of answering
//! (extractive, generated) whether the answer is supported by the passages it cites.
//!
//! "Supported" is measured two ways, both against the cited passages only:
//! - every answer sentence has a sentence of a cited passage within cosine
//!   [`SUPPORT_SIMILARITY`] (MiniLM), and
//! - the share of the answer's content words that occur in the cited passages.
//!
//! Both are proxies (no entailment model runs here); an extractive answer is supported by
//! construction and is the baseline the generated answers are read against.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The question set (JSON lines `{"id", "question", "relevant": [passage ids], "kind"}`).
const QUESTIONS: &str = include_str!("../data/qa/questions.jsonl");

/// An answer sentence is supported when a cited passage's sentence is at least this close.
pub const SUPPORT_SIMILARITY: f32 = 0.6;

/// A question with the passages that answer it (none: the knowledge base cannot).
#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    pub id: String,
    pub question: String,
    pub relevant: Vec<String>,
    pub kind: String,
}

/// The committed question set.
pub fn questions() -> Vec<Question> {
    QUESTIONS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("the question set is checked by the tests"))
        .collect()
}

/// One answer's figures.
#[derive(Debug, Clone, Default)]
pub struct AnswerFigures {
    /// The answer said it does not know.
    pub abstained: bool,
    /// Every sentence has a cited passage's sentence within [`SUPPORT_SIMILARITY`].
    pub supported: bool,
    /// Share of content words found in the cited passages.
    pub content_precision: f64,
    /// A cited passage is one of the question's relevant ones.
    pub cites_relevant: bool,
    pub latency_ms: f64,
}

/// Figures of one way of answering over the question set.
#[derive(Debug, Clone, Serialize)]
pub struct MethodReport {
    pub method: String,
    pub model_used: String,
    /// Answerable questions.
    pub answerable: usize,
    /// Of the answerable: answered (not "I don't know").
    pub answered: usize,
    /// Of the answered: every sentence supported by a cited passage.
    pub supported_rate: f64,
    /// Of the answered: mean share of content words found in the cited passages.
    pub content_precision: f64,
    /// Of the answered: cites a relevant passage.
    pub cites_relevant_rate: f64,
    /// Out-of-scope questions answered with "I don't know".
    pub abstained_out_of_scope: usize,
    pub out_of_scope: usize,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

impl MethodReport {
    /// Sums `figures` (one per question, same order as `questions`).
    pub fn from_figures(
        method: &str,
        model_used: &str,
        questions: &[Question],
        figures: &[AnswerFigures],
    ) -> Self {
        let answerable: Vec<&AnswerFigures> = questions
            .iter()
            .zip(figures)
            .filter(|(q, _)| !q.relevant.is_empty())
            .map(|(_, f)| f)
            .collect();
        let answered: Vec<&&AnswerFigures> = answerable.iter().filter(|f| !f.abstained).collect();
        let rate = |keep: &dyn Fn(&AnswerFigures) -> bool| {
            answered.iter().filter(|f| keep(f)).count() as f64 / answered.len().max(1) as f64
        };
        let out_of_scope: Vec<&AnswerFigures> = questions
            .iter()
            .zip(figures)
            .filter(|(q, _)| q.relevant.is_empty())
            .map(|(_, f)| f)
            .collect();
        let mut latencies: Vec<f64> = figures.iter().map(|f| f.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        Self {
            method: method.into(),
            model_used: model_used.into(),
            answerable: answerable.len(),
            answered: answered.len(),
            supported_rate: rate(&|f| f.supported),
            content_precision: answered.iter().map(|f| f.content_precision).sum::<f64>()
                / answered.len().max(1) as f64,
            cites_relevant_rate: rate(&|f| f.cites_relevant),
            abstained_out_of_scope: out_of_scope.iter().filter(|f| f.abstained).count(),
            out_of_scope: out_of_scope.len(),
            latency_p50_ms: percentile(&latencies, 0.5),
            latency_p95_ms: percentile(&latencies, 0.95),
        }
    }
}

/// Retrieval and answer figures of the question set.
#[derive(Debug, Clone, Serialize)]
pub struct QaReport {
    pub questions: usize,
    pub k: usize,
    /// Answerable questions with a relevant passage among the first `k`.
    pub retrieval_hit_at_k: f64,
    /// Mean share of each question's relevant passages among the first `k`.
    pub retrieval_recall_at_k: f64,
    /// Retrieval hit@k per question kind.
    pub hit_at_k_by_kind: std::collections::BTreeMap<String, f64>,
    pub methods: Vec<MethodReport>,
    pub support_similarity: f32,
}

/// `p`-quantile of sorted values (nearest rank; 0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Words too common to say anything about support.
const STOPWORDS: [&str; 60] = [
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "her", "was", "one",
    "our", "out", "has", "have", "had", "his", "how", "its", "may", "new", "now", "see", "two",
    "who", "did", "get", "let", "say", "she", "too", "use", "that", "with", "this", "they", "from",
    "will", "would", "there", "their", "what", "about", "which", "when", "them", "then", "than",
    "been", "were", "into", "also", "should", "could", "such", "these", "those", "your",
];

/// Lower-case words of at least three letters or digits that are not stop words.
pub fn content_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// Share of `answer`'s content words found in `sources` (1 when it has none).
pub fn content_precision(answer: &str, sources: &[&str]) -> f64 {
    let known: HashSet<String> = sources.iter().flat_map(|s| content_words(s)).collect();
    let words = content_words(answer);
    if words.is_empty() {
        return 1.0;
    }
    words.iter().filter(|w| known.contains(*w)).count() as f64 / words.len() as f64
}

/// Strips citation markers like `[1]` or `[2, 3]` from an answer.
pub fn without_citations(answer: &str) -> String {
    static MARKER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\[\d+(?:\s*,\s*\d+)*\]").expect("valid pattern")
    });
    MARKER.replace_all(answer, "").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_set_parses_and_has_every_kind() {
        let set = questions();
        assert!(set.len() >= 80, "{} questions", set.len());
        let kinds: HashSet<&str> = set.iter().map(|q| q.kind.as_str()).collect();
        for kind in [
            "incident-response",
            "attack",
            "weakness",
            "control",
            "out-of-scope",
        ] {
            assert!(kinds.contains(kind), "no {kind} question");
        }
        let ids: HashSet<&str> = set.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids.len(), set.len(), "question ids repeat");
        for q in &set {
            assert_eq!(q.relevant.is_empty(), q.kind == "out-of-scope", "{}", q.id);
        }
    }

    #[test]
    fn content_precision_counts_words_found_in_the_sources() {
        // "restore", "backups", "offline" found; "tomorrow" not: 3 of 4.
        let p = content_precision(
            "Restore the backups offline tomorrow [1].",
            &["Keep offline backups and test that you can restore them."],
        );
        assert!((p - 0.75).abs() < 1e-9, "{p}");
        assert_eq!(without_citations("Do it [1] now [2, 3]."), "Do it  now .");
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.95), 4.0);
    }
}
