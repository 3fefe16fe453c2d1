//! `POST /collaboration/match`: partner MSPs ranked for a caller's requirements.
//!
//! `match_score` = 0.7 x semantic similarity (cosine of the requirements' embedding to the
//! partner's profile and skills, clipped at 0) + 0.3 x skill overlap (share of the required
//! skills the partner has). Required skills are the request's `required_skills`, else the
//! vocabulary skills named in the requirements text ([`skills_named_in`]); with none, the
//! score is the semantic similarity alone. `country` / `region` filters drop other partners.
//! Partners live in a [`PartnerDirectory`]: loaded from a JSON file (the shipped sample set,
//! marked `sample_data`, until the caller replaces it) and changed through the API or CLI
//! from JSON or CSV.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use mesh_inference::backend::EmbeddingBackend;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::knowledge::{dot, embed_all, embed_one};
use crate::{now_iso8601, require_text, Agent, AgentError, AgentKind};

/// Weight of semantic similarity in `match_score` (skill overlap gets the rest).
pub const SEMANTIC_WEIGHT: f32 = 0.7;
/// Most partners one request may load.
pub const MAX_PARTNERS: usize = 5_000;
/// Most skills one partner may list.
pub const MAX_SKILLS: usize = 64;
/// The sample set shipped for the demo.
pub const SAMPLE_PARTNERS: &str = include_str!("../data/partners/sample.json");

/// One partner MSP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Partner {
    pub msp_id: String,
    pub name: String,
    /// `City, Region, Country`; derived from the parts when absent.
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub certifications: Vec<String>,
    #[serde(default)]
    pub employees: Option<u32>,
    /// A few sentences on services, industries and strengths.
    #[serde(default)]
    pub profile: String,
}

impl Partner {
    fn normalised(mut self) -> Result<Self, AgentError> {
        if self.msp_id.trim().is_empty() {
            return Err(AgentError::invalid(
                "msp_id",
                "every partner needs an `msp_id`",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(AgentError::invalid(
                "name",
                format!("partner `{}` needs a `name`", self.msp_id),
            ));
        }
        if self.location.is_empty() {
            let parts: Vec<&str> = [&self.city, &self.region, &self.country]
                .into_iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            self.location = parts.join(", ");
        }
        self.skills = self
            .skills
            .iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(self)
    }

    /// What is embedded for a partner: its profile and skills.
    pub fn embedding_text(&self) -> String {
        let skills: Vec<String> = self.skills.iter().map(|s| s.replace('-', " ")).collect();
        format!("{} Skills: {}.", self.profile, skills.join(", "))
    }
}

/// The partner file: partners plus whether they are the shipped sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartnerFile {
    #[serde(default)]
    pub sample_data: bool,
    #[serde(default)]
    pub note: Option<String>,
    pub partners: Vec<Partner>,
}

/// Parses partners from JSON (a `PartnerFile` object or a bare array) or CSV (header row with
/// `msp_id,name,city,region,country,skills,certifications,employees,profile`; lists split on `;`).
pub fn parse_partners(text: &str, csv: bool) -> Result<Vec<Partner>, AgentError> {
    let partners: Vec<Partner> = if csv {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut out = Vec::new();
        for (i, row) in reader.deserialize::<CsvPartner>().enumerate() {
            let row =
                row.map_err(|e| AgentError::invalid(&format!("partners[{i}]"), e.to_string()))?;
            out.push(row.into());
        }
        out
    } else {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| AgentError::invalid("partners", e.to_string()))?;
        let list = if value.is_array() {
            value
        } else {
            value.get("partners").cloned().unwrap_or(value)
        };
        serde_json::from_value(list).map_err(|e| AgentError::invalid("partners", e.to_string()))?
    };
    partners.into_iter().map(Partner::normalised).collect()
}

#[derive(Deserialize)]
struct CsvPartner {
    msp_id: String,
    name: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    skills: String,
    #[serde(default)]
    certifications: String,
    #[serde(default)]
    employees: Option<u32>,
    #[serde(default)]
    profile: String,
}

impl From<CsvPartner> for Partner {
    fn from(c: CsvPartner) -> Self {
        let list = |s: &str| {
            s.split(';')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        };
        Partner {
            msp_id: c.msp_id,
            name: c.name,
            location: String::new(),
            skills: list(&c.skills),
            certifications: list(&c.certifications),
            city: c.city,
            region: c.region,
            country: c.country,
            employees: c.employees,
            profile: c.profile,
        }
    }
}

/// Partners with their embeddings, persisted to a JSON file when one is set.
pub struct PartnerDirectory {
    partners: Vec<Partner>,
    vectors: Vec<Vec<f32>>,
    sample_data: bool,
    file: Option<PathBuf>,
}

impl PartnerDirectory {
    /// Reads `file` when it exists, else the shipped sample set; embeds every profile.
    pub async fn load(
        encoder: &EmbeddingBackend,
        file: Option<PathBuf>,
    ) -> Result<Self, AgentError> {
        let text = match &file {
            Some(path) if path.exists() => std::fs::read_to_string(path)
                .map_err(|e| AgentError::Unavailable(format!("{}: {e}", path.display())))?,
            _ => SAMPLE_PARTNERS.to_string(),
        };
        let parsed: PartnerFile = serde_json::from_str(&text)
            .map_err(|e| AgentError::Unavailable(format!("partner file: {e}")))?;
        let partners: Vec<Partner> = parsed
            .partners
            .into_iter()
            .map(Partner::normalised)
            .collect::<Result<_, _>>()?;
        let vectors = embed_profiles(encoder, &partners).await?;
        Ok(Self {
            partners,
            vectors,
            sample_data: parsed.sample_data,
            file,
        })
    }

    pub fn partners(&self) -> &[Partner] {
        &self.partners
    }

    fn save(&self) -> Result<(), AgentError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let file = PartnerFile {
            sample_data: self.sample_data,
            note: None,
            partners: self.partners.clone(),
        };
        write_atomically(
            path,
            &serde_json::to_vec_pretty(&file).expect("partners serialise"),
        )
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let fail = |e: std::io::Error| AgentError::Unavailable(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("part-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

async fn embed_profiles(
    encoder: &EmbeddingBackend,
    partners: &[Partner],
) -> Result<Vec<Vec<f32>>, AgentError> {
    let texts: Vec<String> = partners.iter().map(Partner::embedding_text).collect();
    embed_all(encoder, &texts, &|_| {}).await
}

/// Skills of `vocabulary` named in `text`: the skill with hyphens read as spaces, or the part
/// after `compliance-` (`hipaa`, `soc2`), as whole words, case-insensitive.
pub fn skills_named_in(text: &str, vocabulary: &[String]) -> Vec<String> {
    let words: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let padded = format!(
        " {} ",
        words.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    vocabulary
        .iter()
        .filter(|skill| {
            let phrase = skill.replace('-', " ");
            let short = skill
                .strip_prefix("compliance-")
                .unwrap_or(skill)
                .replace('-', " ");
            padded.contains(&format!(" {phrase} ")) || padded.contains(&format!(" {short} "))
        })
        .cloned()
        .collect()
}

/// Request of `/collaboration/match`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    /// What the caller needs a partner for.
    pub requirements: String,
    /// The caller's own id; that partner is left out of the results.
    #[serde(default)]
    pub msp_id: Option<String>,
    /// Echoed back.
    #[serde(default)]
    pub opportunity_type: Option<String>,
    /// Skills the partner must bring (default: those named in `requirements`).
    #[serde(default)]
    pub required_skills: Option<Vec<String>>,
    /// Only partners in this country (ISO code as in the directory, e.g. `US`).
    #[serde(default)]
    pub country: Option<String>,
    /// Only partners in this region (e.g. `TX`).
    #[serde(default)]
    pub region: Option<String>,
    /// How many matches (1-50, default 5).
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// One ranked partner.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartnerMatch {
    pub msp_id: String,
    pub name: String,
    pub match_score: f32,
    pub skills: Vec<String>,
    pub location: String,
    pub country: String,
    pub region: String,
    pub semantic_similarity: f32,
    /// Share of the required skills the partner has (absent when no skills were required).
    pub skill_overlap: Option<f32>,
    pub matched_skills: Vec<String>,
}

/// Response of `/collaboration/match`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MatchResponse {
    pub requirements: String,
    pub opportunity_type: Option<String>,
    pub matches: Vec<PartnerMatch>,
    pub top_match_score: f32,
    pub model_used: String,
    pub required_skills: Vec<String>,
    pub ranking: String,
    /// True while the directory is the shipped sample set.
    pub sample_data: bool,
    pub partners_considered: usize,
    pub timestamp: String,
}

/// The partner-matching agent.
pub struct PartnerAgent {
    encoder: EmbeddingBackend,
    directory: RwLock<PartnerDirectory>,
}

impl PartnerAgent {
    pub fn new(encoder: EmbeddingBackend, directory: PartnerDirectory) -> Self {
        Self {
            encoder,
            directory: RwLock::new(directory),
        }
    }

    /// The partners now in the directory, and whether they are the sample set.
    pub fn list(&self) -> (Vec<Partner>, bool) {
        let d = self.directory.read().expect("partner lock");
        (d.partners.clone(), d.sample_data)
    }

    /// Replaces every partner (`replace`) or adds/updates by `msp_id`; persists; returns the count.
    pub async fn upsert(&self, partners: Vec<Partner>, replace: bool) -> Result<usize, AgentError> {
        if partners.len() > MAX_PARTNERS {
            return Err(AgentError::invalid(
                "partners",
                format!(
                    "{} partners in one request; at most {MAX_PARTNERS}",
                    partners.len()
                ),
            ));
        }
        if let Some((i, p)) = partners
            .iter()
            .enumerate()
            .find(|(_, p)| p.skills.len() > MAX_SKILLS)
        {
            return Err(AgentError::invalid(
                &format!("partners[{i}].skills"),
                format!(
                    "partner `{}` lists {} skills; at most {MAX_SKILLS}",
                    p.msp_id,
                    p.skills.len()
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = partners.iter().find(|p| !seen.insert(p.msp_id.clone())) {
            return Err(AgentError::invalid(
                "msp_id",
                format!("`{}` appears twice", dup.msp_id),
            ));
        }
        let vectors = embed_profiles(&self.encoder, &partners).await?;
        let mut d = self.directory.write().expect("partner lock");
        if replace || d.sample_data {
            d.partners.clear();
            d.vectors.clear();
        }
        d.sample_data = false;
        for (p, v) in partners.into_iter().zip(vectors) {
            match d.partners.iter().position(|q| q.msp_id == p.msp_id) {
                Some(i) => {
                    d.partners[i] = p;
                    d.vectors[i] = v;
                }
                None => {
                    d.partners.push(p);
                    d.vectors.push(v);
                }
            }
        }
        d.save()?;
        Ok(d.partners.len())
    }

    fn vocabulary(&self) -> Vec<String> {
        let d = self.directory.read().expect("partner lock");
        let mut v: Vec<String> = d.partners.iter().flat_map(|p| p.skills.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

impl crate::Answer for MatchResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }
}

impl Agent for PartnerAgent {
    type Request = MatchRequest;
    type Response = MatchResponse;
    const KIND: AgentKind = AgentKind::PartnerMatching;

    fn model_used(&self) -> String {
        self.encoder.model_id().to_string()
    }

    async fn handle(&self, request: MatchRequest) -> Result<MatchResponse, AgentError> {
        require_text("requirements", &request.requirements, 20_000)?;
        let top_k = request.top_k.unwrap_or(5);
        if !(1..=50).contains(&top_k) {
            return Err(AgentError::invalid(
                "top_k",
                "`top_k` must be between 1 and 50",
            ));
        }
        let required: Vec<String> = match &request.required_skills {
            Some(list) => {
                let mut skills: Vec<String> = list
                    .iter()
                    .map(|s| {
                        s.to_lowercase()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join("-")
                    })
                    .filter(|s| !s.is_empty())
                    .collect();
                skills.sort();
                skills.dedup();
                skills
            }
            None => skills_named_in(&request.requirements, &self.vocabulary()),
        };
        let query = embed_one(&self.encoder, &request.requirements)
            .await?
            .vector;
        let d = self.directory.read().expect("partner lock");
        let same =
            |a: &Option<String>, b: &str| a.as_ref().is_none_or(|a| a.eq_ignore_ascii_case(b));
        let mut matches: Vec<PartnerMatch> = d
            .partners
            .iter()
            .zip(&d.vectors)
            .filter(|(p, _)| same(&request.country, &p.country) && same(&request.region, &p.region))
            .filter(|(p, _)| request.msp_id.as_deref() != Some(p.msp_id.as_str()))
            .map(|(p, v)| {
                let semantic = dot(&query, v).max(0.0);
                let matched: Vec<String> = required
                    .iter()
                    .filter(|s| p.skills.contains(s))
                    .cloned()
                    .collect();
                let overlap =
                    (!required.is_empty()).then(|| matched.len() as f32 / required.len() as f32);
                let score = overlap.map_or(semantic, |o| {
                    SEMANTIC_WEIGHT * semantic + (1.0 - SEMANTIC_WEIGHT) * o
                });
                PartnerMatch {
                    msp_id: p.msp_id.clone(),
                    name: p.name.clone(),
                    match_score: score,
                    skills: p.skills.clone(),
                    location: p.location.clone(),
                    country: p.country.clone(),
                    region: p.region.clone(),
                    semantic_similarity: semantic,
                    skill_overlap: overlap,
                    matched_skills: matched,
                }
            })
            .collect();
        let considered = matches.len();
        matches.sort_by(|a, b| {
            b.match_score
                .total_cmp(&a.match_score)
                .then_with(|| a.msp_id.cmp(&b.msp_id))
        });
        matches.truncate(top_k);
        Ok(MatchResponse {
            requirements: request.requirements,
            opportunity_type: request.opportunity_type,
            top_match_score: matches.first().map_or(0.0, |m| m.match_score),
            matches,
            model_used: self.model_used(),
            ranking: if required.is_empty() {
                "semantic similarity of requirements to partner profile".into()
            } else {
                format!(
                    "{SEMANTIC_WEIGHT} x semantic similarity + {:.1} x skill overlap",
                    1.0 - SEMANTIC_WEIGHT
                )
            },
            required_skills: required,
            sample_data: d.sample_data,
            partners_considered: considered,
            timestamp: now_iso8601(),
        })
    }
}

/// Reads the partner file (the sample set when it does not exist yet).
pub fn read_partner_file(path: &Path) -> Result<PartnerFile, AgentError> {
    let text = if path.exists() {
        std::fs::read_to_string(path)
            .map_err(|e| AgentError::Unavailable(format!("{}: {e}", path.display())))?
    } else {
        SAMPLE_PARTNERS.to_string()
    };
    serde_json::from_str(&text)
        .map_err(|e| AgentError::Unavailable(format!("{}: {e}", path.display())))
}

/// Writes `partners` into the partner file without a running server: replaces every partner
/// (`replace`, or while the file still holds the sample set) or adds/updates by `msp_id`.
/// Returns the number of partners in the file afterwards.
pub fn import_into_file(
    path: &Path,
    partners: Vec<Partner>,
    replace: bool,
) -> Result<usize, AgentError> {
    let mut file = read_partner_file(path)?;
    if replace || file.sample_data {
        file.partners.clear();
    }
    file.sample_data = false;
    file.note = None;
    for p in partners {
        match file.partners.iter().position(|q| q.msp_id == p.msp_id) {
            Some(i) => file.partners[i] = p,
            None => file.partners.push(p),
        }
    }
    write_atomically(
        path,
        &serde_json::to_vec_pretty(&file).expect("partners serialise"),
    )?;
    Ok(file.partners.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_set_parses_and_is_marked() {
        let f: PartnerFile = serde_json::from_str(SAMPLE_PARTNERS).unwrap();
        assert!(f.sample_data);
        assert_eq!(f.partners.len(), 40);
        assert!(f.partners.iter().all(|p| p.name.ends_with("(sample)")));
    }

    #[test]
    fn csv_and_json_import() {
        let csv = "msp_id,name,city,region,country,skills,certifications,employees,profile\nm1,One,Austin,TX,US,edr; siem,SOC 2,12,Managed detection.\n";
        let p = parse_partners(csv, true).unwrap();
        assert_eq!(p[0].skills, vec!["edr", "siem"]);
        assert_eq!(p[0].location, "Austin, TX, US");
        let json = r#"[{"msp_id": "m2", "name": "Two", "country": "DE"}]"#;
        assert_eq!(parse_partners(json, false).unwrap()[0].location, "DE");
        let err = parse_partners(r#"[{"msp_id": " ", "name": "x"}]"#, false).unwrap_err();
        assert!(matches!(err, AgentError::Invalid { ref field, .. } if field == "msp_id"));
    }

    #[test]
    fn skills_named_in_text() {
        let vocab: Vec<String> = ["incident-response", "compliance-hipaa", "aws", "edr"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let got = skills_named_in(
            "Need HIPAA-ready incident response on AWS; no EDRs.",
            &vocab,
        );
        assert_eq!(got, vec!["incident-response", "compliance-hipaa", "aws"]);
    }
}
