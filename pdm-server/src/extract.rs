//! Extractors that answer bad requests with the API's JSON errors instead of plain text.

use std::marker::PhantomData;

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use pdm_core::{MachineKey, SensorKey};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::ApiError;

/// A JSON body; a body that is not valid JSON of the expected shape gets a 400 or 422 naming the
/// problem.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                crate::error::ErrorCode::BadRequest,
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = body_bytes(req, state).await?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// What an `If-Match` header asks (RFC 9110 13.1.1, strong comparison).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header.
    Absent,
    /// `*`: any current version.
    Any,
    /// These versions (`"3"`, or a list `"3", "4"`); weak tags (`W/"3"`) never match and are
    /// left out, so a header of weak tags only is an empty list.
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Whether the resource at `version` passes.
    pub fn admits(&self, version: i64) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Versions(v) => v.contains(&version),
        }
    }
}

/// Reads `If-Match`: `Err(())` when it is not `*` or a list of entity tags of versions.
#[allow(clippy::result_unit_err)]
pub fn if_match(headers: &axum::http::HeaderMap) -> Result<IfMatch, ()> {
    let Some(raw) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(IfMatch::Absent);
    };
    let raw = raw.to_str().map_err(|_| ())?.trim();
    if raw == "*" {
        return Ok(IfMatch::Any);
    }
    let mut versions = Vec::new();
    for tag in raw.split(',').map(str::trim) {
        let (weak, tag) = match tag.strip_prefix("W/") {
            Some(t) => (true, t),
            None => (false, tag),
        };
        let v = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .ok_or(())?;
        if !weak {
            versions.push(v);
        }
    }
    Ok(IfMatch::Versions(versions))
}

/// Whether a request's `Content-Type` is JSON (`application/json`, `application/*+json`, any
/// case, parameters ignored): the one rule of [`JsonBody`] and the audit log.
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            ApiError::new(
                e.status(),
                crate::error::ErrorCode::BadRequest,
                e.body_text(),
            )
        })
}

/// A body's JSON object as `T`: unreadable JSON is 400; JSON that is not an object (serde
/// would read a struct from an array too), or an object of the wrong shape, 422 with the path of
/// the bad field leading the message (`reason: invalid type ...`).
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut *de);
    if let (Ok(_), Err(e)) = (&parsed, de.end()) {
        return Err(ApiError::bad_request(format!(
            "Failed to parse the request body as JSON: {e}"
        )));
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match parsed {
        Ok(_) if first != Some(&b'{') => Err(ApiError::unprocessable(
            "Failed to deserialize the JSON body: the body must be a JSON object",
        )),
        Ok(v) => Ok(v),
        Err(e) => {
            let text = format!("Failed to deserialize the JSON body: {e}");
            match e.inner().classify() {
                serde_json::error::Category::Data => Err(ApiError::unprocessable(text)),
                _ => Err(ApiError::bad_request(text)),
            }
        }
    }
}

/// An optional JSON body (`POST .../activate`, `.../cancel`): an empty body is `None`; anything
/// else must be valid JSON of the expected shape, answered like [`JsonBody`] otherwise.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse_object(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<T>>` field of a
/// body: `null` is `Some(None)` (clear it), absent `None` (keep it).
pub fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Validated keys from the path: `Keys<MachineKey>` for `/machines/{machine}`,
/// `Keys<(MachineKey, SensorKey)>` for `/machines/{machine}/sensors/{sensor}`.
///
/// A segment that is not a valid key is answered 422 with the key's reason (`machine key
/// "Pump 1" ...`), the same as a bad key in a body.
#[derive(Debug)]
pub struct Keys<T>(pub T);

/// The path of a machine: `/machines/{machine}`.
pub type MachinePath = Keys<MachineKey>;
/// The path of a sensor: `/machines/{machine}/sensors/{sensor}`.
pub type SensorPath = Keys<(MachineKey, SensorKey)>;

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Keys<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(keys)) => Ok(Keys(keys)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.into_kind() {
                // The key types' own validation (`KeyError`), passed through serde.
                ErrorKind::Message(reason) => Err(ApiError::unprocessable(reason)),
                kind @ (ErrorKind::WrongNumberOfParameters { .. }
                | ErrorKind::UnsupportedType { .. }) => Err(ApiError::internal(format!(
                    "route and extractor disagree: {kind}"
                ))),
                kind => Err(ApiError::bad_request(kind.to_string())),
            },
            Err(other) => Err(ApiError::internal(format!(
                "path parameters unavailable: {}",
                other.body_text()
            ))),
        }
    }
}

/// One path segment as written, not validated as a key (for the ingestion route, where a bad
/// machine key becomes a `bad_key` dead letter rather than a refusal). A segment that is not
/// UTF-8 after percent-decoding is answered 400 with the API's JSON error.
#[derive(Debug)]
pub struct RawSegment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RawSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) => Ok(RawSegment(segment)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::bad_request(e.into_kind().to_string()))
            }
            Err(other) => Err(ApiError::internal(format!(
                "path parameters unavailable: {}",
                other.body_text()
            ))),
        }
    }
}

/// The query of a route that does not page: its parameters `T` (with their
/// `deny_unknown_fields`), or 400 naming what is wrong.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request(format!("Failed to deserialize query string: {e}")))
    }
}

/// The paging rule of one list: its default and largest `limit`, and whether it takes a
/// `cursor`.
pub trait PageRule: Send + Sync + 'static {
    /// The `limit` when the caller gives none.
    const DEFAULT_LIMIT: u32;
    /// The largest `limit` accepted.
    const MAX_LIMIT: u32;
    /// Whether the list continues from a `cursor` (otherwise a `cursor` is refused).
    const CURSORS: bool = false;
    /// What a cursor looks like (for the API description): an id unless the list says.
    const CURSOR_PATTERN: &'static str = CURSOR_PATTERN;
}

/// One page of a list, from the query: `limit` and `cursor`.
///
/// The one rule for `limit`: absent means the list's default; `0` or more than the list's
/// maximum is refused with a 400 naming the range (never clamped: a silently shortened answer
/// reads like the end of the data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// How many items at most.
    pub limit: u32,
    /// Where to continue, as given by the previous page (opaque to the caller).
    pub cursor: Option<String>,
}

impl Page {
    /// Applies `R` to the raw parameters.
    pub fn new<R: PageRule>(limit: Option<u32>, cursor: Option<String>) -> Result<Page, ApiError> {
        let limit = limit.unwrap_or(R::DEFAULT_LIMIT);
        if limit == 0 || limit > R::MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {}",
                R::MAX_LIMIT
            )));
        }
        if cursor.is_some() && !R::CURSORS {
            return Err(ApiError::bad_request(format!(
                "cursor is not supported here: this list answers in one page of at most {} items",
                R::MAX_LIMIT
            )));
        }
        Ok(Page { limit, cursor })
    }

    /// The cursor of a list paged by machine key (the last key of the previous page): 400
    /// naming it when it is not a key.
    pub fn cursor_key(&self) -> Result<Option<pdm_core::MachineKey>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                pdm_core::MachineKey::new(c).map_err(|e| {
                    ApiError::bad_request(format!(
                        "cursor: {e}; pass the key of the last machine of the previous page"
                    ))
                })
            })
            .transpose()
    }

    /// The cursor of a list paged by id (the last id of the previous page): 400 naming it when
    /// it is not one ([`CURSOR_PATTERN`]: up to 18 digits).
    pub fn cursor_id(&self) -> Result<Option<i64>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                let digits = !c.is_empty() && c.len() <= 18 && c.bytes().all(|b| b.is_ascii_digit());
                c.parse::<i64>().ok().filter(|_| digits).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "cursor: {c:?} is not an id; pass the id of the last item of the previous page"
                    ))
                })
            })
            .transpose()
    }
}

/// What a cursor of a list paged by id looks like.
pub const CURSOR_PATTERN: &str = "^[0-9]{1,18}$";

/// A list's query: its own parameters `T` (with their `deny_unknown_fields`) and its [`Page`]
/// under rule `R`.
pub struct PagedQuery<T, R> {
    /// The list's own parameters.
    pub params: T,
    /// `limit` and `cursor`.
    pub page: Page,
    rule: PhantomData<R>,
}

impl<T: std::fmt::Debug, R> std::fmt::Debug for PagedQuery<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagedQuery")
            .field("params", &self.params)
            .field("page", &self.page)
            .finish()
    }
}

impl<S: Send + Sync, T: DeserializeOwned, R: PageRule> FromRequestParts<S> for PagedQuery<T, R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let unreadable = |e: serde_urlencoded::de::Error| {
            ApiError::bad_request(format!("Failed to deserialize query string: {e}"))
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(unreadable)?;
        let (paging, rest): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(k, _)| k == "limit" || k == "cursor");
        let rest = serde_urlencoded::to_string(&rest)
            .map_err(|e| ApiError::internal(format!("re-encoding a query: {e}")))?;
        let params: T = serde_urlencoded::from_str(&rest).map_err(|e| {
            // The list's own parameters do not know the paging ones, taken out above: name
            // them too, so a misspelt `limt` is answered with every parameter it could mean.
            let paging = if R::CURSORS { "limit, cursor" } else { "limit" };
            match e.to_string() {
                m if m.starts_with("unknown field") => ApiError::bad_request(format!(
                    "Failed to deserialize query string: {m}, or {paging}"
                )),
                _ => unreadable(e),
            }
        })?;
        let paging = serde_urlencoded::to_string(&paging)
            .map_err(|e| ApiError::internal(format!("re-encoding a query: {e}")))?;
        let raw: RawPage = serde_urlencoded::from_str(&paging).map_err(unreadable)?;
        Ok(PagedQuery {
            params,
            page: Page::new::<R>(raw.limit, raw.cursor)?,
            rule: PhantomData,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    struct Rule;
    impl PageRule for Rule {
        const DEFAULT_LIMIT: u32 = 10;
        const MAX_LIMIT: u32 = 50;
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        kind: Option<String>,
    }

    async fn extract(uri: &str) -> Result<PagedQuery<Params, Rule>, ApiError> {
        let (mut parts, ()) = Request::get(uri).body(()).expect("request").into_parts();
        PagedQuery::<Params, Rule>::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn one_rule_for_limits() {
        let q = extract("/x").await.expect("defaults");
        assert_eq!((q.page.limit, q.params.kind), (10, None));
        let q = extract("/x?kind=a&limit=50").await.expect("max");
        assert_eq!((q.page.limit, q.params.kind.as_deref()), (50, Some("a")));
        for bad in ["/x?limit=0", "/x?limit=51", "/x?limit=-1", "/x?limit=ten"] {
            let e = extract(bad).await.expect_err(bad);
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        let e = extract("/x?cursor=abc").await.expect_err("no cursors here");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        let e = extract("/x?knid=a").await.expect_err("unknown parameter");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        let shown = format!("{e:?}");
        assert!(shown.contains("kind") && shown.contains("limit"), "{shown}");
        let e = extract("/x?limit=1&limit=2").await.expect_err("twice");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
