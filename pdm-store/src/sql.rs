//! The portable layer under the relational repositories: what a repository needs from a
//! backend, so that each repository is written once and runs on SQLite and PostgreSQL alike.
//!
//! Repositories write portable SQL with `$1`-style placeholders, which both sqlx drivers accept
//! (sqlx-sqlite binds `$N` and `?N` by number; a placeholder may repeat), pass their parameters
//! as [`Arg`]s and read columns through [`Cols`]. The sqlx bounds that generic code over a
//! database would otherwise repeat on every function are written once, on the blanket
//! implementation of [`Portable`]. What still differs between the dialects is behind
//! [`Backend`]: which pool writes and which reads, how a stored time becomes epoch milliseconds,
//! and how a write transaction begins.

use std::future::Future;

use pdm_core::StoreResult;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::cache::SensorIds;
use crate::error::db;

/// A statement parameter, in the few shapes the repositories bind.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// `TEXT NOT NULL`.
    Text(&'a str),
    /// `TEXT`, possibly NULL.
    OptText(Option<&'a str>),
    /// `BIGINT` / `INTEGER`.
    Int(i64),
    /// `BIGINT` / `INTEGER`, possibly NULL.
    OptInt(Option<i64>),
    /// `DOUBLE PRECISION` / `REAL`, possibly NULL.
    OptReal(Option<f64>),
    /// `BOOLEAN` (an integer on SQLite).
    Flag(bool),
    /// `BYTEA` / `BLOB`.
    Bytes(&'a [u8]),
}

/// A list query, newest first: a condition for each filter that is set (so that an index on
/// the filtered column serves it), each with its parameter, numbered in the order added. The
/// SQL and its parameters are built together, so they cannot disagree.
#[derive(Debug)]
pub(crate) struct ListQuery<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> ListQuery<'a> {
    /// `select` is the `SELECT ... FROM ...` without a condition.
    pub(crate) fn new(select: String) -> Self {
        Self {
            sql: select,
            args: Vec::with_capacity(4),
        }
    }

    /// Adds `cond $n` (`cond` is e.g. `"status ="` or `"id <"`) when `arg` is set.
    pub(crate) fn filter(mut self, cond: &str, arg: Option<Arg<'a>>) -> Self {
        if let Some(arg) = arg {
            let glue = if self.sql.contains(" WHERE ") {
                "AND"
            } else {
                "WHERE"
            };
            self.args.push(arg);
            self.sql
                .push_str(&format!(" {glue} {cond} ${}", self.args.len()));
        }
        self
    }

    /// Adds `cond <the time parameter>` (`cond` is e.g. `"at >="`, the column a stored time)
    /// when `ms` is set.
    pub(crate) fn filter_time<B: Backend>(mut self, cond: &str, ms: Option<i64>) -> Self {
        if let Some(ms) = ms {
            let glue = if self.sql.contains(" WHERE ") {
                "AND"
            } else {
                "WHERE"
            };
            self.args.push(Arg::Int(ms));
            let param = format!("${}", self.args.len());
            self.sql
                .push_str(&format!(" {glue} {cond} {}", B::at_millis(&param)));
        }
        self
    }

    /// Adds a condition without a parameter.
    pub(crate) fn condition(mut self, cond: &str) -> Self {
        let glue = if self.sql.contains(" WHERE ") {
            "AND"
        } else {
            "WHERE"
        };
        self.sql.push_str(&format!(" {glue} {cond}"));
        self
    }

    /// Orders by `id` descending, at most `limit` rows: the statement and its parameters.
    pub(crate) fn newest_first(mut self, id: &str, limit: u32) -> (String, Vec<Arg<'a>>) {
        self.args.push(Arg::Int(i64::from(limit)));
        self.sql
            .push_str(&format!(" ORDER BY {id} DESC LIMIT ${}", self.args.len()));
        (self.sql, self.args)
    }
}

/// Typed access to the columns of a result row, by position.
pub trait Cols {
    /// A `TEXT NOT NULL` column.
    fn text(&self, i: usize) -> StoreResult<String>;
    /// A `TEXT` column.
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>>;
    /// An integer column.
    fn int(&self, i: usize) -> StoreResult<i64>;
    /// An integer column that may be NULL.
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>>;
    /// A floating-point column.
    fn real(&self, i: usize) -> StoreResult<f64>;
    /// A floating-point column that may be NULL.
    fn opt_real(&self, i: usize) -> StoreResult<Option<f64>>;
    /// A binary column.
    fn bytes(&self, i: usize) -> StoreResult<Vec<u8>>;
}

impl<R> Cols for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<f64>: Decode<'r, R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, i: usize) -> StoreResult<String> {
        self.try_get(i).map_err(db)
    }
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
        self.try_get(i).map_err(db)
    }
    fn int(&self, i: usize) -> StoreResult<i64> {
        self.try_get(i).map_err(db)
    }
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        self.try_get(i).map_err(db)
    }
    fn real(&self, i: usize) -> StoreResult<f64> {
        self.try_get(i).map_err(db)
    }
    fn opt_real(&self, i: usize) -> StoreResult<Option<f64>> {
        self.try_get(i).map_err(db)
    }
    fn bytes(&self, i: usize) -> StoreResult<Vec<u8>> {
        self.try_get(i).map_err(db)
    }
}

/// The number of rows a statement changed, which sqlx reports per driver.
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// Where a statement runs: a pool (each statement on whichever connection is free, in its own
/// transaction) or one connection, typically inside a transaction (`On::Conn(&mut *tx)`).
pub enum On<'e, DB: Database> {
    /// A pool.
    Pool(&'e Pool<DB>),
    /// One connection.
    Conn(&'e mut DB::Connection),
}

impl<DB: Portable> On<'_, DB> {
    fn reborrow(&mut self) -> On<'_, DB> {
        match self {
            On::Pool(p) => On::Pool(p),
            On::Conn(c) => On::Conn(&mut **c),
        }
    }

    /// The first row of `sql`, if any.
    pub async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<DB::Row>, sqlx::Error> {
        DB::fetch_optional(self.reborrow(), sql, args).await
    }

    /// Every row of `sql`.
    pub async fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<DB::Row>, sqlx::Error> {
        DB::fetch_all(self.reborrow(), sql, args).await
    }

    /// Runs `sql`, returning the number of rows it changed.
    pub async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        DB::execute(self.reborrow(), sql, args).await
    }
}

/// A sqlx database the repositories can run on. Implemented for every database whose driver
/// binds [`Arg`]s and decodes [`Cols`]; the sqlx bounds live on that one implementation.
pub trait Portable: Database<Row: Cols> {
    /// See [`On::fetch_optional`].
    fn fetch_optional<'e>(
        on: On<'e, Self>,
        sql: &'e str,
        args: &'e [Arg<'e>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'e;

    /// See [`On::fetch_all`].
    fn fetch_all<'e>(
        on: On<'e, Self>,
        sql: &'e str,
        args: &'e [Arg<'e>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'e;

    /// See [`On::execute`].
    fn execute<'e>(
        on: On<'e, Self>,
        sql: &'e str,
        args: &'e [Arg<'e>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'e;
}

fn bind<'q, DB>(
    mut q: Query<'q, DB, DB::Arguments<'q>>,
    args: &'q [Arg<'q>],
) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
    for<'a> Option<f64>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> f64: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
{
    for arg in args {
        q = match *arg {
            Arg::Text(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::OptInt(v) => q.bind(v),
            Arg::OptReal(v) => q.bind(v),
            Arg::Flag(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
        };
    }
    q
}

impl<DB> Portable for DB
where
    DB: Database<Row: Cols, QueryResult: RowsAffected>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
    for<'a> Option<f64>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> f64: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
{
    fn fetch_optional<'e>(
        on: On<'e, Self>,
        sql: &'e str,
        args: &'e [Arg<'e>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'e {
        let q = bind(sqlx::query(sql), args);
        async move {
            match on {
                On::Pool(p) => q.fetch_optional(p).await,
                On::Conn(c) => q.fetch_optional(c).await,
            }
        }
    }

    fn fetch_all<'e>(
        on: On<'e, Self>,
        sql: &'e str,
        args: &'e [Arg<'e>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'e {
        let q = bind(sqlx::query(sql), args);
        async move {
            match on {
                On::Pool(p) => q.fetch_all(p).await,
                On::Conn(c) => q.fetch_all(c).await,
            }
        }
    }

    fn execute<'e>(
        on: On<'e, Self>,
        sql: &'e str,
        args: &'e [Arg<'e>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'e {
        let q = bind(sqlx::query(sql), args);
        async move {
            let done = match on {
                On::Pool(p) => q.execute(p).await?,
                On::Conn(c) => q.execute(c).await?,
            };
            Ok(done.rows_affected())
        }
    }
}

/// Ends a write transaction with the result of its statements: commits on success, rolls back
/// (now, not when the connection is next used) on failure, so that the rows it locked are free
/// again when the caller sees the error. (A dropped transaction rolls back only once its
/// connection is back in the pool: until then, on PostgreSQL, a `SKIP LOCKED` claim would skip
/// the rows it still locks.)
pub(crate) async fn end_tx<DB: Database, T>(
    tx: sqlx::Transaction<'static, DB>,
    result: StoreResult<T>,
) -> StoreResult<T> {
    match result {
        Ok(v) => {
            tx.commit().await.map_err(db)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(error = %rollback, "rolling back a failed transaction failed");
            }
            Err(e)
        }
    }
}

/// What differs between the backends where the repositories are concerned.
pub trait Backend: std::fmt::Debug + Send + Sync + 'static {
    /// The sqlx database.
    type Db: Portable;

    /// The pool that writes: on SQLite a single connection (writes queue in memory instead of
    /// failing with SQLITE_BUSY), on PostgreSQL the one pool.
    fn writer(&self) -> &Pool<Self::Db>;

    /// The pool that reads: on SQLite a separate pool that never waits for writes (WAL).
    fn reader(&self) -> &Pool<Self::Db>;

    /// Appended to a `SELECT` of rows the transaction is about to change, so that concurrent
    /// transactions changing them take turns: ` FOR NO KEY UPDATE` on PostgreSQL (which does
    /// not block foreign-key checks of inserts referring to the rows), nothing on SQLite, where
    /// a write transaction (`begin_write`) holds the database's one write lock already.
    const LOCK_ROWS: &'static str;

    /// Appended to the `SELECT` picking a row to claim, so that concurrent claimers take
    /// different rows instead of waiting for each other: ` FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL, nothing on SQLite (one writer at a time).
    const SKIP_LOCKED: &'static str;

    /// Most parameters a multi-row statement of the repositories binds. sqlx binds a numbered
    /// parameter (`$N`) on SQLite by looking its name up, and SQLite answers by a linear scan
    /// of the statement's names, so binding is quadratic in a statement's parameters there: a
    /// few hundred stay cheap, thousands do not (a 2,304-parameter `INSERT` of predictions
    /// spent most of its time in `sqlite3_bind_parameter_name`). PostgreSQL binds by position.
    const BIND_BUDGET: usize;

    /// Writes checked predictions (`contributions`: their JSON, in order) in one statement
    /// where the dialect has a faster way than the portable multi-row `INSERT` (PostgreSQL:
    /// arrays through `UNNEST`, as the readings are written); `None` to take the portable way.
    /// `Some(Err(NotFound))` when a machine or model is unknown.
    fn insert_predictions<'a>(
        &'a self,
        predictions: &'a [pdm_core::Prediction],
        contributions: &'a [String],
    ) -> impl Future<Output = Option<StoreResult<u64>>> + Send + 'a {
        let _ = (predictions, contributions);
        async { None }
    }

    /// SQL yielding the time stored in `column` as epoch milliseconds (`int8`).
    fn millis(column: &str) -> String;

    /// SQL turning the epoch-millisecond parameter `param` (`$1`) into a stored time.
    fn at_millis(param: &str) -> String;

    /// A bound of a query, in epoch milliseconds, clamped to the times the database can store
    /// (stored times can only lie inside).
    fn clamp_millis(ms: i64) -> i64 {
        ms
    }

    /// Begins a write transaction on the writer: `BEGIN IMMEDIATE` on SQLite, which takes the
    /// write lock up front so that another process writing the file makes it wait
    /// (busy_timeout) instead of failing mid-transaction.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

/// A store on a SQL database: the backend's connections and the write path's sensor-id cache.
/// [`SqliteStore`](crate::SqliteStore) and [`PgStore`](crate::PgStore) name its two backends;
/// the relational repositories (`repo`) are implemented once for both.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct SqlStore<B> {
    pub(crate) db: B,
    pub(crate) ids: SensorIds,
}

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(db: B) -> Self {
        Self {
            db,
            ids: SensorIds::default(),
        }
    }

    /// Statements on the writer pool.
    pub(crate) fn writer(&self) -> On<'_, B::Db> {
        On::Pool(self.db.writer())
    }

    /// Statements on the reader pool.
    pub(crate) fn reader(&self) -> On<'_, B::Db> {
        On::Pool(self.db.reader())
    }
}
