//! The relational repositories, one module per aggregate, each written once for both backends
//! on the portable layer ([`crate::sql`]): portable SQL with `$1`-style placeholders, parameters
//! as [`Arg`](crate::sql::Arg)s, columns read through [`Cols`](crate::sql::Cols), times
//! converted by [`Backend::millis`](crate::sql::Backend::millis).
//!
//! A new table: its migration in `migrations/sqlite` and `migrations/postgres` (discovered by
//! the build script), a trait in `pdm_core::store::<aggregate>` added to `CatalogStore`'s
//! supertraits, a module here with `impl<B: Backend> XxxStore for SqlStore<B>`, and cases in
//! `tests/conformance.rs`, which run on both backends.

pub(crate) mod dead_letters;
pub(crate) mod machines;
pub(crate) mod sensors;

/// How many times the insert-if-absent operations retry when a row they saw vanishes before
/// they read it back (a concurrent delete).
const ENSURE_ATTEMPTS: usize = 3;
