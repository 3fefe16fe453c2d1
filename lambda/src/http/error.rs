//! HTTP errors: every error a route or a protection layer answers with, mapped to its status,
//! headers and JSON body in this one place ([`ApiError`]'s [`IntoResponse`]).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::Query;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mesh_core::error::{field_in_serde_message, ErrorBody, ErrorKind, MeshError};

/// Every error an HTTP answer can carry.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An error of the core (validation 422, too large 413, not found 404, unavailable 503,
    /// inference or storage 500).
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// The body is not the JSON the route expects (400, 415 or 422).
    #[error("{message}")]
    BadJson {
        status: StatusCode,
        field: Option<String>,
        message: String,
    },
    /// No valid API key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The client's rate limit is reached (429 with `retry-after`).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The in-flight bound of model work is reached (429 with `retry-after`).
    #[error("{0}")]
    Overloaded(String),
    /// The request ran past its deadline (504).
    #[error("{0}")]
    Timeout(String),
    /// Another try of the same `Idempotency-Key` (the `field`) is still running (409 with
    /// `retry-after`).
    #[error("{message}")]
    InProgress {
        field: &'static str,
        message: String,
    },
    /// An error response of the router itself (404 no route, 405, 413 body limit, others),
    /// given a JSON body.
    #[error("{message}")]
    Http {
        status: StatusCode,
        error_type: &'static str,
        message: String,
    },
}

impl ApiError {
    /// A 422 naming `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Mesh(MeshError::invalid(field, message))
    }

    /// A 413 naming `field`.
    pub fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Mesh(MeshError::too_large(field, message))
    }

    /// A 503: what the route needs is not there.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Mesh(MeshError::Unavailable(message.into()))
    }

    /// A 404 naming the `field` whose value names nothing.
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Mesh(MeshError::NotFound {
            field: field.into(),
            message: message.into(),
        })
    }

    /// The status, `error_type`, field and `retry-after` seconds of this error.
    fn parts(&self) -> (StatusCode, &'static str, Option<String>, Option<u64>) {
        match self {
            Self::Mesh(e) => {
                let (kind, field) = e.kind();
                let status = match kind {
                    ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Inference | ErrorKind::Storage => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, kind.error_type(), field.map(str::to_string), None)
            }
            Self::BadJson { status, field, .. } => (*status, "bad_json", field.clone(), None),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None, None),
            Self::RateLimited {
                retry_after_secs, ..
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                None,
                Some(*retry_after_secs),
            ),
            Self::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, "overloaded", None, Some(1)),
            Self::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout", None, None),
            Self::InProgress { field, .. } => (
                StatusCode::CONFLICT,
                "in_progress",
                Some(field.to_string()),
                Some(1),
            ),
            Self::Http {
                status, error_type, ..
            } => (*status, error_type, None, None),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// Whether the request is at fault (a 4xx): retrying it unchanged cannot succeed.
    pub fn is_client_error(&self) -> bool {
        self.parts().0.is_client_error()
    }

    /// The JSON body this error answers with.
    pub fn body(&self) -> ErrorBody {
        let (_, error_type, field, _) = self.parts();
        ErrorBody {
            error: self.to_string(),
            error_type,
            field,
        }
    }
}

/// A query string as `T`, or the 422 naming `query` with what was wrong with it.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::validation("query", e.body_text()))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _, retry_after) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if let Some(seconds) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<mesh_agents::AgentError> for ApiError {
    fn from(e: mesh_agents::AgentError) -> Self {
        Self::Mesh(e.into())
    }
}

impl From<mesh_inference::InferenceError> for ApiError {
    fn from(e: mesh_inference::InferenceError) -> Self {
        Self::Mesh(e.into())
    }
}

impl From<mesh_core::store::StoreError> for ApiError {
    fn from(e: mesh_core::store::StoreError) -> Self {
        Self::Mesh(e.into())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = rejection.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::too_large("body", message);
        }
        Self::BadJson {
            status,
            field: field_in_serde_message(&message),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_covers_every_status() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Unauthorized("no key".into()), 401, "unauthorized"),
            (ApiError::too_large("body", "big"), 413, "too_large"),
            (
                ApiError::BadJson {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    field: None,
                    message: "json please".into(),
                },
                415,
                "bad_json",
            ),
            (ApiError::validation("text", "empty"), 422, "validation"),
            (
                ApiError::RateLimited {
                    message: "slow down".into(),
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
            ),
            (ApiError::Overloaded("busy".into()), 429, "overloaded"),
            (ApiError::unavailable("no head"), 503, "unavailable"),
            (ApiError::Timeout("too long".into()), 504, "timeout"),
        ];
        for (error, status, error_type) in cases {
            let body = error.body();
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{error_type}");
            assert_eq!(body.error_type, error_type);
            if status == 429 {
                assert!(response.headers().contains_key(header::RETRY_AFTER));
            }
        }
    }
}
