//! HTTP errors: one enum, mapped to status codes and a JSON body in one place.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mesh_inference::InferenceError;
use serde::Serialize;

/// Every error a route can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is well-formed JSON but a field is wrong (422).
    #[error("{message}")]
    Validation { field: String, message: String },
    /// The body or one input is larger than allowed (413).
    #[error("{message}")]
    TooLarge { field: String, message: String },
    /// The body is not the JSON the route expects (400 / 415 / 422).
    #[error("{message}")]
    BadJson {
        status: StatusCode,
        field: Option<String>,
        message: String,
    },
    /// The model behind the route is not loaded (503).
    #[error("model unavailable: {0}")]
    ModelUnavailable(String),
    /// The model failed on valid input (500).
    #[error("inference failed: {0}")]
    Inference(#[from] InferenceError),
    /// A result could not be stored (500): nothing is acknowledged that is not stored.
    #[error("{0}")]
    Storage(#[from] crate::store::StoreError),
    /// No stored record has this id (404).
    #[error("{message}")]
    NotFound { field: String, message: String },
}

/// JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// Machine-readable kind: validation, too_large, bad_json, unavailable, inference, storage,
    /// not_found, unauthorized, rate_limited, overloaded, timeout, method_not_allowed, http.
    pub error_type: &'static str,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// A 422 naming `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<String>) {
        match self {
            Self::Validation { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                Some(field.clone()),
            ),
            Self::TooLarge { field, .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                Some(field.clone()),
            ),
            Self::BadJson { status, field, .. } => (*status, "bad_json", field.clone()),
            Self::ModelUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            Self::Inference(InferenceError::Input(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation", None)
            }
            Self::Inference(_) => (StatusCode::INTERNAL_SERVER_ERROR, "inference", None),
            Self::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage", None),
            Self::NotFound { field, .. } => {
                (StatusCode::NOT_FOUND, "not_found", Some(field.clone()))
            }
        }
    }
}

impl ApiError {
    /// Whether the request is at fault (a 4xx): retrying it unchanged cannot succeed.
    pub fn is_client_error(&self) -> bool {
        self.parts().0.is_client_error()
    }

    /// The JSON body this error answers with (also what `msp-mesh score` writes for a bad line).
    pub fn body(&self) -> ErrorBody {
        let (_, error_type, field) = self.parts();
        ErrorBody {
            error: self.to_string(),
            error_type,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(self.body())).into_response()
    }
}

impl From<mesh_agents::AgentError> for ApiError {
    fn from(e: mesh_agents::AgentError) -> Self {
        use mesh_agents::AgentError;
        match e {
            AgentError::Invalid { field, message } => Self::Validation { field, message },
            AgentError::Inference(e) => Self::Inference(e),
            AgentError::Knowledge(e) => Self::ModelUnavailable(e.to_string()),
            AgentError::Unavailable(m) => Self::ModelUnavailable(m),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = rejection.body_text();
        let field = field_in_serde_message(&message);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::TooLarge {
                field: "body".into(),
                message,
            };
        }
        Self::BadJson {
            status,
            field,
            message,
        }
    }
}

/// Pulls the field name out of serde's messages ("missing field `inputs`",
/// "inputs: invalid type ..." from the path-aware deserializer).
pub(crate) fn field_in_serde_message(message: &str) -> Option<String> {
    if let Some(start) = message.find("field `") {
        let rest = &message[start + 7..];
        return rest.find('`').map(|end| rest[..end].to_string());
    }
    let body = ["target type: ", "as JSON: "]
        .iter()
        .find_map(|prefix| message.split_once(prefix).map(|(_, rest)| rest))?;
    let (path, _) = body.split_once(": ")?;
    (!path.is_empty() && !path.contains(' ')).then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_in_serde_messages() {
        assert_eq!(
            field_in_serde_message("Failed to deserialize the JSON body into the target type: missing field `inputs` at line 1 column 2"),
            Some("inputs".into())
        );
        assert_eq!(
            field_in_serde_message("Failed to deserialize the JSON body into the target type: normalize: invalid type: string \"x\", expected a boolean at line 1 column 20"),
            Some("normalize".into())
        );
        assert_eq!(
            field_in_serde_message("Failed to parse the request body as JSON: EOF while parsing"),
            None
        );
    }
}
