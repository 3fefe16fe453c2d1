//! The core's one error type, [`MeshError`], and the JSON body every error is reported with.
//! What HTTP status each kind becomes is decided in one place, the serving crate's `http::error`.

use mesh_inference::InferenceError;
use serde::Serialize;

use crate::store::StoreError;

/// Every error of dispatching, running and recording an agent call.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A request field is wrong.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The request or one of its inputs is larger than allowed.
    #[error("{message}")]
    TooLarge { field: String, message: String },
    /// The model or agent behind the call is not loaded, or a service it needs is not set up.
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// The model failed (an input it refuses is the request's fault, anything else is not).
    #[error("inference failed: {0}")]
    Inference(#[from] InferenceError),
    /// A result could not be stored: nothing is acknowledged that is not stored.
    #[error("{0}")]
    Storage(#[from] StoreError),
    /// No stored record has this id.
    #[error("{message}")]
    NotFound { field: String, message: String },
}

/// What kind of error, as the `error_type` of its body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is at fault (a field, its size, an id that names nothing).
    Validation,
    TooLarge,
    NotFound,
    /// The service cannot answer now (a model not loaded).
    Unavailable,
    /// The service failed (inference, storage).
    Inference,
    Storage,
}

impl ErrorKind {
    /// The `error_type` of the JSON body.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::TooLarge => "too_large",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
            Self::Inference => "inference",
            Self::Storage => "storage",
        }
    }

    /// Whether the request is at fault: retrying it unchanged cannot succeed.
    pub fn is_request_fault(self) -> bool {
        matches!(self, Self::Validation | Self::TooLarge | Self::NotFound)
    }
}

/// JSON body of every error answer (HTTP responses, batch output lines, failed jobs).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

impl MeshError {
    /// A wrong field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A field or body over its limit.
    pub fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::TooLarge {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The kind of error and the field at fault, if any.
    pub fn kind(&self) -> (ErrorKind, Option<&str>) {
        match self {
            Self::Invalid { field, .. } => (ErrorKind::Validation, Some(field)),
            Self::TooLarge { field, .. } => (ErrorKind::TooLarge, Some(field)),
            Self::NotFound { field, .. } => (ErrorKind::NotFound, Some(field)),
            Self::Unavailable(_) => (ErrorKind::Unavailable, None),
            Self::Inference(InferenceError::Input(_)) => (ErrorKind::Validation, None),
            Self::Inference(InferenceError::QueueFull { .. }) => (ErrorKind::Unavailable, None),
            Self::Inference(_) => (ErrorKind::Inference, None),
            Self::Storage(StoreError::TooLarge(_)) => (ErrorKind::Unavailable, None),
            Self::Storage(_) => (ErrorKind::Storage, None),
        }
    }

    /// Whether the request is at fault (see [`ErrorKind::is_request_fault`]).
    pub fn is_request_fault(&self) -> bool {
        self.kind().0.is_request_fault()
    }

    /// The JSON body this error is reported with.
    pub fn body(&self) -> ErrorBody {
        let (kind, field) = self.kind();
        ErrorBody {
            error: self.to_string(),
            error_type: kind.error_type(),
            field: field.map(str::to_string),
        }
    }
}

impl From<mesh_agents::AgentError> for MeshError {
    fn from(e: mesh_agents::AgentError) -> Self {
        use mesh_agents::AgentError;
        match e {
            AgentError::Invalid { field, message } => Self::Invalid { field, message },
            AgentError::Inference(e) => Self::Inference(e),
            AgentError::Knowledge(e) => Self::Unavailable(e.to_string()),
            AgentError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

impl From<serde_json::Error> for MeshError {
    fn from(e: serde_json::Error) -> Self {
        Self::Storage(StoreError::Json(e))
    }
}

/// Pulls the field name out of serde's messages ("missing field `inputs`",
/// "inputs: invalid type ..." from the path-aware deserializer).
pub fn field_in_serde_message(message: &str) -> Option<String> {
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

    #[test]
    fn kinds_say_whose_fault_it_is() {
        assert!(MeshError::invalid("text", "empty").is_request_fault());
        assert!(MeshError::Inference(InferenceError::Input("x".into())).is_request_fault());
        assert!(!MeshError::Unavailable("no head".into()).is_request_fault());
        let body = MeshError::too_large("inputs", "too many").body();
        assert_eq!(
            (body.error_type, body.field.as_deref()),
            ("too_large", Some("inputs"))
        );
    }
}
