-- Install cache scopes: a build from a fork never reads or writes the install
-- cache images of the project's trusted builds.
--
-- builds.fork_repo is the full name (owner/name) of the repository a pull
-- request from a fork comes from; '' for every other build, and for a fork
-- whose repository is unknown (deleted, or built before this migration).
-- jobs.cache_scope is the install cache scope a job's install step used:
-- 'project', 'fork:<owner/name>' or 'fork-ref:<ref>'; '' where no install
-- step ran, and on jobs from before this migration (which all used the
-- project's cache).

-- +goose Up
ALTER TABLE builds ADD COLUMN fork_repo TEXT NOT NULL DEFAULT '' CHECK (length(fork_repo) <= 256);
ALTER TABLE jobs ADD COLUMN cache_scope TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN cache_scope;
ALTER TABLE builds DROP COLUMN fork_repo;
