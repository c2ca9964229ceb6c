package gitx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// FetchOptions says what Fetch asks of a remote.
type FetchOptions struct {
	// URL is the remote repository's URL.
	URL string
	// Refspecs are git refspecs ("+src:dst"), fetched in one run.
	Refspecs []string
	// Tips, when not empty, are the only local commits named to the
	// server as what this side has (git's --negotiation-tip), so that
	// nothing else of the repository is told to it.
	Tips []string
	// NoNegotiation names no local commit to the server at all (git's
	// noop negotiation): everything the refspecs reach is sent. It is
	// for a first fetch of a line whose server must not learn of the
	// repository's other commits.
	NoNegotiation bool
}

// Fetch fetches refspecs from a remote, quietly, with no tags, no
// FETCH_HEAD and no automatic gc. Like every verb that reaches a remote,
// it keeps the transport's bounds (see run): a stall or an unreachable
// host wraps transport.ErrTimeout and names the URL.
func (r *Repo) Fetch(ctx context.Context, o FetchOptions) error {
	var args []string
	if o.NoNegotiation {
		args = append(args, "-c", "fetch.negotiationAlgorithm=noop")
	}
	args = append(args, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-auto-gc")
	for _, t := range o.Tips {
		args = append(args, "--negotiation-tip="+t)
	}
	args = append(args, o.URL)
	args = append(args, o.Refspecs...)
	_, err := r.run(ctx, nil, args...)
	return err
}

// PushedRef is one ref of a push as git's --porcelain output reports it.
type PushedRef struct {
	// Flag is git's one-character status: ' ' fast-forward, '+' forced,
	// '-' deleted, '*' new, '!' rejected or failed, '=' up to date.
	Flag    byte
	From    string // the local side of the refspec
	To      string // the remote ref
	Summary string // "[rejected]", "[remote rejected]", "old..new", …
	Reason  string // why, for a ref not pushed ("fetch first", the hook's word, …)
}

// PushResult is what git said of a push.
type PushResult struct {
	// Refs are the refs git reported, in its order: a quiet push
	// reports only the refs it did not push.
	Refs []PushedRef
	// Output is git's standard output (the porcelain lines), as it was.
	Output string
	// Stderr is what git said on standard error: the remote's "remote:"
	// lines, HTTP errors.
	Stderr string
}

// Rejected reports whether git reported any ref as not pushed.
func (p *PushResult) Rejected() bool {
	for _, ref := range p.Refs {
		if ref.Flag == '!' {
			return true
		}
	}
	return false
}

// Push pushes src (a commit or local ref) to the remote's ref dst, as git
// push --quiet --porcelain. The result is never nil once git ran, even when git
// failed: a push git refused is an error (carrying git's standard error,
// as every verb's) whose result says which ref and why. It keeps the
// transport's bounds like Fetch.
func (r *Repo) Push(ctx context.Context, url, src, dst string) (*PushResult, error) {
	res := &PushResult{}
	out, said, err := r.runSaid(ctx, nil, "push", "--quiet", "--porcelain", url, src+":"+dst)
	res.Output, res.Stderr = string(out), said
	res.Refs = ParsePushPorcelain(out)
	return res, err
}

// ParsePushPorcelain reads the ref lines of git push --porcelain:
// "FLAG\tFROM:TO\tSUMMARY (REASON)". Other lines ("To URL", "Done") are
// skipped.
func ParsePushPorcelain(out []byte) []PushedRef {
	var refs []PushedRef
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || len(f[0]) != 1 {
			continue
		}
		from, to, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		ref := PushedRef{Flag: f[0][0], From: from, To: to, Summary: f[2]}
		if i := strings.Index(f[2], " ("); i >= 0 && strings.HasSuffix(f[2], ")") {
			ref.Summary, ref.Reason = f[2][:i], f[2][i+2:len(f[2])-1]
		}
		refs = append(refs, ref)
	}
	return refs
}

// RemoteRef is a ref a remote holds.
type RemoteRef struct {
	Name string // "refs/heads/main"
	ID   string
}

// LsRemote lists the refs of a remote that match the patterns (git's
// ls-remote patterns: "refs/upstreams/*"; none lists every ref), peeled
// tags left out. It keeps the transport's bounds like Fetch.
func (r *Repo) LsRemote(ctx context.Context, url string, patterns ...string) ([]RemoteRef, error) {
	out, err := r.run(ctx, nil, append([]string{"ls-remote", "--refs", url}, patterns...)...)
	if err != nil {
		return nil, err
	}
	var refs []RemoteRef
	for _, line := range strings.Split(string(out), "\n") {
		id, name, ok := strings.Cut(line, "\t")
		if ok {
			refs = append(refs, RemoteRef{Name: name, ID: id})
		}
	}
	return refs, nil
}

// RevList returns the commits reachable from head and not from base
// ("" for none), oldest first.
func (r *Repo) RevList(ctx context.Context, base, head string) ([]string, error) {
	out, err := r.run(ctx, nil, revRange("rev-list", []string{"--reverse"}, base, head)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// Count returns how many commits are reachable from head and not from
// base ("" for none).
func (r *Repo) Count(ctx context.Context, base, head string) (int, error) {
	out, err := r.run(ctx, nil, revRange("rev-list", []string{"--count"}, base, head)...)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("git rev-list --count %s ^%s: %w", head, base, err)
	}
	return n, nil
}

// CommitTimes returns the committer times (unix seconds) of the commits
// reachable from head and not from base ("" for none), newest first, as
// git log orders them.
func (r *Repo) CommitTimes(ctx context.Context, base, head string) ([]int64, error) {
	out, err := r.run(ctx, nil, revRange("log", []string{"--format=%ct"}, base, head)...)
	if err != nil {
		return nil, err
	}
	var times []int64
	for _, f := range strings.Fields(string(out)) {
		t, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("git log %s ^%s: reading a commit time: %w", head, base, err)
		}
		times = append(times, t)
	}
	return times, nil
}

// FirstParents returns the commits of head's first-parent chain that
// base ("" for none) does not reach, oldest first: a linear history's
// commits in order.
func (r *Repo) FirstParents(ctx context.Context, base, head string) ([]string, error) {
	out, err := r.run(ctx, nil, revRange("rev-list", []string{"--first-parent", "--reverse"}, base, head)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// revRange is a git command over the commits of head not in base.
func revRange(verb string, opts []string, base, head string) []string {
	args := append(append([]string{verb}, opts...), head)
	if base != "" {
		args = append(args, "^"+base)
	}
	return append(args, "--")
}

// RootCommits returns the commits without parents reachable from rev.
func (r *Repo) RootCommits(ctx context.Context, rev string) ([]string, error) {
	out, err := r.run(ctx, nil, "rev-list", "--max-parents=0", rev, "--")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// ConfigGet returns the value of a key of the repository's git
// configuration; ok is false when the key is not set.
func (r *Repo) ConfigGet(ctx context.Context, key string) (value string, ok bool, err error) {
	out, err := r.run(ctx, nil, "config", "--get", key)
	if err != nil {
		var exit *exec.ExitError
		if len(out) == 0 && ctx.Err() == nil && errors.As(err, &exit) && exit.ExitCode() == 1 {
			return "", false, nil
		}
		return "", false, err
	}
	return strings.TrimSuffix(string(out), "\n"), true, nil
}

// Repack packs every object into one pack and drops the packs and loose
// objects it replaces (git repack -a -d), and writes the commit-graph.
func (r *Repo) Repack(ctx context.Context) error {
	if _, err := r.run(ctx, nil, "repack", "-a", "-d", "-q"); err != nil {
		return err
	}
	return r.writeCommitGraph(ctx)
}

// TreeItem is one entry of a recursive tree listing.
type TreeItem struct {
	Mode, Type, ID string
	Path           string // from the tree's root
}

// LsTree calls fn with the entries under rev's tree, recursively, in
// git's order: the files (blobs) only, or with dirs the directories
// (trees) only. Paths, when given, limit it to those paths and what is
// under them.
func (r *Repo) LsTree(ctx context.Context, rev string, dirs bool, paths []string, fn func(TreeItem) error) error {
	args := []string{"ls-tree", "-r", "-z", "--full-tree"}
	if dirs {
		args = append(args, "-d")
	}
	args = append(append(args, rev, "--"), paths...)
	out, err := r.run(ctx, nil, args...)
	if err != nil {
		return err
	}
	for _, line := range bytes.Split(out, []byte{0}) {
		meta, path, ok := strings.Cut(string(line), "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			continue
		}
		if (f[1] == "tree") != dirs {
			continue
		}
		if err := fn(TreeItem{Mode: f[0], Type: f[1], ID: f[2], Path: path}); err != nil {
			return err
		}
	}
	return nil
}

// CheckoutTree brings a work tree from commit old's content to commit
// new's (git read-tree -m -u), or, with old "", resets it to new's. A
// bare repository has nothing to do.
func (r *Repo) CheckoutTree(ctx context.Context, old, new string) error {
	if r.WorkTree == "" {
		return nil
	}
	var err error
	if old == "" {
		_, err = r.run(ctx, nil, "read-tree", "-u", "--reset", new)
	} else {
		_, err = r.run(ctx, nil, "read-tree", "-m", "-u", old, new)
	}
	return err
}

// HTTPBackendOptions configures one run of git http-backend.
type HTTPBackendOptions struct {
	// Env is the request's CGI environment (REQUEST_METHOD, PATH_INFO,
	// CONTENT_TYPE, …): the command's environment is this and what
	// HTTPBackend adds, nothing inherited.
	Env []string
	// Config is git configuration for this run alone, given through
	// GIT_CONFIG_COUNT and never written to the repository.
	Config [][2]string
	// MaxRequestBuffer bounds the request body git buffers (git's
	// GIT_HTTP_MAX_REQUEST_BUFFER); 0 leaves git's default.
	MaxRequestBuffer int64
}

// gitPath is where the git program is, looked up on PATH once.
var gitPath = sync.OnceValues(func() (string, error) { return exec.LookPath("git") })

// HTTPBackend returns `git http-backend` serving this repository (every
// repository under its git directory exported) for one CGI request,
// prepared and not started: the caller wires its pipes, process group and
// cancellation, starts it and waits for it. Its working directory is
// git's own, as a CGI program's is.
func (r *Repo) HTTPBackend(ctx context.Context, o HTTPBackendOptions) (*exec.Cmd, error) {
	path, err := gitPath()
	if err != nil {
		return nil, fmt.Errorf("git http-backend: %w", err)
	}
	env := append([]string(nil), o.Env...)
	env = append(env, "SCRIPT_FILENAME="+path, "GIT_PROJECT_ROOT="+r.GitDir, "GIT_HTTP_EXPORT_ALL=1")
	if o.MaxRequestBuffer > 0 {
		env = append(env, "GIT_HTTP_MAX_REQUEST_BUFFER="+strconv.FormatInt(o.MaxRequestBuffer, 10))
	}
	if len(o.Config) > 0 {
		env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(o.Config)))
		for i, kv := range o.Config {
			env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
		}
	}
	cmd := exec.CommandContext(ctx, path, "http-backend")
	cmd.Dir = filepath.Dir(path)
	cmd.Env = env
	return cmd, nil
}
