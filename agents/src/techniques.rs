//! Ranking ATT&CK techniques for a plain-language text, and measuring how well it does.
//!
//! A technique's score is its best cosine similarity among its own description and (with
//! [`RankOptions::procedures`]) its first [`PROCEDURES_IN_INDEX`] procedure examples, the
//! real-world usage text ATT&CK records per technique. With a category distribution (the threat
//! head's), each technique gains [`CATEGORY_BONUS`] x the probability of its own category
//! ([`crate::datasets::technique_category`]): a phishing ticket ranks the phishing techniques
//! first. With a rewrite ([`RankOptions::rewrite`]) the query moves towards the descriptions of
//! its likely categories; with the victim's view ([`RankOptions::victim_view`]) techniques that
//! only happen before the compromise (reconnaissance, resource development) rank lower. The
//! bonus, rewrite weight and penalty were fixed before measuring, not tuned.
//!
//! [`held_out_procedures`] are the procedure examples beyond the indexed ones: no index and no
//! head training reads them, so recall@k on them measures retrieval on unseen usage text. The
//! hand-labelled tickets ([`crate::datasets::technique_tickets`]) measure it on the text the
//! agent is sent: their `select` half chose the served variant, their `test` half is only reported.

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
    /// Query rewrite: this vector (the category descriptions' embeddings weighted by the
    /// category probabilities, times [`REWRITE_WEIGHT`]) is added to the query, which is then
    /// renormalised.
    pub rewrite: Option<&'a [f32]>,
    /// Rank as the victim sees an incident: techniques that happen only before the compromise,
    /// outside the victim's network (tactics reconnaissance and resource development), lose
    /// [`PRE_COMPROMISE_PENALTY`].
    pub victim_view: bool,
}

/// Weight of the category descriptions in a rewritten query (fixed before measuring).
pub const REWRITE_WEIGHT: f32 = 0.5;
/// Score a pre-compromise technique loses under [`RankOptions::victim_view`] (fixed before
/// measuring, the size of [`CATEGORY_BONUS`]).
pub const PRE_COMPROMISE_PENALTY: f32 = 0.1;
/// Tactics whose techniques the victim of an incident does not see happen.
const PRE_COMPROMISE_TACTICS: [&str; 2] = ["reconnaissance", "resource-development"];

/// The rewrite vector of [`RankOptions::rewrite`]: `REWRITE_WEIGHT x sum_c p_c d_c`.
pub fn rewrite_vector(probabilities: &[f32], descriptions: &[Vec<f32>]) -> Vec<f32> {
    let dim = descriptions.first().map_or(0, Vec::len);
    let mut out = vec![0.0; dim];
    for (p, d) in probabilities.iter().zip(descriptions) {
        out.iter_mut()
            .zip(d)
            .for_each(|(o, x)| *o += REWRITE_WEIGHT * p * x);
    }
    out
}

/// Ranks ATT&CK techniques against a query embedding.
#[derive(Debug, Clone)]
pub struct TechniqueRanker {
    /// Technique id -> index of its category in [`THREAT_CATEGORIES`].
    category_of: HashMap<String, usize>,
    /// Techniques all of whose tactics are pre-compromise ([`PRE_COMPROMISE_TACTICS`]).
    pre_compromise: std::collections::HashSet<String>,
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
        let pre_compromise = attack
            .techniques
            .iter()
            .filter(|t| {
                !t.tactics.is_empty()
                    && t.tactics
                        .iter()
                        .all(|x| PRE_COMPROMISE_TACTICS.contains(&x.as_str()))
            })
            .map(|t| t.id.clone())
            .collect();
        Self {
            category_of,
            pre_compromise,
        }
    }

    /// The `k` best techniques (id, score), best first.
    pub fn rank(
        &self,
        index: &KnowledgeIndex,
        query: &[f32],
        k: usize,
        options: RankOptions<'_>,
    ) -> Vec<(String, f32)> {
        let rewritten: Vec<f32>;
        let query = match options.rewrite {
            Some(extra) => {
                rewritten = normalised(query.iter().zip(extra).map(|(a, b)| a + b).collect());
                rewritten.as_slice()
            }
            None => query,
        };
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
                let penalty = if options.victim_view && self.pre_compromise.contains(id) {
                    PRE_COMPROMISE_PENALTY
                } else {
                    0.0
                };
                (id.to_string(), score + bonus - penalty)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }
}

/// `v` scaled to unit length (unchanged when zero).
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Recall@k of the right technique on held-out procedure examples, per ranking variant.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalFigures {
    pub queries: usize,
    pub techniques: usize,
    pub k: usize,
    /// Variant -> recall@k (`descriptions`, plus any of `+procedures`, `+category`,
    /// `+rewrite`, `+victim-view`).
    pub recall: BTreeMap<String, f64>,
}

/// Recall@`k` of each variant (every combination of procedures, category, rewrite and victim
/// view, named by `+`): `queries` are (accepted techniques, embedding, category
/// probabilities), a hit when any accepted technique is among the first `k`; `descriptions`
/// the category descriptions' embeddings for the rewrite.
pub fn recall_at_k(
    ranker: &TechniqueRanker,
    index: &KnowledgeIndex,
    queries: &[(Vec<String>, Vec<f32>, Vec<f32>)],
    descriptions: &[Vec<f32>],
    k: usize,
) -> RetrievalFigures {
    let rewrites: Vec<Vec<f32>> = queries
        .iter()
        .map(|(_, _, p)| rewrite_vector(p, descriptions))
        .collect();
    let mut recall = BTreeMap::new();
    for variant in 0..16u8 {
        let [procedures, category, rewrite, victim_view] =
            [0, 1, 2, 3].map(|b| variant >> b & 1 == 1);
        if rewrite && descriptions.is_empty() {
            continue;
        }
        let mut name = String::from("descriptions");
        for (on, part) in [
            (procedures, "+procedures"),
            (category, "+category"),
            (rewrite, "+rewrite"),
            (victim_view, "+victim-view"),
        ] {
            if on {
                name.push_str(part);
            }
        }
        let hits = queries
            .iter()
            .zip(&rewrites)
            .filter(|((truth, vector, probabilities), extra)| {
                let options = RankOptions {
                    procedures,
                    categories: category.then_some(probabilities.as_slice()),
                    rewrite: rewrite.then_some(extra.as_slice()),
                    victim_view,
                };
                ranker
                    .rank(index, vector, k, options)
                    .iter()
                    .any(|(id, _)| truth.contains(id))
            })
            .count();
        recall.insert(name, hits as f64 / queries.len().max(1) as f64);
    }
    let mut techniques: Vec<&str> = queries
        .iter()
        .flat_map(|q| q.0.iter().map(String::as_str))
        .collect();
    techniques.sort_unstable();
    techniques.dedup();
    RetrievalFigures {
        queries: queries.len(),
        techniques: techniques.len(),
        k,
        recall,
    }
}
