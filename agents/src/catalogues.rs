//! Control catalogues of the compliance agent.
//!
//! - **Published** (read at run time from the `evidentia-catalogues` data set, the
//!   `evidentia-core` 0.13.2 package, never committed): NIST CSF 2.0 (106 subcategories, NIST's
//!   outcome statements), NIST SP 800-53 Rev 5 (the official OSCAL catalogue, 5.2.0: the active
//!   base controls, each with its statement, parameters rendered as NIST prints them), and the
//!   HIPAA Security Rule (63 standards and implementation specifications; the package has their
//!   titles only, so the 22 standards carry our own summary from
//!   `agents/data/compliance/hipaa-security.json`).
//! - **Our own words** (committed in `agents/data/compliance/`): ISO/IEC 27001:2022 Annex A,
//!   SOC 2 and CIS Controls v8.1, whose ids and titles were checked against the package's stubs
//!   and whose descriptions we wrote (their texts are not free to copy).
//! - **Mappings**: the package's CSF -> 800-53, 800-53 -> HIPAA, 800-53 -> SOC 2 and
//!   ISO 27001 -> 800-53 rows, attached to the controls at both ends ([`Control::mapped`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::knowledge::{read_json, KnowledgeError, Passage, PassageSource};

/// Data set id of the published catalogues.
pub const PUBLISHED_DATASET: &str = "evidentia-catalogues";

const OWN_WORDS: [&str; 3] = [
    include_str!("../data/compliance/cis-v8.json"),
    include_str!("../data/compliance/soc2.json"),
    include_str!("../data/compliance/iso27001-2022.json"),
];
/// NIST's CSF 2.0 category names (the package has subcategories only).
const CSF_CATEGORIES: &str = include_str!("../data/compliance/nist-csf-2.0-categories.json");
/// Our summaries of the HIPAA standards (the package has titles only).
const HIPAA_SUMMARIES: &str = include_str!("../data/compliance/hipaa-security-summaries.json");

/// A control of another framework mapped to this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MappedControl {
    /// Our framework id (`nist-800-53`, `hipaa-security`, ...).
    pub framework: String,
    pub id: String,
    /// `equivalent`, `related` or `partial`.
    pub relationship: String,
}

/// One control of a catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    pub id: String,
    pub title: String,
    pub group: String,
    pub weight: f32,
    pub description: String,
    /// Controls of other frameworks mapped to this one (from the package's mappings).
    #[serde(default)]
    pub mapped: Vec<MappedControl>,
}

/// A control catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalogue {
    pub framework: String,
    pub name: String,
    pub version: String,
    pub aliases: Vec<String>,
    /// Where the ids, titles and texts come from.
    pub note: String,
    pub controls: Vec<Control>,
}

impl Catalogue {
    /// The catalogues in our own words (ISO 27001, SOC 2, CIS), compiled in.
    pub fn own_words() -> Vec<Catalogue> {
        OWN_WORDS
            .iter()
            .map(|text| serde_json::from_str(text).expect("catalogues are validated by the tests"))
            .collect()
    }

    /// Every catalogue: the published ones from `dir` (the `evidentia-catalogues` data set) and
    /// ours, with the package's mappings attached.
    pub fn all(dir: &Path) -> Result<Vec<Catalogue>, KnowledgeError> {
        let mut catalogues = vec![csf(dir)?, sp800_53(dir)?, hipaa(dir)?];
        catalogues.extend(Self::own_words());
        attach_mappings(dir, &mut catalogues)?;
        Ok(catalogues)
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

/// The shape of the package's flat catalogues (CSF, HIPAA, the stubs).
#[derive(Deserialize)]
struct FlatFile {
    version: String,
    controls: Vec<FlatControl>,
}

#[derive(Deserialize)]
struct FlatControl {
    id: String,
    title: String,
    description: String,
    family: String,
}

#[derive(Deserialize)]
struct CategoryName {
    id: String,
    title: String,
}

fn aliases(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

/// NIST CSF 2.0: one control per subcategory, its text NIST's outcome statement; the group
/// names the category.
fn csf(dir: &Path) -> Result<Catalogue, KnowledgeError> {
    let file: FlatFile = read_json(&dir.join(CSF_FILE))?;
    let names: Vec<CategoryName> =
        serde_json::from_str(CSF_CATEGORIES).expect("compiled-in JSON is checked by the tests");
    let name_of: HashMap<&str, &str> = names
        .iter()
        .map(|c| (c.id.as_str(), c.title.as_str()))
        .collect();
    let controls = file
        .controls
        .into_iter()
        .map(|c| {
            let category = c.id.split('-').next().unwrap_or_default();
            let group = match name_of.get(category) {
                Some(name) => format!("{category} {name}"),
                None => category.to_string(),
            };
            Control {
                title: c.title,
                group,
                weight: 1.0,
                description: c.description,
                mapped: Vec::new(),
                id: c.id,
            }
        })
        .collect();
    Ok(Catalogue {
        framework: "nist-csf-2.0".into(),
        name: "NIST Cybersecurity Framework".into(),
        version: file.version,
        aliases: aliases(&["nist", "nist-csf", "nist csf", "nist csf 2.0", "csf", "csf-2.0"]),
        note: "NIST CSF 2.0 subcategories and their outcome statements as NIST publishes them (evidentia-core 0.13.2); category names from NIST.".into(),
        controls,
    })
}

#[derive(Deserialize)]
struct HipaaSummary {
    id: String,
    description: String,
}

/// The HIPAA Security Rule's standards and implementation specifications: titles from the
/// package; the standards' descriptions are our summaries, the specifications' their titles.
fn hipaa(dir: &Path) -> Result<Catalogue, KnowledgeError> {
    let file: FlatFile = read_json(&dir.join(HIPAA_FILE))?;
    let summaries: Vec<HipaaSummary> =
        serde_json::from_str(HIPAA_SUMMARIES).expect("compiled-in JSON is checked by the tests");
    let summary_of: HashMap<&str, &str> = summaries
        .iter()
        .map(|s| (s.id.as_str(), s.description.as_str()))
        .collect();
    let controls = file
        .controls
        .into_iter()
        .map(|c| {
            let title = c.title.trim_end_matches(" \u{2014} Standard").to_string();
            let description = summary_of
                .get(c.id.as_str())
                .map_or_else(|| c.description.clone(), |s| s.to_string());
            Control {
                title,
                group: c.family,
                weight: 1.0,
                description,
                mapped: Vec::new(),
                id: c.id,
            }
        })
        .collect();
    Ok(Catalogue {
        framework: "hipaa-security".into(),
        name: "HIPAA Security Rule".into(),
        version: file.version,
        aliases: aliases(&["hipaa", "hipaa security", "hipaa-security-rule"]),
        note: "45 CFR 164.308-316 standards and implementation specifications, ids and titles as the package lists them (evidentia-core 0.13.2); the standards' descriptions are our own summaries.".into(),
        controls,
    })
}

static PARAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\{\{ insert: param, ([A-Za-z0-9_.\-]+) \}\}").expect("valid pattern")
});
static LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]]*)\]\(#[^)]*\)").expect("valid pattern"));

/// One control of SP 800-53 as the OSCAL catalogue gives it.
#[derive(Debug, Clone)]
pub struct OscalControl {
    /// The printed id (`AC-2`).
    pub id: String,
    pub title: String,
    /// Family title (`Access Control`).
    pub family: String,
    /// The statement, items flattened in order, parameters rendered as NIST prints them.
    pub statement: String,
    /// The discussion (guidance), links replaced by their text.
    pub guidance: String,
}

/// The active base controls of NIST SP 800-53 Rev 5 (withdrawn ones and enhancements left out).
pub fn oscal_controls(dir: &Path) -> Result<Vec<OscalControl>, KnowledgeError> {
    use serde_json::Value;
    let path = dir.join(SP800_53_FILE);
    let root: Value = read_json(&path)?;
    let groups = root["catalog"]["groups"]
        .as_array()
        .ok_or_else(|| KnowledgeError::Format(path.clone(), "no catalog.groups".into()))?;
    let mut params: HashMap<String, Value> = HashMap::new();
    let mut collect_params = |control: &Value| {
        for p in control["params"].as_array().into_iter().flatten() {
            if let Some(id) = p["id"].as_str() {
                params.insert(id.to_string(), p.clone());
            }
        }
    };
    for g in groups {
        for c in g["controls"].as_array().into_iter().flatten() {
            collect_params(c);
            for e in c["controls"].as_array().into_iter().flatten() {
                collect_params(e);
            }
        }
    }
    let prop = |c: &Value, name: &str| -> Option<String> {
        c["props"].as_array()?.iter().find_map(|p| {
            (p["name"] == name && p.get("class").is_none())
                .then(|| p["value"].as_str().map(str::to_string))
                .flatten()
        })
    };
    let mut out = Vec::new();
    for g in groups {
        let family = g["title"].as_str().unwrap_or_default().to_string();
        for c in g["controls"].as_array().into_iter().flatten() {
            if prop(c, "status").as_deref() == Some("withdrawn") {
                continue;
            }
            let Some(id) = prop(c, "label") else { continue };
            let part = |name: &str| {
                c["parts"]
                    .as_array()
                    .and_then(|parts| parts.iter().find(|p| p["name"] == name))
            };
            let mut statement = Vec::new();
            if let Some(s) = part("statement") {
                flatten_statement(s, &mut statement);
            }
            let statement = render(&statement.join(" "), &params, 0);
            let guidance = part("guidance")
                .and_then(|p| p["prose"].as_str())
                .map(|g| LINK.replace_all(g.trim(), "$1").into_owned())
                .unwrap_or_default();
            out.push(OscalControl {
                id,
                title: c["title"].as_str().unwrap_or_default().to_string(),
                family: family.clone(),
                statement: tidy(&statement),
                guidance: tidy(&guidance),
            });
        }
    }
    Ok(out)
}

/// Depth-first: each node's label and prose.
fn flatten_statement(node: &serde_json::Value, out: &mut Vec<String>) {
    let label = node["props"].as_array().and_then(|props| {
        props
            .iter()
            .find(|p| p["name"] == "label")
            .and_then(|p| p["value"].as_str())
    });
    if let Some(prose) = node["prose"].as_str() {
        out.push(match label {
            Some(l) => format!("{l} {prose}"),
            None => prose.to_string(),
        });
    }
    for child in node["parts"].as_array().into_iter().flatten() {
        if child["name"] == "item" {
            flatten_statement(child, out);
        }
    }
}

/// Parameters rendered as NIST's printed catalogue does (`[Assignment: organization-defined
/// ...]`, `[Selection (one or more): a; b]`), nested ones too (at most 4 levels).
fn render(text: &str, params: &HashMap<String, serde_json::Value>, depth: usize) -> String {
    let rendered = PARAM.replace_all(text, |caps: &regex::Captures| {
        let Some(p) = params.get(&caps[1]) else {
            return "[Assignment: organization-defined value]".to_string();
        };
        if let Some(select) = p.get("select") {
            let choices: Vec<String> = select["choice"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .map(|c| {
                    if depth < 4 {
                        render(c, params, depth + 1)
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            let how = if select["how-many"] == "one-or-more" {
                "Selection (one or more)"
            } else {
                "Selection"
            };
            format!("[{how}: {}]", choices.join("; "))
        } else {
            let label = p["label"].as_str().unwrap_or("value");
            if label.starts_with("organization-defined") {
                format!("[Assignment: {label}]")
            } else {
                format!("[Assignment: organization-defined {label}]")
            }
        }
    });
    LINK.replace_all(&rendered, "$1").into_owned()
}

/// White space collapsed, and the source's space before punctuation after a placeholder removed.
fn tidy(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ;", ";")
        .replace(" .", ".")
        .replace(" ,", ",")
}

/// NIST SP 800-53 Rev 5: the active base controls, each described by its statement.
fn sp800_53(dir: &Path) -> Result<Catalogue, KnowledgeError> {
    let controls = oscal_controls(dir)?
        .into_iter()
        .map(|c| Control {
            id: c.id,
            title: c.title,
            group: c.family,
            weight: 1.0,
            description: c.statement,
            mapped: Vec::new(),
        })
        .collect();
    Ok(Catalogue {
        framework: "nist-800-53".into(),
        name: "NIST SP 800-53 Rev. 5".into(),
        version: "5.2.0".into(),
        aliases: aliases(&["800-53", "nist 800-53", "sp 800-53", "nist-800-53-rev5", "nist sp 800-53"]),
        note: "The active base controls of NIST's official OSCAL catalogue (SP 800-53 Rev 5.2.0, from evidentia-core 0.13.2), each with its statement; enhancements are not scored separately.".into(),
        controls,
    })
}

#[derive(Deserialize)]
struct MappingFile {
    source_framework: String,
    target_framework: String,
    mappings: Vec<MappingRow>,
}

#[derive(Deserialize)]
struct MappingRow {
    source_control_id: String,
    target_control_id: String,
    relationship: String,
}

/// The package's files the catalogues read at load time (relative to the data-set folder).
pub const SERVED_FILES: [&str; 7] = [
    CSF_FILE,
    HIPAA_FILE,
    SP800_53_FILE,
    MAPPING_FILES[0],
    MAPPING_FILES[1],
    MAPPING_FILES[2],
    MAPPING_FILES[3],
];

const CSF_FILE: &str = "us-federal/nist-csf-2.0.json";
const HIPAA_FILE: &str = "us-federal/hipaa-security.json";
const SP800_53_FILE: &str = "us-federal/nist-800-53-rev5.json";
/// The catalogue file [`guidance_passages`] reads (SP 800-53), relative to the data set.
pub const GUIDANCE_FILE: &str = SP800_53_FILE;

/// The package's mapping files.
const MAPPING_FILES: [&str; 4] = [
    "mappings/nist-csf-2.0_to_nist-800-53-rev5.json",
    "mappings/nist-800-53-rev5_to_hipaa-security.json",
    "mappings/nist-800-53-rev5_to_soc2-tsc.json",
    "mappings/iso-27001-2022_to_nist-800-53-rev5.json",
];

/// Our framework id and control id for the package's.
fn our_ids(framework: &str, id: &str) -> (String, String) {
    let ours = match framework {
        "nist-800-53-rev5" => "nist-800-53",
        "soc2-tsc" => "soc2",
        "iso-27001-2022" => "iso27001-2022",
        other => other,
    };
    (ours.to_string(), id.to_string())
}

/// Adds every mapping row to the controls at both of its ends.
fn attach_mappings(dir: &Path, catalogues: &mut [Catalogue]) -> Result<(), KnowledgeError> {
    let mut edges = Vec::new();
    for file in MAPPING_FILES {
        let m: MappingFile = read_json(&dir.join(file))?;
        for row in m.mappings {
            let a = our_ids(&m.source_framework, &row.source_control_id);
            let b = our_ids(&m.target_framework, &row.target_control_id);
            edges.push((a.clone(), b.clone(), row.relationship.clone()));
            edges.push((b, a, row.relationship));
        }
    }
    for ((framework, id), (to_framework, to_id), relationship) in edges {
        let control = catalogues
            .iter_mut()
            .find(|c| c.framework == framework)
            .and_then(|c| c.controls.iter_mut().find(|k| k.id == id));
        if let Some(control) = control {
            let mapped = MappedControl {
                framework: to_framework,
                id: to_id,
                relationship,
            };
            if !control.mapped.contains(&mapped) {
                control.mapped.push(mapped);
            }
        }
    }
    Ok(())
}

/// Incident-response, contingency-planning and other guidance of SP 800-53 as knowledge passages
/// (statement, then discussion) for `/nlp-query/ask`: the controls of the given families
/// (`IR`, `CP`, ...).
pub fn guidance_passages(dir: &Path, families: &[&str]) -> Result<Vec<Passage>, KnowledgeError> {
    Ok(oscal_controls(dir)?
        .into_iter()
        .filter(|c| families.iter().any(|f| c.id.split('-').next() == Some(*f)))
        .map(|c| Passage {
            id: format!("nist-800-53:{}", c.id),
            title: format!("NIST SP 800-53 {} {}", c.id, c.title),
            text: format!("{} {}", c.statement, c.guidance),
            source: PassageSource::SecurityGuidance,
            url: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_render_as_nist_prints_them() {
        let params: HashMap<String, serde_json::Value> = [
            (
                "p1".to_string(),
                serde_json::json!({"id": "p1", "label": "time period"}),
            ),
            (
                "p2".to_string(),
                serde_json::json!({"id": "p2", "select": {"how-many": "one-or-more", "choice": ["daily", "every {{ insert: param, p1 }}"]}}),
            ),
        ]
        .into();
        assert_eq!(
            render("Review logs {{ insert: param, p2 }} .", &params, 0),
            "Review logs [Selection (one or more): daily; every [Assignment: organization-defined time period]] ."
        );
        assert_eq!(tidy("a  b ; c ."), "a b; c.");
        assert_eq!(LINK.replace_all("See [AU-02](#au-2).", "$1"), "See AU-02.");
    }

    #[test]
    fn own_words_catalogues_parse() {
        let c = Catalogue::own_words();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].controls.len(), 18);
        let names: Vec<CategoryName> = serde_json::from_str(CSF_CATEGORIES).unwrap();
        assert_eq!(names.len(), 22);
        let summaries: Vec<HipaaSummary> = serde_json::from_str(HIPAA_SUMMARIES).unwrap();
        assert_eq!(summaries.len(), 22);
    }
}
