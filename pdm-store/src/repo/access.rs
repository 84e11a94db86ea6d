//! [`AccessStore`] on both backends.
//!
//! Every single-use secret is spent by a conditional `UPDATE ... WHERE spent_at IS NULL` whose
//! row count decides between concurrent presentations: on PostgreSQL the second `UPDATE` waits
//! for the first transaction and then finds the row spent; on SQLite writers take turns. A
//! refresh token that loses that race is a reuse, and revokes its session (RFC 9700 §4.14.2).
//! Emails are lowercased in Rust before they reach SQL, so the unique constraint on `email`
//! ignores case on both backends whatever their collation. Permissions are stored as the JSON
//! array of their names; a name this build does not know is reported as a backend error.

use async_trait::async_trait;
use pdm_core::store::{
    AccessStore, ApiToken, ApiTokenId, NewApiToken, NewSession, NewUser, Permission, Role,
    Rotation, Session, SessionId, TokenHash, TokenScope, User, UserId, UserUpdate,
};
use pdm_core::{MachineKey, StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::{db, is_foreign_key_violation, is_unique_violation};
use crate::sql::{end_tx, Arg, Backend, Cols, On, SqlStore};

/// How long a recorded use of an API token stands before the next use is recorded.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// Why a session ended when a spent refresh token was presented again.
const REUSED: &str = "refresh token reused";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid access data in database: {what}").into())
}

fn no_row() -> StoreError {
    StoreError::Backend("INSERT ... RETURNING returned no row".into())
}

fn user_not_found(id: UserId) -> StoreError {
    StoreError::NotFound(format!("user {id}"))
}

fn role_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("role '{name}'"))
}

fn session_not_found(id: SessionId) -> StoreError {
    StoreError::NotFound(format!("session {id}"))
}

fn token_not_found(id: ApiTokenId) -> StoreError {
    StoreError::NotFound(format!("API token {id}"))
}

/// A bound of a comparison, clamped to the stored range (stored times can only lie inside).
fn bound<B: Backend>(t: Timestamp) -> i64 {
    B::clamp_millis(t.as_millis())
}

/// The rule of [`Role::name`]: lowercase letters, digits, `-` and `_`, 1 to 64 characters.
fn check_role_name(name: &str) -> StoreResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "role name '{name}' is not 1 to 64 characters of lowercase letters, digits, '-' \
             and '_'"
        )))
    }
}

/// The stored form of a role's permissions: the JSON array of their names, sorted, no repeats.
fn permissions_json(permissions: &[Permission]) -> StoreResult<String> {
    let mut sorted = permissions.to_vec();
    sorted.sort();
    sorted.dedup();
    serde_json::to_string(&sorted).map_err(|e| StoreError::Invalid(format!("permissions: {e}")))
}

fn permissions(json: &str) -> StoreResult<Vec<Permission>> {
    let names: Vec<String> = serde_json::from_str(json).map_err(corrupt)?;
    let mut out = names
        .iter()
        .map(|n| n.parse::<Permission>().map_err(corrupt))
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

const ROLE_COLUMNS: &str =
    "name, description, permissions, CAST(CASE WHEN builtin THEN 1 ELSE 0 END AS BIGINT)";

fn role(row: &impl Cols) -> StoreResult<Role> {
    Ok(Role {
        name: row.text(0)?,
        description: row.text(1)?,
        permissions: permissions(&row.text(2)?)?,
        builtin: row.int(3)? != 0,
    })
}

/// The columns [`user`] decodes, of `users`.
fn user_columns<B: Backend>() -> String {
    format!(
        "id, email, name, role, CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT), \
         password_hash, {}, {}, {}",
        B::millis("created_at"),
        B::millis("updated_at"),
        B::millis("last_sign_in"),
    )
}

fn user(row: &impl Cols) -> StoreResult<User> {
    Ok(User {
        id: UserId(row.int(0)?),
        email: row.text(1)?,
        name: row.text(2)?,
        role: row.text(3)?,
        active: row.int(4)? != 0,
        password_hash: row.text(5)?,
        created_at: Timestamp::from_millis(row.int(6)?),
        updated_at: Timestamp::from_millis(row.int(7)?),
        last_sign_in: row.opt_int(8)?.map(Timestamp::from_millis),
    })
}

/// The columns [`session`] decodes, of `sessions`.
fn session_columns<B: Backend>() -> String {
    format!(
        "id, user_id, {}, {}, {}, {}, revoked_reason, user_agent, client_addr",
        B::millis("created_at"),
        B::millis("last_used_at"),
        B::millis("expires_at"),
        B::millis("revoked_at"),
    )
}

fn session(row: &impl Cols) -> StoreResult<Session> {
    Ok(Session {
        id: SessionId(row.int(0)?),
        user: UserId(row.int(1)?),
        created_at: Timestamp::from_millis(row.int(2)?),
        last_used_at: Timestamp::from_millis(row.int(3)?),
        expires_at: Timestamp::from_millis(row.int(4)?),
        revoked_at: row.opt_int(5)?.map(Timestamp::from_millis),
        revoked_reason: row.opt_text(6)?,
        user_agent: row.opt_text(7)?,
        client_addr: row.opt_text(8)?,
    })
}

/// The columns [`api_token`] decodes, of [`TOKENS_FROM`].
fn token_columns<B: Backend>() -> String {
    format!(
        "t.id, t.name, t.role, m.key, t.prefix, t.created_by, {}, {}, {}, {}",
        B::millis("t.created_at"),
        B::millis("t.expires_at"),
        B::millis("t.last_used_at"),
        B::millis("t.revoked_at"),
    )
}

const TOKENS_FROM: &str = "api_tokens t LEFT JOIN machines m ON m.id = t.machine_id";

fn api_token(row: &impl Cols) -> StoreResult<ApiToken> {
    let id = ApiTokenId(row.int(0)?);
    let scope = match (row.opt_text(2)?, row.opt_text(3)?) {
        (Some(role), None) => TokenScope::Api { role },
        (None, Some(machine)) => TokenScope::Ingest {
            machine: common::key(machine)?,
        },
        _ => {
            return Err(corrupt(format!(
                "token {id} has both or neither role and machine"
            )))
        }
    };
    Ok(ApiToken {
        id,
        name: row.text(1)?,
        scope,
        prefix: row.text(4)?,
        created_by: row.opt_int(5)?.map(UserId),
        created_at: Timestamp::from_millis(row.int(6)?),
        expires_at: row.opt_int(7)?.map(Timestamp::from_millis),
        last_used_at: row.opt_int(8)?.map(Timestamp::from_millis),
        revoked_at: row.opt_int(9)?.map(Timestamp::from_millis),
    })
}

async fn read_user<B: Backend>(on: &mut On<'_, B::Db>, id: UserId) -> StoreResult<User> {
    let sql = format!("SELECT {} FROM users WHERE id = $1", user_columns::<B>());
    let row = on
        .fetch_optional(&sql, &[Arg::Int(id.0)])
        .await
        .map_err(db)?
        .ok_or_else(|| user_not_found(id))?;
    user(&row)
}

async fn read_session<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: SessionId,
    lock: &str,
) -> StoreResult<Session> {
    let sql = format!(
        "SELECT {} FROM sessions WHERE id = $1{lock}",
        session_columns::<B>()
    );
    let row = on
        .fetch_optional(&sql, &[Arg::Int(id.0)])
        .await
        .map_err(db)?
        .ok_or_else(|| session_not_found(id))?;
    session(&row)
}

async fn read_token<B: Backend>(
    on: &mut On<'_, B::Db>,
    cond: &str,
    arg: Arg<'_>,
) -> StoreResult<Option<ApiToken>> {
    let sql = format!(
        "SELECT {} FROM {TOKENS_FROM} WHERE {cond} $1",
        token_columns::<B>()
    );
    let row = on.fetch_optional(&sql, &[arg]).await.map_err(db)?;
    row.as_ref().map(api_token).transpose()
}

async fn exists<B: Backend>(on: &mut On<'_, B::Db>, sql: &str, arg: Arg<'_>) -> StoreResult<bool> {
    Ok(on.fetch_optional(sql, &[arg]).await.map_err(db)?.is_some())
}

/// Ends session `id` at `at` (`$2`) with `reason` unless it ended already; whether it did.
async fn end_session<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: SessionId,
    reason: &str,
    at: i64,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE sessions SET revoked_at = {at}, revoked_reason = $3 \
         WHERE id = $1 AND revoked_at IS NULL AND expires_at > {at}",
        at = B::at_millis("$2")
    );
    let n = on
        .execute(&sql, &[Arg::Int(id.0), Arg::Int(at), Arg::Text(reason)])
        .await
        .map_err(db)?;
    Ok(n > 0)
}

/// Revokes the session of a spent refresh token presented again (unless it was revoked
/// already); the session after it.
async fn reused<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: SessionId,
    at: i64,
) -> StoreResult<Rotation> {
    let sql = format!(
        "UPDATE sessions SET revoked_at = {}, revoked_reason = $3 \
         WHERE id = $1 AND revoked_at IS NULL",
        B::at_millis("$2")
    );
    on.execute(&sql, &[Arg::Int(id.0), Arg::Int(at), Arg::Text(REUSED)])
        .await
        .map_err(db)?;
    Ok(Rotation::Reused {
        session: read_session::<B>(on, id, "").await?,
    })
}

impl<B: Backend> SqlStore<B> {
    async fn rotate_on(
        on: &mut On<'_, B::Db>,
        presented: &TokenHash,
        next: &TokenHash,
        next_expires_at: i64,
        at: i64,
    ) -> StoreResult<Rotation> {
        // Concurrent presentations of one token take turns from here (PostgreSQL row lock;
        // SQLite's write lock): each reads the token as the one before left it.
        let sql = format!(
            "SELECT session_id, {}, {} FROM refresh_tokens WHERE hash = $1{}",
            B::millis("expires_at"),
            B::millis("spent_at"),
            B::LOCK_ROWS,
        );
        let Some(row) = on
            .fetch_optional(&sql, &[Arg::Text(&presented.0)])
            .await
            .map_err(db)?
        else {
            return Ok(Rotation::Unknown);
        };
        let id = SessionId(row.int(0)?);
        let expires_at = row.int(1)?;
        if row.opt_int(2)?.is_some() {
            return reused::<B>(on, id, at).await;
        }
        // Locked too, always after the token (no deadlock): a concurrent revocation waits for
        // this rotation, then ends the session with the successor stored here in it.
        let s = read_session::<B>(on, id, B::LOCK_ROWS).await?;
        if expires_at <= at || s.revoked_at.is_some() || s.expires_at.as_millis() <= at {
            return Ok(Rotation::Expired);
        }
        let spend = format!(
            "UPDATE refresh_tokens SET spent_at = {} WHERE hash = $1 AND spent_at IS NULL",
            B::at_millis("$2")
        );
        let spent = on
            .execute(&spend, &[Arg::Text(&presented.0), Arg::Int(at)])
            .await
            .map_err(db)?;
        if spent == 0 {
            // Spent since the read (which the lock rules out; the count decides regardless):
            // this presentation is the second use.
            return reused::<B>(on, id, at).await;
        }
        let insert = format!(
            "INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES ($1, $2, {})",
            B::at_millis("$3")
        );
        on.execute(
            &insert,
            &[
                Arg::Text(&next.0),
                Arg::Int(id.0),
                Arg::Int(next_expires_at),
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("the next refresh token's hash exists already".into())
            } else {
                db(e)
            }
        })?;
        let touch = format!(
            "UPDATE sessions SET last_used_at = {} WHERE id = $1",
            B::at_millis("$2")
        );
        on.execute(&touch, &[Arg::Int(id.0), Arg::Int(at)])
            .await
            .map_err(db)?;
        let session = read_session::<B>(on, id, "").await?;
        let user = read_user::<B>(on, session.user).await?;
        Ok(Rotation::Rotated { session, user })
    }

    async fn create_api_token_on(on: &mut On<'_, B::Db>, t: &NewApiToken) -> StoreResult<i64> {
        let (role, machine_id) = match &t.scope {
            TokenScope::Api { role } => {
                if !exists::<B>(on, "SELECT 1 FROM roles WHERE name = $1", Arg::Text(role)).await? {
                    return Err(role_not_found(role));
                }
                (Some(role.as_str()), None)
            }
            TokenScope::Ingest { machine } => {
                let row = on
                    .fetch_optional(
                        "SELECT id FROM machines WHERE key = $1",
                        &[Arg::Text(machine.as_str())],
                    )
                    .await
                    .map_err(db)?
                    .ok_or_else(|| common::machine_not_found(machine))?;
                (None, Some(row.int(0)?))
            }
        };
        if let Some(by) = t.created_by {
            if !exists::<B>(on, "SELECT 1 FROM users WHERE id = $1", Arg::Int(by.0)).await? {
                return Err(user_not_found(by));
            }
        }
        let at = common::check_time::<B>("token creation time", t.at)?;
        let expires_at = t
            .expires_at
            .map(|e| common::check_time::<B>("token expiry", e))
            .transpose()?;
        let sql = format!(
            "INSERT INTO api_tokens (name, role, machine_id, hash, prefix, created_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, {}, {}) RETURNING id",
            B::at_millis("$7"),
            B::at_millis("$8"),
        );
        let args = [
            Arg::Text(&t.name),
            Arg::OptText(role),
            Arg::OptInt(machine_id),
            Arg::Text(&t.hash.0),
            Arg::Text(&t.prefix),
            Arg::OptInt(t.created_by.map(|u| u.0)),
            Arg::Int(at),
            Arg::OptInt(expires_at),
        ];
        let row = on
            .fetch_optional(&sql, &args)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("an API token with this hash exists".into())
                } else if is_foreign_key_violation(&e) {
                    // Its role, machine or creator went in the meantime.
                    StoreError::NotFound(format!(
                        "the role, machine or creator of token '{}'",
                        t.name
                    ))
                } else {
                    db(e)
                }
            })?
            .ok_or_else(no_row)?;
        row.int(0)
    }
}

#[async_trait]
impl<B: Backend> AccessStore for SqlStore<B> {
    async fn sync_builtin_roles(&self, roles: &[Role]) -> StoreResult<()> {
        let mut rows = Vec::with_capacity(roles.len());
        for r in roles {
            check_role_name(&r.name)?;
            rows.push((r, permissions_json(&r.permissions)?));
        }
        let upsert = "INSERT INTO roles (name, description, permissions, builtin) \
                      VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                      description = excluded.description, permissions = excluded.permissions, \
                      builtin = excluded.builtin";
        let demote = "UPDATE roles SET builtin = $1 WHERE builtin";
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            // A role no longer built in becomes a custom one (editable, deletable when unused);
            // those still built in are marked again just below.
            on.execute(demote, &[Arg::Flag(false)]).await.map_err(db)?;
            for (r, perms) in &rows {
                let args = [
                    Arg::Text(&r.name),
                    Arg::Text(&r.description),
                    Arg::Text(perms),
                    Arg::Flag(true),
                ];
                on.execute(upsert, &args).await.map_err(db)?;
            }
            Ok(())
        }
        .await;
        end_tx(tx, done).await
    }

    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM roles ORDER BY name");
        let rows = self.reader().fetch_all(&sql, &[]).await.map_err(db)?;
        let mut roles = rows.iter().map(role).collect::<StoreResult<Vec<_>>>()?;
        // Bytewise, whatever the database's collation.
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    async fn get_role(&self, name: &str) -> StoreResult<Role> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE name = $1");
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Text(name)])
            .await
            .map_err(db)?
            .ok_or_else(|| role_not_found(name))?;
        role(&row)
    }

    async fn put_role(&self, r: &Role) -> StoreResult<bool> {
        check_role_name(&r.name)?;
        let perms = permissions_json(&r.permissions)?;
        let read = format!(
            "SELECT CAST(CASE WHEN builtin THEN 1 ELSE 0 END AS BIGINT) FROM roles \
             WHERE name = $1{}",
            B::LOCK_ROWS
        );
        let upsert = "INSERT INTO roles (name, description, permissions, builtin) \
                      VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                      description = excluded.description, permissions = excluded.permissions \
                      WHERE NOT roles.builtin";
        let builtin = || StoreError::Conflict(format!("role '{}' is built in", r.name));
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let existed = match on
                .fetch_optional(&read, &[Arg::Text(&r.name)])
                .await
                .map_err(db)?
            {
                Some(row) if row.int(0)? != 0 => return Err(builtin()),
                Some(_) => true,
                None => false,
            };
            let args = [
                Arg::Text(&r.name),
                Arg::Text(&r.description),
                Arg::Text(&perms),
                Arg::Flag(false),
            ];
            // Zero rows: it became a built-in role since the read (a concurrent start).
            if on.execute(upsert, &args).await.map_err(db)? == 0 {
                return Err(builtin());
            }
            Ok(!existed)
        }
        .await;
        end_tx(tx, done).await
    }

    async fn delete_role(&self, name: &str) -> StoreResult<()> {
        let read = format!(
            "SELECT CAST(CASE WHEN builtin THEN 1 ELSE 0 END AS BIGINT) FROM roles \
             WHERE name = $1{}",
            B::LOCK_ROWS
        );
        let held = "SELECT 1 FROM users WHERE role = $1 \
                    UNION ALL SELECT 1 FROM api_tokens WHERE role = $1";
        let in_use = || {
            StoreError::Conflict(format!(
                "role '{name}' is still held by a user or an API token"
            ))
        };
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let row = on
                .fetch_optional(&read, &[Arg::Text(name)])
                .await
                .map_err(db)?
                .ok_or_else(|| role_not_found(name))?;
            if row.int(0)? != 0 {
                return Err(StoreError::Conflict(format!("role '{name}' is built in")));
            }
            if exists::<B>(&mut on, held, Arg::Text(name)).await? {
                return Err(in_use());
            }
            // The foreign keys (RESTRICT) refuse a delete that a concurrent insert of a user
            // or token with this role got in before.
            on.execute("DELETE FROM roles WHERE name = $1", &[Arg::Text(name)])
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        in_use()
                    } else {
                        db(e)
                    }
                })?;
            Ok(())
        }
        .await;
        end_tx(tx, done).await
    }

    async fn create_user(&self, u: &NewUser, at: Timestamp) -> StoreResult<User> {
        let email = u.email.to_lowercase();
        let at = common::check_time::<B>("user creation time", at)?;
        let sql = format!(
            "INSERT INTO users (email, name, role, active, password_hash, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, {at}, {at}) RETURNING {}",
            user_columns::<B>(),
            at = B::at_millis("$6"),
        );
        let args = [
            Arg::Text(&email),
            Arg::Text(&u.name),
            Arg::Text(&u.role),
            Arg::Flag(true),
            Arg::Text(&u.password_hash),
            Arg::Int(at),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("a user with email '{email}' exists"))
                } else if is_foreign_key_violation(&e) {
                    role_not_found(&u.role)
                } else {
                    db(e)
                }
            })?
            .ok_or_else(no_row)?;
        user(&row)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        read_user::<B>(&mut self.reader(), id).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {} FROM users WHERE email = $1", user_columns::<B>());
        let email = email.to_lowercase();
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Text(&email)])
            .await
            .map_err(db)?;
        row.as_ref().map(user).transpose()
    }

    async fn list_users(&self, after: Option<UserId>, limit: u32) -> StoreResult<Vec<User>> {
        let sql = format!(
            "SELECT {} FROM users WHERE id > $1 ORDER BY id LIMIT $2",
            user_columns::<B>()
        );
        let after = after.map_or(i64::MIN, |u| u.0);
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Int(after), Arg::Int(common::limit(limit))])
            .await
            .map_err(db)?;
        rows.iter().map(user).collect()
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let row = self
            .reader()
            .fetch_optional("SELECT CAST(count(*) AS BIGINT) FROM users", &[])
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Backend("count(*) returned no row".into()))?;
        Ok(common::count(row.int(0)?))
    }

    async fn update_user(
        &self,
        id: UserId,
        update: &UserUpdate,
        at: Timestamp,
    ) -> StoreResult<User> {
        let at = common::check_time::<B>("update time", at)?;
        let sql = format!(
            "UPDATE users SET name = coalesce($2, name), role = coalesce($3, role), \
             active = CASE WHEN $4 IS NULL THEN active ELSE $4 = 1 END, \
             password_hash = coalesce($5, password_hash), updated_at = {} \
             WHERE id = $1 RETURNING {}",
            B::at_millis("$6"),
            user_columns::<B>()
        );
        let args = [
            Arg::Int(id.0),
            Arg::OptText(update.name.as_deref()),
            Arg::OptText(update.role.as_deref()),
            Arg::OptInt(update.active.map(i64::from)),
            Arg::OptText(update.password_hash.as_deref()),
            Arg::Int(at),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    role_not_found(update.role.as_deref().unwrap_or_default())
                } else {
                    db(e)
                }
            })?
            .ok_or_else(|| user_not_found(id))?;
        user(&row)
    }

    async fn touch_sign_in(&self, id: UserId, at: Timestamp) -> StoreResult<()> {
        let at = common::check_time::<B>("sign-in time", at)?;
        let sql = format!(
            "UPDATE users SET last_sign_in = {} WHERE id = $1",
            B::at_millis("$2")
        );
        let n = self
            .writer()
            .execute(&sql, &[Arg::Int(id.0), Arg::Int(at)])
            .await
            .map_err(db)?;
        if n == 0 {
            return Err(user_not_found(id));
        }
        Ok(())
    }

    async fn create_session(&self, s: &NewSession) -> StoreResult<Session> {
        let at = common::check_time::<B>("sign-in time", s.at)?;
        let expires_at = common::check_time::<B>("session expiry", s.expires_at)?;
        let refresh_expires_at =
            common::check_time::<B>("refresh token expiry", s.refresh_expires_at)?;
        let insert = format!(
            "INSERT INTO sessions (user_id, created_at, last_used_at, expires_at, user_agent, \
             client_addr) VALUES ($1, {at}, {at}, {}, $4, $5) RETURNING {}",
            B::at_millis("$3"),
            session_columns::<B>(),
            at = B::at_millis("$2"),
        );
        let token = format!(
            "INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES ($1, $2, {})",
            B::at_millis("$3")
        );
        let user_agent: Option<String> =
            s.user_agent.as_ref().map(|a| a.chars().take(200).collect());
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let args = [
                Arg::Int(s.user.0),
                Arg::Int(at),
                Arg::Int(expires_at),
                Arg::OptText(user_agent.as_deref()),
                Arg::OptText(s.client_addr.as_deref()),
            ];
            let row = on
                .fetch_optional(&insert, &args)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        user_not_found(s.user)
                    } else {
                        db(e)
                    }
                })?
                .ok_or_else(no_row)?;
            let created = session(&row)?;
            let args = [
                Arg::Text(&s.refresh.0),
                Arg::Int(created.id.0),
                Arg::Int(refresh_expires_at),
            ];
            on.execute(&token, &args).await.map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("a refresh token with this hash exists".into())
                } else {
                    db(e)
                }
            })?;
            Ok(created)
        }
        .await;
        end_tx(tx, done).await
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Session> {
        read_session::<B>(&mut self.reader(), id, "").await
    }

    async fn list_sessions(&self, user: UserId, include_ended: bool) -> StoreResult<Vec<Session>> {
        let live = if include_ended {
            String::new()
        } else {
            format!(
                " AND revoked_at IS NULL AND expires_at > {}",
                B::at_millis("$2")
            )
        };
        let sql = format!(
            "SELECT {} FROM sessions WHERE user_id = $1{live} ORDER BY id DESC",
            session_columns::<B>()
        );
        let now = Timestamp::now().as_millis();
        let args = [Arg::Int(user.0), Arg::Int(now)];
        let args = if include_ended { &args[..1] } else { &args[..] };
        let rows = self.reader().fetch_all(&sql, args).await.map_err(db)?;
        rows.iter().map(session).collect()
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        next: &TokenHash,
        next_expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<Rotation> {
        let next_expires_at = common::check_time::<B>("refresh token expiry", next_expires_at)?;
        let at = common::check_time::<B>("refresh time", at)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = Self::rotate_on(
            &mut On::Conn(&mut *tx),
            presented,
            next,
            next_expires_at,
            at,
        )
        .await;
        end_tx(tx, done).await
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let at = common::check_time::<B>("revocation time", at)?;
        if end_session::<B>(&mut self.writer(), id, reason, at).await? {
            return Ok(true);
        }
        read_session::<B>(&mut self.writer(), id, "").await?;
        Ok(false)
    }

    async fn revoke_user_sessions(
        &self,
        user: UserId,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let at = common::check_time::<B>("revocation time", at)?;
        let sql = format!(
            "UPDATE sessions SET revoked_at = {at}, revoked_reason = $3 \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > {at}",
            at = B::at_millis("$2")
        );
        self.writer()
            .execute(&sql, &[Arg::Int(user.0), Arg::Int(at), Arg::Text(reason)])
            .await
            .map_err(db)
    }

    async fn create_reset_token(
        &self,
        user: UserId,
        hash: &TokenHash,
        expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<()> {
        let at = common::check_time::<B>("reset token creation time", at)?;
        let expires_at = common::check_time::<B>("reset token expiry", expires_at)?;
        let sql = format!(
            "INSERT INTO reset_tokens (hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, {}, {})",
            B::at_millis("$3"),
            B::at_millis("$4"),
        );
        let args = [
            Arg::Text(&hash.0),
            Arg::Int(user.0),
            Arg::Int(at),
            Arg::Int(expires_at),
        ];
        self.writer().execute(&sql, &args).await.map_err(|e| {
            if is_foreign_key_violation(&e) {
                user_not_found(user)
            } else if is_unique_violation(&e) {
                StoreError::Conflict("a reset token with this hash exists".into())
            } else {
                db(e)
            }
        })?;
        Ok(())
    }

    async fn consume_reset_token(
        &self,
        hash: &TokenHash,
        at: Timestamp,
    ) -> StoreResult<Option<UserId>> {
        let at = common::check_time::<B>("reset time", at)?;
        // One statement: of concurrent presentations, the first spends it and the others
        // find it spent (PostgreSQL rechecks the condition after waiting for the row).
        let sql = format!(
            "UPDATE reset_tokens SET spent_at = {at} \
             WHERE hash = $1 AND spent_at IS NULL AND expires_at > {at} RETURNING user_id",
            at = B::at_millis("$2")
        );
        let row = self
            .writer()
            .fetch_optional(&sql, &[Arg::Text(&hash.0), Arg::Int(at)])
            .await
            .map_err(db)?;
        row.map(|r| r.int(0).map(UserId)).transpose()
    }

    async fn create_api_token(&self, t: &NewApiToken) -> StoreResult<ApiToken> {
        let len = t.name.chars().count();
        if !(1..=100).contains(&len) {
            return Err(StoreError::Invalid(format!(
                "a token's name has 1 to 100 characters, not {len}"
            )));
        }
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let id = Self::create_api_token_on(&mut on, t).await?;
            read_token::<B>(&mut on, "t.id =", Arg::Int(id))
                .await?
                .ok_or_else(no_row)
        }
        .await;
        end_tx(tx, done).await
    }

    async fn api_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<ApiToken>> {
        read_token::<B>(&mut self.reader(), "t.hash =", Arg::Text(&hash.0)).await
    }

    async fn list_api_tokens(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<ApiToken>> {
        let mut sql = format!("SELECT {} FROM {TOKENS_FROM}", token_columns::<B>());
        let mut args = Vec::new();
        if let Some(key) = machine {
            sql.push_str(" WHERE m.key = $1");
            args.push(Arg::Text(key.as_str()));
        }
        sql.push_str(" ORDER BY t.id");
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        if let (Some(key), true) = (machine, rows.is_empty()) {
            let sql = "SELECT 1 FROM machines WHERE key = $1";
            if !exists::<B>(&mut self.reader(), sql, Arg::Text(key.as_str())).await? {
                return Err(common::machine_not_found(key));
            }
        }
        rows.iter().map(api_token).collect()
    }

    async fn api_tokens_after(
        &self,
        after: Option<ApiTokenId>,
        limit: u32,
    ) -> StoreResult<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {} FROM {TOKENS_FROM} WHERE t.id > $1 ORDER BY t.id LIMIT $2",
            token_columns::<B>()
        );
        let after = after.map_or(i64::MIN, |t| t.0);
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Int(after), Arg::Int(common::limit(limit))])
            .await
            .map_err(db)?;
        rows.iter().map(api_token).collect()
    }

    async fn touch_api_token(&self, id: ApiTokenId, at: Timestamp) -> StoreResult<()> {
        let at = common::check_time::<B>("token use time", at)?;
        let sql = format!(
            "UPDATE api_tokens SET last_used_at = {} \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < {})",
            B::at_millis("$2"),
            B::at_millis("$3"),
        );
        let recent = B::clamp_millis(at.saturating_sub(TOUCH_INTERVAL_MS));
        self.writer()
            .execute(&sql, &[Arg::Int(id.0), Arg::Int(at), Arg::Int(recent)])
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn revoke_api_token(&self, id: ApiTokenId, at: Timestamp) -> StoreResult<bool> {
        let at = common::check_time::<B>("revocation time", at)?;
        let sql = format!(
            "UPDATE api_tokens SET revoked_at = {} WHERE id = $1 AND revoked_at IS NULL",
            B::at_millis("$2")
        );
        if self
            .writer()
            .execute(&sql, &[Arg::Int(id.0), Arg::Int(at)])
            .await
            .map_err(db)?
            > 0
        {
            return Ok(true);
        }
        let sql = "SELECT 1 FROM api_tokens WHERE id = $1";
        if exists::<B>(&mut self.writer(), sql, Arg::Int(id.0)).await? {
            Ok(false)
        } else {
            Err(token_not_found(id))
        }
    }

    async fn record_sign_in_failure(&self, keys: &[String], at: Timestamp) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let at = common::check_time::<B>("sign-in time", at)?;
        let sql = format!(
            "INSERT INTO sign_in_failures (key, at) VALUES ($1, {})",
            B::at_millis("$2")
        );
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            for key in keys {
                on.execute(&sql, &[Arg::Text(key), Arg::Int(at)])
                    .await
                    .map_err(db)?;
            }
            Ok(())
        }
        .await;
        end_tx(tx, done).await
    }

    async fn sign_in_failures(&self, key: &str, since: Timestamp) -> StoreResult<u64> {
        let sql = format!(
            "SELECT CAST(count(*) AS BIGINT) FROM sign_in_failures WHERE key = $1 AND at >= {}",
            B::at_millis("$2")
        );
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Text(key), Arg::Int(bound::<B>(since))])
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Backend("count(*) returned no row".into()))?;
        Ok(common::count(row.int(0)?))
    }

    async fn prune_access(&self, before: Timestamp) -> StoreResult<u64> {
        let before = bound::<B>(before);
        let cutoff = B::at_millis("$1");
        let statements = [
            format!("DELETE FROM sign_in_failures WHERE at < {cutoff}"),
            format!("DELETE FROM reset_tokens WHERE spent_at < {cutoff} OR expires_at < {cutoff}"),
            format!(
                "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions \
                 WHERE revoked_at < {cutoff} OR expires_at < {cutoff})"
            ),
        ];
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let mut total = 0;
            for sql in &statements {
                total += on.execute(sql, &[Arg::Int(before)]).await.map_err(db)?;
            }
            Ok(total)
        }
        .await;
        end_tx(tx, done).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_stored_by_name_sorted_once() {
        let json = permissions_json(&[
            Permission::AlarmsRead,
            Permission::MachinesRead,
            Permission::AlarmsRead,
        ])
        .expect("json");
        assert_eq!(json, r#"["machines:read","alarms:read"]"#);
        assert_eq!(
            permissions(&json).expect("parses"),
            vec![Permission::MachinesRead, Permission::AlarmsRead]
        );
    }

    #[test]
    fn unknown_stored_permissions_are_backend_errors() {
        for stored in [r#"["machines:read","machines:delete"]"#, "not json", "{}"] {
            let err = permissions(stored).expect_err(stored);
            assert!(matches!(err, StoreError::Backend(_)), "{stored}: {err:?}");
        }
        let msg = permissions(r#"["machines:delete"]"#)
            .expect_err("unknown")
            .to_string();
        assert!(msg.contains("machines:delete"), "names it: {msg}");
    }

    #[test]
    fn role_names_follow_the_rule() {
        for ok in ["admin", "shift-lead_2", &"a".repeat(64)] {
            assert!(check_role_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Admin", "a b", "ops:read", &"a".repeat(65)] {
            assert!(
                matches!(check_role_name(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
