-- projects.default_branch is the branch a badge without ?ref shows: GitHub's
-- default branch of the repository, or the branch HEAD names in a git URL's
-- repository. '' while it is unknown (projects from before this migration,
-- until a webhook or a Run build tells it), when a badge reads unknown.

-- +goose Up
ALTER TABLE projects ADD COLUMN default_branch TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE projects DROP COLUMN default_branch;
