//! `POST /collaboration/match`: partner MSPs ranked for a caller's requirements.
//!
//! `match_score` = 0.7 x semantic similarity (cosine of the requirements' embedding to the
//! partner's profile and skills, clipped at 0) + 0.3 x skill overlap (share of the required
//! skills the partner has). Required skills are the request's `required_skills`, else the
//! vocabulary skills named in the requirements text ([`skills_named_in`]); with none, the
//! score is the semantic similarity alone. `country` / `region` filters drop other partners.
//! The directory lives in the shared user state ([`UserState`]), so every instance matches
//! against the same partners and a restart loses none: until the first change it is the seed
//! (a partner file, else the shipped sample set, marked `sample_data`); it is changed through
//! the API or the CLI from JSON or CSV.

use std::path::Path;
use std::sync::{Arc, RwLock};

use mesh_inference::backend::EmbeddingBackend;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::knowledge::{dot, embed_all, embed_one};
use crate::user_state::{create, UserState};
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

/// Key of the directory's manifest in the user state.
const DIRECTORY_KEY: &str = "partners/directory";
/// Largest chunk document of the stored directory, in bytes (under every store's item limit).
const CHUNK_BYTES: usize = 256 * 1024;
/// Attempts at a change while other writers change the directory at the same time.
const WRITE_ATTEMPTS: usize = 8;

/// The stored directory's manifest: the generation of chunk documents that hold it
/// (`partners/<generation>/<n>`). A change writes a new generation, then swaps the manifest
/// if no other writer got there first, then removes the old generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    generation: String,
    chunks: usize,
}

fn chunk_key(generation: &str, n: usize) -> String {
    format!("partners/{generation}/{n:06}")
}

/// A generation id no other writer picks: time, process and a counter.
fn new_generation() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("g{nanos:x}-{:x}-{n:x}", std::process::id())
}

/// The partner directory as stored, or the seed (`version` 0) while nothing is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPartners {
    /// The manifest's version: +1 on every change.
    pub version: u64,
    /// True while the directory is the shipped sample set.
    pub sample_data: bool,
    pub partners: Vec<Partner>,
}

fn manifest(state: &dyn UserState) -> Result<Option<(u64, Manifest)>, AgentError> {
    match state.get(DIRECTORY_KEY)? {
        Some(doc) => {
            let m = serde_json::from_slice(&doc.bytes)
                .map_err(|e| AgentError::Unavailable(format!("stored partner directory: {e}")))?;
            Ok(Some((doc.version, m)))
        }
        None => Ok(None),
    }
}

/// The stored version of the directory (0 while nothing is stored): one read.
pub fn stored_version(state: &dyn UserState) -> Result<u64, AgentError> {
    Ok(state.get(DIRECTORY_KEY)?.map_or(0, |d| d.version))
}

/// The stored directory, else `seed`.
pub fn read_directory(
    state: &dyn UserState,
    seed: &StoredPartners,
) -> Result<StoredPartners, AgentError> {
    for _ in 0..WRITE_ATTEMPTS {
        let Some((version, m)) = manifest(state)? else {
            return Ok(seed.clone());
        };
        let mut partners = Vec::new();
        let mut complete = true;
        for n in 0..m.chunks {
            // A writer removes the old generation once it has swapped the manifest: a missing
            // chunk means the directory changed while it was read, so read it again.
            let Some(chunk) = state.get(&chunk_key(&m.generation, n))? else {
                complete = false;
                break;
            };
            let part: Vec<Partner> = serde_json::from_slice(&chunk.bytes)
                .map_err(|e| AgentError::Unavailable(format!("stored partner directory: {e}")))?;
            partners.extend(part);
        }
        if complete {
            return Ok(StoredPartners {
                version,
                sample_data: false,
                partners,
            });
        }
    }
    Err(AgentError::Unavailable(
        "the partner directory kept changing while it was read".into(),
    ))
}

/// `partners` cut into JSON arrays of at most [`CHUNK_BYTES`] (one partner larger than that
/// gets a chunk of its own).
fn chunks(partners: &[Partner]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Vec<&Partner> = Vec::new();
    let mut size = 2;
    for p in partners {
        let bytes = serde_json::to_vec(p).expect("a partner serialises").len() + 1;
        if !current.is_empty() && size + bytes > CHUNK_BYTES {
            out.push(serde_json::to_vec(&current).expect("partners serialise"));
            current.clear();
            size = 2;
        }
        current.push(p);
        size += bytes;
    }
    if !current.is_empty() || out.is_empty() {
        out.push(serde_json::to_vec(&current).expect("partners serialise"));
    }
    out
}

/// Stores `partners` as the directory if the stored one is still at `expected`; `Ok(false)`
/// when another writer changed it first (nothing of this write is left behind).
pub fn write_directory(
    state: &dyn UserState,
    partners: &[Partner],
    expected: u64,
) -> Result<bool, AgentError> {
    let old = manifest(state)?;
    if old.as_ref().map_or(0, |(v, _)| *v) != expected {
        return Ok(false);
    }
    let generation = new_generation();
    let parts = chunks(partners);
    let remove = |m: &Manifest| {
        for n in 0..m.chunks {
            if let Err(e) = state.delete(&chunk_key(&m.generation, n)) {
                tracing::warn!(generation = %m.generation, error = %e, "old partner chunk left behind");
            }
        }
    };
    let new = Manifest {
        generation: generation.clone(),
        chunks: parts.len(),
    };
    for (n, bytes) in parts.iter().enumerate() {
        if !create(state, &chunk_key(&generation, n), bytes)? {
            return Err(AgentError::Unavailable(format!(
                "partner chunk {} exists already",
                chunk_key(&generation, n)
            )));
        }
    }
    let bytes = serde_json::to_vec(&new).expect("a manifest serialises");
    if !state.put(DIRECTORY_KEY, &bytes, expected)? {
        remove(&new);
        return Ok(false);
    }
    if let Some((_, old)) = old {
        remove(&old);
    }
    Ok(true)
}

/// `base` with `partners` applied: every partner replaced (`replace`, or while `base` is the
/// sample set), else added or updated by `msp_id`.
pub fn merged(base: &StoredPartners, partners: Vec<Partner>, replace: bool) -> Vec<Partner> {
    let mut out = if replace || base.sample_data {
        Vec::new()
    } else {
        base.partners.clone()
    };
    for p in partners {
        match out.iter().position(|q| q.msp_id == p.msp_id) {
            Some(i) => out[i] = p,
            None => out.push(p),
        }
    }
    out
}

/// Applies a change to the stored directory (retrying while other writers change it);
/// returns the directory as written.
pub fn change_directory(
    state: &dyn UserState,
    seed: &StoredPartners,
    partners: Vec<Partner>,
    replace: bool,
) -> Result<StoredPartners, AgentError> {
    for _ in 0..WRITE_ATTEMPTS {
        let base = read_directory(state, seed)?;
        let next = merged(&base, partners.clone(), replace);
        if write_directory(state, &next, base.version)? {
            return Ok(StoredPartners {
                version: base.version + 1,
                sample_data: false,
                partners: next,
            });
        }
    }
    Err(AgentError::Unavailable(format!(
        "the partner directory changed under {WRITE_ATTEMPTS} attempts; try again"
    )))
}

/// The seed directory: `file` when it exists (a partner file of earlier releases, or one
/// written by hand), else the shipped sample set. A file that cannot be read as partners is
/// moved aside (`<file>.corrupt-<unix seconds>`, logged as an error) and the sample set seeds
/// instead; a directory already in the state store is served either way.
pub fn seed_directory(file: Option<&Path>) -> Result<StoredPartners, AgentError> {
    let sample = || {
        serde_json::from_str(SAMPLE_PARTNERS)
            .map_err(|e| AgentError::Unavailable(format!("sample partners: {e}")))
    };
    let parsed = match file {
        Some(path) if path.exists() => match read_partner_file(path) {
            Ok(parsed) => parsed,
            Err(e) => {
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = path.with_file_name(format!(
                    "{}.corrupt-{seconds}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ));
                let moved = std::fs::rename(path, &aside);
                tracing::error!(
                    file = %path.display(),
                    moved_to = %aside.display(),
                    moved = moved.is_ok(),
                    error = %e,
                    "the partner file is not readable; moved aside, the stored directory (or the sample set) is served"
                );
                sample()?
            }
        },
        _ => sample()?,
    };
    let partners = parsed
        .partners
        .into_iter()
        .map(Partner::normalised)
        .collect::<Result<_, _>>()?;
    Ok(StoredPartners {
        version: 0,
        sample_data: parsed.sample_data,
        partners,
    })
}

/// The directory in memory, with each partner's profile embedding.
struct Directory {
    stored: StoredPartners,
    vectors: Vec<Vec<f32>>,
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

/// The partner-matching agent. The directory lives in the shared user state; each request
/// checks its stored version (one read) and re-reads and re-embeds it only when another
/// instance has changed it.
pub struct PartnerAgent {
    encoder: EmbeddingBackend,
    state: Arc<dyn UserState>,
    seed: StoredPartners,
    /// The embedding cache folder: the seed's profile embeddings are cached there
    /// ([`PARTNERS_INDEX`]; `msp-mesh prepare` computes them, the Lambda bundle carries them).
    cache_dir: std::path::PathBuf,
    directory: RwLock<Option<Arc<Directory>>>,
}

/// Embedding-cache name of the seed directory's profiles.
pub const PARTNERS_INDEX: &str = "partners";

impl PartnerAgent {
    /// An agent over the directory stored in `state`, or `seed` while nothing is stored;
    /// reads and embeds it once.
    pub async fn load(
        encoder: EmbeddingBackend,
        seed: StoredPartners,
        state: Arc<dyn UserState>,
        cache_dir: std::path::PathBuf,
    ) -> Result<Self, AgentError> {
        let agent = Self {
            encoder,
            state,
            seed,
            cache_dir,
            directory: RwLock::new(None),
        };
        agent.current().await?;
        Ok(agent)
    }

    fn cached(&self) -> Option<Arc<Directory>> {
        self.directory.read().expect("partner lock").clone()
    }

    /// Runs a blocking call on the user state off the request thread.
    async fn with_state<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn UserState, &StoredPartners) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<T, AgentError> {
        let (state, seed) = (self.state.clone(), self.seed.clone());
        tokio::task::spawn_blocking(move || call(state.as_ref(), &seed))
            .await
            .map_err(|e| AgentError::Unavailable(format!("partner directory: {e}")))?
    }

    /// The directory as stored now, embedded.
    async fn current(&self) -> Result<Arc<Directory>, AgentError> {
        let version = self.with_state(|state, _| stored_version(state)).await?;
        if let Some(d) = self.cached().filter(|d| d.stored.version == version) {
            return Ok(d);
        }
        let stored = self.with_state(read_directory).await?;
        self.install(stored).await
    }

    /// Embeds `stored` (reusing the vectors of unchanged partners) and makes it the cached
    /// directory, unless a newer one is cached already.
    async fn install(&self, stored: StoredPartners) -> Result<Arc<Directory>, AgentError> {
        let cached = self.cached();
        let known: std::collections::HashMap<&str, (&Partner, &Vec<f32>)> = cached
            .iter()
            .flat_map(|d| d.stored.partners.iter().zip(&d.vectors))
            .map(|(p, v)| (p.msp_id.as_str(), (p, v)))
            .collect();
        let fresh: Vec<Partner> = stored
            .partners
            .iter()
            .filter(|p| known.get(p.msp_id.as_str()).is_none_or(|(q, _)| *q != *p))
            .cloned()
            .collect();
        let mut embedded = if stored.version == 0 {
            // The seed never changes: its embeddings come from the cache.
            let texts: Vec<String> = fresh.iter().map(Partner::embedding_text).collect();
            crate::knowledge::cached_embeddings(
                PARTNERS_INDEX,
                &texts,
                &self.encoder,
                &self.cache_dir,
                &|_, _| {},
            )
            .await?
        } else {
            embed_profiles(&self.encoder, &fresh).await?
        }
        .into_iter();
        let vectors = stored
            .partners
            .iter()
            .map(|p| match known.get(p.msp_id.as_str()) {
                Some((q, v)) if *q == p => (*v).clone(),
                _ => embedded.next().expect("one vector per fresh partner"),
            })
            .collect();
        let directory = Arc::new(Directory { stored, vectors });
        let mut slot = self.directory.write().expect("partner lock");
        match slot.as_ref() {
            Some(d) if d.stored.version > directory.stored.version => Ok(d.clone()),
            _ => {
                *slot = Some(directory.clone());
                Ok(directory)
            }
        }
    }

    /// The partners now in the directory, and whether they are the sample set.
    pub async fn list(&self) -> Result<(Vec<Partner>, bool), AgentError> {
        let d = self.current().await?;
        Ok((d.stored.partners.clone(), d.stored.sample_data))
    }

    /// Replaces every partner (`replace`) or adds/updates by `msp_id`; served only once
    /// stored; returns the count.
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
        let written = self
            .with_state(move |state, seed| change_directory(state, seed, partners, replace))
            .await?;
        if written.partners.len() > MAX_PARTNERS {
            tracing::warn!(
                partners = written.partners.len(),
                "the partner directory holds more than {MAX_PARTNERS} partners"
            );
        }
        let count = written.partners.len();
        self.install(written).await?;
        Ok(count)
    }
}

fn vocabulary(d: &Directory) -> Vec<String> {
    let mut v: Vec<String> = d
        .stored
        .partners
        .iter()
        .flat_map(|p| p.skills.clone())
        .collect();
    v.sort();
    v.dedup();
    v
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
        let directory = self.current().await?;
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
            None => skills_named_in(&request.requirements, &vocabulary(&directory)),
        };
        let query = embed_one(&self.encoder, &request.requirements)
            .await?
            .vector;
        let d = &directory.stored;
        let same =
            |a: &Option<String>, b: &str| a.as_ref().is_none_or(|a| a.eq_ignore_ascii_case(b));
        let mut matches: Vec<PartnerMatch> = d
            .partners
            .iter()
            .zip(&directory.vectors)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_seed_file_is_moved_aside_and_the_sample_set_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("partners.json");
        std::fs::write(&file, b"{\"partners\": [{\"msp_id\": tru").unwrap();
        let seed = seed_directory(Some(&file)).unwrap();
        assert!(seed.sample_data && !seed.partners.is_empty());
        assert!(!file.exists(), "the corrupt file is moved aside");
        let aside: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            aside.len() == 1 && aside[0].starts_with("partners.json.corrupt-"),
            "{aside:?}"
        );
        assert_eq!(
            std::fs::read(dir.path().join(&aside[0])).unwrap(),
            b"{\"partners\": [{\"msp_id\": tru"
        );
    }

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

    fn partner(id: usize, profile_len: usize) -> Partner {
        Partner {
            msp_id: format!("m{id:05}"),
            name: format!("Partner {id}"),
            location: String::new(),
            city: String::new(),
            region: String::new(),
            country: "US".into(),
            skills: vec!["edr".into()],
            certifications: vec![],
            employees: Some(10),
            profile: "x".repeat(profile_len),
        }
    }

    /// A directory larger than one chunk is stored as several, read back whole by another
    /// instance on the same state, and a change leaves only its own generation behind.
    #[test]
    fn the_stored_directory_is_shared_chunked_and_replaced_whole() {
        use crate::user_state::MemoryState;
        let state = MemoryState::new();
        let seed = seed_directory(None).unwrap();
        assert!(seed.sample_data && seed.version == 0);
        assert_eq!(read_directory(&state, &seed).unwrap(), seed);
        // 600 partners of about 1 KB: about 600 KB, three chunks of at most 256 KiB.
        let many: Vec<Partner> = (0..600).map(|i| partner(i, 1000)).collect();
        let written = change_directory(&state, &seed, many.clone(), false).unwrap();
        assert_eq!(written.version, 1);
        assert_eq!(
            written.partners, many,
            "the sample set is replaced, not extended"
        );
        let chunk_keys = |state: &MemoryState| {
            state
                .keys("partners/g")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(chunk_keys(&state).len(), 3);
        // Another instance (same state, its own seed) reads the same directory.
        let other = read_directory(&state, &seed_directory(None).unwrap()).unwrap();
        assert_eq!(other, written);
        // An update by msp_id and an addition; the old generation is removed.
        let changed =
            change_directory(&state, &seed, vec![partner(3, 10), partner(900, 10)], false).unwrap();
        assert_eq!(changed.version, 2);
        assert_eq!(changed.partners.len(), 601);
        assert_eq!(changed.partners[3].profile, "x".repeat(10));
        assert_eq!(chunk_keys(&state).len(), 3);
        // A writer that read version 1 loses against the stored version 2 and writes nothing.
        assert!(!write_directory(&state, &[partner(1, 1)], 1).unwrap());
        assert_eq!(read_directory(&state, &seed).unwrap(), changed);
        assert_eq!(chunk_keys(&state).len(), 3);
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
