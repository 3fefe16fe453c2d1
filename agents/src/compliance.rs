//! `POST /compliance/check`: policy text scored against a control catalogue.
//!
//! Catalogues (CIS Controls v8, NIST CSF 2.0, HIPAA Security Rule, SOC 2, ISO/IEC
//! 27001:2022 Annex A) are data in `agents/data/compliance/` (ids and titles as published,
//! descriptions paraphrased). The policy is split into sentences; every control is scored
//! by its best-matching sentence (cosine similarity of embeddings). A control is covered
//! when that score reaches `coverage_threshold` (default [`DEFAULT_COVERAGE_THRESHOLD`]);
//! its evidence is the (up to three) sentences at or above the threshold.
//! `compliance_score` = 100 x (weight of covered controls) / (total weight);
//! `audit_readiness` = 100 x (weight of controls with strong evidence, score >=
//! max([`STRONG_EVIDENCE`], threshold)) / (total weight). `status`: Excellent >= 85, Good >= 60, else
//! Needs Improvement. `gaps_found` counts the uncovered controls; `recommendations` name
//! them, heaviest first.

use std::sync::Arc;

use mesh_inference::backend::EmbeddingBackend;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cloud::{write_under_policy, AnswerProvider, ProviderReport};
use crate::knowledge::{dot, KnowledgeIndex, Passage, PassageSource};
use crate::{now_iso8601, require_text, Agent, AgentError, AgentKind};

/// Similarity at which a sentence counts as evidence for a control.
pub const DEFAULT_COVERAGE_THRESHOLD: f32 = 0.5;
/// Similarity of strong evidence (audit readiness).
pub const STRONG_EVIDENCE: f32 = 0.6;
/// Longest policy accepted, in characters.
pub const MAX_POLICY_CHARS: usize = 200_000;
/// Most policy sentences one request may hold.
pub const MAX_SENTENCES: usize = 1_000;

const CATALOGUES: [&str; 5] = [
    include_str!("../data/compliance/cis-v8.json"),
    include_str!("../data/compliance/nist-csf-2.0.json"),
    include_str!("../data/compliance/hipaa-security.json"),
    include_str!("../data/compliance/soc2.json"),
    include_str!("../data/compliance/iso27001-2022.json"),
];

/// One control of a catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    pub id: String,
    pub title: String,
    pub group: String,
    pub weight: f32,
    pub description: String,
}

/// A control catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalogue {
    pub framework: String,
    pub name: String,
    pub version: String,
    pub aliases: Vec<String>,
    pub note: String,
    pub controls: Vec<Control>,
}

impl Catalogue {
    /// Every built-in catalogue.
    pub fn builtin() -> Vec<Catalogue> {
        CATALOGUES
            .iter()
            .map(|text| serde_json::from_str(text).expect("catalogues are validated by the tests"))
            .collect()
    }

    /// True when `name` (any case) names this catalogue.
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.trim().to_lowercase();
        self.framework == name || self.aliases.contains(&name)
    }

    /// The controls as passages to embed: title, then description.
    pub fn passages(&self) -> Vec<Passage> {
        self.controls
            .iter()
            .map(|c| Passage {
                id: c.id.clone(),
                title: c.title.clone(),
                text: c.description.clone(),
                source: PassageSource::Control,
                url: None,
            })
            .collect()
    }
}

/// Request of `/compliance/check`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceRequest {
    /// Framework id or alias: `cis-v8`, `nist-csf-2.0`, `hipaa-security`, `soc2`, `iso27001-2022`.
    pub framework: String,
    /// The policy text to check.
    pub policy_text: String,
    /// Similarity a sentence needs to count as evidence (0-1, default 0.5).
    #[serde(default)]
    pub coverage_threshold: Option<f32>,
}

/// Evidence for one control.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Evidence {
    pub sentence: String,
    pub similarity: f32,
}

/// One control's result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ControlResult {
    pub id: String,
    pub title: String,
    pub group: String,
    pub weight: f32,
    pub covered: bool,
    /// Similarity of the best-matching sentence.
    pub best_similarity: f32,
    pub evidence: Vec<Evidence>,
}

/// Response of `/compliance/check`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceResponse {
    /// Canonical framework id.
    pub framework: String,
    pub framework_name: String,
    /// Weighted coverage, 0-100.
    pub compliance_score: f32,
    /// Excellent, Good or Needs Improvement.
    pub status: String,
    pub gaps_found: usize,
    pub recommendations: Vec<String>,
    /// Weighted share of controls with strong evidence, 0-100.
    pub audit_readiness: f32,
    pub model_used: String,
    pub controls_total: usize,
    pub controls_covered: usize,
    pub sentences_analyzed: usize,
    pub coverage_threshold: f32,
    pub controls: Vec<ControlResult>,
    /// The findings in words: written from the computed figures by a template, or by Amazon
    /// Bedrock from the same figures when `--compliance-provider` says so.
    pub explanation: String,
    /// `template` or `bedrock-generation`.
    pub explanation_method: String,
    /// Who wrote the explanation under which policy, and what the cloud call took.
    pub provider: ProviderReport,
    /// Why the template wrote the explanation although the policy asked Bedrock.
    pub fallback_reason: Option<String>,
    /// Under `compare`: Bedrock's explanation (or its error) beside the template's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<serde_json::Value>,
    pub timestamp: String,
}

/// Instructions Bedrock gets with every explanation.
pub const BEDROCK_EXPLANATION_PROMPT: &str =
    "You explain compliance gap analyses to managed service providers. Use only the findings given; never invent controls, scores or evidence. In at most five sentences say what the policy covers, which gaps matter most and what to do first.";

/// Controls whose best similarity lies this close to the threshold are borderline.
pub const BORDERLINE_MARGIN: f32 = 0.05;

/// The compliance agent: every catalogue with its controls embedded.
pub struct ComplianceAgent {
    encoder: EmbeddingBackend,
    catalogues: Vec<(Catalogue, Arc<KnowledgeIndex>)>,
    cloud: Option<AnswerProvider>,
}

impl ComplianceAgent {
    /// Pairs each catalogue with the index of its embedded controls.
    pub fn new(
        encoder: EmbeddingBackend,
        catalogues: Vec<(Catalogue, Arc<KnowledgeIndex>)>,
    ) -> Self {
        Self {
            encoder,
            catalogues,
            cloud: None,
        }
    }

    /// Adds Amazon Bedrock (explanations) under its policy.
    pub fn with_cloud(mut self, cloud: Option<AnswerProvider>) -> Self {
        self.cloud = cloud;
        self
    }

    fn catalogue(&self, name: &str) -> Result<&(Catalogue, Arc<KnowledgeIndex>), AgentError> {
        self.catalogues
            .iter()
            .find(|(c, _)| c.answers_to(name))
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .catalogues
                    .iter()
                    .map(|(c, _)| c.framework.as_str())
                    .collect();
                AgentError::invalid(
                    "framework",
                    format!("unknown framework `{name}`; one of: {}", known.join(", ")),
                )
            })
    }
}

/// The computed findings of one check, put into words.
struct Findings<'a> {
    framework_name: &'a str,
    score: f32,
    status: &'a str,
    controls: &'a [ControlResult],
    /// Uncovered controls, heaviest first.
    gaps: &'a [&'a ControlResult],
    threshold: f32,
}

impl Findings<'_> {
    fn borderline(&self) -> usize {
        self.controls
            .iter()
            .filter(|c| (c.best_similarity - self.threshold).abs() < BORDERLINE_MARGIN)
            .count()
    }

    /// The share of controls whose verdict is not borderline: what a `local-first` policy
    /// compares with its threshold.
    fn confidence(&self) -> f32 {
        1.0 - self.borderline() as f32 / self.controls.len().max(1) as f32
    }

    /// The explanation written from the figures alone.
    fn template(&self) -> String {
        let covered = self.controls.iter().filter(|c| c.covered).count();
        let mut text = format!(
            "{}: {covered} of {} controls have evidence in the policy (weighted score {:.1}, {}).",
            self.framework_name,
            self.controls.len(),
            self.score,
            self.status
        );
        if self.gaps.is_empty() {
            text.push_str(" No control is missing evidence.");
        } else {
            let named: Vec<String> = self
                .gaps
                .iter()
                .take(3)
                .map(|c| format!("{} {}", c.id, c.title))
                .collect();
            text.push_str(&format!(
                " The heaviest gaps: {}{}.",
                named.join("; "),
                if self.gaps.len() > 3 {
                    format!(" and {} more", self.gaps.len() - 3)
                } else {
                    String::new()
                }
            ));
        }
        let borderline = self.borderline();
        if borderline > 0 {
            text.push_str(&format!(
                " {borderline} control(s) score within {BORDERLINE_MARGIN} of the coverage threshold {:.2}; review them by hand.",
                self.threshold
            ));
        }
        text
    }

    /// The findings Bedrock explains (and nothing else).
    fn prompt(&self, catalogue: &Catalogue) -> String {
        let describe = |id: &str| {
            catalogue
                .controls
                .iter()
                .find(|k| k.id == id)
                .map_or("", |k| k.description.as_str())
        };
        let mut prompt = format!(
            "Framework: {}\nWeighted coverage score: {:.1} of 100 ({})\nCoverage threshold: {:.2}\n\nCovered controls (best evidence sentence, similarity):\n",
            self.framework_name, self.score, self.status, self.threshold
        );
        for c in self.controls.iter().filter(|c| c.covered) {
            let evidence = c.evidence.first().map_or("", |e| e.sentence.as_str());
            prompt.push_str(&format!(
                "- {} {} ({:.2}): \"{evidence}\"\n",
                c.id, c.title, c.best_similarity
            ));
        }
        prompt.push_str("\nControls without evidence, heaviest first (weight, best similarity):\n");
        for c in self.gaps.iter().take(10) {
            prompt.push_str(&format!(
                "- {} {} ({}, {:.2}): {}\n",
                c.id,
                c.title,
                c.weight,
                c.best_similarity,
                describe(&c.id)
            ));
        }
        prompt.push_str("\nExplain these findings.");
        prompt
    }
}

impl crate::Answer for ComplianceResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }
}

impl Agent for ComplianceAgent {
    type Request = ComplianceRequest;
    type Response = ComplianceResponse;
    const KIND: AgentKind = AgentKind::Compliance;

    fn model_used(&self) -> String {
        self.encoder.model_id().to_string()
    }

    async fn handle(&self, request: ComplianceRequest) -> Result<ComplianceResponse, AgentError> {
        require_text("policy_text", &request.policy_text, MAX_POLICY_CHARS)?;
        let (catalogue, index) = self.catalogue(&request.framework)?;
        let threshold = request
            .coverage_threshold
            .unwrap_or(DEFAULT_COVERAGE_THRESHOLD);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(AgentError::invalid(
                "coverage_threshold",
                "`coverage_threshold` must be between 0 and 1",
            ));
        }
        let sentences = crate::text::sentences(&request.policy_text);
        if sentences.len() > MAX_SENTENCES {
            return Err(AgentError::invalid(
                "policy_text",
                format!(
                    "`policy_text` holds {} sentences; at most {MAX_SENTENCES} per request",
                    sentences.len()
                ),
            ));
        }
        if sentences.is_empty() {
            return Err(AgentError::invalid(
                "policy_text",
                "`policy_text` holds no sentences",
            ));
        }
        let vectors: Vec<Vec<f32>> =
            crate::knowledge::embed_all(&self.encoder, &sentences, &|_| {}).await?;
        let controls: Vec<ControlResult> = catalogue
            .controls
            .iter()
            .enumerate()
            .map(|(i, control)| {
                let mut scored: Vec<(f32, usize)> = vectors
                    .iter()
                    .enumerate()
                    .map(|(s, v)| (dot(index.vector(i), v), s))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                let best = scored.first().map_or(0.0, |s| s.0);
                ControlResult {
                    id: control.id.clone(),
                    title: control.title.clone(),
                    group: control.group.clone(),
                    weight: control.weight,
                    covered: best >= threshold,
                    best_similarity: best,
                    evidence: scored
                        .iter()
                        .take_while(|(score, _)| *score >= threshold)
                        .take(3)
                        .map(|&(similarity, s)| Evidence {
                            sentence: sentences[s].clone(),
                            similarity,
                        })
                        .collect(),
                }
            })
            .collect();
        let total: f32 = controls.iter().map(|c| c.weight).sum();
        let score = weighted_percent(&controls, total, |c| c.covered);
        let strong = STRONG_EVIDENCE.max(threshold);
        let readiness = weighted_percent(&controls, total, |c| c.best_similarity >= strong);
        let mut gaps: Vec<&ControlResult> = controls.iter().filter(|c| !c.covered).collect();
        gaps.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then_with(|| a.best_similarity.total_cmp(&b.best_similarity))
        });
        let recommendations = gaps
            .iter()
            .map(|c| {
                let description = &catalogue
                    .controls
                    .iter()
                    .find(|k| k.id == c.id)
                    .expect("same catalogue")
                    .description;
                format!("Address {} {}: {}", c.id, c.title, description)
            })
            .collect();
        let status = if score >= 85.0 {
            "Excellent"
        } else if score >= 60.0 {
            "Good"
        } else {
            "Needs Improvement"
        };
        let framework_name = format!("{} {}", catalogue.name, catalogue.version);
        let findings = Findings {
            framework_name: &framework_name,
            score,
            status,
            controls: &controls,
            gaps: &gaps,
            threshold,
        };
        let written = write_under_policy(
            self.cloud.as_ref(),
            findings.confidence(),
            findings.template(),
            BEDROCK_EXPLANATION_PROMPT,
            &findings.prompt(catalogue),
            500,
        )
        .await;
        let model_used = if written.by_cloud {
            format!(
                "{} (explanation) + {} (scoring)",
                written.report.cloud_model.as_deref().unwrap_or("bedrock"),
                self.model_used()
            )
        } else {
            self.model_used()
        };
        let gaps_found = gaps.len();
        Ok(ComplianceResponse {
            framework: catalogue.framework.clone(),
            framework_name,
            compliance_score: score,
            status: status.into(),
            gaps_found,
            recommendations,
            audit_readiness: readiness,
            model_used,
            controls_total: controls.len(),
            controls_covered: controls.iter().filter(|c| c.covered).count(),
            sentences_analyzed: sentences.len(),
            coverage_threshold: threshold,
            controls,
            explanation: written.text,
            explanation_method: if written.by_cloud {
                "bedrock-generation"
            } else {
                "template"
            }
            .into(),
            provider: written.report,
            fallback_reason: written.fallback_reason,
            comparison: written.comparison,
            timestamp: now_iso8601(),
        })
    }
}

/// 100 x the weight of the controls where `holds` over `total`. The sum starts at +0: Rust's
/// float `sum` of nothing is -0, which would read `"compliance_score": -0.0`.
fn weighted_percent(
    controls: &[ControlResult],
    total: f32,
    holds: impl Fn(&ControlResult) -> bool,
) -> f32 {
    let weight = controls
        .iter()
        .filter(|c| holds(c))
        .fold(0.0, |sum, c| sum + c.weight);
    100.0 * weight / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_covered_control_scores_positive_zero() {
        let control = |weight, covered| ControlResult {
            id: "X-1".into(),
            title: "t".into(),
            group: "g".into(),
            weight,
            covered,
            best_similarity: 0.1,
            evidence: vec![],
        };
        let controls = [control(2.0, false), control(1.0, false)];
        let none = weighted_percent(&controls, 3.0, |c| c.covered);
        assert!(none == 0.0 && none.is_sign_positive(), "{none}");
        assert_eq!(serde_json::json!(none).to_string(), "0.0");
        let some = [control(2.0, true), control(1.0, false)];
        assert!((weighted_percent(&some, 3.0, |c| c.covered) - 200.0 / 3.0).abs() < 1e-4);
    }

    #[test]
    fn catalogues_are_complete_and_consistent() {
        let all = Catalogue::builtin();
        let count = |f: &str| {
            all.iter()
                .find(|c| c.framework == f)
                .unwrap()
                .controls
                .len()
        };
        assert_eq!(count("cis-v8"), 18);
        assert_eq!(count("nist-csf-2.0"), 22);
        assert_eq!(count("iso27001-2022"), 93);
        assert!(count("soc2") >= 45 && count("hipaa-security") >= 18);
        for c in &all {
            let ids: std::collections::HashSet<_> = c.controls.iter().map(|k| &k.id).collect();
            assert_eq!(
                ids.len(),
                c.controls.len(),
                "{} has duplicate ids",
                c.framework
            );
            assert!(c
                .controls
                .iter()
                .all(|k| k.weight > 0.0 && !k.description.is_empty()));
            assert!(c.answers_to(&c.framework.to_uppercase()));
        }
        assert!(all.iter().any(|c| c.answers_to("NIST CSF")));
    }
}
