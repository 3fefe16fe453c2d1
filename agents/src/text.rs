//! Text helpers shared by the agents: sentence splitting, markup clean-up and raw e-mail.

use std::sync::LazyLock;

use regex::Regex;
use unicode_segmentation::UnicodeSegmentation;

/// Splits `text` into sentences (Unicode sentence boundaries, UAX #29), also at line
/// breaks that end a bullet or heading; trims each and drops the empty ones.
pub fn sentences(text: &str) -> Vec<String> {
    text.split(['\n', '\r'])
        .flat_map(|line| line.unicode_sentences())
        .map(|s| {
            s.trim()
                .trim_start_matches(['-', '*', '•'])
                .trim()
                .to_string()
        })
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

static MARKDOWN_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]]+)\]\([^)]*\)").expect("valid pattern"));
static CITATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\(Citation:[^)]*\)").expect("valid pattern"));

/// Cleans MITRE's description markup: `[name](url)` becomes `name`, `(Citation: ...)` goes,
/// the trailing `...` of a cut description goes, white space collapses.
pub fn clean_mitre(text: &str) -> String {
    let text = MARKDOWN_LINK.replace_all(text, "$1");
    let text = CITATION.replace_all(&text, "");
    let text = text.trim().trim_end_matches("...").trim_end();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Header names that mark the start of a raw RFC 822 / 5322 message.
const MAIL_HEADERS: [&str; 10] = [
    "from",
    "to",
    "subject",
    "date",
    "received",
    "return-path",
    "message-id",
    "mime-version",
    "delivered-to",
    "reply-to",
];

/// True when `text` looks like a raw e-mail: an optional mbox `From ` line, then a header
/// block (lines `Name: value` or folded continuations) with at least two well-known
/// headers (From, To, Subject, Date, Received, ...) before the first blank line.
pub fn looks_like_email(text: &str) -> bool {
    let mut known = 0;
    for (i, line) in text.lines().take(200).enumerate() {
        if line.trim().is_empty() {
            break;
        }
        if i == 0 && line.starts_with("From ") {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return false;
        }
        if MAIL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            known += 1;
        }
    }
    known >= 2
}

/// Characters of the body the e-mail head reads.
pub const EMAIL_BODY_CHARS: usize = 300;
/// Body characters the e-mail head's word-level model reads.
pub const EMAIL_LEXICAL_CHARS: usize = 20_000;

/// The readable part of a raw e-mail, as the e-mail head reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailText {
    pub subject: String,
    pub from: String,
    /// Plain-text body (HTML converted to text by `mail-parser`), white space collapsed.
    pub body: String,
}

impl EmailText {
    /// Parses a raw message; `None` when it does not parse as one.
    pub fn parse(raw: &str) -> Option<Self> {
        let message = mail_parser::MessageParser::default().parse(raw.as_bytes())?;
        let from = message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string();
        let body = message
            .body_text(0)
            .map(|b| b.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Some(Self {
            subject: message.subject().unwrap_or_default().trim().to_string(),
            from,
            body,
        })
    }

    /// The text the e-mail head is trained and run on: subject, sender and the first
    /// [`EMAIL_BODY_CHARS`] characters of the body (about 80 tokens, which keeps training
    /// and scoring cheap; the start of a message carries most of its spam signal).
    pub fn model_input(&self) -> String {
        let body: String = self.body.chars().take(EMAIL_BODY_CHARS).collect();
        format!("Subject: {}\nFrom: {}\n{}", self.subject, self.from, body)
    }

    /// The text the e-mail head's word-level model reads: subject, sender and the first
    /// [`EMAIL_LEXICAL_CHARS`] characters of the body (counting words is cheap, so it reads
    /// far more than the encoder).
    pub fn lexical_input(&self) -> String {
        let body: String = self.body.chars().take(EMAIL_LEXICAL_CHARS).collect();
        format!("Subject: {}\nFrom: {}\n{}", self.subject, self.from, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sentences_and_bullets() {
        let s =
            sentences("We back up nightly. Backups are tested monthly!\n- MFA for all admins\n\n");
        assert_eq!(
            s,
            vec![
                "We back up nightly.",
                "Backups are tested monthly!",
                "MFA for all admins"
            ]
        );
    }

    #[test]
    fn cleans_mitre_markup() {
        let t = "[Emotet](https://attack.mitre.org/software/S0367) spreads by e-mail.(Citation: X 2019) It...";
        assert_eq!(clean_mitre(t), "Emotet spreads by e-mail. It");
    }

    #[test]
    fn recognises_and_parses_raw_email() {
        let raw = "From bob@x.org Thu Aug 22 13:17:22 2002\nReturn-Path: <bob@x.org>\nFrom: Bob <bob@x.org>\nTo: ann@y.org\nSubject: Lunch\n\nSee you at noon.\n";
        assert!(looks_like_email(raw));
        let mail = EmailText::parse(raw).unwrap();
        assert_eq!(mail.subject, "Lunch");
        assert_eq!(mail.from, "bob@x.org");
        assert_eq!(mail.body, "See you at noon.");
        assert!(!looks_like_email(
            "Note: this is not mail.\nSubject: still not"
        ));
        assert!(!looks_like_email(
            "Ransomware encrypted the file server at 10:30."
        ));
    }
}
