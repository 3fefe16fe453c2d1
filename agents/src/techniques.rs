//! Ranking ATT&CK techniques for a plain-language text, and measuring how well it does.
//!
//! A technique's score is its best cosine similarity among its own description and (with
//! [`RankOptions::procedures`]) its first [`PROCEDURES_IN_INDEX`] procedure examples, the
//! real-world usage text ATT&CK records per technique. With a category distribution (the threat
//! head's), each technique gains [`CATEGORY_BONUS`] x the probability of its own category
//! ([`crate::datasets::technique_category`]): a phishing ticket ranks the phishing techniques
//! first. The bonus was fixed before measuring, not tuned on the held-out examples.
//!
//! [`held_out_procedures`] are the procedure examples beyond the indexed ones: no index and no
//! head training reads them, so recall@k on them measures retrieval on unseen usage text.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::datasets::{technique_category, THREAT_CATEGORIES};
use crate::knowledge::attack::{Attack, Procedure};
use crate::knowledge::{KnowledgeIndex, Passage, PassageSource};

/// Procedure examples per technique in the knowledge index (the first, in file order).
pub const PROCEDURES_IN_INDEX: usize = 5;
/// Score added per unit of probability of the technique's own category.
pub const CATEGORY_BONUS: f32 = 0.1;

/// The indexed procedure examples as passages: id the technique's, title its name.
pub fn procedure_passages(attack: &Attack) -> Vec<Passage> {
    procedures_by_position(attack, |n| n < PROCEDURES_IN_INDEX)
        .into_iter()
        .filter_map(|p| {
            let t = attack.technique(&p.technique)?;
            Some(Passage {
                id: t.id.clone(),
                title: t.name.clone(),
                text: p.description.clone(),
                source: PassageSource::AttackProcedure,
                url: Some(t.url.clone()),
            })
        })
        .collect()
}

/// Procedure examples never indexed nor trained on: per technique, those after the first
/// [`PROCEDURES_IN_INDEX`], at most `per_technique` of them.
pub fn held_out_procedures(attack: &Attack, per_technique: usize) -> Vec<&Procedure> {
    procedures_by_position(attack, |n| {
        n >= PROCEDURES_IN_INDEX && n < PROCEDURES_IN_INDEX + per_technique
    })
}

/// The procedures whose position among their technique's (file order) passes `keep`.
fn procedures_by_position(attack: &Attack, keep: impl Fn(usize) -> bool) -> Vec<&Procedure> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    attack
        .procedures
        .iter()
        .filter(|p| {
            let n = seen.entry(p.technique.as_str()).or_default();
            *n += 1;
            keep(*n - 1)
        })
        .collect()
}

/// What a ranking uses beyond the descriptions.
#[derive(Debug, Clone, Copy, Default)]
pub struct RankOptions<'a> {
    /// Also match the indexed procedure examples.
    pub procedures: bool,
    /// Probability of each threat category ([`THREAT_CATEGORIES`] order).
    pub categories: Option<&'a [f32]>,
}

/// Ranks ATT&CK techniques against a query embedding.
#[derive(Debug, Clone)]
pub struct TechniqueRanker {
    /// Technique id -> index of its category in [`THREAT_CATEGORIES`].
    category_of: HashMap<String, usize>,
}

impl TechniqueRanker {
    pub fn new(attack: &Attack) -> Self {
        let category_of = attack
            .techniques
            .iter()
            .filter_map(|t| {
                let c = technique_category(&t.id, &t.tactics)?;
                Some((
                    t.id.clone(),
                    THREAT_CATEGORIES.iter().position(|x| *x == c)?,
                ))
            })
            .collect();
        Self { category_of }
    }

    /// The `k` best techniques (id, score), best first.
    pub fn rank(
        &self,
        index: &KnowledgeIndex,
        query: &[f32],
        k: usize,
        options: RankOptions<'_>,
    ) -> Vec<(String, f32)> {
        let scores = index.scores(query);
        let mut best: HashMap<&str, f32> = HashMap::new();
        for (passage, score) in index.passages().iter().zip(scores) {
            let counts = passage.source == PassageSource::AttackTechnique
                || (options.procedures && passage.source == PassageSource::AttackProcedure);
            if counts {
                let entry = best.entry(passage.id.as_str()).or_insert(f32::NEG_INFINITY);
                *entry = entry.max(score);
            }
        }
        let mut ranked: Vec<(String, f32)> = best
            .into_iter()
            .map(|(id, score)| {
                let bonus = match (options.categories, self.category_of.get(id)) {
                    (Some(p), Some(&c)) => CATEGORY_BONUS * p.get(c).copied().unwrap_or(0.0),
                    _ => 0.0,
                };
                (id.to_string(), score + bonus)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }
}

/// Recall@k of the right technique on held-out procedure examples, per ranking variant.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalFigures {
    pub queries: usize,
    pub techniques: usize,
    pub k: usize,
    /// Variant -> recall@k (`descriptions`, `descriptions+category`, `descriptions+procedures`,
    /// `descriptions+procedures+category`).
    pub recall: BTreeMap<String, f64>,
}

/// Recall@`k` of each variant: `queries` are (true technique, embedding, category
/// probabilities).
pub fn recall_at_k(
    ranker: &TechniqueRanker,
    index: &KnowledgeIndex,
    queries: &[(String, Vec<f32>, Vec<f32>)],
    k: usize,
) -> RetrievalFigures {
    let variants: [(&str, bool, bool); 4] = [
        ("descriptions", false, false),
        ("descriptions+category", false, true),
        ("descriptions+procedures", true, false),
        ("descriptions+procedures+category", true, true),
    ];
    let mut recall = BTreeMap::new();
    for (name, procedures, category) in variants {
        let hits = queries
            .iter()
            .filter(|(truth, vector, probabilities)| {
                let options = RankOptions {
                    procedures,
                    categories: category.then_some(probabilities.as_slice()),
                };
                ranker
                    .rank(index, vector, k, options)
                    .iter()
                    .any(|(id, _)| id == truth)
            })
            .count();
        recall.insert(name.to_string(), hits as f64 / queries.len().max(1) as f64);
    }
    let mut techniques: Vec<&str> = queries.iter().map(|q| q.0.as_str()).collect();
    techniques.sort_unstable();
    techniques.dedup();
    RetrievalFigures {
        queries: queries.len(),
        techniques: techniques.len(),
        k,
        recall,
    }
}
