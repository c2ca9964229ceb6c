package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"cairn.dev/cairn/internal/index"
)

// A plain git host is a remote that runs no cairn code: its index is a
// git repository served by git itself (git http-backend behind a web
// server, git daemon, a shared directory), its signed checkpoint and log
// tiles are files on a static store (what PublishLog writes), and its
// blobs are on mirrors (an object store, a static file server). Nothing
// there checks a push, so every client checks everything: the history up
// to the published checkpoint as from a cairn server, and the commits the
// host holds past it too, so that a push that breaks a rule is refused
// loudly (*BadPushError) rather than waiting, unseen, for a checkpoint
// that will never cover it.

// Plain reports whether the remote is a plain git host: its URL is the
// index's git URL itself, and Log names the static log that holds its
// signed checkpoint.
func (rm *Remote) Plain() bool { return rm.Log != "" }

// gitURL is where the remote's index is fetched from.
func (rm *Remote) gitURL() string {
	if rm.Plain() {
		return rm.URL
	}
	return rm.URL + "/index.git"
}

// CheckGitURL checks the URL of an index on a plain git host: one that
// git fetches from (http://, https://, git://, ssh://, file://, or an
// absolute path), and never an argument git would take for an option or
// a transport that runs a command.
func CheckGitURL(u string) error {
	if u == "" || strings.HasPrefix(u, "-") || strings.ContainsAny(u, "\x00\n\r") {
		return fmt.Errorf("git URL %q: want the URL of the index's git repository (https://HOST/index.git, git://HOST/index.git, ssh://HOST/index.git or a path)", u)
	}
	if filepath.IsAbs(u) {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("git URL %q: %v", u, err)
	}
	switch p.Scheme {
	case "http", "https", "git", "ssh", "file":
		return nil
	}
	return fmt.Errorf("git URL %q: want http://, https://, git://, ssh://, file:// or an absolute path (a scheme git runs a command for, as ext::, is refused)", u)
}

// checkLogURL checks the URL of a static log: its checkpoint is LOG/checkpoint.
func checkLogURL(u string) error {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("log URL %q: want the http:// or https:// URL the published log is served at (its checkpoint at LOG/checkpoint)", u)
	}
	return nil
}

// errPlain says what a plain git host cannot do.
func errPlain(rm *Remote, what string) error {
	return fmt.Errorf("remote %s is a plain git host (%s, its log at %s): it runs no cairn server, so %s; write to it with git push and publish its log with cairn log publish from a verified copy", rm.Name, rm.URL, rm.Log, what)
}

// getStaticCheckpoint fetches the signed checkpoint of a plain git host
// from its static log (LOG/checkpoint, as PublishLog writes it).
func getStaticCheckpoint(ctx context.Context, rm *Remote, o Options) ([]byte, error) {
	u := rm.Log + "/" + CheckpointKey
	resp, body, err := fetchCheckpoint(ctx, rm, o, u)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode == http.StatusNotFound && rm.InsecureNoCheckpoint:
		return nil, nil
	case resp.StatusCode == http.StatusNotFound:
		return nil, &CheckpointError{Remote: rm.title(), Problem: fmt.Sprintf("the static log at %s holds no signed checkpoint (GET %s: %s): without one a frozen or rolled-back git host goes unnoticed; publish it (cairn log publish --to STORE) from a verified copy, or add the remote with --insecure-no-checkpoint if you accept that", rm.Log, u, resp.Status)}
	}
	return nil, fmt.Errorf("%s: the static log at %s gave no checkpoint: GET %s: %s: %s", rm.title(), rm.Log, u, resp.Status, strings.TrimSpace(string(body)))
}

// ErrBadPush is what a *BadPushError is.
var ErrBadPush = errors.New("a push that breaks the rules")

// BadPushError is a security error: a plain git host serves, past its
// signed checkpoint, commits that break the index's rules (Err, an
// *index.RuleError naming the commit, the rule and the record). Nothing
// on such a host refuses a push, so someone with write access to it
// pushed them. Nothing of them was kept: the local copy stays at
// Verified.
type BadPushError struct {
	Remote   string // the line, as messages call it
	URL      string
	Signed   string // the head the host's checkpoint signs
	Served   string // the head the host serves
	Verified string // the head this copy stays at ("" if none yet)
	Err      error
}

func (e *BadPushError) Error() string {
	stays := "this copy stays at " + e.Verified
	if e.Verified == "" {
		stays = "nothing of it was kept"
	}
	return fmt.Sprintf("SECURITY ERROR: %s (%s) serves head %s, past its signed checkpoint's %s, with a commit that breaks cairn's rules: %v: someone with write access to the git host pushed it (a plain git host refuses nothing); %s",
		e.Remote, e.URL, e.Served, e.Signed, e.Err, stays)
}

// Unwrap returns the rule broken.
func (e *BadPushError) Unwrap() []error { return []error{ErrBadPush, e.Err} }

// checkPending checks the commits a plain git host serves past its
// signed checkpoint (from signed, verified, to served) against the
// rules, remembering nothing: they are not followed until a checkpoint
// covers them, but one that breaks a rule is a bad push, refused now.
func checkPending(ctx context.Context, r *index.Repo, rm *Remote, line index.Line, signed, served string) error {
	if _, err := r.CheckLine(ctx, rm.Introduction, signed, served); err != nil {
		var re *index.RuleError
		if !errors.As(err, &re) {
			return fmt.Errorf("%s: the commits past its checkpoint: %w", line.Name, err)
		}
		verified, _, _ := line.VerifiedHead()
		return &BadPushError{Remote: line.Name, URL: rm.URL, Signed: signed, Served: served, Verified: verified, Err: err}
	}
	return nil
}
