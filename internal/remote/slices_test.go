package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server"
)

// sliceWorld is a server that cuts its history every 2 commits, a
// history of grants long enough to be pulled in several slices, and a
// front that counts the packs fetched and may rewrite the answers.
type sliceWorld struct {
	*world
	packs  atomic.Int32 // POSTs to git-upload-pack
	lists  atomic.Int32 // GETs of /api/v1/slices
	direct string       // the server's own URL
	// rewrite, if set, may answer a request itself (true) instead of the
	// server.
	rewrite func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
}

func newSliceWorld(t *testing.T, grants int) *sliceWorld {
	t.Helper()
	cuts := sliceCuts
	sliceCuts = 4 // as on eight cores or more, whatever this machine has
	t.Cleanup(func() { sliceCuts = cuts })
	w := newUnserved(t)
	for i := 0; i < grants; i++ {
		w.grant(newSigner(t), fmt.Sprintf("p%d", i), fmt.Sprintf("publish:team%d/*", i))
	}
	sw := &sliceWorld{world: w}
	sw.direct = sw.serveCounted(w.repo, server.Options{SliceEvery: 2})
	w.url = sw.direct
	return sw
}

// serveCounted serves r through the counting front.
func (sw *sliceWorld) serveCounted(r *index.Repo, o server.Options) string {
	return sw.front(sw.server(r, o).Handler())
}

// front serves next through the counting front.
func (sw *sliceWorld) front(next http.Handler) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/git-upload-pack"):
			sw.packs.Add(1)
		case req.URL.Path == "/api/v1/slices":
			sw.lists.Add(1)
		}
		if sw.rewrite != nil && sw.rewrite(w, req, next) {
			return
		}
		next.ServeHTTP(w, req)
	}))
	sw.t.Cleanup(ts.Close)
	return ts.URL
}

// untouched fails the test unless a replica's pull left nothing: no
// main, no verified copy of origin, nothing remembered of it.
func untouched(t *testing.T, r *index.Repo) {
	t.Helper()
	rm, err := Get(r, "origin")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{index.MainRef, rm.Line(r).Ref} {
		if id, err := refAt(t.Context(), r, ref); err != nil || id != "" {
			t.Errorf("%s is at %q (%v) after a refused pull; want it absent", ref, id, err)
		}
	}
	if head, _, err := rm.Line(r).VerifiedHead(); err != nil || head != "" {
		t.Errorf("origin's verified head is %q (%v) after a refused pull; want none", head, err)
	}
	if _, err := rm.LastCheckpoint(r); err == nil {
		t.Errorf("a checkpoint was kept after a refused pull")
	}
}

// TestPullSliced: a first pull of a history the server cuts in slices
// fetches it slice by slice, and ends where a whole pull of the same
// server ends: the same head, commits, files and checkpoint, main made.
func TestPullSliced(t *testing.T) {
	sw := newSliceWorld(t, 14)
	head, err := sw.repo.Head(sw.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	sliced := sw.replica("sliced", sw.url)
	var steps []Progress
	p, err := Pull(sw.ctx, sliced, "origin", Options{Progress: func(pr Progress) { steps = append(steps, pr) }})
	if err != nil {
		t.Fatal(err)
	}
	if n := sw.packs.Load(); n < 4 {
		t.Fatalf("the sliced pull fetched %d packs; want one a slice, at least 4", n)
	}
	if last := steps[len(steps)-1]; last != (Progress{Step: "verifying remote origin", Done: p.Commits, Total: p.Commits}) {
		t.Errorf("the sliced pull's progress ended at %+v; want all %d commits verified", last, p.Commits)
	}

	// The same server, pulled whole: it lists no slices.
	sw.rewrite = func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Path == "/api/v1/slices" {
			http.NotFound(w, r)
			return true
		}
		return false
	}
	whole := sw.replica("whole", sw.url)
	q, err := Pull(sw.ctx, whole, "origin", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Head != head || q.Head != head || p.Commits != q.Commits || p.Records != q.Records || p.Total != q.Total || p.Main != "created" || q.Main != "created" {
		t.Fatalf("sliced pull: head %s, %d commits, %d files, %d in all, main %s; whole pull: head %s, %d commits, %d files, %d in all, main %s; want both at %s",
			p.Head, p.Commits, p.Records, p.Total, p.Main, q.Head, q.Commits, q.Records, q.Total, q.Main, head)
	}
	if !p.CheckTime.Equal(q.CheckTime) || p.Checkpoint.Root != q.Checkpoint.Root {
		t.Fatalf("the sliced pull checked checkpoint %+v, the whole one %+v", p.Checkpoint, q.Checkpoint)
	}
	for _, r := range []*index.Repo{sliced, whole} {
		res, err := r.Verify(sw.ctx, true)
		if err != nil || res.Head != head {
			t.Fatalf("a full verification of %s: %+v, %v; want it at %s", r.Dir, res, err, head)
		}
		rm, _ := Get(r, "origin")
		if id, _ := refAt(sw.ctx, r, rm.fetched(r)); id != "" {
			t.Errorf("%s left %s at %s", r.Dir, rm.fetched(r), id)
		}
	}

	// An incremental pull of a long way is sliced too, from the head
	// verified before.
	sw.rewrite = nil
	for i := 0; i < 8; i++ {
		sw.grant(newSigner(t), fmt.Sprintf("q%d", i), fmt.Sprintf("publish:more%d/*", i))
	}
	before := sw.packs.Load()
	p, err = Pull(sw.ctx, sliced, "origin", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := sw.packs.Load() - before; n < 3 || p.Commits != 8 || p.From != head || p.Main != "fast-forwarded" {
		t.Fatalf("the second pull: %d packs, %+v; want 8 commits in 3 slices or more, from %s", n, p, head)
	}
}

// TestPullSliceOutsideHistory: a server that lists, among the commits to
// cut its history at, one outside the history it serves — a commit it
// holds on another ref, with the same files as a genuine one — is
// refused as soon as the slice after it does not descend from it, and
// the replica keeps nothing.
func TestPullSliceOutsideHistory(t *testing.T) {
	sw := newSliceWorld(t, 14)
	resp, err := http.Get(sw.direct + "/api/v1/slices?head=" + mustHead(t, sw.repo))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	list := pickSlices(strings.Fields(string(body)))
	if len(list) < 3 {
		t.Fatalf("the server listed %q, cut at %d of them; want at least 3", body, len(list))
	}
	// A copy of the second cut (its files) made on top of the first, held on a side
	// ref so that the server may send it.
	tree, err := indextest.Git(t, sw.repo, "rev-parse", list[1]+"^{tree}")
	if err != nil {
		t.Fatal(err)
	}
	side, err := indextest.Git(t, sw.repo, "-c", "user.name=mallory", "-c", "user.email=m@example.com", "commit-tree", strings.TrimSpace(tree), "-p", list[0], "-m", "side")
	if err != nil {
		t.Fatal(err)
	}
	side = strings.TrimSpace(side)
	if _, err := indextest.Git(t, sw.repo, "update-ref", "refs/side", side); err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(body), list[1], side, 1)
	sw.rewrite = func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Path == "/api/v1/slices" {
			io.WriteString(w, forged)
			return true
		}
		return false
	}
	c := sw.replica("c", sw.url)
	_, err = Pull(sw.ctx, c, "origin", Options{})
	var se *SliceError
	if !errors.As(err, &se) || !errors.Is(err, ErrSlice) || se.After != side || !strings.Contains(err.Error(), "SECURITY ERROR") {
		t.Fatalf("pull with a slice outside the history: %v; want a *SliceError after %s", err, side)
	}
	untouched(t, c)

	// A list naming a commit the server does not hold at all.
	forged = strings.Replace(string(body), list[2], strings.Repeat("5", len(list[2])), 1)
	_, err = Pull(sw.ctx, c, "origin", Options{})
	if err == nil || !strings.Contains(err.Error(), "remote origin") {
		t.Fatalf("pull with a slice the server does not hold: %v; want it refused", err)
	}
	untouched(t, c)

	// Told the truth, the same replica pulls.
	sw.rewrite = nil
	if _, err := Pull(sw.ctx, c, "origin", Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestPullSliceBadCommit: a server whose history holds, in a middle
// slice, a commit that breaks the rules (it modifies a record) is
// refused when that slice is verified, with the rule that commit broke,
// and the replica keeps nothing, not even the slices verified before it.
func TestPullSliceBadCommit(t *testing.T) {
	sw := newSliceWorld(t, 6)
	// Mallory's copy of the history: the genuine commits, one that
	// rewrites a record, and more after it; served by a cairn server
	// that signs no checkpoints (nothing verifies its history).
	work := filepath.Join(sw.dir, "mallory")
	gitIn(t, sw.dir, "clone", "-q", indextest.GitDir(t, sw.repo), work)
	files := strings.Fields(gitIn(t, work, "ls-files", "keys"))
	if len(files) == 0 {
		t.Fatal("no key files to tamper with")
	}
	if err := os.WriteFile(filepath.Join(work, files[len(files)-1]), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, work, "commit", "-q", "-a", "-m", "rewrite a grant")
	bad := gitIn(t, work, "rev-parse", "HEAD")
	for i := 0; i < 8; i++ {
		gitIn(t, work, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("after %d", i))
	}
	// Served by git http-backend alone (a cairn server would not serve a
	// history that does not verify), with the slices a cairn server would
	// list, every 2 commits.
	evil := filepath.Join(sw.dir, "evil")
	gitIn(t, sw.dir, "clone", "-q", "--bare", work, filepath.Join(evil, "index.git"))
	ids := strings.Fields(gitIn(t, filepath.Join(evil, "index.git"), "rev-list", "--first-parent", "--reverse", "HEAD"))
	var list strings.Builder
	for i := 1; i < len(ids)-1; i += 2 {
		fmt.Fprintln(&list, ids[i])
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{Path: git, Args: []string{"http-backend"}, Env: []string{
		"GIT_PROJECT_ROOT=" + evil, "GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=uploadpack.allowReachableSHA1InWant", "GIT_CONFIG_VALUE_0=true",
	}}
	evilURL := sw.front(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/index.git/"):
			backend.ServeHTTP(w, r)
		case r.URL.Path == "/api/v1/slices":
			io.WriteString(w, list.String())
		default:
			http.NotFound(w, r) // no checkpoint
		}
	}))
	c := sw.replica("c", evilURL)
	rm, _ := Get(c, "origin")
	rm.InsecureNoCheckpoint = true
	if err := Set(c, *rm); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(sw.ctx, c, "origin", Options{})
	var re *index.RuleError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), bad[:12]) {
		t.Fatalf("pull of a history with a bad commit: %v; want the *index.RuleError of commit %s", err, bad)
	}
	if n := sw.packs.Load(); n < 3 {
		t.Fatalf("the pull fetched %d packs before it was refused; want the bad commit in a middle slice, after 2 or more", n)
	}
	untouched(t, c)
}

// TestPullSlicedInterrupted: a sliced pull cut short (its context ends
// while a slice is being fetched) keeps nothing, and the next one pulls
// the whole history.
func TestPullSlicedInterrupted(t *testing.T) {
	sw := newSliceWorld(t, 14)
	ctx, cancel := context.WithCancel(sw.ctx)
	defer cancel()
	var fetches atomic.Int32
	sw.rewrite = func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") && fetches.Add(1) == 3 {
			cancel() // the user presses ^C while the third slice comes
			return true
		}
		return false
	}
	c := sw.replica("c", sw.url)
	if _, err := Pull(ctx, c, "origin", Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("pull interrupted: %v; want context.Canceled", err)
	}
	untouched(t, c)
	sw.rewrite = nil
	p, err := Pull(sw.ctx, c, "origin", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if head := mustHead(t, sw.repo); p.Head != head || p.Main != "created" {
		t.Fatalf("the pull after: %+v; want main created at %s", p, head)
	}
}

func mustHead(t *testing.T, r *index.Repo) string {
	t.Helper()
	head, err := r.Head(t.Context(), index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	return head
}

// TestPickSlices: the cuts are spread evenly, the first and last slices
// half the size of those between, never the same commit twice.
func TestPickSlices(t *testing.T) {
	cuts := sliceCuts
	t.Cleanup(func() { sliceCuts = cuts })
	list := make([]string, 32)
	for i := range list {
		list[i] = fmt.Sprint(i)
	}
	for _, tc := range []struct {
		cuts int
		list []string
		want string
	}{
		{1, list, "16"},
		{2, list, "8 24"},
		{4, list, "4 12 20 28"},
		{4, list[:3], "0 1 2"},
		{4, list[:1], "0"},
	} {
		sliceCuts = tc.cuts
		if got := strings.Join(pickSlices(tc.list), " "); got != tc.want {
			t.Errorf("%d cuts of %d commits: %s, want %s", tc.cuts, len(tc.list), got, tc.want)
		}
	}
}

// TestPullSliceMissingObject: a server answers a middle slice's fetch
// with a pack that lacks one of the slice's objects (a blob, a tree).
// The pull is refused, the replica keeps nothing, and no ref is left
// naming what the server sent: its repository stays whole (git fsck,
// git gc), and the honest pull after it succeeds.
func TestPullSliceMissingObject(t *testing.T) {
	for _, drop := range []string{"blob", "tree"} {
		t.Run(drop, func(t *testing.T) {
			sw := newSliceWorld(t, 10)
			gd := indextest.GitDir(t, sw.repo)
			var fetches atomic.Int32
			sw.rewrite = func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/git-upload-pack") || fetches.Add(1) != 2 {
					return false
				}
				// The objects the request asks for, one of the kind dropped left out.
				body, _ := io.ReadAll(r.Body)
				var args []string
				for _, f := range strings.Split(string(body), "\n") {
					if _, id, ok := strings.Cut(f, "want "); ok {
						args = append(args, id)
					}
					if _, id, ok := strings.Cut(f, "have "); ok {
						args = append(args, "^"+id)
					}
				}
				var keep []string
				gone := false
				for _, o := range strings.Split(gitIn(t, gd, append([]string{"rev-list", "--objects"}, args...)...), "\n") {
					f := strings.Fields(o)
					if !gone && len(f) > 1 && gitIn(t, gd, "cat-file", "-t", f[0]) == drop {
						gone = true
						continue
					}
					keep = append(keep, f[0])
				}
				if !gone {
					t.Errorf("no %s to leave out of the slice", drop)
					return false
				}
				cmd := exec.Command("git", "-C", gd, "pack-objects", "--stdout")
				cmd.Stdin = strings.NewReader(strings.Join(keep, "\n") + "\n")
				pack, err := cmd.Output()
				if err != nil {
					t.Errorf("pack-objects: %v", err)
					return false
				}
				var out bytes.Buffer
				pkt := func(s string) { fmt.Fprintf(&out, "%04x%s", len(s)+4, s) }
				pkt("packfile\n")
				for len(pack) > 0 {
					n := min(len(pack), 65000)
					pkt("\x01" + string(pack[:n]))
					pack = pack[n:]
				}
				out.WriteString("0000")
				w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
				w.Write(out.Bytes())
				return true
			}
			c := sw.replica("c", sw.url)
			if _, err := Pull(sw.ctx, c, "origin", Options{}); err == nil {
				t.Fatalf("a pull whose slice lacks a %s was accepted", drop)
			}
			untouched(t, c)
			cgd := indextest.GitDir(t, c)
			for _, args := range [][]string{{"fsck", "--connectivity-only"}, {"gc", "-q"}} {
				if out, err := exec.Command("git", append([]string{"-C", cgd}, args...)...).CombinedOutput(); err != nil {
					refs, _ := exec.Command("git", "-C", cgd, "for-each-ref").CombinedOutput()
					t.Fatalf("after the refused pull, git %s: %v\n%s\nrefs:\n%s", args[0], err, out, refs)
				}
			}
			sw.rewrite = nil
			if _, err := Pull(sw.ctx, c, "origin", Options{}); err != nil {
				t.Fatalf("the honest pull after: %v", err)
			}
		})
	}
}
