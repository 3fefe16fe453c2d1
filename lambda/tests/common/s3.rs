//! s3s-fs (an S3 server over a folder, SigV4 checked) served in process for tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};

pub const ACCESS_KEY: &str = "AKIAMESHLAMBDA";
pub const SECRET_KEY: &str = "mesh-lambda-test-secret";

/// s3s-fs over a temporary folder on a loopback port, counting the GET requests it serves.
pub async fn start_s3(root: &std::path::Path, bucket: &str) -> (String, Arc<AtomicUsize>) {
    std::fs::create_dir_all(root.join(bucket)).unwrap(); // a bucket is a folder
    let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let gets = Arc::new(AtomicUsize::new(0));
    let counted = gets.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let (service, counted) = (service.clone(), counted.clone());
            let counting = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    if request.method() == hyper::Method::GET {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    let service = service.clone();
                    async move { hyper::service::Service::call(&service, request).await }
                },
            );
            let conn = http
                .serve_connection(TokioIo::new(socket), counting)
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    (endpoint, gets)
}
