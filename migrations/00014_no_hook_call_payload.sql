-- A hook call kept the whole webhook body that caused its build (about
-- 4 KB from GitHub, more for big pushes), once per hook, and nothing ever
-- read it: what pages, re-runs and commit statuses need of a webhook (ref,
-- commit, author, message, trigger, fork) is in the build's own columns.
-- The bodies go; their pages become free, for the next builds or a VACUUM.

-- +goose Up
ALTER TABLE hook_calls DROP COLUMN payload;

-- +goose Down
ALTER TABLE hook_calls ADD COLUMN payload TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload));
