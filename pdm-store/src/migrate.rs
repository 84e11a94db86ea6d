//! Embedded schema migrations.
//!
//! Each backend has an ordered list of SQL files compiled into the binary. A migration runs in
//! its own transaction together with the row recording it in `pdm_migrations`, so it is applied
//! entirely or not at all, and rerunning applies only what is missing.

/// One schema migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version, increasing from 1 without gaps.
    pub version: i64,
    /// Short name, recorded with the version.
    pub name: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

/// What a migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Migrations applied by this run, in order; empty when the schema was current.
    pub applied: Vec<(i64, &'static str)>,
    /// Schema version after the run.
    pub version: i64,
}

/// Migrations of the SQLite backend, in order.
#[cfg(feature = "sqlite")]
pub const SQLITE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../migrations/sqlite/0001_init.sql"),
}];

/// Migrations of the PostgreSQL backend, in order.
#[cfg(feature = "postgres")]
pub const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "readings_key_share_per_batch",
        sql: include_str!("../migrations/postgres/0002_readings_key_share_per_batch.sql"),
    },
];

/// Highest version of `migrations`.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

/// The error when the schema is behind and migrating at connect is off.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn behind(current: i64, needed: i64) -> pdm_core::StoreError {
    pdm_core::StoreError::Invalid(format!(
        "database schema is at version {current} but this build needs version {needed}; run \
         the migrate command (or connect with migrations enabled)"
    ))
}

/// Logs a schema newer than this build knows: an older binary next to a newer one during a
/// rolling upgrade. Migrations only add, so it keeps working, but it should be said.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn warn_if_ahead(current: i64, known: i64) {
    if current > known {
        tracing::warn!(
            schema_version = current,
            known_version = known,
            "database schema is newer than this build of pdm-store"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(list: &[Migration]) {
        for (i, m) in list.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions increase without gaps");
            assert!(!m.sql.trim().is_empty());
        }
    }

    #[test]
    fn versions_are_dense() {
        #[cfg(feature = "sqlite")]
        check(SQLITE_MIGRATIONS);
        #[cfg(feature = "postgres")]
        check(POSTGRES_MIGRATIONS);
        check(&[]);
    }
}
