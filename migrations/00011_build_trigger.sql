-- Who started a build and how, apart from its commit: builds.author and
-- builds.message are the commit's author and subject (or a pull request's
-- title) only.
--
-- trigger_kind is 'push', 'pull_request' (trigger_pr its number) or 'manual'
-- (Run build); trigger_user is who did it (the Kozmic user's login, or the
-- pusher or sender a webhook names), trigger_user_id the Kozmic user who ran
-- it by hand. rerun_user and rerun_user_id are who last restarted or re-ran
-- its jobs. Both ids outlive their users as NULL, their names stay.
--
-- Backfill: builds of refs/pull/N/head were pull requests, opened by their
-- author; builds whose message is the old "Run by <author>" were manual,
-- and lose that text from their commit's author and message, which stay
-- empty (their commit was never read). All others were pushes by someone
-- unknown.

-- +goose Up
ALTER TABLE builds ADD COLUMN trigger_kind TEXT NOT NULL DEFAULT 'push'
    CHECK (trigger_kind IN ('push', 'pull_request', 'manual'));
ALTER TABLE builds ADD COLUMN trigger_pr INTEGER NOT NULL DEFAULT 0 CHECK (trigger_pr >= 0);
ALTER TABLE builds ADD COLUMN trigger_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE builds ADD COLUMN trigger_user TEXT NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN rerun_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE builds ADD COLUMN rerun_user TEXT NOT NULL DEFAULT '';

UPDATE builds SET trigger_kind = 'pull_request', trigger_user = author,
    trigger_pr = CAST(substr(ref, 11, length(ref) - 15) AS INTEGER)
WHERE ref GLOB 'refs/pull/[0-9]*/head' AND substr(ref, 11, length(ref) - 15) NOT GLOB '*[^0-9]*';

UPDATE builds SET trigger_kind = 'manual', trigger_user = author,
    trigger_user_id = (SELECT id FROM users WHERE github_login = builds.author OR username = builds.author ORDER BY id LIMIT 1),
    author = '', message = ''
WHERE author <> '' AND message = 'Run by ' || author AND trigger_kind = 'push';

-- +goose Down
UPDATE builds SET author = trigger_user, message = 'Run by ' || trigger_user WHERE trigger_kind = 'manual' AND author = '' AND message = '';
ALTER TABLE builds DROP COLUMN rerun_user;
ALTER TABLE builds DROP COLUMN rerun_user_id;
ALTER TABLE builds DROP COLUMN trigger_user;
ALTER TABLE builds DROP COLUMN trigger_user_id;
ALTER TABLE builds DROP COLUMN trigger_pr;
ALTER TABLE builds DROP COLUMN trigger_kind;
