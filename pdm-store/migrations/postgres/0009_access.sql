-- Access (issue 11): roles, users, sign-in sessions with their single-use refresh tokens,
-- password-reset tokens, API and ingest tokens, and failed sign-ins. No secret is stored: a
-- password as its Argon2id hash, every token as the SHA-256 of its bytes (64 hex digits).
-- Deleting a user deletes their sessions (with their refresh tokens) and reset tokens and
-- leaves the tokens they made (`created_by` NULL); deleting a machine deletes its ingest
-- tokens; a role cannot be deleted while a user or token has it. Names, emails and hashes use
-- the "C" collation: uniqueness and order are bytewise, as on SQLite.

-- `permissions` is a JSON array of permission names (`["machines:read", ...]`).
CREATE TABLE roles (
    name        TEXT COLLATE "C" PRIMARY KEY,
    description TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    builtin     BOOLEAN NOT NULL
);

-- `email` is stored lowercased, so its unique constraint ignores case.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT COLLATE "C" NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          TEXT COLLATE "C" NOT NULL
        REFERENCES roles (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
    active        BOOLEAN NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    last_sign_in  TIMESTAMPTZ
);

CREATE INDEX users_role ON users (role);

CREATE TABLE sessions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT,
    user_agent     TEXT,
    client_addr    TEXT
);

CREATE INDEX sessions_user ON sessions (user_id, id);

-- Spent tokens stay while their session lives: presenting one again revokes the session.
CREATE TABLE refresh_tokens (
    hash       TEXT COLLATE "C" PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    spent_at   TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE reset_tokens (
    hash       TEXT COLLATE "C" PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    spent_at   TIMESTAMPTZ
);

CREATE INDEX reset_tokens_user ON reset_tokens (user_id);

-- An API token has a role, an ingest token a machine: exactly one of the two.
CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT    NOT NULL,
    role         TEXT COLLATE "C"
        REFERENCES roles (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
    machine_id   BIGINT REFERENCES machines (id) ON DELETE CASCADE,
    hash         TEXT COLLATE "C" NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_by   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CHECK ((role IS NULL) <> (machine_id IS NULL))
);

CREATE INDEX api_tokens_role ON api_tokens (role);
CREATE INDEX api_tokens_machine ON api_tokens (machine_id);
CREATE INDEX api_tokens_created_by ON api_tokens (created_by);

-- One row per failed sign-in and key (an account, a client address), read by throttling.
CREATE TABLE sign_in_failures (
    id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT COLLATE "C" NOT NULL,
    at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX sign_in_failures_key ON sign_in_failures (key, at);
CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
