-- The project page filters its builds by status and by how they were
-- started (push, pull request, manual), newest first a page at a time:
-- these indexes read a page of a filter however many builds do not match
-- it, as builds_by_ref does for a branch.

-- +goose Up
CREATE INDEX builds_by_status ON builds (project_id, status, number);
CREATE INDEX builds_by_trigger ON builds (project_id, trigger_kind, number);

-- +goose Down
DROP INDEX builds_by_trigger;
DROP INDEX builds_by_status;
