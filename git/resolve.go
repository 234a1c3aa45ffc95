package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

var (
	fullSHA  = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	shortSHA = regexp.MustCompile(`^[0-9a-fA-F]{4,39}$`)
)

// ResolveRef turns what a person typed as the ref of a build into the full
// ref and the commit SHA it names in the repository r:
//
//   - "" or "HEAD": the default branch, such as refs/heads/main (if HEAD is
//     detached, its commit, with the SHA as fullRef);
//   - a branch name, main: refs/heads/main, preferred to a tag of that name;
//   - a tag name, v1.0: refs/tags/v1.0, with an annotated tag peeled to its commit;
//   - a full ref, refs/heads/x;
//   - a full 40-character commit SHA: fullRef is the SHA itself, as no ref
//     names it. Only for a repository on this machine is it checked to exist.
//
// For a repository on this machine (an absolute path or file:// URL) it
// also takes anything `git rev-parse --verify REF^{commit}` takes, such as a
// short SHA or main~2, again with the SHA as fullRef.
//
// It refuses a pull or merge request's ref (refs/pull/…, refs/merge-requests/…,
// also as git reads pull/7/head in a repository on this machine): such a
// commit is a stranger's, built from its webhook without the project's
// secrets, never as the trusted build a person runs.
//
// defaultBranch is the branch the repository's HEAD names (main), learnt
// on the way: "" when HEAD is detached or unborn, or the error is not nil.
//
// The refs are listed with git ls-remote. Each git command waits for a slot
// Limits.Wait at most (else the error is ErrBusy) and runs for
// Limits.ResolveTimeout at most. Over SSH the server's host key is checked
// as Remote says: a key other than the trusted one is a *HostKeyError, and
// a first contact's key is handed to r.Pin once the refs are listed (its
// error is returned, wrapped). Any other error's message is fit to
// show to the person who typed ref, such as "no branch or tag main in
// <URL>" or "could not reach <URL>: <git's reason>"; a password in the URL
// is masked in them.
func ResolveRef(ctx context.Context, r Remote, ref string) (fullRef, sha, defaultBranch string, err error) {
	repoURL := r.URL
	if err := CheckURL(repoURL); err != nil {
		return "", "", "", err
	}
	shown := redact(repoURL)
	ref = strings.TrimSpace(ref)
	if ref == "" {
		ref = "HEAD"
	}
	if strings.HasPrefix(ref, "-") {
		return "", "", "", fmt.Errorf("%q is not a branch, tag or commit: it cannot start with -", ref)
	}
	if strings.HasPrefix(ref, "refs/") && pullRequestRef(ref) {
		return "", "", "", errPullRequestRef(ref)
	}
	// Only names that cannot match other refs as patterns are asked for; HEAD
	// at least, so that an unreachable repository is reported as such.
	var candidates []string
	switch {
	case ref == "HEAD" || !plainRefName(ref):
	case strings.HasPrefix(ref, "refs/"):
		candidates = []string{ref}
	default:
		candidates = []string{"refs/heads/" + ref, "refs/tags/" + ref} // branches first
	}
	var patterns []string
	for _, c := range candidates {
		patterns = append(patterns, c, c+"^{}") // the second, for a tag, is its commit
	}
	refs, symrefs, err := lsRemote(ctx, r, patterns...)
	switch {
	case errors.Is(err, ErrBusy) || errors.As(err, new(*HostKeyError)) || errors.As(err, new(pinError)):
		return "", "", "", err
	case err != nil:
		return "", "", "", fmt.Errorf("could not reach %s: %w", shown, err)
	}
	defaultBranch = headBranch(refs, symrefs)

	if ref == "HEAD" {
		sha, ok := refs["HEAD"]
		switch {
		case !ok:
			return "", "", "", fmt.Errorf("%s has no commit on its default branch", shown)
		case symrefs["HEAD"] != "":
			return symrefs["HEAD"], sha, defaultBranch, nil
		default: // a detached HEAD: no branch to name
			return sha, sha, defaultBranch, nil
		}
	}
	for _, c := range candidates {
		if sha, ok := refs[c+"^{}"]; ok {
			return c, sha, defaultBranch, nil
		}
		if sha, ok := refs[c]; ok {
			return c, sha, defaultBranch, nil
		}
	}
	dir, local := localRepo(repoURL)
	switch {
	case strings.HasPrefix(ref, "refs/"):
		return "", "", "", fmt.Errorf("no ref %s in %s", ref, shown)
	case local && pullRequestRef(ref):
		// rev-parse would find pull/7/head as refs/pull/7/head.
		return "", "", "", errPullRequestRef(ref)
	case local:
		sha, err := revParse(ctx, dir, ref)
		switch {
		case errors.Is(err, ErrBusy):
			return "", "", "", err
		case err != nil:
			return "", "", "", fmt.Errorf("no branch, tag or commit %s in %s", ref, shown)
		}
		return sha, sha, defaultBranch, nil
	case fullSHA.MatchString(ref):
		sha := strings.ToLower(ref)
		return sha, sha, defaultBranch, nil
	case shortSHA.MatchString(ref):
		return "", "", "", fmt.Errorf("no branch or tag %s in %s (a commit needs its full 40-character SHA)", ref, shown)
	}
	return "", "", "", fmt.Errorf("no branch or tag %s in %s", ref, shown)
}

// CheckRemote says whether r.URL is a git repository that git can read,
// listing its HEAD with git ls-remote as ResolveRef does (the same slot,
// timeout and host key rules), and returns the branch its HEAD names, or ""
// (detached, or no commit yet: an empty repository is a repository). An
// error other than ErrBusy, a *HostKeyError or a pin's says in a sentence fit
// for the person who gave the URL what git said, with a password in the URL
// masked, such as "Kozmic could not read a git repository at /srv/app: git
// said: '/srv/app' does not appear to be a git repository".
func CheckRemote(ctx context.Context, r Remote) (defaultBranch string, err error) {
	if err := CheckURL(r.URL); err != nil {
		return "", err
	}
	refs, symrefs, err := lsRemote(ctx, r)
	switch {
	case errors.Is(err, ErrBusy) || errors.As(err, new(*HostKeyError)) || errors.As(err, new(pinError)):
		return "", err
	case err != nil:
		return "", fmt.Errorf("Kozmic could not read a git repository at %s: git said: %w", redact(r.URL), err)
	}
	return headBranch(refs, symrefs), nil
}

// lsRemote lists HEAD and the refs matching patterns in r with git
// ls-remote --symref: each ref's object id, and the target of each
// symbolic ref. Over SSH a first contact's host key is handed to r.Pin once
// the refs are listed; its error comes back as a pinError. Any other error
// is output's, with a password in r.URL masked.
func lsRemote(ctx context.Context, r Remote, patterns ...string) (refs, symrefs map[string]string, err error) {
	t, err := newTransport(r)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	out, err := t.output(ctx, append([]string{"ls-remote", "--symref", "--end-of-options", r.URL, "HEAD"}, patterns...)...)
	switch {
	case errors.Is(err, ErrBusy) || errors.As(err, new(*HostKeyError)) || ctx.Err() != nil:
		return nil, nil, err
	case err != nil:
		return nil, nil, errors.New(maskPassword(err.Error(), r.URL))
	}
	if err := t.pin(); err != nil {
		return nil, nil, pinError{err}
	}
	refs, symrefs = parseLsRemote(out)
	return refs, symrefs, nil
}

// pinError is the error of Remote.Pin, which is the caller's own.
type pinError struct{ err error }

func (e pinError) Error() string { return e.err.Error() }
func (e pinError) Unwrap() error { return e.err }

// headBranch is the branch HEAD names in ls-remote's refs and symrefs
// (main), or "" when HEAD is detached or unborn.
func headBranch(refs, symrefs map[string]string) string {
	if b, ok := strings.CutPrefix(symrefs["HEAD"], "refs/heads/"); ok && refs["HEAD"] != "" && ValidRef(symrefs["HEAD"]) {
		return b
	}
	return ""
}

// pullRequestRef says whether name, with or without its refs/ prefix, is
// under a pull or merge request's refs (GitHub, Gitea and Forgejo keep
// refs/pull/N/head, GitLab refs/merge-requests/N/head).
func pullRequestRef(name string) bool {
	name = strings.TrimPrefix(name, "refs/")
	return strings.HasPrefix(name, "pull/") || strings.HasPrefix(name, "merge-requests/")
}

func errPullRequestRef(ref string) error {
	return fmt.Errorf("%s is a pull request's ref: pull requests are built from their webhooks, without the project's secrets", ref)
}

// plainRefName says whether git would take name literally as an ls-remote
// pattern and could have a ref of that name.
func plainRefName(name string) bool {
	return !strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(`~^:?*[\`, r)
	}) && !strings.Contains(name, "..") && !strings.Contains(name, "@{") &&
		!strings.HasSuffix(name, "/") && !strings.HasSuffix(name, ".")
}

// parseLsRemote reads git ls-remote --symref output: each ref's object id,
// and the target of each symbolic ref.
func parseLsRemote(out []byte) (refs, symrefs map[string]string) {
	refs, symrefs = map[string]string{}, map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		left, name, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		if target, ok := strings.CutPrefix(left, "ref: "); ok {
			symrefs[name] = target
		} else {
			refs[name] = left
		}
	}
	return refs, symrefs
}

// revParse is the commit that rev names in the repository at dir (dir
// itself, never one above it: run looks no further).
func revParse(ctx context.Context, dir, rev string) (string, error) {
	var out bytes.Buffer
	err := run(ctx, cmd{kind: resolving, dir: dir, stdout: &out,
		args: []string{"rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"}})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// output runs a git command of ResolveRef with t's environment and returns
// its output. Its error is ErrBusy, a *HostKeyError, ctx's error, or one
// that says why in a line fit for people: git's first line of complaint, or
// that it timed out.
func (t *transport) output(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	stderr := &headBuffer{max: stderrKept}
	err := run(ctx, cmd{kind: resolving, env: t.env, stdout: &out, stderr: stderr, args: args})
	switch {
	case err == nil:
		return out.Bytes(), nil
	case errors.Is(err, ErrBusy) || errors.As(err, new(timeoutError)) || ctx.Err() != nil:
		return nil, err
	}
	if hkErr := t.hostKeyError(ctx, stderr.String()); hkErr != nil {
		return nil, hkErr
	}
	if line := firstComplaint(stderr.String()); line != "" {
		return nil, errors.New(line)
	}
	return nil, fmt.Errorf("git %s: %w", args[0], err)
}

// firstComplaint is the first line of git's standard error that says what
// went wrong, without git's "fatal: " prefix, and with the next line if it
// ends in a colon ("unable to connect to host:" then the reason).
func firstComplaint(stderr string) string {
	var said string
	for line := range strings.Lines(stderr) {
		line = strings.TrimSpace(line)
		// ssh's note on a host key it has just accepted is no reason.
		if line == "" || strings.HasPrefix(line, "Warning: Permanently added") {
			continue
		}
		if said != "" {
			return said + " " + line
		}
		said = strings.TrimPrefix(line, "fatal: ")
		if !strings.HasSuffix(said, ":") {
			return said
		}
	}
	return said
}

// redact is u with any password in it masked, for messages.
func redact(u string) string {
	if pu, err := url.Parse(u); err == nil && pu.User != nil {
		if _, ok := pu.User.Password(); ok {
			return pu.Redacted()
		}
	}
	return u
}

// maskPassword is s with the password of the URL u, as typed and as
// escaped, masked as redact masks it: git may quote the URL it was given.
func maskPassword(s, u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.User == nil {
		return s
	}
	pw, ok := pu.User.Password()
	if !ok || pw == "" {
		return s
	}
	s = strings.ReplaceAll(s, u, pu.Redacted())
	for _, form := range []string{pw, url.PathEscape(pw), url.QueryEscape(pw)} {
		s = strings.ReplaceAll(s, ":"+form+"@", ":xxxxx@")
	}
	return s
}
