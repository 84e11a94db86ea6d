//! The one error type of the HTTP API.
//!
//! Every error is a JSON body `{"error": {"code": "...", "message": "...", "details": ...}}`
//! (`details` only where there is more to say) with a status that
//! says who must act: 4xx the caller (the message names the problem), 5xx the operator (the
//! details go to the log, never to the caller).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pdm_core::StoreError;
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with an explicit status, stable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Attaches structured details (returned as `error.details`).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: the named thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: the request is well formed but its content is not acceptable.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }

    /// 503: the service cannot answer now; retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(msg) => Self::new(StatusCode::CONFLICT, "conflict", msg),
            StoreError::Invalid(msg) => Self::unprocessable(msg),
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                Self::unavailable("the database is unavailable; retry later")
            }
            other => {
                tracing::error!(error = %other, "database error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let body = json!({ "error": error });
        (self.status, Json(body)).into_response()
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
