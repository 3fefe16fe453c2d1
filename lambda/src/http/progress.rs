//! Answers that stream their progress: a request sent with `Accept: application/x-ndjson`
//! (today `POST /federated/train`) gets one JSON line per step as it ends, then a last line
//! `{"result": answer}` (the answer the plain route returns, stored the same way) or
//! `{"error": error body, "status": code}`. A request that is wrong is answered before the
//! stream starts, with its usual 4xx.
//!
//! The response's headers leave before its work ends, so what a middleware holds for a
//! request (its in-flight permits, the latency it measures) is held until the body ends:
//! [`Streamed`] marks such a response and [`hold_until_end`] keeps a value alive until then.
//! On Lambda the body is buffered, so the lines arrive together with the result.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::http::error::ApiError;

/// The media type of a streamed answer.
pub const NDJSON: &str = "application/x-ndjson";

/// Whether the request asks for its progress as NDJSON (`Accept: application/x-ndjson`).
pub fn wants_progress(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().unwrap_or("").trim() == NDJSON)
}

/// Marks a response whose body is still being written: the status its work ended with (200
/// until it fails), for the metrics recorded when the body ends.
#[derive(Clone)]
pub struct Streamed(pub Arc<AtomicU16>);

impl Streamed {
    /// The work's final status so far.
    pub fn status(&self) -> u16 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `response` with `guard` dropped only when its body has been sent (or the client left).
pub fn hold_until_end<G: Send + 'static>(response: Response, guard: G) -> Response {
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Writes the lines of one streamed answer.
pub struct ProgressLines {
    lines: mpsc::UnboundedSender<Bytes>,
    outcome: Arc<AtomicU16>,
}

impl ProgressLines {
    /// The writer, and the response that sends what it writes.
    pub fn open() -> (Self, Response) {
        let (lines, rx) = mpsc::unbounded_channel::<Bytes>();
        let outcome = Arc::new(AtomicU16::new(200));
        let body = tokio_stream_of(rx);
        let mut response = Response::new(Body::from_stream(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
            .extensions_mut()
            .insert(Streamed(Arc::clone(&outcome)));
        (Self { lines, outcome }, response)
    }

    /// A sender of progress lines, for the work's own thread.
    pub fn progress(&self) -> impl Fn(&Value) + Send + Sync + 'static {
        let lines = self.lines.clone();
        move |line: &Value| {
            let _ = lines.send(line_bytes(line));
        }
    }

    /// Resolves once the client has gone (the body was dropped).
    pub async fn closed(&self) {
        self.lines.closed().await
    }

    /// Writes the last line: the answer, or the error with its status.
    pub fn finish(self, answer: Result<Value, ApiError>) {
        let line = match answer {
            Ok(result) => json!({ "result": result }),
            Err(error) => {
                let status = error.status().as_u16();
                self.outcome.store(status, Ordering::Relaxed);
                json!({ "error": error.body(), "status": status })
            }
        };
        let _ = self.lines.send(line_bytes(&line));
    }
}

fn line_bytes(line: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(line).expect("a JSON value serialises");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// The receiver as a body stream.
fn tokio_stream_of(
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|line| line.map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_is_wanted_only_when_accepted() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            wants_progress(&h)
        };
        assert!(with("application/x-ndjson"));
        assert!(with("application/json, application/x-ndjson;q=0.9"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!wants_progress(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn the_guard_lives_until_the_body_has_been_read() {
        let guard = Arc::new(());
        let (lines, response) = ProgressLines::open();
        let response = hold_until_end(response, Arc::clone(&guard));
        (lines.progress())(&json!({"round": 1}));
        assert_eq!(Arc::strong_count(&guard), 2);
        lines.finish(Ok(json!({"n": 1})));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "{\"round\":1}\n{\"result\":{\"n\":1}}\n"
        );
        assert_eq!(Arc::strong_count(&guard), 1, "dropped with the body");
    }
}
