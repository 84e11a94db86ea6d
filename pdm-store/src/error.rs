//! Mapping of sqlx errors onto [`StoreError`]: transient failures become
//! [`StoreError::Unavailable`] so that the engine retries them; everything else is
//! [`StoreError::Backend`].

use std::fmt;

use pdm_core::StoreError;
use sqlx::error::ErrorKind;

/// A sqlx error with a sentence saying what was being done, so that the message names the
/// database (with its password redacted) or the operation.
#[derive(Debug)]
pub(crate) struct Context {
    what: String,
    source: sqlx::Error,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Maps `e` without context.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    if is_transient(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Maps `e`, prefixing its message with `what`.
pub(crate) fn db_ctx(what: impl Into<String>, e: sqlx::Error) -> StoreError {
    let transient = is_transient(&e);
    let err = Box::new(Context {
        what: what.into(),
        source: e,
    });
    if transient {
        StoreError::Unavailable(err)
    } else {
        StoreError::Backend(err)
    }
}

/// True when `e` is a unique or primary-key violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| matches!(d.kind(), ErrorKind::UniqueViolation))
}

/// True when `e` is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| matches!(d.kind(), ErrorKind::ForeignKeyViolation))
}

/// Whether retrying later may succeed: the connection or pool failed, or the database refused
/// for a passing reason (locked, shutting down, out of connections, serialization conflict).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => {
            let Some(code) = d.code() else { return false };
            #[cfg(feature = "sqlite")]
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                return sqlite_transient(&code);
            }
            #[cfg(feature = "postgres")]
            if d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                return postgres_transient(&code);
            }
            false
        }
        _ => false,
    }
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
fn sqlite_transient(code: &str) -> bool {
    // SQLite reports its extended result code in decimal; the primary code is the low byte.
    code.parse::<i32>().is_ok_and(|extended| {
        matches!(
            extended & 0xff,
            5  // SQLITE_BUSY: another process holds the write lock past busy_timeout
            | 6  // SQLITE_LOCKED
            | 10 // SQLITE_IOERR
            | 13 // SQLITE_FULL: disk full, may clear
            | 14 // SQLITE_CANTOPEN
        )
    })
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn postgres_transient(code: &str) -> bool {
    // SQLSTATEs of connection exceptions, insufficient resources, operator intervention
    // (shutdown, restart), serialization failure, deadlock, lock timeout, and a read-only
    // standby after a failover.
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "40001" | "40P01" | "55P03" | "25006")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        assert!(sqlite_transient("5"));
        assert!(sqlite_transient("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(!sqlite_transient("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(postgres_transient("08006"));
        assert!(postgres_transient("57P01"));
        assert!(postgres_transient("40001"));
        assert!(!postgres_transient("23505"));
        assert!(!postgres_transient("42P01"));
    }

    #[test]
    fn pool_timeouts_are_transient() {
        assert!(db(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!db(sqlx::Error::RowNotFound).is_transient());
        let e = db_ctx(
            "connecting to postgres://u:***@h/db",
            sqlx::Error::PoolTimedOut,
        );
        assert!(e.is_transient());
        assert!(e.to_string().contains("postgres://u:***@h/db"), "{e}");
    }
}
