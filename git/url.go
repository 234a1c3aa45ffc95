// Package git is everything in Kozmic that runs git or parses git URLs:
// checking the URL a person gives, resolving what they typed as a ref,
// fetching a commit for a job, the object ids of tracked paths in it, and
// the deploy keys that SSH URLs are fetched with.
package git

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// allowedProtocols is GIT_ALLOW_PROTOCOL for every git command this package
// runs: git refuses every other transport, ext:: and the other remote
// helpers included, whatever URL it is given and however git is configured.
const allowedProtocols = "file:git:http:https:ssh"

// gitURLKind is how git reaches a repository.
type gitURLKind int

const (
	localPath gitURLKind = iota // an absolute path on this machine
	scpLike                     // [user@]host:path, over SSH
	schemeURL                   // scheme://...
)

var (
	// A remote helper's transport::address; git's rule for the transport name.
	remoteHelper = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+.-]*::`)
	// A host name, IPv4 address or bracketed IPv6 address.
	hostName = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9._-]*|\[[0-9A-Fa-f:.]+\])$`)
)

// parseGitURL classifies u as git would read it, refusing what CheckURL
// refuses.
func parseGitURL(u string) (gitURLKind, *url.URL, error) {
	switch {
	case strings.TrimSpace(u) == "":
		return 0, nil, errors.New("the git URL is empty")
	case strings.HasPrefix(u, "-"):
		return 0, nil, fmt.Errorf("%q is not a git URL: it cannot start with -", u)
	case strings.ContainsFunc(u, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return 0, nil, fmt.Errorf("%q is not a git URL: it contains a control character", u)
	case remoteHelper.MatchString(u):
		return 0, nil, fmt.Errorf("%q is not allowed: git remote helpers (transport::address, such as ext::) "+
			"can run commands on the server; use an https://, ssh:// or git@host:path URL", u)
	case strings.HasPrefix(u, "/"):
		return localPath, nil, nil
	}
	if scheme, _, ok := strings.Cut(u, "://"); ok {
		pu, err := url.Parse(u)
		if err != nil {
			return 0, nil, fmt.Errorf("%q is not a valid URL: %w", u, err)
		}
		switch scheme {
		case "https", "http", "ssh", "git":
			if !hostName.MatchString(strings.TrimSuffix(pu.Host, portOf(pu))) {
				return 0, nil, fmt.Errorf("%q has no valid host name", u)
			}
			if pu.User != nil && strings.HasPrefix(pu.User.Username(), "-") {
				return 0, nil, fmt.Errorf("%q is not allowed: its user name starts with -", u)
			}
		case "file":
			if pu.Host != "" || !strings.HasPrefix(pu.Path, "/") {
				return 0, nil, fmt.Errorf("%q is not a local repository URL: write file:///absolute/path", u)
			}
		default:
			return 0, nil, fmt.Errorf("%q is not allowed: Kozmic fetches over https://, http://, ssh://, git:// "+
				"and file:// only", u)
		}
		return schemeURL, pu, nil
	}
	// git reads host:path as SSH when no slash comes before the first colon.
	hostPart, path, ok := strings.Cut(u, ":")
	if !ok || strings.Contains(hostPart, "/") {
		return 0, nil, fmt.Errorf("%q is not a git URL: use https://host/path, ssh://host/path, "+
			"user@host:path or an absolute path on the server", u)
	}
	user, host, hasUser := strings.Cut(hostPart, "@")
	if !hasUser {
		host = hostPart
	}
	switch {
	case hasUser && (user == "" || strings.ContainsAny(user, " \t")):
		return 0, nil, fmt.Errorf("%q has an invalid user name", u)
	case !hostName.MatchString(host):
		return 0, nil, fmt.Errorf("%q has no valid host name", u)
	case path == "":
		return 0, nil, fmt.Errorf("%q has no repository path after the colon", u)
	}
	return scpLike, nil, nil
}

// portOf is ":port" of a parsed URL's host, or "".
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return ":" + p
	}
	return ""
}

// CheckURL says whether u is a git URL Kozmic may fetch from: an
// https://, http://, ssh://, git:// or file:// URL, an scp-like
// [user@]host:path, or an absolute path on the server. Anything else is an
// error whose message is fit to show to the person who typed u; in
// particular an empty string, anything starting with - (which git would
// read as an option) and remote helpers such as ext::, which run commands.
// It checks the form only, not that the repository exists.
func CheckURL(u string) error {
	_, _, err := parseGitURL(u)
	return err
}

// localRepo is the directory of a repository on this machine that u names,
// if it names one.
func localRepo(u string) (string, bool) {
	kind, pu, err := parseGitURL(u)
	switch {
	case err != nil:
		return "", false
	case kind == localPath:
		return u, true
	case kind == schemeURL && pu.Scheme == "file":
		return pu.Path, true
	}
	return "", false
}

// OnServer says whether u names a repository on this machine: an absolute
// path or a file:// URL. Only Kozmic admins may make projects of those.
func OnServer(u string) bool {
	_, ok := localRepo(u)
	return ok
}

// RemoteHostPath splits a URL git fetches over the network (https://,
// http://, ssh://, git:// or scp-like user@host:path) into its host name,
// without user or port, and its path as git sends it (still escaped),
// without a leading slash. ok is false for anything else, and for a URL
// with a query or fragment, which would make what git fetches differ from
// the path returned.
func RemoteHostPath(u string) (host, path string, ok bool) {
	kind, pu, err := parseGitURL(u)
	switch {
	case err != nil:
		return "", "", false
	case kind == scpLike:
		hostPart, path, _ := strings.Cut(u, ":")
		if _, h, hasUser := strings.Cut(hostPart, "@"); hasUser {
			hostPart = h
		}
		return hostPart, strings.TrimPrefix(path, "/"), true
	case kind == schemeURL && pu.Scheme != "file" && pu.RawQuery == "" && !pu.ForceQuery && pu.Fragment == "":
		return pu.Hostname(), strings.TrimPrefix(pu.EscapedPath(), "/"), true
	}
	return "", "", false
}

// OverSSH says whether git reaches u over SSH (ssh:// or scp-like
// user@host:path), where a deploy key applies and the server's host key is
// checked.
func OverSSH(u string) bool {
	_, _, ok := sshAddress(u)
	return ok
}
