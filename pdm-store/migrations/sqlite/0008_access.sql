-- Access (issue 11): roles, users, sign-in sessions with their single-use refresh tokens,
-- password-reset tokens, API and ingest tokens, and failed sign-ins. No secret is stored: a
-- password as its Argon2id hash, every token as the SHA-256 of its bytes (64 hex digits).
-- Deleting a user deletes their sessions (with their refresh tokens) and reset tokens and
-- leaves the tokens they made (`created_by` NULL); deleting a machine deletes its ingest
-- tokens; a role cannot be deleted while a user or token has it.

-- `permissions` is a JSON array of permission names (`["machines:read", ...]`).
CREATE TABLE roles (
    name        TEXT    PRIMARY KEY,
    description TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    builtin     INTEGER NOT NULL CHECK (builtin IN (0, 1))
) STRICT;

-- `email` is stored lowercased, so its unique constraint ignores case.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL
        REFERENCES roles (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
    active        INTEGER NOT NULL CHECK (active IN (0, 1)),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_sign_in  INTEGER
) STRICT;

CREATE INDEX users_role ON users (role);

CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT,
    user_agent     TEXT,
    client_addr    TEXT
) STRICT;

CREATE INDEX sessions_user ON sessions (user_id, id);

-- Spent tokens stay while their session lives: presenting one again revokes the session.
CREATE TABLE refresh_tokens (
    hash       TEXT    PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER
) STRICT;

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE reset_tokens (
    hash       TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER
) STRICT;

CREATE INDEX reset_tokens_user ON reset_tokens (user_id);

-- An API token has a role, an ingest token a machine: exactly one of the two.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    role         TEXT    REFERENCES roles (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
    machine_id   INTEGER REFERENCES machines (id) ON DELETE CASCADE,
    hash         TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_by   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    CHECK ((role IS NULL) <> (machine_id IS NULL))
) STRICT;

CREATE INDEX api_tokens_role ON api_tokens (role);
CREATE INDEX api_tokens_machine ON api_tokens (machine_id);
CREATE INDEX api_tokens_created_by ON api_tokens (created_by);

-- One row per failed sign-in and key (an account, a client address), read by throttling.
CREATE TABLE sign_in_failures (
    id  INTEGER PRIMARY KEY,
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
) STRICT;

CREATE INDEX sign_in_failures_key ON sign_in_failures (key, at);
CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
