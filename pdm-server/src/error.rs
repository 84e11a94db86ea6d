//! The one error type of the HTTP API.
//!
//! Every error is a JSON body `{"error": {"code": "...", "message": "...", "details": ...}}`
//! (`details` only where there is more to say) with a status that
//! says who must act: 4xx the caller (the message names the problem), 5xx the operator (the
//! details go to the log, never to the caller).
//!
//! 5xx answers are logged in one place, [`ApiError`]'s `IntoResponse`, inside the request's
//! span (so with its request id and route); handlers never log them themselves.

use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pdm_core::{RejectKind, StoreError};
use serde::{Serialize, Serializer};
use serde_json::json;

/// The stable, machine-readable `error.code` of an answer. Serialised as the snake-case
/// strings of the wire format (`"not_found"`, `"bad_key"`, ...), which never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_request`: the request cannot be read (body, query, parameter).
    BadRequest,
    /// `unauthorized`: no valid credentials (401).
    Unauthorized,
    /// `forbidden`: the credentials do not grant this (403).
    Forbidden,
    /// `not_found`: no such thing, or no such route.
    NotFound,
    /// `method_not_allowed`: the route has no such method (405; `Allow` lists its methods).
    MethodNotAllowed,
    /// `conflict`: it clashes with what exists (409).
    Conflict,
    /// `precondition_failed`: the resource changed since the caller read it (412).
    PreconditionFailed,
    /// `precondition_required`: a change needs `If-Match` with the version read (428).
    PreconditionRequired,
    /// `unprocessable`: well formed but not acceptable.
    Unprocessable,
    /// `too_large`: the body (an upload) is over its limit (413).
    TooLarge,
    /// `unsupported_type`: the body (an upload) is of a type not accepted (415).
    UnsupportedType,
    /// `unavailable`: the service cannot answer now; retry later.
    Unavailable,
    /// `timeout`: the request did not complete in time; retry later.
    Timeout,
    /// `internal`: a fault of the server (details only in the log).
    Internal,
    /// A telemetry payload refused whole: the rejection kind (`malformed`, `oversized`, ...).
    Rejected(RejectKind),
}

impl ErrorCode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition_failed",
            Self::PreconditionRequired => "precondition_required",
            Self::Unprocessable => "unprocessable",
            Self::TooLarge => "too_large",
            Self::UnsupportedType => "unsupported_type",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::Rejected(kind) => kind.as_str(),
        }
    }

    /// The status this code is answered with unless a handler says otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Rejected(RejectKind::Oversized) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Rejected(RejectKind::Malformed) => StatusCode::BAD_REQUEST,
            Self::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    details: Option<serde_json::Value>,
    /// What the operator needs to know (logged with a 5xx, never answered).
    internal: Option<String>,
}

impl ApiError {
    /// An error with an explicit status, stable code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            internal: None,
        }
    }

    /// An error answered with its code's usual status.
    pub fn of(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code.status(), code, message)
    }

    /// Attaches structured details (returned as `error.details`).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Attaches the cause for the log (never answered); logged only with a 5xx.
    pub fn with_internal(mut self, cause: impl fmt::Display) -> Self {
        self.internal = Some(cause.to_string());
        self
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::BadRequest, message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Unauthorized, message)
    }

    /// 403: the credentials do not grant this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Forbidden, message)
    }

    /// 404: the named thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::NotFound, message)
    }

    /// 409: it clashes with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Conflict, message)
    }

    /// 412: the resource changed since the caller read it.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::PreconditionFailed, message)
    }

    /// 422: the request is well formed but its content is not acceptable.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Unprocessable, message)
    }

    /// 503: the service cannot answer now; retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Unavailable, message)
    }

    /// 500: a fault of the server; `cause` goes to the log, the caller reads "internal error".
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::of(ErrorCode::Internal, "internal error").with_internal(cause)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(msg) => Self::conflict(msg),
            StoreError::Invalid(msg) => Self::unprocessable(msg),
            StoreError::Stale(msg) => Self::precondition_failed(msg),
            StoreError::Unavailable(source) => {
                Self::unavailable("the database is unavailable; retry later")
                    .with_internal(format!("database unavailable: {source}"))
            }
            other => Self::internal(format!("database error: {other}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            let cause = self.internal.as_deref().unwrap_or(&self.message);
            if self.status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(status = self.status.as_u16(), code = %self.code, error = %cause, "request failed");
            } else {
                tracing::warn!(status = self.status.as_u16(), code = %self.code, error = %cause, "request failed");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_the_wire_strings() {
        for (code, wire) in [
            (ErrorCode::BadRequest, "bad_request"),
            (ErrorCode::NotFound, "not_found"),
            (ErrorCode::Conflict, "conflict"),
            (ErrorCode::Unprocessable, "unprocessable"),
            (ErrorCode::Unavailable, "unavailable"),
            (ErrorCode::Internal, "internal"),
            (ErrorCode::Rejected(RejectKind::BadKey), "bad_key"),
            (ErrorCode::Rejected(RejectKind::Oversized), "oversized"),
        ] {
            assert_eq!(serde_json::to_value(code).ok(), Some(json!(wire)));
        }
        assert_eq!(ErrorCode::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ErrorCode::Forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ErrorCode::PreconditionFailed.status(),
            StatusCode::PRECONDITION_FAILED
        );
    }

    #[tokio::test]
    async fn internals_never_reach_the_caller() {
        let resp = ApiError::internal("password=hunter2 in the connection string").into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            body,
            json!({ "error": { "code": "internal", "message": "internal error" } })
        );
    }
}
