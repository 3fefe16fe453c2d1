//! MITRE ATT&CK Enterprise 18.1 from the `attack-enterprise` data set.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{read_json, KnowledgeError};
use crate::text::clean_mitre;

/// One (sub-)technique.
#[derive(Debug, Clone)]
pub struct Technique {
    /// `T1566.001`.
    pub id: String,
    pub name: String,
    pub description: String,
    /// Kill-chain phases, e.g. `initial-access`.
    pub tactics: Vec<String>,
    pub url: String,
}

/// One mitigation (course of action).
#[derive(Debug, Clone)]
pub struct Mitigation {
    /// `M1049`.
    pub id: String,
    pub name: String,
    pub description: String,
}

/// One piece of software (malware or tool).
#[derive(Debug, Clone)]
pub struct Software {
    /// `S0367`.
    pub id: String,
    pub name: String,
    /// `malware` or `tool`.
    pub kind: String,
    pub description: String,
}

/// The parts of ATT&CK the agents use: live techniques, mitigations, software, and
/// which mitigations mitigate which technique.
#[derive(Debug, Clone)]
pub struct Attack {
    pub techniques: Vec<Technique>,
    pub mitigations: Vec<Mitigation>,
    pub software: Vec<Software>,
    /// Technique id -> indices into `mitigations`.
    pub mitigated_by: HashMap<String, Vec<usize>>,
    /// Procedure examples: how a group, campaign or piece of software used a technique
    /// (the `uses` relationships' descriptions, real-world usage text), in file order.
    pub procedures: Vec<Procedure>,
}

/// One procedure example of a technique.
#[derive(Debug, Clone)]
pub struct Procedure {
    /// The technique used (`T1566.001`).
    pub technique: String,
    pub description: String,
}

#[derive(Deserialize)]
struct RawObject {
    stix_id: String,
    external_id: Option<String>,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tactics: Vec<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    stix_type: Option<String>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    deprecated: bool,
}

#[derive(Deserialize)]
struct RawRelationship {
    relationship_type: String,
    source_ref: String,
    target_ref: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    deprecated: bool,
}

const VERSION: &str = "v18.1";

/// The lookup files of the data set that [`Attack::load`] reads.
const READ_STEMS: [&str; 4] = [
    "attack-patterns",
    "mitigations",
    "software",
    "relationships",
];

/// Whether [`Attack::load`] reads the data set's file `name`.
pub fn reads_file(name: &str) -> bool {
    READ_STEMS
        .iter()
        .any(|stem| name == format!("{stem}-lookup-{VERSION}.json"))
}

impl Attack {
    /// Loads the data set folder (`models/store/data/attack-enterprise`); revoked and
    /// deprecated objects are left out.
    pub fn load(dir: &Path) -> Result<Self, KnowledgeError> {
        let live = |o: &RawObject| !o.revoked && !o.deprecated && o.external_id.is_some();
        let [patterns, mitigations, software, relationships] = READ_STEMS;
        let patterns: Vec<RawObject> = objects(dir, patterns, "attack_patterns")?;
        let raw_mitigations: Vec<RawObject> = objects(dir, mitigations, "mitigations")?;
        let raw_software: Vec<RawObject> = objects(dir, software, "software")?;
        let relationships: Vec<RawRelationship> = objects(dir, relationships, "relationships")?;

        let mut stix_to_technique = HashMap::new();
        let mut techniques = Vec::new();
        for o in patterns.into_iter().filter(live) {
            let id = o.external_id.unwrap_or_default();
            stix_to_technique.insert(o.stix_id, id.clone());
            techniques.push(Technique {
                name: o.name,
                description: clean_mitre(o.description.as_deref().unwrap_or_default()),
                tactics: o.tactics,
                url: o.url.unwrap_or_default(),
                id,
            });
        }
        let mut stix_to_mitigation = HashMap::new();
        let mut mitigations = Vec::new();
        for o in raw_mitigations.into_iter().filter(live) {
            stix_to_mitigation.insert(o.stix_id, mitigations.len());
            mitigations.push(Mitigation {
                id: o.external_id.unwrap_or_default(),
                name: o.name,
                description: clean_mitre(o.description.as_deref().unwrap_or_default()),
            });
        }
        let software = raw_software
            .into_iter()
            .filter(live)
            .map(|o| Software {
                id: o.external_id.unwrap_or_default(),
                kind: o.stix_type.unwrap_or_default(),
                description: clean_mitre(o.description.as_deref().unwrap_or_default()),
                name: o.name,
            })
            .collect();
        let mut mitigated_by: HashMap<String, Vec<usize>> = HashMap::new();
        let mut procedures = Vec::new();
        for r in relationships {
            if r.revoked || r.deprecated {
                continue;
            }
            if r.relationship_type == "uses" {
                if let (Some(t), Some(d)) = (stix_to_technique.get(&r.target_ref), &r.description) {
                    let description = clean_mitre(d);
                    if !description.is_empty() {
                        procedures.push(Procedure {
                            technique: t.clone(),
                            description,
                        });
                    }
                }
                continue;
            }
            if r.relationship_type != "mitigates" {
                continue;
            }
            if let (Some(&m), Some(t)) = (
                stix_to_mitigation.get(&r.source_ref),
                stix_to_technique.get(&r.target_ref),
            ) {
                mitigated_by.entry(t.clone()).or_default().push(m);
            }
        }
        Ok(Self {
            techniques,
            mitigations,
            software,
            mitigated_by,
            procedures,
        })
    }

    /// The technique with this id.
    pub fn technique(&self, id: &str) -> Option<&Technique> {
        self.techniques.iter().find(|t| t.id == id)
    }

    /// The mitigations of a technique; a sub-technique without its own falls back to its parent's.
    pub fn mitigations_of(&self, technique_id: &str) -> Vec<&Mitigation> {
        let own = self.mitigated_by.get(technique_id);
        let parent = technique_id
            .split_once('.')
            .and_then(|(p, _)| self.mitigated_by.get(p));
        own.or(parent)
            .map(|ms| ms.iter().map(|&i| &self.mitigations[i]).collect())
            .unwrap_or_default()
    }
}

/// The object list of the lookup file `<stem>-lookup-<VERSION>.json` (`{"_metadata": …,
/// "<key>": [...]}`), parsed straight into `T`: fields `T` does not name are skipped unread.
fn objects<T: serde::de::DeserializeOwned>(
    dir: &Path,
    stem: &str,
    key: &str,
) -> Result<Vec<T>, KnowledgeError> {
    /// Any lookup file: its one object list, whichever of the four keys names it.
    #[derive(serde::Deserialize)]
    struct Lookup<T> {
        #[serde(alias = "attack_patterns", alias = "mitigations", alias = "software")]
        #[serde(alias = "relationships")]
        objects: Option<Vec<T>>,
    }
    let path = dir.join(format!("{stem}-lookup-{VERSION}.json"));
    let lookup: Lookup<T> = read_json(&path)?;
    lookup
        .objects
        .ok_or_else(|| KnowledgeError::Format(path, format!("no `{key}` list")))
}
