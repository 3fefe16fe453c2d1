//! `POST /compliance/check`: policy text scored against a control catalogue.
//!
//! Catalogues ([`crate::catalogues`]): NIST CSF 2.0, NIST SP 800-53 Rev 5 and the HIPAA
//! Security Rule as published (read from the `evidentia-catalogues` data set), ISO/IEC
//! 27001:2022 Annex A, SOC 2 and CIS Controls v8.1 in our own words, with the package's
//! cross-framework mappings. The policy is split into sentences, and each sentence is read
//! as evidence for its [`EVIDENCE_PER_SENTENCE`] nearest controls (cosine similarity of
//! embeddings). A control is covered when such evidence reaches `coverage_threshold`
//! (default [`DEFAULT_COVERAGE_THRESHOLD`]); its evidence is the (up to three) sentences at
//! or above the threshold. Both were chosen on the training half of the labelled policy
//! statements (`msp-mesh bench compliance`).
//! `compliance_score` = 100 x (weight of covered controls) / (total weight);
//! `audit_readiness` = 100 x (weight of controls with strong evidence, an evidence sentence's
//! score >= max([`STRONG_EVIDENCE`], threshold)) / (total weight). `status`: Excellent >= 85, Good >= 60, else
//! Needs Improvement. `gaps_found` counts the uncovered controls; `recommendations` name
//! them, heaviest first.

use std::sync::Arc;

use mesh_inference::backend::EmbeddingBackend;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cloud::{write_under_policy, AnswerProvider, ProviderReport};
use crate::knowledge::{dot, KnowledgeIndex};
use crate::{now_iso8601, require_text, Agent, AgentError, AgentKind};

/// Similarity at which a sentence counts as evidence for a control (calibrated with
/// [`EVIDENCE_PER_SENTENCE`] on the training statements).
pub const DEFAULT_COVERAGE_THRESHOLD: f32 = 0.41;
/// A sentence is evidence for at most this many controls, its nearest.
pub const EVIDENCE_PER_SENTENCE: usize = 2;
/// Similarity of strong evidence (audit readiness).
pub const STRONG_EVIDENCE: f32 = 0.6;
/// Longest policy accepted, in characters.
pub const MAX_POLICY_CHARS: usize = 200_000;
/// Most policy sentences one request may hold.
pub const MAX_SENTENCES: usize = 1_000;

pub use crate::catalogues::{Catalogue, Control, MappedControl};

/// Request of `/compliance/check`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceRequest {
    /// Framework id or alias: `nist-csf-2.0`, `nist-800-53`, `hipaa-security`, `cis-v8`, `soc2`, `iso27001-2022`.
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
    /// Similarity of the best-matching sentence, whether or not the control is among that
    /// sentence's nearest (`evidence` holds only those that are).
    pub best_similarity: f32,
    pub evidence: Vec<Evidence>,
    /// Controls of other frameworks mapped to this one (the published mappings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mapped: Vec<MappedControl>,
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

/// One policy statement of the labelled set, with the NIST CSF 2.0 subcategories it evidences.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledStatement {
    pub id: String,
    pub text: String,
    pub controls: Vec<String>,
    /// `train` (threshold calibration) or `test` (the reported figures).
    pub split: String,
}

/// The labelled policy statements (`agents/data/compliance/labelled/csf-statements.jsonl`).
pub fn labelled_statements() -> Vec<LabelledStatement> {
    include_str!("../data/compliance/labelled/csf-statements.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("the labelled set is checked by the tests"))
        .collect()
}

/// Precision, recall and F1 of control coverage over (statement, control) pairs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CoverageFigures {
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub statements: usize,
}

/// Coverage figures at `threshold`: `similarity[s][c]` of statement `s` to control `c`, `truth[s]`
/// the indices of the controls statement `s` evidences. A pair is predicted covered when its
/// similarity reaches the threshold.
pub fn coverage_figures(
    similarity: &[Vec<f32>],
    truth: &[Vec<usize>],
    threshold: f32,
) -> CoverageFigures {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (row, labels) in similarity.iter().zip(truth) {
        for (c, &score) in row.iter().enumerate() {
            match (score >= threshold, labels.contains(&c)) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => {}
            }
        }
    }
    let ratio = |a: usize, b: usize| {
        if a + b == 0 {
            0.0
        } else {
            a as f64 / (a + b) as f64
        }
    };
    let (precision, recall) = (ratio(tp, fp), ratio(tp, fn_));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    CoverageFigures {
        threshold,
        precision,
        recall,
        f1,
        statements: similarity.len(),
    }
}

/// The threshold (0.20 to 0.80 in steps of 0.01) of highest F1; ties go to the higher threshold.
pub fn calibrate_threshold(similarity: &[Vec<f32>], truth: &[Vec<usize>]) -> CoverageFigures {
    (20..=80)
        .map(|t| coverage_figures(similarity, truth, t as f32 / 100.0))
        .fold(None, |best: Option<CoverageFigures>, f| match best {
            Some(b) if b.f1 > f.f1 => Some(b),
            _ => Some(f),
        })
        .expect("the grid is not empty")
}

/// `similarity` with each row's `k` best scores kept and the rest lowered to -1 (below every
/// threshold): a statement is read as evidence for its `k` nearest controls at most.
pub fn keep_top_k(similarity: &[Vec<f32>], k: usize) -> Vec<Vec<f32>> {
    similarity
        .iter()
        .map(|row| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let mut kept = vec![-1.0; row.len()];
            for &c in order.iter().take(k) {
                kept[c] = row[c];
            }
            kept
        })
        .collect()
}

/// `scores[s][c]` raised to the best of `mapped_scores[s][m]` over the controls `m` of another
/// framework mapped to control `c` (`mapped[c]`): a statement that matches SP 800-53's concrete
/// wording of a control also evidences the CSF outcomes mapped to it.
pub fn through_mappings(
    scores: &[Vec<f32>],
    mapped_scores: &[Vec<f32>],
    mapped: &[Vec<usize>],
) -> Vec<Vec<f32>> {
    scores
        .iter()
        .zip(mapped_scores)
        .map(|(row, other)| {
            row.iter()
                .zip(mapped)
                .map(|(&own, targets)| targets.iter().fold(own, |best, &m| best.max(other[m])))
                .collect()
        })
        .collect()
}

/// One scoring variant: its threshold calibrated on the training statements, then its figures
/// on the test statements.
#[derive(Debug, Clone, Serialize)]
pub struct VariantFigures {
    pub variant: String,
    pub calibrated: CoverageFigures,
    pub test: CoverageFigures,
}

/// The evidence threshold calibrated on the labelled set's training statements, and the figures
/// on its test statements (NIST CSF 2.0), beside the figures of the old default.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    pub framework: String,
    pub model_used: String,
    /// Chosen on the training statements.
    pub calibrated: CoverageFigures,
    /// The calibrated threshold on the test statements.
    pub test: CoverageFigures,
    /// The served scoring ([`EVIDENCE_PER_SENTENCE`] nearest controls per statement,
    /// [`DEFAULT_COVERAGE_THRESHOLD`]) on the test statements.
    pub test_at_default: CoverageFigures,
    /// The previous scoring, every control at 0.5, on the test statements (the baseline).
    pub test_at_previous_default: CoverageFigures,
    /// Scoring with exemplars: a control's score is the higher of its own similarity and the
    /// best similarity to a training statement labelled with it ([`exemplar_scores`]); the
    /// threshold calibrated on the training statements with each one's own exemplar left out.
    pub calibrated_with_exemplars: CoverageFigures,
    /// That threshold and scoring on the test statements.
    pub test_with_exemplars: CoverageFigures,
    /// Ranked variants: `own` (the control's own text) or `mapped` (also through its SP 800-53
    /// controls, [`through_mappings`]), each with every control (`all`) or only a statement's
    /// `k` nearest ([`keep_top_k`]).
    pub variants: Vec<VariantFigures>,
    /// The variant of highest F1 on the training statements (ties to the earlier one).
    pub selected_on_train: String,
}

/// `scores[s][c]` raised to the best similarity of text `s` to an exemplar of control `c`:
/// `exemplars` are (control index, unit vector, owner), and an exemplar whose owner is
/// `owners[s]` is skipped (leave-one-out when scoring the exemplars' own texts).
pub fn exemplar_scores(
    scores: &[Vec<f32>],
    vectors: &[Vec<f32>],
    owners: &[Option<usize>],
    exemplars: &[(usize, Vec<f32>, usize)],
) -> Vec<Vec<f32>> {
    scores
        .iter()
        .zip(vectors)
        .zip(owners)
        .map(|((row, v), owner)| {
            let mut row = row.clone();
            for (c, e, who) in exemplars {
                if Some(*who) != *owner {
                    row[*c] = row[*c].max(dot(e, v));
                }
            }
            row
        })
        .collect()
}

impl ComplianceAgent {
    /// The texts' embeddings and their similarity to each control of `framework` (texts x
    /// controls).
    pub async fn similarity(
        &self,
        framework: &str,
        texts: &[String],
    ) -> Result<(Vec<Vec<f32>>, Vec<Vec<f32>>), AgentError> {
        let vectors = crate::knowledge::embed_all(&self.encoder, texts, &|_| {}).await?;
        let scores = self.scores(framework, &vectors)?;
        Ok((vectors, scores))
    }

    /// The similarity of each embedded text to each control of `framework` (texts x controls).
    fn scores(&self, framework: &str, vectors: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, AgentError> {
        let (catalogue, index) = self.catalogue(framework)?;
        Ok(vectors
            .iter()
            .map(|v| {
                (0..catalogue.controls.len())
                    .map(|i| dot(index.vector(i), v))
                    .collect()
            })
            .collect())
    }

    /// Calibrates the evidence threshold on the labelled CSF statements ([`labelled_statements`]).
    pub async fn calibrate(&self) -> Result<CalibrationReport, AgentError> {
        let framework = "nist-csf-2.0";
        let (catalogue, _) = self.catalogue(framework)?;
        let statements = labelled_statements();
        let position = |id: &str| catalogue.controls.iter().position(|c| c.id == id);
        let part = |split: &str| -> Result<(Vec<String>, Vec<Vec<usize>>), AgentError> {
            let rows: Vec<&LabelledStatement> =
                statements.iter().filter(|s| s.split == split).collect();
            let truth = rows
                .iter()
                .map(|s| {
                    s.controls
                        .iter()
                        .map(|c| {
                            position(c).ok_or_else(|| {
                                AgentError::Unavailable(format!("{}: unknown control {c}", s.id))
                            })
                        })
                        .collect::<Result<Vec<usize>, AgentError>>()
                })
                .collect::<Result<_, _>>()?;
            Ok((rows.iter().map(|s| s.text.clone()).collect(), truth))
        };
        let (train_texts, train_truth) = part("train")?;
        let (test_texts, test_truth) = part("test")?;
        let (train_vectors, train) = self.similarity(framework, &train_texts).await?;
        let (test_vectors, test) = self.similarity(framework, &test_texts).await?;
        let calibrated = calibrate_threshold(&train, &train_truth);
        let exemplars: Vec<(usize, Vec<f32>, usize)> = train_truth
            .iter()
            .enumerate()
            .flat_map(|(s, controls)| {
                let v = &train_vectors[s];
                controls.iter().map(move |&c| (c, v.clone(), s))
            })
            .collect();
        let train_owners: Vec<Option<usize>> = (0..train.len()).map(Some).collect();
        let train_ex = exemplar_scores(&train, &train_vectors, &train_owners, &exemplars);
        let test_ex = exemplar_scores(&test, &test_vectors, &vec![None; test.len()], &exemplars);
        let calibrated_with_exemplars = calibrate_threshold(&train_ex, &train_truth);
        let (sp, _) = self.catalogue("nist-800-53")?;
        let mapped: Vec<Vec<usize>> = catalogue
            .controls
            .iter()
            .map(|c| {
                c.mapped
                    .iter()
                    .filter(|m| m.framework == sp.framework)
                    .filter_map(|m| sp.controls.iter().position(|k| k.id == m.id))
                    .collect()
            })
            .collect();
        let sp_scores = |vectors: &[Vec<f32>]| self.scores(&sp.framework, vectors);
        let train_mapped = through_mappings(&train, &sp_scores(&train_vectors)?, &mapped);
        let test_mapped = through_mappings(&test, &sp_scores(&test_vectors)?, &mapped);
        let mut variants = Vec::new();
        for (name, train_scores, test_scores) in [
            ("own", &train, &test),
            ("mapped", &train_mapped, &test_mapped),
        ] {
            for k in [None, Some(1), Some(2), Some(3)] {
                let (tr, te) = match k {
                    Some(k) => (keep_top_k(train_scores, k), keep_top_k(test_scores, k)),
                    None => (train_scores.clone(), test_scores.clone()),
                };
                let calibrated = calibrate_threshold(&tr, &train_truth);
                variants.push(VariantFigures {
                    variant: match k {
                        Some(k) => format!("{name}, top {k}"),
                        None => format!("{name}, all"),
                    },
                    test: coverage_figures(&te, &test_truth, calibrated.threshold),
                    calibrated,
                });
            }
        }
        let selected_on_train = variants
            .iter()
            .fold(None::<&VariantFigures>, |best, v| match best {
                Some(b) if b.calibrated.f1 >= v.calibrated.f1 => Some(b),
                _ => Some(v),
            })
            .map(|v| v.variant.clone())
            .unwrap_or_default();
        Ok(CalibrationReport {
            variants,
            selected_on_train,
            test_with_exemplars: coverage_figures(
                &test_ex,
                &test_truth,
                calibrated_with_exemplars.threshold,
            ),
            calibrated_with_exemplars,
            framework: framework.into(),
            model_used: self.model_used(),
            calibrated,
            test: coverage_figures(&test, &test_truth, calibrated.threshold),
            test_at_default: coverage_figures(
                &keep_top_k(&test, EVIDENCE_PER_SENTENCE),
                &test_truth,
                DEFAULT_COVERAGE_THRESHOLD,
            ),
            test_at_previous_default: coverage_figures(&test, &test_truth, 0.5),
        })
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
        let similarity: Vec<Vec<f32>> = vectors
            .iter()
            .map(|v| {
                (0..catalogue.controls.len())
                    .map(|i| dot(index.vector(i), v))
                    .collect()
            })
            .collect();
        let evidence = keep_top_k(&similarity, EVIDENCE_PER_SENTENCE);
        let controls: Vec<ControlResult> = catalogue
            .controls
            .iter()
            .enumerate()
            .map(|(i, control)| {
                let best = similarity.iter().fold(0.0f32, |b, row| b.max(row[i]));
                let mut scored: Vec<(f32, usize)> = evidence
                    .iter()
                    .enumerate()
                    .map(|(s, row)| (row[i], s))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                let supported = scored.first().map_or(0.0, |s| s.0);
                ControlResult {
                    id: control.id.clone(),
                    title: control.title.clone(),
                    group: control.group.clone(),
                    weight: control.weight,
                    covered: supported >= threshold,
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
                    mapped: control.mapped.clone(),
                }
            })
            .collect();
        let total: f32 = controls.iter().map(|c| c.weight).sum();
        let score = weighted_percent(&controls, total, |c| c.covered);
        let strong = STRONG_EVIDENCE.max(threshold);
        let readiness = weighted_percent(&controls, total, |c| {
            c.evidence.first().is_some_and(|e| e.similarity >= strong)
        });
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
            mapped: vec![],
        };
        let controls = [control(2.0, false), control(1.0, false)];
        let none = weighted_percent(&controls, 3.0, |c| c.covered);
        assert!(none == 0.0 && none.is_sign_positive(), "{none}");
        assert_eq!(serde_json::json!(none).to_string(), "0.0");
        let some = [control(2.0, true), control(1.0, false)];
        assert!((weighted_percent(&some, 3.0, |c| c.covered) - 200.0 / 3.0).abs() < 1e-4);
    }

    /// By hand: the two best of [0.2, 0.9, 0.5, 0.7] are kept; control 0 is mapped to other
    /// controls 1 and 2 (0.3 and 0.8), control 1 to none.
    #[test]
    fn top_k_and_mappings_by_hand() {
        assert_eq!(
            keep_top_k(&[vec![0.2, 0.9, 0.5, 0.7]], 2),
            vec![vec![-1.0, 0.9, -1.0, 0.7]]
        );
        assert_eq!(
            through_mappings(
                &[vec![0.4, 0.6]],
                &[vec![0.1, 0.3, 0.8]],
                &[vec![1, 2], vec![]]
            ),
            vec![vec![0.8, 0.6]]
        );
    }

    /// Two statements, three controls, by hand: at 0.5, pairs (0,0) and (1,2) are true
    /// positives, (0,1) a false positive, (1,1) a false negative: P = R = 2/3.
    #[test]
    fn coverage_figures_by_hand() {
        let similarity = vec![vec![0.9, 0.6, 0.1], vec![0.2, 0.4, 0.7]];
        let truth = vec![vec![0], vec![1, 2]];
        let f = coverage_figures(&similarity, &truth, 0.5);
        assert!((f.precision - 2.0 / 3.0).abs() < 1e-9 && (f.recall - 2.0 / 3.0).abs() < 1e-9);
        // At 0.35 all three true pairs are found and one false: P 3/4, R 1.
        let f = coverage_figures(&similarity, &truth, 0.35);
        assert!((f.precision - 0.75).abs() < 1e-9 && f.recall == 1.0);
        let best = calibrate_threshold(&similarity, &truth);
        assert!((best.f1 - 2.0 * 0.75 / 1.75).abs() < 1e-9, "{best:?}");
        assert!(best.threshold > 0.2 && best.threshold <= 0.4, "{best:?}");
    }

    #[test]
    fn labelled_statements_parse() {
        let s = labelled_statements();
        assert_eq!(s.len(), 241);
        assert!(s.iter().all(|x| x.split == "train" || x.split == "test"));
    }

    #[test]
    fn own_words_catalogues_are_complete_and_consistent() {
        let all = Catalogue::own_words();
        let count = |f: &str| {
            all.iter()
                .find(|c| c.framework == f)
                .unwrap()
                .controls
                .len()
        };
        assert_eq!(count("cis-v8"), 18);
        assert_eq!(count("iso27001-2022"), 93);
        assert_eq!(count("soc2"), 61);
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
    }
}
