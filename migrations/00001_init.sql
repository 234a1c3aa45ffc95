-- The complete Kozmic schema.
-- Times are INTEGER Unix milliseconds (UTC); NULL means "not yet".
-- Columns named *_enc hold values sealed with the key derived from KOZMIC_SECRET_KEY.

-- +goose Up

-- meta holds single values the store itself needs, such as the sealed
-- canary that tells a wrong KOZMIC_SECRET_KEY from a right one.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    github_id        INTEGER UNIQUE,
    github_login     TEXT UNIQUE COLLATE NOCASE,
    username         TEXT UNIQUE COLLATE NOCASE, -- local login name, for use without GitHub
    password_hash    TEXT NOT NULL DEFAULT '',
    name             TEXT NOT NULL DEFAULT '',
    avatar_url       TEXT NOT NULL DEFAULT '',
    email            TEXT NOT NULL DEFAULT '',
    access_token_enc BLOB,
    is_admin         INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    repos_synced_at  INTEGER,
    created_at       INTEGER NOT NULL,
    CHECK (github_id IS NOT NULL OR username IS NOT NULL)
);

-- The GitHub repository cache behind the repositories page, replaced whole on every sync.
CREATE TABLE user_repositories (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    github_id       INTEGER NOT NULL,
    full_name       TEXT NOT NULL,
    ssh_clone_url   TEXT NOT NULL,
    https_clone_url TEXT NOT NULL,
    is_public       INTEGER NOT NULL CHECK (is_public IN (0, 1)),
    UNIQUE (user_id, github_id)
);

CREATE TABLE organizations (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    github_id  INTEGER NOT NULL,
    login      TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    avatar_url TEXT NOT NULL DEFAULT '',
    UNIQUE (user_id, github_id)
);

CREATE TABLE organization_repositories (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    github_id       INTEGER NOT NULL,
    full_name       TEXT NOT NULL,
    ssh_clone_url   TEXT NOT NULL,
    https_clone_url TEXT NOT NULL,
    is_public       INTEGER NOT NULL CHECK (is_public IN (0, 1)),
    UNIQUE (organization_id, github_id)
);

CREATE TABLE projects (
    id                 INTEGER PRIMARY KEY,
    owner_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    source             TEXT NOT NULL CHECK (source IN ('github', 'git')),
    github_id          INTEGER UNIQUE,
    full_name          TEXT NOT NULL UNIQUE COLLATE NOCASE, -- owner/name
    ssh_clone_url      TEXT NOT NULL DEFAULT '',
    https_clone_url    TEXT NOT NULL DEFAULT '',
    git_url            TEXT NOT NULL DEFAULT '',            -- any URL or server path, for source 'git'
    is_public          INTEGER NOT NULL DEFAULT 0 CHECK (is_public IN (0, 1)),
    webhook_secret_enc BLOB NOT NULL,
    github_hook_id     INTEGER,
    last_build_number  INTEGER NOT NULL DEFAULT 0,          -- numbers are never reused
    created_at         INTEGER NOT NULL,
    CHECK (source = 'git' OR github_id IS NOT NULL)
);
CREATE INDEX projects_owner ON projects (owner_id);

CREATE TABLE memberships (
    project_id        INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    allows_management INTEGER NOT NULL DEFAULT 0 CHECK (allows_management IN (0, 1)),
    PRIMARY KEY (project_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE deploy_keys (
    project_id      INTEGER PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    github_key_id   INTEGER,
    private_key_enc BLOB NOT NULL,
    public_key      TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE hooks (
    id             INTEGER PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title          TEXT NOT NULL CHECK (title <> ''),
    docker_image   TEXT NOT NULL CHECK (docker_image <> ''),
    install_script TEXT NOT NULL DEFAULT '',
    build_script   TEXT NOT NULL CHECK (build_script <> ''),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (project_id, title) -- the title names the GitHub status context
);

CREATE TABLE tracked_files (
    id      INTEGER PRIMARY KEY,
    hook_id INTEGER NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
    path    TEXT NOT NULL COLLATE BINARY CHECK (path <> ''),
    UNIQUE (hook_id, path)
);

CREATE TABLE builds (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    ref         TEXT NOT NULL,
    sha         TEXT NOT NULL,
    author      TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL DEFAULT '',
    from_fork   INTEGER NOT NULL DEFAULT 0 CHECK (from_fork IN (0, 1)), -- runs without project secrets
    status      TEXT NOT NULL DEFAULT 'enqueued'
                CHECK (status IN ('enqueued', 'pending', 'success', 'failure', 'error')),
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    UNIQUE (project_id, number),
    UNIQUE (project_id, ref, sha)
);
-- builds of a project by number desc use the (project_id, number) unique index;
-- this one serves the branch filter and the per-branch badge.
CREATE INDEX builds_by_ref ON builds (project_id, ref, number);

CREATE TABLE hook_calls (
    id         INTEGER PRIMARY KEY,
    hook_id    INTEGER REFERENCES hooks (id) ON DELETE SET NULL, -- history survives the hook
    build_id   INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    hook_title TEXT NOT NULL,                                   -- for pages after the hook is gone
    payload    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    created_at INTEGER NOT NULL,
    UNIQUE (build_id, hook_id)
);
CREATE INDEX hook_calls_hook ON hook_calls (hook_id);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY, -- ascending with creation: the queue is FIFO by id
    build_id     INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    hook_call_id INTEGER NOT NULL REFERENCES hook_calls (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    status       TEXT NOT NULL DEFAULT 'enqueued'
                 CHECK (status IN ('enqueued', 'running', 'success', 'failure', 'error')),
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    exit_code    INTEGER,
    container_id TEXT NOT NULL DEFAULT '',
    cache_id     TEXT NOT NULL DEFAULT '',
    cache_hit    INTEGER CHECK (cache_hit IN (0, 1)), -- NULL: no install script, or not reached
    error        TEXT NOT NULL DEFAULT '',
    UNIQUE (hook_call_id, attempt)
);
CREATE INDEX jobs_build ON jobs (build_id, hook_call_id, attempt);
CREATE INDEX jobs_enqueued ON jobs (id) WHERE status = 'enqueued';
CREATE INDEX jobs_running ON jobs (id) WHERE status = 'running';

-- Job output lives apart from the job row so that listing jobs never reads log bytes.
CREATE TABLE job_logs (
    job_id      INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    size        INTEGER NOT NULL DEFAULT 0, -- bytes stored
    truncated   INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
    compressed  INTEGER NOT NULL DEFAULT 0 CHECK (compressed IN (0, 1)),
    updated_at  INTEGER NOT NULL
);

-- A log is the concatenation of its chunks in pos order; pos is the byte offset
-- of the chunk's first byte, so a reader can resume from any offset.
CREATE TABLE job_log_chunks (
    job_id INTEGER NOT NULL REFERENCES job_logs (job_id) ON DELETE CASCADE,
    pos    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (job_id, pos)
) WITHOUT ROWID;

CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- GitHub commit statuses waiting to be posted, oldest first.
CREATE TABLE status_outbox (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    job_id          INTEGER REFERENCES jobs (id) ON DELETE CASCADE,
    repo_full_name  TEXT NOT NULL,
    sha             TEXT NOT NULL,
    context         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'success', 'failure', 'error')),
    description     TEXT NOT NULL DEFAULT '',
    target_url      TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    failed          INTEGER NOT NULL DEFAULT 0 CHECK (failed IN (0, 1)), -- given up
    created_at      INTEGER NOT NULL
);
CREATE INDEX status_outbox_due ON status_outbox (next_attempt_at) WHERE failed = 0;

CREATE TABLE project_secrets (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (name <> ''),
    value_enc  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

-- The schema of github.com/alexedwards/scs/sqlite3store.
CREATE TABLE sessions (
    token  TEXT PRIMARY KEY,
    data   BLOB NOT NULL,
    expiry REAL NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);

-- +goose Down
DROP TABLE sessions;
DROP TABLE project_secrets;
DROP TABLE status_outbox;
DROP TABLE webhook_deliveries;
DROP TABLE job_log_chunks;
DROP TABLE job_logs;
DROP TABLE jobs;
DROP TABLE hook_calls;
DROP TABLE builds;
DROP TABLE tracked_files;
DROP TABLE hooks;
DROP TABLE deploy_keys;
DROP TABLE memberships;
DROP TABLE projects;
DROP TABLE organization_repositories;
DROP TABLE organizations;
DROP TABLE user_repositories;
DROP TABLE users;
DROP TABLE meta;
