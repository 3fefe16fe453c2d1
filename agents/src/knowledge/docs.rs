//! The project's own documentation as passages (README and ARCHITECTURE, one passage per section).

use super::{Passage, PassageSource};

const DOCS: [(&str, &str); 2] = [
    ("README", include_str!("../../../README.md")),
    ("ARCHITECTURE", include_str!("../../../ARCHITECTURE.md")),
];

/// One passage per `##`/`###` section of the compiled-in docs (long sections cut into ~900-character pieces).
pub fn passages() -> Vec<Passage> {
    let mut out = Vec::new();
    for (doc, text) in DOCS {
        let mut title = doc.to_string();
        let mut body = String::new();
        let flush = |title: &str, body: &mut String, out: &mut Vec<Passage>| {
            for (i, piece) in pieces(body, 900).into_iter().enumerate() {
                out.push(Passage {
                    id: format!("docs:{doc}#{}-{}", slug(title), i + 1),
                    title: format!("{doc}: {title}"),
                    text: piece,
                    source: PassageSource::Docs,
                    url: None,
                });
            }
            body.clear();
        };
        for line in text.lines() {
            if let Some(h) = line
                .strip_prefix("## ")
                .or_else(|| line.strip_prefix("### "))
            {
                flush(&title, &mut body, &mut out);
                title = h.trim().to_string();
            } else if !line.starts_with("# ") && !line.starts_with("```") {
                body.push_str(line.trim());
                body.push('\n');
            }
        }
        flush(&title, &mut body, &mut out);
    }
    out
}

fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Cuts text into pieces of about `max` characters at paragraph or line ends.
fn pieces(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if !current.is_empty() && current.len() + line.len() > max {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line);
    }
    if current.chars().any(char::is_alphanumeric) {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_become_titled_passages() {
        let p = super::passages();
        assert!(p.len() > 5);
        assert!(p
            .iter()
            .all(|p| p.id.starts_with("docs:") && !p.text.trim().is_empty()));
        assert!(p.iter().any(|p| p.title.contains("ARCHITECTURE")));
    }
}
