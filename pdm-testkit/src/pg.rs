//! Fresh PostgreSQL databases for tests: each test creates its own on the server of
//! `PDM_TEST_DATABASE_URL`, so tests run in parallel, and drops them at the end.

use std::io::Write as _;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use sqlx::Connection as _;

/// The databases one test created on a server, to drop at the end.
#[derive(Debug)]
pub struct TestDatabases {
    admin_url: String,
    created: Mutex<Vec<String>>,
}

impl TestDatabases {
    /// Databases on the server of `admin_url` (a database URL whose role may `CREATE
    /// DATABASE`), typically [`crate::database_url`].
    pub fn new(admin_url: impl Into<String>) -> Self {
        Self {
            admin_url: admin_url.into(),
            created: Mutex::default(),
        }
    }

    /// Databases on the server of `PDM_TEST_DATABASE_URL`, or `None` when the test skips (see
    /// [`crate::service_url`]).
    pub fn from_env() -> Option<Self> {
        crate::database_url().map(Self::new)
    }

    /// The URL the databases are created from.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Creates an empty database named `prefix_<unique>` and returns its URL. It uses a locale
    /// collation (ICU, where the server has it) that orders punctuation unlike bytes, so that
    /// tests see any ordering that forgets bytewise key order.
    pub async fn create(&self, prefix: &str) -> Result<String> {
        let name = crate::unique_ident(prefix);
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .with_context(|| format!("connecting to {}", crate::DATABASE_URL_VAR))?;
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        );
        if sqlx::query(&icu).execute(&mut admin).await.is_err() {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .with_context(|| format!("creating database {name}"))?;
        }
        admin.close().await?;
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        Ok(with_database(&self.admin_url, &name))
    }

    /// Drops every database [`create`](Self::create) made (closing their remaining
    /// connections); says so on stderr when one cannot be dropped.
    pub async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await else {
            return;
        };
        for name in names {
            let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
            if let Err(e) = dropped {
                let _ = writeln!(
                    std::io::stderr(),
                    "could not drop test database {name}: {e}"
                );
            }
        }
        let _ = admin.close().await;
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{name}{query}", &base[..host_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
