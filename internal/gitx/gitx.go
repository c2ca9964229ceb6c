// Package gitx is the narrow door to git: nothing else in cairn runs git.
//
// Reads go through one long-lived `git cat-file --batch` per Reader;
// history is walked in one `git log` stream; appends write loose objects
// directly (so a commit costs O(depth of the changed paths), never a pass
// over git's index file) and move a ref with `git update-ref`'s
// compare-and-swap.
package gitx

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/transport"
)

// ErrRefMoved is returned by UpdateRef when the ref no longer has the
// expected old value: someone else appended first.
var ErrRefMoved = errors.New("ref moved concurrently")

// ErrUnsafeDirectory is returned by Open when git refuses a repository
// another user owns (git's safe.directory check); the error carries git's
// own message.
var ErrUnsafeDirectory = errors.New("git refuses a repository of dubious ownership")

// Repo is a git repository, bare or not.
type Repo struct {
	GitDir   string // absolute
	WorkTree string // "" for a bare repository
	format   string // "sha1" or "sha256"
	refs     refCache
}

// Open opens the repository at dir (a bare repository, a work tree, or
// anything inside one).
func Open(dir string) (*Repo, error) {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--absolute-git-dir", "--is-bare-repository", "--show-object-format", "--show-toplevel").Output()
	if err != nil && len(out) == 0 {
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(string(ee.Stderr), "dubious ownership") {
			// git's own text names the owner and the safe.directory way out.
			return nil, fmt.Errorf("%s: %w: %s", dir, ErrUnsafeDirectory, strings.TrimSpace(strings.TrimPrefix(string(ee.Stderr), "fatal: ")))
		}
		return nil, fmt.Errorf("%s is not a git repository", dir)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("%s is not a git repository", dir)
	}
	r := &Repo{GitDir: lines[0], format: lines[2]}
	if lines[1] == "false" && len(lines) > 3 {
		r.WorkTree = lines[3]
	}
	if r.format != "sha1" && r.format != "sha256" {
		return nil, fmt.Errorf("%s: unsupported object format %q", dir, r.format)
	}
	return r, nil
}

// Compression is the zlib level of the objects in the repositories cairn
// makes: none. An index is signatures, hashes and key ids, which deflate
// saves a tenth of (138 against 156 MB for a 100k-record index's pack),
// while inflating it is most of what git spends reading it: a full
// verify reads every object, and with them stored whole it takes a
// quarter less time, a clone or a cold pull too (README, Benchmarks).
// What a fetch brings is kept as its sender compressed it.
const Compression = 0

// InitBare creates a bare repository at dir whose HEAD names main, and
// whose objects git stores at level Compression (core.compression: loose
// objects, and the packs of a repack or a server's answer).
func InitBare(dir string) (*Repo, error) {
	if out, err := exec.Command("git", "init", "-q", "--bare", "--initial-branch=main", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git init %s: %w: %s", dir, err, out)
	}
	if out, err := exec.Command("git", "--git-dir", dir, "config", "core.compression", strconv.Itoa(Compression)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git config %s: %w: %s", dir, err, out)
	}
	return Open(dir)
}

// Clone clones the repository at url into a new work tree at dir, as
// `git clone` does: dir's origin names url and url's default branch is
// checked out. It keeps the transport's bounds like Fetch (a stall or an
// unreachable server wraps transport.ErrTimeout and names url).
func Clone(ctx context.Context, url, dir string) (*Repo, error) {
	if _, err := (&Repo{}).run(ctx, nil, "clone", "-q", url, dir); err != nil {
		return nil, err
	}
	return Open(dir)
}

// SetAttributes replaces the repository's own attributes (info/attributes
// in its git directory: one "pattern attr…" a line, as gitattributes(5)
// reads them), which apply to every path whatever the trees hold.
func (r *Repo) SetAttributes(lines ...string) error {
	dir := filepath.Join(r.GitDir, "info")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("setting the attributes of %s: %w", r.GitDir, err)
	}
	data := strings.Join(lines, "\n") + "\n"
	if err := safefile.Write(filepath.Join(dir, "attributes"), []byte(data), safefile.Options{Perm: 0o644}); err != nil {
		return fmt.Errorf("setting the attributes of %s: %w", r.GitDir, err)
	}
	return nil
}

// run runs git in the repository and returns its standard output; a
// failure carries git's standard error. It is the one raw door to git,
// kept inside this package: callers use the named verbs.
//
// The verbs that reach a remote (fetch, push, ls-remote, clone) keep the
// transport's bounds (transport.Current): git's own low-speed limit cuts
// a transfer that stalls, and since git has no connect timeout, the
// remote's host is dialled first within the connect timeout. Either
// failure wraps transport.ErrTimeout and names the remote's URL.
func (r *Repo) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	out, _, err := r.runSaid(ctx, stdin, args...)
	return out, err
}

// runSaid is run, also returning what git said on standard error.
func (r *Repo) runSaid(ctx context.Context, stdin []byte, args ...string) (out []byte, said string, err error) {
	run := args
	verb, remote := remoteOf(args)
	var bounds transport.Timeouts
	if networkVerbs[verb] {
		bounds = transport.Current()
		if err := transport.Probe(ctx, remote, bounds); err != nil {
			return nil, "", fmt.Errorf("git %s %s: %w", verb, remote, err)
		}
		run = append(transport.GitConfig(bounds), args...)
	}
	cmd := r.command(ctx, run...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if networkVerbs[verb] && strings.Contains(msg, "Operation too slow") {
			stall := &transport.StallError{URL: remote, Phase: "git", Stall: transport.GitStall(bounds), LowSpeed: transport.GitLowSpeed}
			return out, stderr.String(), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), stall, msg)
		}
		return out, stderr.String(), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return out, stderr.String(), nil
}

// networkVerbs are the git commands that reach a remote.
var networkVerbs = map[string]bool{"fetch": true, "push": true, "ls-remote": true, "clone": true}

// remoteOf returns the git command of args (past leading -c options)
// and the first URL among its arguments.
func remoteOf(args []string) (verb, url string) {
	i := 0
	for i < len(args) && args[i] == "-c" {
		i += 2
	}
	if i >= len(args) {
		return "", ""
	}
	verb = args[i]
	for _, a := range args[i+1:] {
		if strings.Contains(a, "://") && !strings.HasPrefix(a, "-") {
			return verb, a
		}
	}
	return verb, ""
}

// cancelWait bounds how long a git whose context is done (or that has
// exited) may keep its caller waiting for the pipes its children hold.
const cancelWait = 2 * time.Second

// command prepares git in the repository; a Repo with no GitDir (what
// Clone runs on) runs git in no repository.
//
// A cancelled context kills git and every process git started (a
// process group of its own), and the caller's wait ends within
// cancelWait of it, so that no fetch or helper outlives a witness that
// shuts down or a request that timed out.
func (r *Repo) command(ctx context.Context, args ...string) *exec.Cmd {
	full := args
	if r.GitDir != "" {
		full = append([]string{"--git-dir=" + r.GitDir}, args...)
	}
	if r.WorkTree != "" {
		full = append([]string{"--work-tree=" + r.WorkTree}, full...)
	}
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	ownGroup(cmd)
	cmd.WaitDelay = cancelWait
	return cmd
}

// ZeroID returns the all-zero object id of the repository's format.
func (r *Repo) ZeroID() string { return strings.Repeat("0", r.HexSize()) }

// HexSize returns the length of an object id in hex.
func (r *Repo) HexSize() int {
	if r.format == "sha256" {
		return 64
	}
	return 40
}

func (r *Repo) newHash() hash.Hash {
	if r.format == "sha256" {
		return sha256.New()
	}
	return sha1.New()
}

// ResolveRef returns the object id a ref points at, or "" if the ref does
// not exist.
func (r *Repo) ResolveRef(ctx context.Context, ref string) (string, error) {
	out, err := r.run(ctx, nil, "rev-parse", "--verify", "-q", ref+"^{commit}")
	if err != nil {
		// Absent is git's exit status 1 with nothing said; a git that
		// was killed (a cancelled context) has not answered.
		var exit *exec.ExitError
		if len(out) == 0 && ctx.Err() == nil && errors.As(err, &exit) && exit.ExitCode() == 1 {
			return "", nil
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// UpdateRef moves ref to newID if it still points at oldID ("" = must not
// exist yet), atomically. It returns ErrRefMoved if it does not.
func (r *Repo) UpdateRef(ctx context.Context, ref, newID, oldID, reason string) error {
	u, err := r.StartRefUpdate(ctx, reason)
	if err != nil {
		return err
	}
	return u.Commit(ctx, ref, newID, oldID)
}

// RefUpdate is a `git update-ref --stdin` started ahead of time, so that
// its start-up overlaps the work that decides whether to move the ref.
type RefUpdate struct {
	repo   *Repo
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
	done   bool
}

// StartRefUpdate starts git for one compare-and-swap ref update. Call
// Commit or Abort.
func (r *Repo) StartRefUpdate(ctx context.Context, reason string) (*RefUpdate, error) {
	u := &RefUpdate{repo: r, cmd: r.command(ctx, "update-ref", "-m", reason, "--stdin", "-z")}
	u.cmd.Stderr = &u.stderr
	var err error
	if u.stdin, err = u.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := u.cmd.Start(); err != nil {
		return nil, err
	}
	return u, nil
}

// Commit moves ref from oldID ("" = must not exist) to newID, atomically,
// or returns ErrRefMoved if ref is not at oldID.
func (u *RefUpdate) Commit(ctx context.Context, ref, newID, oldID string) error {
	if oldID == "" {
		oldID = u.repo.ZeroID()
	}
	u.done = true
	fmt.Fprintf(u.stdin, "update %s\x00%s\x00%s\x00", ref, newID, oldID)
	u.stdin.Close()
	if err := u.cmd.Wait(); err != nil {
		if cur, _ := u.repo.ResolveRef(ctx, ref); cur != oldID && !(cur == "" && oldID == u.repo.ZeroID()) {
			return fmt.Errorf("%w: %s is at %s, expected %s", ErrRefMoved, ref, cur, oldID)
		}
		return fmt.Errorf("git update-ref %s: %w: %s", ref, err, strings.TrimSpace(u.stderr.String()))
	}
	return nil
}

// Abort ends the update without moving anything.
func (u *RefUpdate) Abort() {
	if !u.done {
		u.done = true
		u.stdin.Close()
		u.cmd.Wait()
	}
}

// IsAncestor reports whether commit a is an ancestor of (or equal to) b.
// A missing object makes it false, not an error.
func (r *Repo) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	cmd := r.command(ctx, "merge-base", "--is-ancestor", a, b)
	err := cmd.Run()
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil // 1: not an ancestor; 128: unknown object
	}
	return false, err
}

// DroppedLocal returns the commits of old's history that new lacks, if
// every one of them was made in this repository and never left it: none
// is, or ever was, on a remote-tracking ref (refs/remotes/*, their
// reflogs read too: git records each value a push or a fetch gave
// them), nor reachable from a value a local ref took other than by a
// commit made here (localReflog: a fetch into a branch, a fast-forward,
// a merge, a reset, a rebase's upstream, a clone), nor from the last
// fetch's FETCH_HEAD. ok is false if one did (new drops history that
// reached a remote, or came from one), if none is dropped, or if the
// repository has nothing to tell them apart by.
func (r *Repo) DroppedLocal(ctx context.Context, old, new string) (dropped []string, ok bool, err error) {
	seenTips := map[string]bool{}
	out, err := r.run(ctx, nil, "for-each-ref", "--format=%(objectname)", "refs/remotes/")
	if err != nil {
		return nil, false, err
	}
	for _, id := range strings.Fields(string(out)) {
		seenTips[id] = true // a ref without a reflog (logging off) has its value alone
	}
	// Every reflog: each value a remote-tracking ref had, and each a
	// local one took but by a commit made here.
	out, err = r.run(ctx, nil, "reflog", "show", "--all", "--format=%H %gD %gs")
	if err != nil {
		return nil, false, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		id, rest, _ := strings.Cut(line, " ")
		ref, subject, _ := strings.Cut(rest, " ")
		if !r.isID(id) {
			continue
		}
		if strings.HasPrefix(ref, "refs/remotes/") {
			seenTips[id] = true
			continue
		}
		if local, neutral := localReflog(subject); !local && !neutral {
			seenTips[id] = true
		}
	}
	// FETCH_HEAD: a line a fetched ref, its id first.
	fetched, err := os.ReadFile(filepath.Join(r.GitDir, "FETCH_HEAD"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	for _, line := range strings.Split(string(fetched), "\n") {
		if id, _, _ := strings.Cut(line, "\t"); r.isID(id) {
			seenTips[id] = true
		}
	}
	if len(seenTips) == 0 {
		return nil, false, nil
	}
	out, err = r.run(ctx, nil, "rev-list", old, "--not", new, "--")
	if err != nil {
		return nil, false, err
	}
	dropped = strings.Fields(string(out))
	if len(dropped) == 0 {
		return nil, false, nil
	}
	var in bytes.Buffer
	for id := range seenTips {
		in.WriteString(id + "\n")
	}
	in.WriteString("^" + new + "\n")
	out, err = r.run(ctx, in.Bytes(), "rev-list", "--ignore-missing", "--stdin")
	if err != nil {
		return nil, false, err
	}
	reached := map[string]bool{}
	for _, id := range strings.Fields(string(out)) {
		reached[id] = true
	}
	for _, id := range dropped {
		if reached[id] {
			return nil, false, nil
		}
	}
	return dropped, true, nil
}

// localReflog says whether a reflog entry's subject is a commit made in
// this repository (git's commit, amend, cherry-pick, revert, a rebase's
// picks and finish, cairn's own appends), or moves nothing anywhere new
// (a checkout of a branch: neutral). Any other entry — a fetch into a
// branch, a fast-forward, a merge, a reset, a pull, a clone, cairn moving
// main along a verified remote — took its value from elsewhere.
func localReflog(subject string) (local, neutral bool) {
	for _, p := range []string{"commit:", "commit (", "cherry-pick", "revert:", "cairn: append"} {
		if strings.HasPrefix(subject, p) {
			return true, false
		}
	}
	if strings.HasPrefix(subject, "rebase") || strings.HasPrefix(subject, "pull") {
		for _, step := range []string{"(pick)", "(continue)", "(finish)", "(reword)", "(squash)", "(fixup)", "(edit)"} {
			if strings.Contains(subject, step) {
				return true, false
			}
		}
	}
	return false, strings.HasPrefix(subject, "checkout: moving from ")
}
