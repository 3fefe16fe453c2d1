//! The AWS stand-in (Comprehend, Bedrock) served in-process for a test.

use std::sync::Arc;

use mesh_standin::StandIn;

/// A stand-in on a free port, served by its own runtime thread for the life of the test.
pub fn start_standin() -> (String, Arc<StandIn>) {
    let state = Arc::new(StandIn::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::clone(&state);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            mesh_standin::serve(listener, served).await.unwrap();
        });
    });
    (url, state)
}
