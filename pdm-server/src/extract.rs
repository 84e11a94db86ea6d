//! Extractors that answer bad requests with the API's JSON errors instead of plain text.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::Json;
use pdm_core::{MachineKey, SensorKey};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; a body that is not valid JSON of the expected shape gets a 400 or 422 naming the
/// problem.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => {
                let status = rejection.status();
                Err(ApiError::new(status, "bad_request", rejection.body_text()))
            }
        }
    }
}

/// Query parameters; unreadable ones get a 400 naming the problem.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(QueryParams(v)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Parses a machine key from a path segment (422 with the reason when it is not a slug).
pub fn machine_key(s: &str) -> Result<MachineKey, ApiError> {
    MachineKey::new(s).map_err(|e| ApiError::unprocessable(e.to_string()))
}

/// Parses a sensor key from a path segment.
pub fn sensor_key(s: &str) -> Result<SensorKey, ApiError> {
    SensorKey::new(s).map_err(|e| ApiError::unprocessable(e.to_string()))
}
