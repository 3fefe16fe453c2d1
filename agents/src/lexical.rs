//! A word-level text classifier beside the encoder heads: TF-IDF over word unigrams and
//! bigrams (sublinear term frequency, smoothed IDF, rows L2-normalised, as scikit-learn's
//! `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)` computes them) and a multinomial
//! logistic regression with an L2 penalty (scikit-learn's `C`), trained by full-batch Adam.
//!
//! Plain-language tickets name what happened in a few telling words ("ransom note",
//! "flooded", "wire transfer"); sentence embeddings blur them. A head combines its logits
//! with this model's, with a weight fitted on out-of-fold predictions (see
//! [`crate::recipes`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// File of a head folder holding its lexical model.
pub const LEXICAL_FILE: &str = "lexical.json";

/// Tokens as scikit-learn's default `token_pattern` finds them: two or more word characters.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\w\w+\b").expect("valid pattern"));

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct LexicalOptions {
    /// Inverse L2 strength, as scikit-learn's `C`: the penalty is `||W||² / (2 C n)` on the mean loss.
    pub c: f64,
    /// Terms seen in fewer training texts are left out.
    pub min_df: usize,
    /// Bigrams seen in fewer training texts are left out.
    pub min_bigram_df: usize,
    pub steps: usize,
    pub learning_rate: f64,
}

impl Default for LexicalOptions {
    fn default() -> Self {
        Self {
            c: 10.0,
            min_df: 1,
            min_bigram_df: 2,
            steps: 400,
            learning_rate: 0.1,
        }
    }
}

/// A trained TF-IDF + logistic regression model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LexicalModel {
    /// Vocabulary: unigrams and `first second` bigrams.
    pub terms: Vec<String>,
    pub idf: Vec<f32>,
    /// `[classes][terms]`.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

/// Lower-cased unigrams and bigrams of `text`, in order.
fn terms_of(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = TOKEN.find_iter(&lower).map(|m| m.as_str()).collect();
    let mut out: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    out.extend(words.windows(2).map(|p| format!("{} {}", p[0], p[1])));
    out
}

/// Sparse row: (term, value).
type Row = Vec<(usize, f32)>;

impl LexicalModel {
    /// Fits the model on `texts` with class indices `labels` (`< classes`).
    pub fn fit(
        texts: &[&str],
        labels: &[usize],
        classes: usize,
        options: &LexicalOptions,
    ) -> Result<Self, AgentError> {
        if texts.is_empty() || texts.len() != labels.len() || labels.iter().any(|&l| l >= classes) {
            return Err(AgentError::Unavailable(
                "lexical model: texts and labels must be non-empty, of equal length, and labels < classes".into(),
            ));
        }
        let docs: Vec<Vec<String>> = texts.iter().map(|t| terms_of(t)).collect();
        let mut df: HashMap<&str, usize> = HashMap::new();
        for doc in &docs {
            let mut seen: Vec<&str> = doc.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                *df.entry(t).or_default() += 1;
            }
        }
        let mut terms: Vec<String> = df
            .iter()
            .filter(|(t, &n)| {
                n >= options.min_df && (!t.contains(' ') || n >= options.min_bigram_df)
            })
            .map(|(t, _)| t.to_string())
            .collect();
        terms.sort_unstable();
        let n = texts.len() as f32;
        let idf: Vec<f32> = terms
            .iter()
            .map(|t| ((1.0 + n) / (1.0 + df[t.as_str()] as f32)).ln() + 1.0)
            .collect();
        let mut model = Self {
            index: terms.iter().cloned().zip(0..).collect(),
            weights: vec![vec![0.0; terms.len()]; classes],
            bias: vec![0.0; classes],
            terms,
            idf,
        };
        let rows: Vec<Row> = texts.iter().map(|t| model.row(t)).collect();
        model.train(&rows, labels, options);
        Ok(model)
    }

    /// Rebuilds the term index after loading.
    fn indexed(mut self) -> Self {
        self.index = self.terms.iter().cloned().zip(0..).collect();
        self
    }

    /// The TF-IDF row of `text` (sublinear tf, L2-normalised).
    fn row(&self, text: &str) -> Row {
        let mut counts: HashMap<usize, f32> = HashMap::new();
        for t in terms_of(text) {
            if let Some(&i) = self.index.get(&t) {
                *counts.entry(i).or_default() += 1.0;
            }
        }
        let mut row: Row = counts
            .into_iter()
            .map(|(i, tf)| (i, (1.0 + tf.ln()) * self.idf[i]))
            .collect();
        row.sort_unstable_by_key(|&(i, _)| i);
        let norm = row.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|(_, v)| *v /= norm);
        }
        row
    }

    fn row_logits(&self, row: &Row) -> Vec<f32> {
        self.bias
            .iter()
            .zip(&self.weights)
            .map(|(b, w)| b + row.iter().map(|&(i, v)| w[i] * v).sum::<f32>())
            .collect()
    }

    /// Full-batch Adam on the mean cross-entropy plus `||W||² / (2 C n)` (bias unpenalised).
    fn train(&mut self, rows: &[Row], labels: &[usize], options: &LexicalOptions) {
        let (classes, vocabulary) = (self.bias.len(), self.terms.len());
        let n = rows.len() as f32;
        let l2 = 1.0 / (options.c as f32 * n);
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut m = vec![vec![0.0f32; vocabulary + 1]; classes];
        let mut v = vec![vec![0.0f32; vocabulary + 1]; classes];
        for step in 1..=options.steps {
            let mut grad = vec![vec![0.0f32; vocabulary + 1]; classes];
            for (row, &label) in rows.iter().zip(labels) {
                let p = mesh_numeric::stats::softmax(&self.row_logits(row), 1.0);
                for (c, g) in grad.iter_mut().enumerate() {
                    let d = (p[c] - f32::from(u8::from(c == label))) / n;
                    for &(i, x) in row {
                        g[i] += d * x;
                    }
                    g[vocabulary] += d;
                }
            }
            let lr = options.learning_rate as f32;
            let (c1, c2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
            for c in 0..classes {
                for i in 0..=vocabulary {
                    let g = if i < vocabulary {
                        grad[c][i] + l2 * self.weights[c][i]
                    } else {
                        grad[c][i]
                    };
                    m[c][i] = beta1 * m[c][i] + (1.0 - beta1) * g;
                    v[c][i] = beta2 * v[c][i] + (1.0 - beta2) * g * g;
                    let update = lr * (m[c][i] / c1) / ((v[c][i] / c2).sqrt() + eps);
                    if i < vocabulary {
                        self.weights[c][i] -= update;
                    } else {
                        self.bias[c] -= update;
                    }
                }
            }
        }
    }

    /// Raw logits of each text, `[texts][classes]`.
    pub fn logits<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<f32>> {
        texts
            .iter()
            .map(|t| self.row_logits(&self.row(t.as_ref())))
            .collect()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    /// Writes the model as JSON, numbers to six significant digits (keeps the file small).
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| six_digits(x)).collect() };
        let rounded = Self {
            terms: self.terms.clone(),
            idf: round(&self.idf),
            weights: self.weights.iter().map(|w| round(w)).collect(),
            bias: round(&self.bias),
            index: HashMap::new(),
        };
        let json = serde_json::to_string(&rounded).expect("lexical model serialises");
        std::fs::write(path, json)
            .map_err(|e| AgentError::Unavailable(format!("{}: {e}", path.display())))
    }

    /// Reads a model written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AgentError::Unavailable(format!("{}: {e}", path.display())))?;
        let model: Self = serde_json::from_str(&text)
            .map_err(|e| AgentError::Unavailable(format!("{}: {e}", path.display())))?;
        if model.idf.len() != model.terms.len()
            || model.weights.len() != model.bias.len()
            || model.weights.iter().any(|w| w.len() != model.terms.len())
        {
            return Err(AgentError::Unavailable(format!(
                "{}: inconsistent shapes",
                path.display()
            )));
        }
        Ok(model.indexed())
    }
}

/// `x` to six significant digits.
fn six_digits(x: f32) -> f32 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(5 - f64::from(x.abs()).log10().floor() as i32);
    ((f64::from(x) * scale).round() / scale) as f32
}

/// Out-of-fold logits: for each fold `f` of `folds` (fold index per text, `0..k`), a model
/// fitted on the other folds scores the texts of `f`.
pub fn out_of_fold(
    texts: &[&str],
    labels: &[usize],
    classes: usize,
    folds: &[usize],
    k: usize,
    options: &LexicalOptions,
) -> Result<Vec<Vec<f32>>, AgentError> {
    let mut out = vec![Vec::new(); texts.len()];
    for f in 0..k {
        let (train, held): (Vec<usize>, Vec<usize>) =
            (0..texts.len()).partition(|&i| folds[i] != f);
        let train_texts: Vec<&str> = train.iter().map(|&i| texts[i]).collect();
        let train_labels: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
        let model = LexicalModel::fit(&train_texts, &train_labels, classes, options)?;
        let held_texts: Vec<&str> = held.iter().map(|&i| texts[i]).collect();
        for (i, l) in held.into_iter().zip(model.logits(&held_texts)) {
            out[i] = l;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::tickets_from;

    #[test]
    fn saved_numbers_keep_six_significant_digits() {
        assert_eq!(six_digits(0.123_456_7), 0.123457);
        assert_eq!(six_digits(-12345.678), -12345.7);
        assert_eq!(six_digits(0.0), 0.0);
    }

    #[test]
    fn tf_idf_rows_match_scikit_learn_on_a_hand_computed_case() {
        // Two documents; "aa" in both (idf 1), "bb" in one (idf ln(3/2)+1), bigram "aa bb"
        // in one but dropped (df 1 < 2); "aa aa bb": tf(aa)=2 -> 1+ln 2.
        let model =
            LexicalModel::fit(&["aa aa bb", "aa cc"], &[0, 1], 2, &Default::default()).unwrap();
        assert_eq!(model.terms, ["aa", "bb", "cc"]);
        let row = model.row("aa aa bb");
        let (a, b) = (1.0 + 2f32.ln(), 1.5f32.ln() + 1.0);
        let norm = (a * a + b * b).sqrt();
        assert!((row[0].1 - a / norm).abs() < 1e-6 && (row[1].1 - b / norm).abs() < 1e-6);
        assert_eq!(
            model
                .logits(&["aa aa bb", "aa cc"])
                .iter()
                .map(|l| mesh_numeric::validation::argmax(l))
                .collect::<Vec<_>>(),
            [0, 1]
        );
    }

    /// Trained on one writer's tickets, scored on the other's: scikit-learn 1.9.1's
    /// `LogisticRegression(C=10)` on the same features (unigrams, bigrams in at least two
    /// texts) gets 0.880 (train -> train-b) and 0.862 (train-b -> train).
    #[test]
    fn accuracy_across_ticket_writers_is_close_to_scikit_learn() {
        let a = tickets_from("train", include_str!("../data/tickets/train.jsonl")).unwrap();
        let b = tickets_from("train-b", include_str!("../data/tickets/train-b.jsonl")).unwrap();
        for (train, test, reference) in [(&a, &b, 0.880), (&b, &a, 0.862)] {
            let texts: Vec<&str> = train.iter().map(|r| r.text.as_str()).collect();
            let labels: Vec<usize> = train.iter().map(|r| r.label).collect();
            let model = LexicalModel::fit(&texts, &labels, 10, &Default::default()).unwrap();
            let test_texts: Vec<&str> = test.iter().map(|r| r.text.as_str()).collect();
            let correct = model
                .logits(&test_texts)
                .iter()
                .zip(test.iter())
                .filter(|(l, r)| mesh_numeric::validation::argmax(l) == r.label)
                .count();
            let accuracy = correct as f64 / test.len() as f64;
            eprintln!("cross-writer accuracy {accuracy:.3} (scikit-learn {reference})");
            assert!(
                (accuracy - reference).abs() <= 0.02,
                "{accuracy:.3} vs scikit-learn {reference}"
            );
        }
    }
}
