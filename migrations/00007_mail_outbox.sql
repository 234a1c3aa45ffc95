-- Notification mail waiting to be sent, one row per recipient, so that mail
-- survives a restart and an SMTP outage, and a recipient the mail server
-- refuses does not make the others get it twice.

-- +goose Up
CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    recipient       TEXT NOT NULL CHECK (recipient <> ''),
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);
CREATE INDEX mail_outbox_project ON mail_outbox (project_id);

-- +goose Down
DROP TABLE mail_outbox;
