//! The relational repositories, one module per aggregate, each written once for both backends
//! on the portable layer ([`crate::sql`]): portable SQL with `$1`-style placeholders, parameters
//! as [`Arg`](crate::sql::Arg)s, columns read through [`Cols`](crate::sql::Cols), times
//! converted by [`Backend::millis`](crate::sql::Backend::millis).
//!
//! A new table: the "new table" checklist of `CONTRIBUTING.md` (migrations, a trait in
//! `pdm_core::store::<aggregate>` added to `CatalogStore`'s supertraits, a module here with
//! `impl<B: Backend> XxxStore for SqlStore<B>`, cases in `tests/conformance.rs`, which run on
//! both backends).

pub(crate) mod access;
pub(crate) mod alarms;
pub(crate) mod attachments;
pub(crate) mod audit;
pub(crate) mod comments;
pub(crate) mod dead_letters;
pub(crate) mod jobs;
pub(crate) mod machines;
pub(crate) mod models;
pub(crate) mod overview;
pub(crate) mod predictions;
pub(crate) mod sensors;
pub(crate) mod settings;
pub(crate) mod webhooks;
pub(crate) mod workorders;

/// How many times the insert-if-absent operations retry when a row they saw vanishes before
/// they read it back (a concurrent delete).
const ENSURE_ATTEMPTS: usize = 3;
