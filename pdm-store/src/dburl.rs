//! Database URLs: which backend a URL names, where a SQLite file lives, and how to show a URL
//! without its password.

use std::path::PathBuf;

use pdm_core::StoreError;

/// The database backends pdm-store knows, whether or not they were compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// Embedded SQLite file (`sqlite:` URLs), feature `sqlite`.
    Sqlite,
    /// PostgreSQL server (`postgres://` or `postgresql://` URLs), feature `postgres`.
    Postgres,
}

impl BackendKind {
    /// Lowercase name, as used in URLs, logs and feature names.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }

    /// Whether this build of pdm-store includes the backend.
    pub fn is_enabled(self) -> bool {
        match self {
            BackendKind::Sqlite => cfg!(feature = "sqlite"),
            BackendKind::Postgres => cfg!(feature = "postgres"),
        }
    }

    /// Picks the backend from the scheme of `url`.
    ///
    /// Fails with [`StoreError::Invalid`] naming the scheme when it is unknown. Whether the
    /// backend is compiled in is checked separately ([`BackendKind::is_enabled`]), so that the
    /// error can say which feature to turn on.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let Some((scheme, _)) = url.split_once(':') else {
            return Err(StoreError::Invalid(format!(
                "database URL {:?} has no scheme; expected sqlite:PATH, sqlite://PATH or \
                 postgres://HOST/DB",
                redact_url(url)
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(BackendKind::Sqlite),
            "postgres" | "postgresql" => Ok(BackendKind::Postgres),
            other => Err(StoreError::Invalid(format!(
                "unsupported database URL scheme '{other}'; expected 'sqlite' or 'postgres'"
            ))),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// One implementation for every URL pdm logs (database and broker alike) lives in pdm-core.
pub use pdm_core::redact_url;

/// The file a `sqlite:` URL names: `sqlite:data/pdm.db`, `sqlite://data/pdm.db` (both relative
/// to the working directory) or `sqlite:///var/lib/pdm/pdm.db` (absolute).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn sqlite_path(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("sqlite:"))
        .map(|_| &url[7..])
        .ok_or_else(|| StoreError::Invalid(format!("{url:?} is not a sqlite: URL")))?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') {
        return Err(StoreError::Invalid(format!(
            "sqlite URL {url:?} has query parameters; pdm-store sets the connection options \
             itself, give only the file path"
        )));
    }
    if path.is_empty() {
        return Err(StoreError::Invalid(format!(
            "sqlite URL {url:?} names no file; expected e.g. sqlite://data/pdm.db"
        )));
    }
    if path == ":memory:" || path.starts_with("file:") {
        return Err(StoreError::Invalid(format!(
            "sqlite URL {url:?} is not a plain file path; pdm keeps its data in a durable file \
             (use a temporary directory for throwaway databases)"
        )));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_backend_by_scheme() {
        assert_eq!(
            BackendKind::from_url("sqlite://x.db").ok(),
            Some(BackendKind::Sqlite)
        );
        assert_eq!(
            BackendKind::from_url("sqlite:x.db").ok(),
            Some(BackendKind::Sqlite)
        );
        assert_eq!(
            BackendKind::from_url("postgres://h/db").ok(),
            Some(BackendKind::Postgres)
        );
        assert_eq!(
            BackendKind::from_url("postgresql://h/db").ok(),
            Some(BackendKind::Postgres)
        );
        let msg = BackendKind::from_url("mysql://u:pw@h/db")
            .expect_err("unknown")
            .to_string();
        assert!(msg.contains("'mysql'"), "{msg}");
        let msg = BackendKind::from_url("just-a-path")
            .expect_err("no scheme")
            .to_string();
        assert!(msg.contains("no scheme"), "{msg}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://pdm:s3cr3t@db:5432/pdm"),
            "postgres://pdm:***@db:5432/pdm"
        );
        assert_eq!(
            redact_url("postgres://pdm:p@ss@db/pdm?sslmode=require&password=x"),
            "postgres://pdm:***@db/pdm?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://pdm@db/pdm"), "postgres://pdm@db/pdm");
        assert_eq!(redact_url("sqlite://data/pdm.db"), "sqlite://data/pdm.db");
        assert_eq!(redact_url("sqlite:/tmp/a@b:c"), "sqlite:/tmp/a@b:c");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/pdm.db").ok(),
            Some(PathBuf::from("data/pdm.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:data/pdm.db").ok(),
            Some(PathBuf::from("data/pdm.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/pdm/pdm.db").ok(),
            Some(PathBuf::from("/var/lib/pdm/pdm.db"))
        );
        assert_eq!(
            sqlite_path("SQLite:/abs.db").ok(),
            Some(PathBuf::from("/abs.db"))
        );
        for bad in [
            "sqlite://",
            "sqlite::memory:",
            "sqlite://x.db?mode=ro",
            "postgres://h/db",
        ] {
            assert!(sqlite_path(bad).is_err(), "{bad}");
        }
    }
}
