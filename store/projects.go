package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Source says where a project's code comes from.
type Source string

const (
	SourceGitHub Source = "github" // a GitHub repository, with webhook and statuses
	SourceGit    Source = "git"    // any git URL or server path
)

// Project is a repository Kozmic builds.
type Project struct {
	ID            int64
	OwnerID       int64
	Source        Source
	GitHubID      int64 // 0 for SourceGit
	FullName      string
	SSHCloneURL   string
	HTTPSCloneURL string
	GitURL        string // for SourceGit
	IsPublic      bool
	GitHubHookID  int64 // 0 until the webhook exists on GitHub
	// SSHHostKey is the SSH host key pinned for the git server, in
	// authorized_keys form ("ssh-ed25519 AAAA…"); "" until the first
	// successful contact over SSH, or after ResetHostKey.
	SSHHostKey string
	// DefaultBranch is the branch a badge without ?ref shows, such as
	// main: GitHub's default branch, or the one a git URL's HEAD names.
	// "" while it is unknown.
	DefaultBranch string
	CreatedAt     time.Time
}

// CloneURL is the URL the runner clones: a plain-git project's URL, a public
// GitHub repository's HTTPS URL, or a private one's SSH URL (read with the
// deploy key).
func (p Project) CloneURL() string {
	switch {
	case p.Source == SourceGit:
		return p.GitURL
	case p.IsPublic:
		return p.HTTPSCloneURL
	default:
		return p.SSHCloneURL
	}
}

// NewProject is what CreateProject needs.
type NewProject struct {
	OwnerID       int64
	Source        Source
	GitHubID      int64
	FullName      string // owner/name
	SSHCloneURL   string
	HTTPSCloneURL string
	GitURL        string
	IsPublic      bool
	DefaultBranch string // see Project.DefaultBranch; "" when unknown
	WebhookSecret string // sealed at rest; NewWebhookSecret makes one
	// DeployKey, when set, is stored with the project in one transaction
	// (its ProjectID is filled in).
	DeployKey *DeployKey
}

// NewWebhookSecret returns a fresh secret for a project's webhook: 32
// random bytes from crypto/rand, in hex.
func NewWebhookSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}

const projectColumns = `id, owner_id, source, COALESCE(github_id, 0), full_name, ssh_clone_url,
	https_clone_url, git_url, is_public, COALESCE(github_hook_id, 0), ssh_host_key, default_branch, created_at`

// projectFields are where the columns of projectColumns scan to.
func projectFields(p *Project) []any {
	return []any{&p.ID, &p.OwnerID, &p.Source, &p.GitHubID, &p.FullName, &p.SSHCloneURL,
		&p.HTTPSCloneURL, &p.GitURL, &p.IsPublic, &p.GitHubHookID, &p.SSHHostKey, &p.DefaultBranch, msTime{&p.CreatedAt}}
}

func scanProject(row scanner) (Project, error) {
	var p Project
	err := row.Scan(projectFields(&p)...)
	return p, err
}

// ValidFullName accepts owner/name with the characters GitHub allows in
// both (letters, digits, '-', '_' and '.'), so that a name is safe in URLs
// and badge Markdown as it is.
func ValidFullName(name string) bool { return fullNamePattern.MatchString(name) }

var fullNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)

// CreateProject creates a project owned by np.OwnerID. A second project with
// the same full name (case-insensitive) or GitHub id is ErrConflict.
func (db *DB) CreateProject(ctx context.Context, np NewProject) (Project, error) {
	switch {
	case !ValidFullName(np.FullName):
		return Project{}, invalid(`the project name must look like "owner/name", with letters, digits, '-', '_' or '.' on each side`)
	case np.Source != SourceGitHub && np.Source != SourceGit:
		return Project{}, invalid("unknown project source")
	case np.Source == SourceGitHub && np.GitHubID == 0:
		return Project{}, invalid("a GitHub project needs the repository id")
	case np.Source == SourceGit && np.GitURL == "":
		return Project{}, invalid("a git project needs a URL or path to clone")
	case np.WebhookSecret == "":
		return Project{}, invalid("a project needs a webhook secret")
	case np.DefaultBranch != "" && !validBranch(np.DefaultBranch):
		return Project{}, errBadBranch
	}
	secret, err := db.seal.seal([]byte(np.WebhookSecret))
	if err != nil {
		return Project{}, err
	}
	var githubID any
	if np.GitHubID != 0 {
		githubID = np.GitHubID
	}
	var key []byte
	if k := np.DeployKey; k != nil {
		if k.PrivateKey == "" || k.PublicKey == "" {
			return Project{}, invalid("a deploy key needs both halves")
		}
		if key, err = db.seal.seal([]byte(k.PrivateKey)); err != nil {
			return Project{}, err
		}
	}
	var p Project
	err = db.writeTx(ctx, func(tx txn) error {
		row := tx.QueryRowContext(ctx, `
			INSERT INTO projects (owner_id, source, github_id, full_name, ssh_clone_url, https_clone_url,
				git_url, is_public, default_branch, webhook_secret_enc, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+projectColumns,
			np.OwnerID, np.Source, githubID, np.FullName, np.SSHCloneURL, np.HTTPSCloneURL,
			np.GitURL, np.IsPublic, np.DefaultBranch, secret, db.nowMS())
		if p, err = scanProject(row); err != nil {
			return wrap("insert project", err)
		}
		if key == nil {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO deploy_keys (project_id, private_key_enc, public_key, created_at)
			VALUES (?, ?, ?, ?)`, p.ID, key, np.DeployKey.PublicKey, db.nowMS())
		return wrap("insert deploy key", err)
	})
	return p, err
}

// MaxBranch bounds a project's default branch, in bytes.
const MaxBranch = 255

var errBadBranch = invalid(fmt.Sprintf("a default branch is a branch name, without refs/heads/, of at most %d bytes", MaxBranch))

// validBranch accepts a branch name as git would print it, without
// refs/heads/: not empty, at most MaxBranch bytes, no control characters or
// spaces. Callers check git's full rules; this keeps the column clean.
func validBranch(b string) bool {
	return b != "" && len(b) <= MaxBranch && !strings.HasPrefix(b, "refs/") &&
		!strings.ContainsFunc(b, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// SetDefaultBranch records the project's default branch (see
// Project.DefaultBranch). A branch validBranch refuses is ErrInvalid; a
// missing project ErrNotFound.
func (db *DB) SetDefaultBranch(ctx context.Context, projectID int64, branch string) error {
	if !validBranch(branch) {
		return errBadBranch
	}
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "set default branch", `UPDATE projects SET default_branch = ? WHERE id = ?`, branch, projectID)
	})
}

// ProjectByID returns a project or ErrNotFound.
func (db *DB) ProjectByID(ctx context.Context, id int64) (Project, error) {
	return projectByID(ctx, db.read, id)
}

func projectByID(ctx context.Context, q queryer, id int64) (Project, error) {
	p, err := scanProject(q.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = ?`, id))
	return p, wrap("get project", err)
}

// ProjectByName returns the project called fullName (case-insensitive) or ErrNotFound.
func (db *DB) ProjectByName(ctx context.Context, fullName string) (Project, error) {
	p, err := scanProject(db.read.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE full_name = ?`, fullName))
	return p, wrap("get project by name", err)
}

// ProjectByGitHubID returns the project of a GitHub repository, or ErrNotFound.
func (db *DB) ProjectByGitHubID(ctx context.Context, githubID int64) (Project, error) {
	p, err := scanProject(db.read.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE github_id = ?`, githubID))
	return p, wrap("get project by GitHub id", err)
}

// ProjectsOf lists the projects a user owns or is a member of, by name.
func (db *DB) ProjectsOf(ctx context.Context, userID int64) ([]Project, error) {
	return queryAll(ctx, db.read, "list projects of user", scanProject, `SELECT `+projectColumns+` FROM projects
		WHERE owner_id = ?1 OR id IN (SELECT project_id FROM memberships WHERE user_id = ?1) ORDER BY full_name`, userID)
}

// ProjectSummary is a project with its latest build, as the dashboard lists it.
type ProjectSummary struct {
	Project
	Latest *Build // the newest build of any ref; nil: none yet
	// Default is the newest build of the default branch that is no pull
	// request's, the one its badge shows; nil: none, or the branch is unknown.
	Default *Build
	Recent  []BuildMark // the RecentBuilds newest builds, oldest first
}

// ProjectsWithLatestBuild lists the projects a user owns or is a member of
// (as ProjectsOf does), by name, each with its latest build, in one query:
// the latest build is found through the (project_id, number) index. Each
// comes with its default branch's build and recent builds too (see
// fillDashboard), all from one snapshot.
func (db *DB) ProjectsWithLatestBuild(ctx context.Context, userID int64) ([]ProjectSummary, error) {
	var out []ProjectSummary
	err := db.readTx(ctx, func(tx txn) error {
		var err error
		if out, err = projectsWithLatestBuild(ctx, tx, userID); err != nil {
			return err
		}
		return fillDashboard(ctx, tx, userID, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func projectsWithLatestBuild(ctx context.Context, tx txn, userID int64) ([]ProjectSummary, error) {
	// p is a derived table so that the projects' columns cannot clash with
	// the builds' (id, created_at); b's columns are zero where there is no build.
	return queryAll(ctx, tx, "list projects with latest build", scanProjectSummary, `SELECT p.*,
			COALESCE(b.id, 0), COALESCE(b.project_id, 0), COALESCE(b.number, 0), COALESCE(b.ref, ''),
			COALESCE(b.sha, ''), COALESCE(b.author, ''), COALESCE(b.message, ''),
			COALESCE(b.trigger_kind, ''), COALESCE(b.trigger_pr, 0), COALESCE(b.trigger_user_id, 0), COALESCE(b.trigger_user, ''),
			COALESCE(b.rerun_user_id, 0), COALESCE(b.rerun_user, ''), COALESCE(b.from_fork, 0), COALESCE(b.fork_repo, ''), COALESCE(b.fork_repo_id, 0),
			COALESCE(b.status, ''), b.created_at, b.started_at, b.finished_at
		FROM (SELECT `+projectColumns+` FROM projects
			WHERE owner_id = ?1 OR id IN (SELECT project_id FROM memberships WHERE user_id = ?1)) p
		LEFT JOIN builds b ON b.id = (SELECT id FROM builds WHERE project_id = p.id ORDER BY number DESC LIMIT 1)
		ORDER BY p.full_name`, userID)
}

func scanProjectSummary(row scanner) (ProjectSummary, error) {
	var (
		s ProjectSummary
		b Build
	)
	if err := row.Scan(append(projectFields(&s.Project), buildFields(&b)...)...); err != nil {
		return s, err
	}
	if b.ID != 0 {
		s.Latest = &b
	}
	return s, nil
}

// SetGitHubHookID records the id of the project's webhook on GitHub (0: none).
func (db *DB) SetGitHubHookID(ctx context.Context, projectID, hookID int64) error {
	var v any
	if hookID != 0 {
		v = hookID
	}
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "set github hook id", `UPDATE projects SET github_hook_id = ? WHERE id = ?`, v, projectID)
	})
}

// PinHostKey pins key as the SSH host key of the project's git server, if
// none is pinned: the first contact's key is trusted from then on. Pinning
// the key that is pinned already changes nothing; a different one is
// ErrConflict (two first contacts met different keys), an empty one
// ErrInvalid, and a missing project ErrNotFound.
func (db *DB) PinHostKey(ctx context.Context, projectID int64, key string) error {
	if key == "" {
		return invalid("a host key cannot be empty")
	}
	return db.writeTx(ctx, func(tx txn) error {
		var pinned string
		err := tx.QueryRowContext(ctx, `SELECT ssh_host_key FROM projects WHERE id = ?`, projectID).Scan(&pinned)
		switch {
		case err != nil:
			return wrap("get host key", err)
		case pinned == key:
			return nil
		case pinned != "":
			return errors.Join(ErrConflict, errors.New("another SSH host key was pinned meanwhile"))
		}
		return execOne(ctx, tx, "pin host key", `UPDATE projects SET ssh_host_key = ? WHERE id = ?`, key, projectID)
	})
}

// ResetHostKey forgets the project's pinned SSH host key, so that the next
// contact with its git server pins the key the server shows then. A missing
// project is ErrNotFound.
func (db *DB) ResetHostKey(ctx context.Context, projectID int64) error {
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "reset host key", `UPDATE projects SET ssh_host_key = '' WHERE id = ?`, projectID)
	})
}

// WebhookSecret returns the project's webhook secret, unsealed.
func (db *DB) WebhookSecret(ctx context.Context, projectID int64) (string, error) {
	return db.readSealed(ctx, "get webhook secret", `SELECT webhook_secret_enc FROM projects WHERE id = ?`, projectID)
}

// WebhookProject is what a webhook needs of its project.
type WebhookProject struct {
	Secret        string // the webhook secret, unsealed
	DefaultBranch string // see Project.DefaultBranch
}

// WebhookProject returns the project's webhook secret, unsealed, and its
// default branch, in one read: a webhook compares the branch it tells with
// the one known without reading the project again. A missing project is
// ErrNotFound.
func (db *DB) WebhookProject(ctx context.Context, projectID int64) (WebhookProject, error) {
	var wp WebhookProject
	var sealed []byte
	// Prepared once: parsing the query cost as much as running it.
	s, err := db.reads.prepared(ctx, `SELECT webhook_secret_enc, default_branch FROM projects WHERE id = ?`)
	if err == nil {
		err = s.QueryRowContext(ctx, projectID).Scan(&sealed, &wp.DefaultBranch)
	}
	if err != nil {
		return WebhookProject{}, wrap("get webhook project", err)
	}
	plain, err := db.seal.open(sealed)
	if err != nil {
		return WebhookProject{}, fmt.Errorf("get webhook project: %w", err)
	}
	wp.Secret = string(plain)
	return wp, nil
}

// DeleteProject deletes a project with everything that belongs to it: hooks,
// builds, hook calls, jobs, logs, memberships, secrets, deploy key, webhook
// deliveries and pending statuses.
func (db *DB) DeleteProject(ctx context.Context, id int64) error {
	return db.writeTx(ctx, func(tx txn) error {
		if err := execOne(ctx, tx, "delete project", `DELETE FROM projects WHERE id = ?`, id); err != nil {
			return err
		}
		// Its builds and their logs went with it: their pages go back too.
		return freePages(ctx, tx)
	})
}

// Membership gives a user access to a project: management (configure) or
// plain membership (view). The owner needs none.
type Membership struct {
	ProjectID        int64
	UserID           int64
	AllowsManagement bool
	Login            string // the member's login, when listed
}

// SetMembership adds the user to the project or changes their role.
func (db *DB) SetMembership(ctx context.Context, m Membership) error {
	return db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO memberships (project_id, user_id, allows_management) VALUES (?, ?, ?)
			ON CONFLICT (project_id, user_id) DO UPDATE SET allows_management = excluded.allows_management`,
			m.ProjectID, m.UserID, m.AllowsManagement)
		return wrap("set membership", err)
	})
}

// RemoveMembership takes the user's role in the project away; one who had
// none is ErrNotFound.
func (db *DB) RemoveMembership(ctx context.Context, projectID, userID int64) error {
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "remove membership", `DELETE FROM memberships WHERE project_id = ? AND user_id = ?`, projectID, userID)
	})
}

// Memberships lists a project's members, managers first.
func (db *DB) Memberships(ctx context.Context, projectID int64) ([]Membership, error) {
	return queryAll(ctx, db.read, "list memberships", func(row scanner) (Membership, error) {
		var m Membership
		return m, row.Scan(&m.ProjectID, &m.UserID, &m.AllowsManagement, &m.Login)
	}, `SELECT m.project_id, m.user_id, m.allows_management, COALESCE(u.github_login, u.username, '')
		FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.project_id = ? ORDER BY m.allows_management DESC, 4`, projectID)
}

// DeployKey is the SSH key pair a project clones with; the public half is on
// the git server, the private half is sealed at rest.
type DeployKey struct {
	ProjectID   int64
	GitHubKeyID int64 // 0 when not (yet) on GitHub
	PrivateKey  string
	PublicKey   string
	CreatedAt   time.Time
}

// SetDeployKey stores the project's deploy key, replacing an earlier one.
func (db *DB) SetDeployKey(ctx context.Context, k DeployKey) error {
	if k.PrivateKey == "" || k.PublicKey == "" {
		return invalid("a deploy key needs both halves")
	}
	sealed, err := db.seal.seal([]byte(k.PrivateKey))
	if err != nil {
		return err
	}
	var keyID any
	if k.GitHubKeyID != 0 {
		keyID = k.GitHubKeyID
	}
	return db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO deploy_keys (project_id, github_key_id, private_key_enc, public_key, created_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (project_id) DO UPDATE SET github_key_id = excluded.github_key_id,
				private_key_enc = excluded.private_key_enc, public_key = excluded.public_key,
				created_at = excluded.created_at`,
			k.ProjectID, keyID, sealed, k.PublicKey, db.nowMS())
		return wrap("set deploy key", err)
	})
}

// DeployKeyOf returns the project's deploy key with the private half unsealed,
// or ErrNotFound.
func (db *DB) DeployKeyOf(ctx context.Context, projectID int64) (DeployKey, error) {
	return db.deployKeyOf(ctx, db.read, projectID)
}

func (db *DB) deployKeyOf(ctx context.Context, q queryer, projectID int64) (DeployKey, error) {
	k := DeployKey{ProjectID: projectID}
	var sealed []byte
	err := q.QueryRowContext(ctx, `
		SELECT COALESCE(github_key_id, 0), private_key_enc, public_key, created_at
		FROM deploy_keys WHERE project_id = ?`, projectID).
		Scan(&k.GitHubKeyID, &sealed, &k.PublicKey, msTime{&k.CreatedAt})
	if err != nil {
		return DeployKey{}, wrap("get deploy key", err)
	}
	plain, err := db.seal.open(sealed)
	if err != nil {
		return DeployKey{}, fmt.Errorf("get deploy key: %w", err)
	}
	k.PrivateKey = string(plain)
	return k, nil
}

// Secret is a named value given to a project's jobs as an environment
// variable. Values are sealed at rest.
type Secret struct {
	Name  string
	Value string
}

const (
	// MinMaskedLen is the shortest secret value masked in logs and mail:
	// shorter values would blank out ordinary words.
	MinMaskedLen = 4
	// SecretMask stands for a secret's value wherever a log shows it.
	SecretMask = "********"
)

// SetSecret creates or replaces a project secret.
func (db *DB) SetSecret(ctx context.Context, projectID int64, s Secret) error {
	if !validEnvName(s.Name) {
		return invalid("a secret name uses letters, digits and _ and does not start with a digit")
	}
	sealed, err := db.seal.seal([]byte(s.Value))
	if err != nil {
		return err
	}
	return db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO project_secrets (project_id, name, value_enc, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (project_id, name) DO UPDATE SET value_enc = excluded.value_enc`,
			projectID, s.Name, sealed, db.nowMS())
		return wrap("set secret", err)
	})
}

// SecretNames lists a project's secret names without reading any value.
func (db *DB) SecretNames(ctx context.Context, projectID int64) ([]string, error) {
	return queryAll(ctx, db.read, "list secret names", scanValue[string],
		`SELECT name FROM project_secrets WHERE project_id = ? ORDER BY name`, projectID)
}

// Secrets returns a project's secrets with their values unsealed, by name.
// A value sealed under another key fails with ErrWrongKey.
func (db *DB) Secrets(ctx context.Context, projectID int64) ([]Secret, error) {
	return db.secrets(ctx, db.read, projectID)
}

func (db *DB) secrets(ctx context.Context, q queryer, projectID int64) ([]Secret, error) {
	return queryAll(ctx, q, "list secrets", func(row scanner) (Secret, error) {
		var s Secret
		var sealed []byte
		if err := row.Scan(&s.Name, &sealed); err != nil {
			return s, err
		}
		plain, err := db.seal.open(sealed)
		if err != nil {
			return s, fmt.Errorf("secret %s: %w", s.Name, err)
		}
		s.Value = string(plain)
		return s, nil
	}, `SELECT name, value_enc FROM project_secrets WHERE project_id = ? ORDER BY name`, projectID)
}

// DeleteSecret removes a project secret, or returns ErrNotFound.
func (db *DB) DeleteSecret(ctx context.Context, projectID int64, name string) error {
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "delete secret", `DELETE FROM project_secrets WHERE project_id = ? AND name = ?`, projectID, name)
	})
}

func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ProjectRecipients returns the e-mail addresses of a project's owner and
// members, for those who have one, each once.
func (db *DB) ProjectRecipients(ctx context.Context, projectID int64) ([]string, error) {
	return queryAll(ctx, db.read, "list project recipients", scanValue[string], `SELECT DISTINCT u.email FROM users u
		WHERE u.email <> '' AND (u.id = (SELECT owner_id FROM projects WHERE id = ?1)
			OR u.id IN (SELECT user_id FROM memberships WHERE project_id = ?1))
		ORDER BY u.email`, projectID)
}
