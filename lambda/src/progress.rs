//! Progress bars for long CLI work (hidden when stderr is not a terminal).

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use mesh_agents::recipes::Progress;

/// One bar per stage, shown on a terminal.
#[derive(Default)]
pub struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    /// Finishes the current bar.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}

/// A bar of `total` steps with elapsed time and rate.
pub fn bar(total: u64, message: String) -> ProgressBar {
    let bar = ProgressBar::new(total).with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The style of a bar over the bytes of an input file: rate and ETA.
pub fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} ({elapsed})",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

/// The style of a bar over shards: rate and ETA.
pub fn shards_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} shards, ETA {eta} ({elapsed})")
        .expect("valid template")
        .progress_chars("=> ")
}

impl Progress for BarProgress {
    fn stage(&self, name: &str, total: usize) {
        let mut slot = self.bar.lock().expect("progress lock");
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        tracing::info!(stage = name, total, "started");
        *slot = Some(bar(total as u64, name.to_string()));
    }

    fn advance(&self, done: usize) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.set_position(done as u64);
        }
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Loads the mesh of an entry point, with a bar per loading stage on a terminal.
pub async fn load_mesh(
    model: &mesh_core::ModelArgs,
    service: &mesh_core::ServiceArgs,
) -> anyhow::Result<std::sync::Arc<mesh_core::Mesh>> {
    let progress = BarProgress::default();
    let mesh = mesh_core::Mesh::load(model, service, &progress).await;
    progress.finish();
    mesh
}
