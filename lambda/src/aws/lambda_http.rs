//! A router under AWS Lambda (API Gateway REST and HTTP APIs, ALB): `bootstrap` in `http`
//! mode serves the same router as `msp-mesh serve` through it.

use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tower::util::MapRequest;

/// `router` behind a request map that removes the
/// API Gateway stage (`/prod/health` -> `/health`): REST APIs add it to the path
/// inside `lambda_http`, HTTP APIs with a named stage send it in `rawPath`.
pub fn lambda_service(
    router: Router,
) -> MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request> {
    MapRequest::new(
        router,
        strip_stage as fn(lambda_http::Request) -> lambda_http::Request,
    )
}

/// Serves `router` as a Lambda function until the runtime stops it.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_service(router)).await
}

/// Removes a leading `/{stage}` from the path when the event names a stage.
pub fn strip_stage(mut request: lambda_http::Request) -> lambda_http::Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| s != "$default" && !s.is_empty()) else {
        return request;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return request,
    };
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}
