-- projects.default_branch is the branch a badge without ?ref shows: GitHub's
-- default branch of the repository, or the branch HEAD names in a git URL's
-- repository; '' while it is unknown, when a badge reads unknown. A project
-- from before this migration starts from the branch of its newest trusted
-- branch build (what its badge showed, less pull requests), until a webhook
-- or a Run build tells the real one.

-- +goose Up
ALTER TABLE projects ADD COLUMN default_branch TEXT NOT NULL DEFAULT '';
UPDATE projects SET default_branch = COALESCE((
	SELECT substr(b.ref, length('refs/heads/') + 1) FROM builds b
	WHERE b.project_id = projects.id AND b.ref LIKE 'refs/heads/%' AND NOT b.from_fork
	ORDER BY b.number DESC LIMIT 1), '');

-- +goose Down
ALTER TABLE projects DROP COLUMN default_branch;
