//! [`AppState`]: what every route and middleware reads.

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::config::{ServiceArgs, WebArgs};
use mesh_core::mesh::Mesh;

use crate::http::protection::Protection;

/// What every route reads: the mesh, and how this server protects and presents it.
pub struct AppState {
    pub mesh: Arc<Mesh>,
    pub protection: Protection,
    /// Where the dashboard's pages send their requests.
    pub web: WebArgs,
}

impl std::ops::Deref for AppState {
    type Target = Mesh;

    fn deref(&self) -> &Mesh {
        &self.mesh
    }
}

impl AppState {
    /// The state of a server over `mesh` with the protection and dashboard settings of
    /// `service`; `listen` is the server's address (`None` on Lambda, where API Gateway fronts
    /// the function).
    pub fn new(
        mesh: Arc<Mesh>,
        service: &ServiceArgs,
        listen: Option<SocketAddr>,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            mesh,
            protection: Protection::from_args(&service.protection, listen)?,
            web: service.web.clone(),
        }))
    }

    /// Checks the protection settings, then loads the mesh (models already on disk or in the
    /// S3 bundle) and wraps it.
    pub async fn load(
        model: &mesh_core::ModelArgs,
        service: &ServiceArgs,
        listen: Option<SocketAddr>,
    ) -> anyhow::Result<Arc<Self>> {
        // Settings errors (keys) before the slow model loading.
        let protection = Protection::from_args(&service.protection, listen)?;
        let mesh = crate::progress::load_mesh(model, service).await?;
        // The WebSocket connections a previous server process recorded are gone with it.
        mesh_core::store::off_thread(&mesh.store, |s| s.clear_connections()).await?;
        Ok(Arc::new(Self {
            mesh,
            protection,
            web: service.web.clone(),
        }))
    }
}
