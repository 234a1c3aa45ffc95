-- Each project pins the SSH host key of its git server: the key the server
-- showed at the first successful contact, in authorized_keys form
-- ("ssh-ed25519 AAAA…"). Later fetches accept that key only; '' means none is
-- pinned yet (or a manager reset it), so the next contact pins one.

-- +goose Up
ALTER TABLE projects ADD COLUMN ssh_host_key TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE projects DROP COLUMN ssh_host_key;
