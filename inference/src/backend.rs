//! The backend worker: one OS thread owns the model; async callers send work
//! through a channel and get answers on a oneshot, so no request handler blocks
//! a runtime thread. Queued requests are merged into dynamic batches bounded by
//! `max_batch_tokens` and `max_batch_requests`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::oneshot;

use crate::embedder::SentenceEmbedder;
use crate::encoder::l2_normalize_rows;
use crate::tokenize::TextTokenizer;
use crate::{InferenceError, Result};

/// Bounds of one dynamic batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most tokens (summed over the batch's texts) in one forward pass; a single
    /// longer text still runs, alone.
    pub max_batch_tokens: usize,
    /// Most texts in one forward pass.
    pub max_batch_requests: usize,
    /// Most texts waiting for the worker; a caller past it gets
    /// [`InferenceError::QueueFull`] at once.
    pub max_queued_texts: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_batch_tokens: 16_384,
            max_batch_requests: 64,
            max_queued_texts: 65_536,
        }
    }
}

/// One embedded text.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// Tokens the model saw (special tokens included).
    pub tokens: usize,
    /// Whether the text was cut at the model's limit.
    pub truncated: bool,
}

struct Job {
    ids: Vec<u32>,
    normalize: bool,
    respond: oneshot::Sender<Result<Vec<f32>>>,
}

/// What the worker has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    pub texts: u64,
    /// Tokens in the batches' texts (special tokens included, before padding).
    pub tokens: u64,
    pub batches: u64,
    /// Time spent in forward passes.
    pub busy: Duration,
    /// Queued texts skipped because their caller had gone (timed out, disconnected).
    pub abandoned: u64,
}

#[derive(Default)]
struct Counters {
    abandoned: AtomicU64,
    texts: AtomicU64,
    tokens: AtomicU64,
    batches: AtomicU64,
    busy_ns: AtomicU64,
}

/// Handle to the embedding worker thread; cheap to clone.
#[derive(Clone)]
pub struct EmbeddingBackend {
    tx: Sender<Job>,
    capacity: usize,
    counters: Arc<Counters>,
    tokenizer: TextTokenizer,
    model_id: String,
    dim: usize,
    normalize_default: bool,
}

impl EmbeddingBackend {
    /// Moves the model onto its own thread and returns the handle plus the thread.
    pub fn spawn(embedder: SentenceEmbedder, limits: BatchLimits) -> (Self, JoinHandle<()>) {
        let capacity = limits.max_queued_texts.max(1);
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let counters = Arc::new(Counters::default());
        let handle = Self {
            tx,
            capacity,
            counters: Arc::clone(&counters),
            tokenizer: embedder.tokenizer().clone(),
            model_id: embedder.model_id().to_string(),
            dim: embedder.dim(),
            normalize_default: embedder.normalizes(),
        };
        let thread = std::thread::Builder::new()
            .name("embedding-backend".into())
            .spawn(move || worker(embedder, rx, limits, &counters))
            .expect("spawn backend thread");
        (handle, thread)
    }

    /// `id@version` of the model behind this backend.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Texts, tokens, batches and forward-pass time so far.
    pub fn stats(&self) -> BackendStats {
        let c = &self.counters;
        BackendStats {
            texts: c.texts.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            busy: Duration::from_nanos(c.busy_ns.load(Ordering::Relaxed)),
            abandoned: c.abandoned.load(Ordering::Relaxed),
        }
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest input in tokens; longer texts are truncated.
    pub fn max_input_tokens(&self) -> usize {
        self.tokenizer.max_len()
    }

    /// Whether vectors are normalised when the caller does not say.
    pub fn normalizes_by_default(&self) -> bool {
        self.normalize_default
    }

    /// Embeds texts; each text is queued on its own so it can share a batch with other callers'.
    pub async fn embed(&self, texts: &[String], normalize: bool) -> Result<Vec<Embedding>> {
        let mut pending = Vec::with_capacity(texts.len());
        for text in texts {
            let tokenized = self.tokenizer.encode(text)?;
            let (respond, answer) = oneshot::channel();
            let meta = (tokenized.ids.len(), tokenized.truncated);
            let job = Job {
                ids: tokenized.ids,
                normalize,
                respond,
            };
            // Never waits: a full queue is an answer now (the texts queued so far are
            // skipped by the worker once this call has returned).
            self.tx.try_send(job).map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => InferenceError::QueueFull {
                    capacity: self.capacity,
                },
                crossbeam_channel::TrySendError::Disconnected(_) => InferenceError::BackendStopped,
            })?;
            pending.push((meta, answer));
        }
        let mut out = Vec::with_capacity(pending.len());
        for ((tokens, truncated), answer) in pending {
            let vector = answer.await.map_err(|_| InferenceError::BackendStopped)??;
            out.push(Embedding {
                vector,
                tokens,
                truncated,
            });
        }
        Ok(out)
    }
}

fn worker(embedder: SentenceEmbedder, rx: Receiver<Job>, limits: BatchLimits, counters: &Counters) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return, // every handle dropped
            },
        };
        // A caller that is gone (timed out, disconnected) gets no forward pass.
        if first.respond.is_closed() {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut tokens = first.ids.len();
        let mut batch = vec![first];
        while batch.len() < limits.max_batch_requests.max(1) {
            match rx.try_recv() {
                Ok(job) if job.respond.is_closed() => {
                    counters.abandoned.fetch_add(1, Ordering::Relaxed);
                }
                Ok(job) if tokens + job.ids.len() > limits.max_batch_tokens => {
                    carry = Some(job);
                    break;
                }
                Ok(job) => {
                    tokens += job.ids.len();
                    batch.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let started = Instant::now();
        let texts = batch.len() as u64;
        run_batch(&embedder, batch);
        counters.texts.fetch_add(texts, Ordering::Relaxed);
        counters.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

fn run_batch(embedder: &SentenceEmbedder, batch: Vec<Job>) {
    let _span = tracing::debug_span!("batch", size = batch.len()).entered();
    let rows: Vec<&[u32]> = batch.iter().map(|j| j.ids.as_slice()).collect();
    match embedder.embed_ids(&rows, false) {
        Ok(vectors) => {
            for (job, mut v) in batch.into_iter().zip(vectors) {
                if job.normalize {
                    l2_normalize_rows(std::slice::from_mut(&mut v));
                }
                let _ = job.respond.send(Ok(v));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for job in batch {
                let _ = job.respond.send(Err(InferenceError::Batch(msg.clone())));
            }
        }
    }
}
