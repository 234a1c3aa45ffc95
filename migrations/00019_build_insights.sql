-- The project page's insights: each branch and pull request with its
-- newest build, and a branch's builds of the last 30 days.
--
-- build_refs holds, for each ref a project has built, the number of its
-- newest build and what kind of ref it is: 'pull_request' (a pull
-- request's build), 'branch' (refs/heads/…) or 'other' (a tag, a commit
-- built by hand). The trigger keeps it as builds are inserted (build
-- numbers only grow, and builds are never deleted but with their project),
-- so listing the most recently built branches reads as many rows as it
-- shows, however many builds and refs the project has. Backfilled from the
-- builds there are.
--
-- builds_by_ref_created finds a branch's builds since a moment without
-- reading older ones, and holds what the branch's figures need of them
-- (status and times), so that reading them never visits the table.

-- +goose Up
CREATE TABLE build_refs (
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    ref         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('branch', 'pull_request', 'other')),
    last_number INTEGER NOT NULL,
    PRIMARY KEY (project_id, ref)
) WITHOUT ROWID;
CREATE INDEX build_refs_recent ON build_refs (project_id, kind, last_number);

-- +goose StatementBegin
CREATE TRIGGER builds_ref_newest AFTER INSERT ON builds
BEGIN
    INSERT INTO build_refs (project_id, ref, kind, last_number)
    VALUES (NEW.project_id, NEW.ref,
        CASE WHEN NEW.trigger_kind = 'pull_request' THEN 'pull_request'
             WHEN NEW.ref GLOB 'refs/heads/?*' THEN 'branch' ELSE 'other' END,
        NEW.number)
    ON CONFLICT (project_id, ref) DO UPDATE SET kind = excluded.kind, last_number = excluded.last_number
    WHERE excluded.last_number > build_refs.last_number;
END;
-- +goose StatementEnd

INSERT INTO build_refs (project_id, ref, kind, last_number)
SELECT b.project_id, b.ref,
    CASE WHEN b.trigger_kind = 'pull_request' THEN 'pull_request'
         WHEN b.ref GLOB 'refs/heads/?*' THEN 'branch' ELSE 'other' END,
    b.number
FROM builds b
WHERE b.number = (SELECT MAX(number) FROM builds WHERE project_id = b.project_id AND ref = b.ref);

CREATE INDEX builds_by_ref_created ON builds (project_id, ref, created_at, status, started_at, finished_at);

-- +goose Down
DROP INDEX builds_by_ref_created;
DROP TRIGGER builds_ref_newest;
DROP TABLE build_refs;
