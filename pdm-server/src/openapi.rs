//! The API's OpenAPI 3.1 description, generated from the code, and its interactive docs.
//!
//! Each resource module of [`crate::api`] describes its own operations (`#[utoipa::path]` on
//! the handler, next to its route) and lists them in its `Doc`; [`document`] merges them,
//! prefixes `/api/v1`, and then derives from [`crate::auth::policy`], the one place where access
//! is declared, what every operation needs (its security requirement and the permission in its
//! description) and the error answers every route shares. So the document cannot disagree with
//! the policy, and `every_route_declares_its_access` checks that the document, the policy and
//! the router list the same routes.
//!
//! Served at `/api/v1/openapi.json` ([`Access::Public`]: it describes the API and holds no
//! data) and, as Swagger UI from files compiled into the binary, at `/api/docs`.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::auth::policy::{self, Access};
use crate::state::AppState;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";
/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where the interactive docs are served.
pub const DOCS_PATH: &str = "/api/docs";
/// The name of the security scheme (a bearer token: an access token, API token or ingest
/// token).
pub const BEARER: &str = "bearer";

/// The error body every failure answers (see [`crate::error`]).
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // Only its schema is used: `ApiError` writes the body.
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// The error itself.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// The stable, machine-readable code (`not_found`, `unauthorized`, `malformed`, ...).
    code: String,
    /// What to do about it, for a person.
    message: String,
    /// More, where there is more to say (the `reason` of a 401, the fields of a rejection).
    #[schema(required = false, value_type = Object)]
    details: Option<serde_json::Value>,
}

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> OpenApi {
    let mut doc = <InfoDoc as utoipa::OpenApi>::openapi();
    for part in crate::api::docs() {
        doc.merge(part);
    }
    let mut paths = std::mem::take(&mut doc.paths.paths);
    for (path, item) in &mut paths {
        for (method, op) in operations(item) {
            let access = policy::access(method, path).unwrap_or_else(|| {
                panic!("{method} {path} is described but not in auth::policy::POLICY")
            });
            declare(op, access, path);
        }
    }
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("{PREFIX}{path}"), item))
        .collect();
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.to_owned(),
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An access token from `POST /api/v1/auth/login`, an API token (`pdm_at_...`) \
                     or a machine's ingest token (`pdm_it_...`)",
                ))
                .build(),
        ),
    );
    let error = ComponentsBuilder::new()
        .schema(ErrorBody::name(), ErrorBody::schema())
        .schema(ErrorDetail::name(), ErrorDetail::schema())
        .build();
    components.schemas.extend(error.schemas);
    doc
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "pdm",
        description = "The HTTP API of pdm, the predictive-maintenance platform. Every route \
                       but sign-in, refresh and password reset needs a bearer token; each \
                       operation names the permission it needs.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(openapi_json)
)]
struct InfoDoc;

/// The method name of each operation of `item`, as the policy writes it.
fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("POST", item.post.as_mut()),
        ("PUT", item.put.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("HEAD", item.head.as_mut()),
        ("OPTIONS", item.options.as_mut()),
        ("TRACE", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// Writes what `access` means into `op`: its security requirement, its permission, and the
/// error answers of every route (plus 401/403 where a credential is needed, 404 where the path
/// names something, 413 where there is a body, 429 where sign-in is throttled).
fn declare(op: &mut Operation, access: Access, path: &str) {
    let need = match access {
        Access::Public => {
            op.security = Some(vec![SecurityRequirement::default()]);
            "No credentials needed.".to_owned()
        }
        Access::Signed => {
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
            "Needs any valid credential.".to_owned()
        }
        Access::Need(p) => {
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
            format!("Needs the permission `{}`.", p.as_str())
        }
    };
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{need}"),
        _ => need,
    });
    let mut errors = vec![
        ("400", "The request cannot be read (a malformed body, query or parameter)."),
        ("422", "Well formed, but a field is not acceptable; the message names it."),
        ("500", "A fault of the server; the details are in its log."),
        (
            "503",
            "The server cannot answer now (database unavailable, sign-in busy, timed out); retry later.",
        ),
    ];
    if access != Access::Public {
        errors.push((
            "401",
            "No valid credential: missing, malformed, expired, revoked or wrongly signed \
             (`details.reason` says which).",
        ));
    }
    if matches!(access, Access::Need(_)) {
        errors.push(("403", "The credential does not grant the permission."));
    }
    // A filter naming a machine (`?machine=`) may name none that exists.
    let names_machine = op.parameters.iter().flatten().any(|p| {
        p.name == "machine" && p.parameter_in == utoipa::openapi::path::ParameterIn::Query
    });
    if path.contains('{') || op.request_body.is_some() || names_machine {
        errors.push((
            "404",
            "What the path, body or a filter names does not exist.",
        ));
    }
    if op.request_body.is_some() {
        errors.push(("413", "The body is larger than the limit."));
        errors.push(("415", "The body is not of a supported content type."));
    }
    if path.starts_with("/auth/") {
        errors.push((
            "429",
            "Too many failed attempts; retry after the time given.",
        ));
    }
    for (status, description) in errors {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
            .build(),
    )
}

/// The document as JSON.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This API's OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        serde_json::to_string(document()).unwrap_or_else(|e| {
            // Serialising a tree of strings and maps cannot fail; say so loudly if it ever does.
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            String::from("{}")
        })
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// `/openapi.json`, inside the API (behind the policy, where it is public).
pub fn api_router() -> Router<AppState> {
    Router::new().route(DOCUMENT_PATH, get(openapi_json))
}

/// Swagger UI at [`DOCS_PATH`], reading the document from `/api/v1/openapi.json`; its files are
/// compiled into the binary. Its pages load their own scripts and styles, so they get a policy
/// that allows exactly that (from this origin only; Swagger UI sets inline styles).
pub fn docs_router() -> Router<AppState> {
    let ui = utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH).config(
        utoipa_swagger_ui::Config::new([format!("{PREFIX}{DOCUMENT_PATH}")])
            .try_it_out_enabled(true)
            .persist_authorization(false),
    );
    Router::from(ui).layer(axum::middleware::from_fn(docs_policy))
}

/// The content security policy of the docs pages.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
                            'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
                            font-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                            form-action 'none'";

async fn docs_policy(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    res
}

/// Every operation of the document: (method, path without [`PREFIX`]).
pub fn described() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in &document().paths.paths {
        let path = path.strip_prefix(PREFIX).unwrap_or(path);
        let mut item = item.clone();
        for (method, _) in operations(&mut item) {
            out.push((method.to_owned(), path.to_owned()));
        }
    }
    out
}

/// The path parameters shared by many routes.
pub mod params {
    use pdm_core::{MachineKey, SensorKey};
    use utoipa::IntoParams;

    /// `{machine}`.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct Machine {
        /// The machine's key.
        machine: MachineKey,
    }

    /// `{sensor}`, of a machine.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct Sensor {
        /// The sensor's key within its machine.
        sensor: SensorKey,
    }

    /// `{id}` of the resource.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct Id {
        /// Its id, as the API gave it.
        #[param(example = 1)]
        id: i64,
    }
}

/// `limit` and `cursor` of a list under rule `R` (its bounds, whether it takes a cursor).
pub struct PageParams<R>(std::marker::PhantomData<R>);

impl<R: crate::extract::PageRule> utoipa::IntoParams for PageParams<R> {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::Required;
        let limit = ParameterBuilder::new()
            .name("limit")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(format!(
                "How many items at most: 1 to {}, {} when left out.",
                R::MAX_LIMIT,
                R::DEFAULT_LIMIT
            )))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(R::MAX_LIMIT))
                    .default(Some(R::DEFAULT_LIMIT.into())),
            ))
            .build();
        let mut out = vec![limit];
        if R::CURSORS {
            out.push(
                ParameterBuilder::new()
                    .name("cursor")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(
                        "Where to continue: the id (for machines the key) of the last item of \
                         the previous page.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(R::CURSOR_PATTERN)),
                    ))
                    .build(),
            );
        }
        out
    }
}

/// A time in a body: epoch milliseconds or an RFC 3339 string.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum TimeValue {
    /// Epoch milliseconds.
    Millis(i64),
    /// RFC 3339 (`2026-01-02T03:04:05Z`).
    Rfc3339(String),
}

/// The schema of a time in a query: epoch milliseconds or RFC 3339 ([`crate::time::parse_time`]).
pub fn time_param() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .description(Some("Epoch milliseconds or an RFC 3339 time"))
        .into()
}

/// What [`crate::time::parse_duration_ms`] reads: whole milliseconds, or a number with `ms`,
/// `s`, `m`, `h` or `d`.
pub const DURATION_PATTERN: &str = "^[0-9]{1,12}(ms|s|m|h|d)?$";

/// The schema of a duration in a query (`10s`, `5m`, `1h`).
pub fn duration_param() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(DURATION_PATTERN))
        .examples([serde_json::json!("1m")])
        .build()
}

/// The schema of a string that is one of `values` (a query parameter's closed set).
pub fn enum_of(values: &[&str]) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}
