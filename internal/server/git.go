package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cairn.dev/cairn/internal/index"
)

// gitBackend prepares, for one request's CGI environment, git's own
// smart HTTP server, `git http-backend`, serving the index under a
// pre-receive hook that runs cairn's rules.
func (s *Server) gitBackend(hooks string) func(ctx context.Context, env []string) (*exec.Cmd, error) {
	// Configuration given to git for this server only, not written to
	// the repository: anonymous push is allowed because the records carry
	// their own signatures; the hook decides. Keepalives every second
	// while git is otherwise quiet (running the hook, counting objects)
	// keep clients' low-speed limits (transport.GitLowSpeed) from cutting
	// an honest push or fetch. A client may want any commit of the
	// history (a slice of a long pull, GET /api/v1/slices), not only the
	// tips of refs.
	config := [][2]string{
		{"http.receivepack", "true"},
		{"http.uploadpack", "true"},
		{"core.hooksPath", hooks},
		{"receive.denyDeletes", "true"},
		{"receive.denyNonFastForwards", "true"},
		{"receive.fsckObjects", "true"},
		{"uploadpack.allowFilter", "true"},
		{"uploadpack.allowReachableSHA1InWant", "true"},
		{"receive.keepAlive", "1"},
		{"uploadpack.keepAlive", "1"},
	}
	return func(ctx context.Context, env []string) (*exec.Cmd, error) {
		env = append(env, MinFreeEnv+"="+strconv.FormatInt(s.opts.MinFree, 10))
		if s.opts.IndexPolicy != "" {
			env = append(env, PolicyEnv+"="+s.opts.IndexPolicy)
		}
		return s.repo.HTTPBackend(ctx, index.HTTPBackendOptions{Env: env, Config: config, MaxRequestBuffer: 10 << 20})
	}
}

// gitInheritEnv is what git http-backend (and the hook it runs) takes of
// the server's own environment: with the Go runtime's settings for a hook
// built with coverage or the race detector.
var gitInheritEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "GOCOVERDIR", "GORACE", SkewEnv}

// storeInheritEnv are the prefixes of the variables that git http-backend
// (and so the hook, which checks that a push's blobs are held) takes of
// the server's environment when the blobs are on an object store: its
// SDK's credentials and settings (AWS_ACCESS_KEY_ID, AWS_REGION, …;
// GOOGLE_APPLICATION_CREDENTIALS; AZURE_STORAGE_ACCOUNT, …).
var storeInheritEnv = []string{"AWS_", "GOOGLE_", "AZURE_"}

// writeHooks writes the pre-receive hook into a fresh directory and
// returns it. The hook runs this very executable.
func writeHooks(exe, repoDir string) (string, error) {
	dir, err := os.MkdirTemp("", "cairn-hooks-*")
	if err != nil {
		return "", err
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %s hook pre-receive --repo %s\n", shellQuote(exe), shellQuote(repoDir))
	if err := os.WriteFile(filepath.Join(dir, "pre-receive"), []byte(script), 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Executable returns the path of the running cairn executable, as invoked
// (a link keeps its name), for the hook to run.
func Executable() (string, error) {
	if strings.Contains(os.Args[0], "/") {
		return filepath.Abs(os.Args[0])
	}
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		return filepath.Abs(p)
	}
	return os.Executable()
}

// ErrPushRefused is returned by PreReceive when a push breaks a rule.
var ErrPushRefused = errors.New("push refused")

// SkewEnv names the environment variable that sets, for a server and the
// pre-receive hooks it runs, how far a pushed commit's date may be from
// the server's clock (a Go duration; default index.MaxClockSkew).
const SkewEnv = "CAIRN_CLOCK_SKEW"

// MinFreeEnv names the environment variable that tells the pre-receive
// hook the room (bytes) the server keeps free on the index's file system
// (Options.MinFree): a push that would leave less is refused before the
// ref moves. A push landed on a full disk was accepted while its
// transparency log's update and checkpoint could not be written.
const MinFreeEnv = "CAIRN_MIN_FREE"

// PolicyEnv names the environment variable that tells the pre-receive
// hook the index's policy the server enforces (cairn serve --policy
// index:NAME): a push bringing a version of it that the server cannot
// load or bind is refused before main moves. Once on main, every request
// the policy judges failed (500) until another version came.
const PolicyEnv = "CAIRN_SERVER_POLICY"

// enforcedPolicyFails says why the version of the index's policy name in
// force at new, if it is not the one in force at old, cannot be enforced
// by this server ("" if it can, or did not change): it does not parse,
// or its issuers do not bind to the repositories the server judges
// (index.Repo.BindPolicyAt, the index's grants read at new).
func enforcedPolicyFails(ctx context.Context, repo *index.Repo, name, old, new string) (string, error) {
	cat, err := repo.Catalog(ctx, new)
	if err != nil {
		return "", err
	}
	v, err := cat.Policy(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // never published: the server would not have started
	}
	if err != nil {
		return "", err
	}
	if old != "" {
		before, err := repo.Catalog(ctx, old)
		if err != nil {
			return "", err
		}
		if was, err := before.Policy(name); err == nil && was.RecordID == v.RecordID {
			return "", nil
		}
	}
	if _, v, err := loadIndexPolicy(ctx, repo, cat, name); v == nil {
		return "", err
	} else if err != nil {
		return fmt.Sprintf("policy %s, version %.16s: this server enforces it (cairn serve --policy index:%s) and cannot: %v", name, v.RecordID, name, err), nil
	}
	return "", nil
}

// lowOnRoom says why a write to the index in dir would leave its file
// system with less room than min bytes ("" when it would not, min is 0,
// or the room cannot be told).
func lowOnRoom(dir string, min int64) string {
	if min <= 0 {
		return ""
	}
	free, ok := freeBytes(dir)
	if !ok || free >= uint64(min) {
		return ""
	}
	return fmt.Sprintf("the server's disk is nearly full: %s free where the index is, under the %s it keeps for the index's log and checkpoints (cairn serve --min-free)", sizeText(int64(free)), sizeText(min))
}

// sizeText writes a number of bytes as people read it: 12.3 MiB.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// clockSkew returns the bound SkewEnv sets, or the default.
func clockSkew() (time.Duration, error) {
	v := os.Getenv(SkewEnv)
	if v == "" {
		return index.MaxClockSkew, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 5m", SkewEnv, v)
	}
	return d, nil
}

// uploadHint is what a refusal for missing blobs tells the pusher.
const uploadHint = "upload them from the repository you pushed: cairn upload --repo DIR REMOTE (REMOTE is origin in a clone of this server), then push again; cairn push uploads before it pushes"

// goSumHint is what a refusal for a Go module's h1: mismatch tells the pusher.
const goSumHint = "publish the module again from its directory (cairn publish --go DIR VERSION builds the zip as the go command does and hashes it)"

// PreReceive is the pre-receive hook: it reads git's "old new ref" lines,
// checks every update, and writes what it refuses, why, and what to do
// ("cairn: refused: …" then "cairn: hint: …") to out: the pushing client
// shows those lines as "remote: …". Only main may be updated, never
// deleted or rewound; every new commit must keep the index's rules and be
// dated within the clock skew (SkewEnv) of this server's clock; and the
// blobs the new records name must be in the server's store. The objects
// pushed are still in git's quarantine: nothing is visible to readers
// until every check passes.
func PreReceive(ctx context.Context, repoDir string, in io.Reader, out io.Writer) error {
	repo, err := index.Open(ctx, repoDir)
	if err != nil {
		return err
	}
	defer repo.Close()
	skew, err := clockSkew()
	if err != nil {
		return err
	}
	var minFree int64
	if v := os.Getenv(MinFreeEnv); v != "" {
		if minFree, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("%s=%q: want a number of bytes", MinFreeEnv, v)
		}
	}
	low := lowOnRoom(repoDir, minFree)
	sc := bufio.NewScanner(in)
	refused := 0
	refuse := func(format string, args ...any) {
		refused++
		fmt.Fprintf(out, "cairn: refused: "+format+"\n", args...)
	}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			return fmt.Errorf("pre-receive: unexpected line %q from git", sc.Text())
		}
		old, new, ref := f[0], f[1], f[2]
		switch {
		case low != "":
			refuse("%s: %s; nothing was written", ref, low)
			fmt.Fprintf(out, "cairn: hint: push again once the server's operator has freed room\n")
			continue
		case ref != index.MainRef:
			refuse("%s: only %s may be pushed to a cairn index", ref, index.MainRef)
			continue
		case index.IsAbsent(new):
			refuse("deleting %s: the index is append-only and main is never deleted", ref)
			continue
		}
		if index.IsAbsent(old) {
			old = ""
		}
		if old != "" {
			ok, err := repo.IsAncestor(ctx, old, new)
			if err != nil {
				return err
			}
			if !ok {
				refuse("%s: %.12s does not descend from main (%.12s): a force-push would rewrite the append-only history", ref, new, old)
				fmt.Fprintf(out, "cairn: hint: fetch, rebase your commits onto main, and push again\n")
				continue
			}
		}
		res, err := repo.CheckUpdate(ctx, old, new, time.Now(), skew)
		if err != nil {
			var re *index.RuleError
			var fe *index.ForkError
			switch {
			case errors.As(err, &re):
				refuse("%v", err)
				if hint := re.Hint(); hint != "" {
					fmt.Fprintf(out, "cairn: hint: %s\n", hint)
				}
				continue
			case errors.As(err, &fe):
				refuse("%v", err)
				continue
			}
			return err
		}
		lack, err := missingBlobs(ctx, repo, old, new)
		if err != nil {
			return err
		}
		hint := uploadHint
		for _, l := range lack {
			refuse("%s", l)
			if l.Err != nil {
				hint = goSumHint
			}
		}
		if len(lack) > 0 {
			fmt.Fprintf(out, "cairn: hint: %s\n", hint)
			continue
		}
		if name := os.Getenv(PolicyEnv); name != "" {
			why, err := enforcedPolicyFails(ctx, repo, name, old, new)
			if err != nil {
				return err
			}
			if why != "" {
				refuse("%s: %s; main stays where it is, and this server keeps enforcing the version before", ref, why)
				fmt.Fprintf(out, "cairn: hint: publish a version of policy %s that this server can enforce (cairn policy publish checks its issuers; the server names this index's repository %s and each upstream by its declared name), then push again\n", name, index.LocalRepository)
				continue
			}
		}
		// "checked", not "accepted": git moves the ref after the hook, and
		// refuses if another push moved it first ("cannot lock ref").
		fmt.Fprintf(out, "cairn: checked %d commit(s), %d record file(s) for %s: they keep the index's rules\n", res.Commits, res.Records, ref)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if refused > 0 {
		return fmt.Errorf("%w: %d update(s) broke the index's rules", ErrPushRefused, refused)
	}
	return nil
}
