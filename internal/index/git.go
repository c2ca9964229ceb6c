package index

import (
	"context"
	"net/http"
	"os/exec"
	"strings"

	"cairn.dev/cairn/internal/gitx"
)

// The index's doors to git: what its callers (remotes, the server, the
// certifier) need of the repository, by meaning. Nothing outside index
// runs git or holds a *gitx.Repo; these are the only ways through.

// Content is a file of a commit: a path of the layout and its bytes.
type Content = gitx.File

// PushResult is what git said of a push: each ref's status and reason
// (its --porcelain lines) and its standard error.
type PushResult = gitx.PushResult

// RemoteRef is a ref a remote holds, with the commit it points at.
type RemoteRef = gitx.RemoteRef

// HTTPBackendOptions configures one run of git http-backend (see
// Repo.HTTPBackend).
type HTTPBackendOptions = gitx.HTTPBackendOptions

// IsAncestor reports whether commit a is an ancestor of (or equal to)
// commit b, so that history from a to b only adds. A commit the
// repository lacks makes it false, not an error.
func (r *Repo) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	return r.git.IsAncestor(ctx, a, b)
}

// IsAbsent reports whether id is git's all-zero object id (of either
// hash format): what a hook's update line names an absent ref with.
func IsAbsent(id string) bool { return id != "" && strings.Trim(id, "0") == "" }

// Fetch fetches the remote index at url's ref src into the local ref dst
// (forced: dst is an incoming ref, judged after by VerifyLine). With only
// set to a local ref, the server is told of that ref's commits alone,
// never of the rest of the repository (main's internal packages): none
// at all while only does not exist yet. A stall or an unreachable server
// wraps transport.ErrTimeout and names the URL.
func (r *Repo) Fetch(ctx context.Context, url, src, dst, only string) error {
	o := gitx.FetchOptions{URL: url, Refspecs: []string{"+" + src + ":" + dst}}
	if only != "" {
		if have, _ := r.git.ResolveRef(ctx, only); have != "" {
			o.Tips = []string{have}
		} else {
			o.NoNegotiation = true
		}
	}
	return r.git.Fetch(ctx, o)
}

// Clone clones the remote index at url into a new git work tree at dir,
// as a user's `git clone` would (its origin names url): a clone that
// Open then opens as a repository, and that pushes by PushMain.
func Clone(ctx context.Context, url, dir string) error {
	_, err := gitx.Clone(ctx, url, dir)
	return err
}

// PushMain pushes commit as the main of the remote index at url. The
// result is never nil once git ran: a push the server refused or that
// lost a race for the remote's main is an error whose result says why.
func (r *Repo) PushMain(ctx context.Context, url, commit string) (*PushResult, error) {
	return r.git.Push(ctx, url, commit, MainRef)
}

// RemoteRefs lists the refs of the remote index at url that match
// pattern (a git ref pattern: "refs/upstreams/*").
func (r *Repo) RemoteRefs(ctx context.Context, url, pattern string) ([]RemoteRef, error) {
	return r.git.LsRemote(ctx, url, pattern)
}

// CountBetween returns how many commits head has that base does not:
// how far head is ahead of base.
func (r *Repo) CountBetween(ctx context.Context, base, head string) (int, error) {
	return r.git.Count(ctx, base, head)
}

// OldestBetween returns the committer time of the oldest of the commits
// head has that base does not, and false if there are none.
func (r *Repo) OldestBetween(ctx context.Context, base, head string) (int64, bool, error) {
	times, err := r.git.CommitTimes(ctx, base, head)
	if err != nil || len(times) == 0 {
		return 0, false, err
	}
	return times[len(times)-1], true, nil
}

// GitRemoteURL returns the URL of a git remote of a clone (remote.NAME.url
// of its git configuration), and false if it has none by that name.
func (r *Repo) GitRemoteURL(ctx context.Context, name string) (string, bool, error) {
	return r.git.ConfigGet(ctx, "remote."+name+".url")
}

// HTTPBackend returns `git http-backend` serving the repository's git
// directory for one CGI request, prepared and not started (see
// gitx.Repo.HTTPBackend): the server's smart HTTP door.
func (r *Repo) HTTPBackend(ctx context.Context, o HTTPBackendOptions) (*exec.Cmd, error) {
	return r.git.HTTPBackend(ctx, o)
}

// filePaths returns the paths of every file of rev's tree.
func (r *Repo) filePaths(ctx context.Context, rev string) ([]string, error) {
	var paths []string
	err := r.git.LsTree(ctx, rev, false, nil, func(t gitx.TreeItem) error {
		paths = append(paths, t.Path)
		return nil
	})
	return paths, err
}

// dirPaths returns the paths of every directory under dir in rev's tree.
func (r *Repo) dirPaths(ctx context.Context, rev, dir string) ([]string, error) {
	var paths []string
	err := r.git.LsTree(ctx, rev, true, []string{dir}, func(t gitx.TreeItem) error {
		paths = append(paths, t.Path)
		return nil
	})
	return paths, err
}

// FetchPack fetches from the cairn server's index at url (its git smart
// HTTP door, through client) the objects of the commits wants that the
// commits haves (of this repository) lack, and keeps them as one pack,
// unreferenced until the caller points a ref (MoveRef) at a want: see
// gitx.Repo.FetchPack. Nothing is checked but git's object ids: what was
// fetched is judged by VerifyLine, which reads every object it holds.
func (r *Repo) FetchPack(ctx context.Context, client *http.Client, url string, wants, haves []string) error {
	return r.git.FetchPack(ctx, client, url, wants, haves)
}

// FirstParents returns the commits of head's first-parent chain that
// base ("" for none) does not reach, oldest first.
func (r *Repo) FirstParents(ctx context.Context, base, head string) ([]string, error) {
	return r.git.FirstParents(ctx, base, head)
}

// IsCommitID reports whether s is a full commit id as git writes it: 40
// (SHA-1) or 64 (SHA-256) lower-case hex digits.
func IsCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
