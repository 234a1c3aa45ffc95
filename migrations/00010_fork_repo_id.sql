-- A fork's install cache scope follows its repository's numeric id, which
-- GitHub never gives to another repository, instead of its full name, which
-- anyone who takes over a freed account name can claim.
--
-- builds.fork_repo_id is the id of the repository an untrusted pull request
-- comes from when it is another repository than the project's; 0 for every
-- other build, and for the builds from before this migration, whose jobs,
-- when restarted, use the scope of their pull request's ref
-- ('fork-ref:refs/pull/N/head') rather than the name-keyed scope
-- ('fork:<owner/name>') their images carry. Those images are never read again
-- and go as the least recently used of the project's fork images.

-- +goose Up
ALTER TABLE builds ADD COLUMN fork_repo_id INTEGER NOT NULL DEFAULT 0 CHECK (fork_repo_id >= 0);

-- +goose Down
ALTER TABLE builds DROP COLUMN fork_repo_id;
