//! `all-minilm-l6-v2-f16` (the encoder's weights stored as f16, widened to f32 when loaded)
//! answers as `all-minilm-l6-v2`, its reference: on held-out text of each trained head (the
//! 200 plain-language tickets, a tenth of the UCI sentences, a sample of the held-out
//! SpamAssassin messages), every head gives the same label with either encoder, and every
//! embedding is within cosine 0.9999 of the f32 one. This is what lets the Lambda functions
//! download half the bytes at a cold start and still serve the heads and embedding caches of
//! the f32 encoder (`Manifest::answers_as`).

use mesh_agents::datasets::{self, LabelledText};
use mesh_agents::head::ClassificationHead;
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::encoder::WeightFormat;
use mesh_inference::Device;
use mesh_models::Manifest;
use mesh_numeric::validation::argmax;
use mesh_testing::{cosine, require_local_model, workspace_data_dir, workspace_models_dir};

const REFERENCE: &str = "all-minilm-l6-v2";
const STORED_F16: &str = "all-minilm-l6-v2-f16";
/// Smallest cosine of an f16-stored embedding to its f32 reference.
const MIN_COSINE: f64 = 0.9999;

fn load(id: &str) -> SentenceEmbedder {
    let dir = require_local_model(id);
    let manifest = Manifest::builtin();
    SentenceEmbedder::load(
        &dir,
        manifest.get(id).unwrap(),
        &Device::Cpu,
        WeightFormat::F32,
    )
    .unwrap()
}

fn head(id: &str) -> ClassificationHead {
    ClassificationHead::load_dir(&workspace_models_dir().join(id)).expect("run `msp-mesh prepare`")
}

/// Embeds `texts` with both encoders and runs `head` on both (its word-level part reads
/// `lexical`): the number of labels that differ, the largest probability difference and the
/// smallest embedding cosine.
fn compare(
    name: &str,
    encoders: &[SentenceEmbedder; 2],
    head: &ClassificationHead,
    texts: &[&str],
    lexical: &[&str],
) -> (usize, f32, f64) {
    let [reference, stored] = encoders;
    let x = reference.embed(texts).unwrap();
    let y = stored.embed(texts).unwrap();
    let min_cosine = x
        .iter()
        .zip(&y)
        .map(|(a, b)| cosine(a, b))
        .fold(1.0, f64::min);
    let p = head.probabilities(&x, lexical).unwrap();
    let q = head.probabilities(&y, lexical).unwrap();
    let differing = p
        .iter()
        .zip(&q)
        .filter(|(a, b)| argmax(a) != argmax(b))
        .count();
    let max_diff = p
        .iter()
        .zip(&q)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(u, v)| (u - v).abs()))
        .fold(0.0, f32::max);
    eprintln!(
        "{name}: {} texts, {differing} labels differ, largest probability difference {max_diff:.2e}, \
         smallest cosine {min_cosine:.7}",
        texts.len()
    );
    (differing, max_diff, min_cosine)
}

fn texts(rows: &[LabelledText]) -> Vec<&str> {
    rows.iter().map(|r| r.text.as_str()).collect()
}

#[test]
fn the_f16_stored_encoder_answers_as_the_f32_one() {
    let manifest = Manifest::builtin();
    assert_eq!(
        manifest.answers_as(&manifest.get(STORED_F16).unwrap().versioned_id()),
        manifest.get(REFERENCE).unwrap().versioned_id()
    );
    // Half the bytes: what a cold start downloads.
    let size = |id: &str| {
        std::fs::metadata(require_local_model(id).join("model.safetensors"))
            .unwrap()
            .len()
    };
    let (f32_bytes, f16_bytes) = (size(REFERENCE), size(STORED_F16));
    assert!(
        f16_bytes * 2 < f32_bytes + 1_000_000,
        "{f16_bytes} bytes stored as f16 against {f32_bytes}"
    );
    let encoders = [load(REFERENCE), load(STORED_F16)];
    assert_eq!(encoders[1].model_id(), "all-minilm-l6-v2-f16@1");

    let tickets =
        datasets::tickets_from("test", include_str!("../data/tickets/test.jsonl")).unwrap();
    let ticket_texts = texts(&tickets);
    let threat = head("threat-category-minilm");
    assert!(threat.config().accepts_encoder(encoders[1].model_id()));
    let mut results = vec![compare(
        "threat head, held-out tickets",
        &encoders,
        &threat,
        &ticket_texts,
        &ticket_texts,
    )];

    let sentences = datasets::sentiment(&workspace_data_dir().join("uci-sentiment")).unwrap();
    let sample: Vec<LabelledText> = sentences.into_iter().step_by(10).collect();
    let sentence_texts = texts(&sample);
    results.push(compare(
        "sentiment head, every 10th UCI sentence",
        &encoders,
        &head("sentiment-minilm"),
        &sentence_texts,
        &sentence_texts,
    ));

    let (_, held_out) = datasets::spam_split(&workspace_data_dir().join("spam-assassin")).unwrap();
    let sample: Vec<_> = held_out.iter().step_by(40).collect();
    let email_texts: Vec<&str> = sample.iter().map(|e| e.row.text.as_str()).collect();
    let email_lexical: Vec<&str> = sample.iter().map(|e| e.lexical_text.as_str()).collect();
    results.push(compare(
        "e-mail head, every 40th held-out SpamAssassin message",
        &encoders,
        &head("spam-email-minilm"),
        &email_texts,
        &email_lexical,
    ));

    for (differing, _, min_cosine) in results {
        assert_eq!(
            differing, 0,
            "a head's label changed with the f16-stored weights"
        );
        assert!(
            min_cosine >= MIN_COSINE,
            "cosine {min_cosine} < {MIN_COSINE}"
        );
    }
}
