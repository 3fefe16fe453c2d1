//! `msp-mesh embed`: print the embeddings of texts.

use mesh_core::ModelArgs;

/// Prints the embeddings of `texts` as a JSON array of vectors.
pub async fn embed(model: ModelArgs, texts: Vec<String>) -> anyhow::Result<()> {
    super::prepare::pull_encoder(&model).await?;
    let backend = mesh_core::mesh::load_backend(&model).await?;
    let normalize = backend.normalizes_by_default();
    let embeddings = backend.embed(&texts, normalize).await?;
    for (i, e) in embeddings.iter().enumerate() {
        if e.truncated {
            eprintln!("note: text {i} was truncated to {} tokens", e.tokens);
        }
    }
    let vectors: Vec<&Vec<f32>> = embeddings.iter().map(|e| &e.vector).collect();
    println!("{}", serde_json::to_string(&vectors)?);
    Ok(())
}
