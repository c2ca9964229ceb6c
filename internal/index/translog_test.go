package index_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
)

// gitLog runs plain git on the fixture's repository.
func (f *fixture) gitLog(args ...string) string {
	f.t.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir", filepath.Join(f.dir, "index.git")}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		f.t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// wantEntries computes the spec's leaves of main up to head with plain
// git, apart from cairn's code: commits along the first-parent line from
// the root, then each commit's added files by path and its map leaf (the
// map root after them, by translog.Map, which its own tests check against
// a naive map); each entry line written here by hand.
func (f *fixture) wantEntries(head string) [][]byte {
	f.t.Helper()
	var out [][]byte
	m := translog.NewMap()
	for _, c := range strings.Fields(f.gitLog("rev-list", "--reverse", "--first-parent", head)) {
		when := strings.TrimSpace(f.gitLog("show", "-s", "--format=%ct", c))
		type added struct{ path, blob string }
		var files []added
		for _, line := range strings.Split(strings.TrimSpace(f.gitLog("diff-tree", "-r", "--root", "--no-commit-id", "--no-renames", "--diff-filter=A", "--raw", "--no-abbrev", c)), "\n") {
			if line == "" {
				continue
			}
			meta, path, _ := strings.Cut(line, "\t")
			files = append(files, added{path, strings.Fields(meta)[3]})
		}
		sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
		for _, a := range files {
			data := []byte(f.gitLog("cat-file", "blob", a.blob))
			e := fmt.Appendf(nil, "%s %s %x %d %s\n", c, when, sha256.Sum256(data), len(data), a.path)
			for _, sub := range index.SubjectsOf(a.path) {
				m.Add(sub, int64(len(out)), translog.LeafHash(e))
			}
			out = append(out, e)
		}
		root := m.Root()
		out = append(out, fmt.Appendf(nil, "%s %s map %x\n", c, when, root[:]))
	}
	return out
}

// fileEntries returns the entries that are files, with their leaf indices.
func fileEntries(entries [][]byte) (idx []int64, files [][]byte) {
	for i, e := range entries {
		if !translog.IsMapEntry(e) {
			idx, files = append(idx, int64(i)), append(files, e)
		}
	}
	return idx, files
}

type refTree []tlog.Hash

func (m refTree) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		out[i] = m[x]
	}
	return out, nil
}

// wantRoot is RFC 6962's root over the entries, by x/mod's tlog.
func wantRoot(entries [][]byte) tlog.Hash {
	var t refTree
	for i, e := range entries {
		hs, _ := tlog.StoredHashes(int64(i), e, t)
		t = append(t, hs...)
	}
	h, _ := tlog.TreeHash(int64(len(entries)), t)
	return h
}

// checkLog asserts that main's log is the spec's log of head.
func (f *fixture) checkLog(head string) {
	f.t.Helper()
	lg, err := f.repo.LogOf(f.repo.Main())
	if err != nil {
		f.t.Fatal(err)
	}
	want := f.wantEntries(head)
	if lg.Head() != head || lg.Size() != int64(len(want)) {
		f.t.Fatalf("main's log is at %.12s with %d leaves; want %.12s with %d", lg.Head(), lg.Size(), head, len(want))
	}
	if err := lg.Range(0, lg.Size(), func(i int64, e []byte) error {
		if !bytes.Equal(e, want[i]) {
			return fmt.Errorf("leaf %d is %q, want %q", i, e, want[i])
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	if lg.Root() != wantRoot(want) {
		f.t.Fatalf("main's log root %v, want %v", lg.Root(), wantRoot(want))
	}
}

func (f *fixture) head() string {
	f.t.Helper()
	h, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// Every append to main (init, grants, publishes, certifications) adds its
// files to main's log, and a verification from the introduction computes
// the same log.
func TestLogFollowsMain(t *testing.T) {
	f := newFixture(t)
	f.checkLog(f.head())
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	f.publish(f.alice, "acme/fastjson", "1.1.0")
	f.publish(f.bob, "bob/tool", "0.1.0")
	if _, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-x", Severity: "high"}, f.audit); err != nil {
		t.Fatal(err)
	}
	f.checkLog(f.head())
	res, err := f.repo.Verify(f.ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	lg, _ := f.repo.LogOf(f.repo.Main())
	commits := int64(len(strings.Fields(f.gitLog("rev-list", "--first-parent", f.head()))))
	if int64(res.Total)+commits != lg.Size() {
		t.Fatalf("verify counted %d files in %d commits, the log holds %d leaves", res.Total, commits, lg.Size())
	}
	// Its last leaf is the head's map leaf, with the map's root.
	last, err := lg.Entry(lg.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	if me, err := translog.ParseMapEntry(last); err != nil || me.Commit != f.head() {
		t.Fatalf("the log's last leaf %q: %v, want the map leaf of %s", last, err, f.head())
	}
	f.checkLog(f.head())

	// The map beside it holds each file under its subject.
	s, err := f.repo.StoreOf(f.repo.Main())
	if err != nil {
		t.Fatal(err)
	}
	at, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	m := translog.NewMap()
	idx, files := fileEntries(f.wantEntries(f.head()))
	for k, e := range files {
		ent, _ := translog.ParseEntry(e)
		subs := index.SubjectsOf(ent.Path)
		if len(subs) == 0 {
			t.Fatalf("%s has no subject", ent.Path)
		}
		for _, sub := range subs {
			m.Add(sub, idx[k], translog.LeafHash(e))
		}
	}
	if at.Size != lg.Size() || at.Map.Root() != m.Root() {
		t.Fatalf("the map at %d leaves has root %v, want %v", at.Size, at.Map.Root(), m.Root())
	}
	if me, _ := translog.ParseMapEntry(last); me.Root != m.Root() {
		t.Fatalf("the last map leaf has root %v, the map %v", me.Root, m.Root())
	}
	v, idx, ok := at.Map.Get("package acme/fastjson")
	if !ok || v.Count != uint64(len(idx)) || len(idx) < 5 {
		t.Fatalf("package acme/fastjson in the map: %v %v %v", v, idx, ok)
	}
}

// A replica made before logs were kept (no log directory), a log left
// behind its marker, and a log of another history are all brought to the
// verified head by the next verification, even one with nothing new.
func TestLogBroughtToMarker(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	logDir := f.repo.Main().LogDir()
	if logDir != filepath.Join(f.dir, "log") {
		t.Fatalf("main's log is at %s", logDir)
	}
	behind := filepath.Join(t.TempDir(), "behind")
	copyDir(t, logDir, behind)
	f.publish(f.alice, "acme/fastjson", "1.1.0")
	head := f.head()

	for name, prepare := range map[string]func(){
		"no log": func() { os.RemoveAll(logDir) },
		"behind": func() { os.RemoveAll(logDir); copyDir(t, behind, logDir) },
		"corrupt": func() {
			os.WriteFile(filepath.Join(logDir, "state.json"), []byte(`{"size": 3, "head": "`+head+`", "root": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`), 0o644)
		},
		"another history": func() {
			os.RemoveAll(logDir)
			lg, err := translog.OpenLog(logDir)
			if err != nil {
				t.Fatal(err)
			}
			lg.Append(translog.NewEntry(strings.Repeat("f", 40), 1, "root/00000001.json", []byte("forged")))
			lg.Commit(strings.Repeat("e", 40))
			lg.Close()
		},
	} {
		f.repo.Close() // as a new process would find it
		prepare()
		if _, err := f.repo.Verify(f.ctx, false); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f.checkLog(head)
		if ents, _ := os.ReadDir(filepath.Dir(logDir)); len(ents) > 0 {
			for _, e := range ents {
				if strings.Contains(e.Name(), ".log.") || strings.HasPrefix(e.Name(), ".log") {
					t.Fatalf("%s: left %s behind", name, e.Name())
				}
			}
		}
	}
}

// writeLog writes a log of entries (files and map leaves, as wantEntries
// gives them) at logDir, committed at head, through translog.Store with
// subjectsOf, the last file's size changed if alter; it returns its root.
func writeLog(t *testing.T, logDir string, entries [][]byte, head string, subjectsOf func(string) []string, alter bool) tlog.Hash {
	t.Helper()
	lg, err := translog.OpenStore(logDir, subjectsOf)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	lastFile := -1
	for i, text := range entries {
		if !translog.IsMapEntry(text) {
			lastFile = i
		}
	}
	var files []translog.Entry
	for i, text := range entries {
		if translog.IsMapEntry(text) {
			me, _ := translog.ParseMapEntry(text)
			if _, err := lg.AppendCommit(me.Commit, me.Time, files); err != nil {
				t.Fatal(err)
			}
			files = nil
			continue
		}
		e, _ := translog.ParseEntry(text)
		if alter && i == lastFile {
			e.Size++
		}
		files = append(files, e)
	}
	if err := lg.Commit(head); err != nil {
		t.Fatal(err)
	}
	return lg.Root()
}

// A log whose map leaves leave a package out (a map that omits a record,
// each map leaf agreeing with it) is not the history's: a full verification
// reports it and replaces it; an incremental one that appends to it finds
// its map leaves wrong and computes it again.
func TestWrongMapLeafRefused(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	head := f.head()
	good, _ := f.repo.LogOf(f.repo.Main())
	goodRoot, size := good.Root(), good.Size()
	want := f.wantEntries(head)
	omit := func(path string) []string {
		if strings.Contains(path, "fastjson") {
			return nil
		}
		return index.SubjectsOf(path)
	}
	logDir := f.repo.Main().LogDir()

	f.repo.Close()
	os.RemoveAll(logDir)
	badRoot := writeLog(t, logDir, want, head, omit, false)
	if badRoot == goodRoot {
		t.Fatal("a map without acme/fastjson gives the same tree")
	}
	_, err := f.repo.Verify(f.ctx, true)
	var me *index.LogMismatchError
	if !errors.As(err, &me) || me.Stored != badRoot || me.Recomputed != goodRoot || me.Size != size {
		t.Fatalf("full verify over a log with wrong map leaves: %v", err)
	}
	f.checkLog(head)

	f.repo.Close()
	os.RemoveAll(logDir)
	writeLog(t, logDir, want, head, omit, false)
	f.publish(f.alice, "acme/fastjson", "1.1.0") // its append to the log fails: the map does not follow
	if _, err := f.repo.Verify(f.ctx, false); err != nil {
		t.Fatal(err)
	}
	f.checkLog(f.head())
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A full verification recomputes the log: one that differs from the
// history is reported with both roots, then replaced.
func TestFullVerifyReplacesWrongLog(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	head := f.head()
	good, _ := f.repo.LogOf(f.repo.Main())
	goodRoot, size := good.Root(), good.Size()

	// Someone rewrites the replica's log: same head, same size, one entry changed.
	f.repo.Close()
	logDir := f.repo.Main().LogDir()
	want := f.wantEntries(head)
	os.RemoveAll(logDir)
	badRoot := writeLog(t, logDir, want, head, index.SubjectsOf, true)

	// An incremental verification trusts its own log.
	if _, err := f.repo.Verify(f.ctx, false); err != nil {
		t.Fatal(err)
	}
	_, err := f.repo.Verify(f.ctx, true)
	var me *index.LogMismatchError
	if !errors.As(err, &me) || !errors.Is(err, index.ErrLogMismatch) {
		t.Fatalf("full verify over a wrong log: %v", err)
	}
	if me.Stored != badRoot || me.Recomputed != goodRoot || me.Size != size || me.RecSize != size || me.Head != head ||
		!strings.Contains(err.Error(), badRoot.String()) || !strings.Contains(err.Error(), goodRoot.String()) {
		t.Fatalf("mismatch error %+v: %v", me, err)
	}
	f.checkLog(head)
	if _, err := f.repo.Verify(f.ctx, true); err != nil {
		t.Fatalf("full verify after the log was replaced: %v", err)
	}
}

// A full verification computes the log again and checks the one kept
// against it: a right one is kept as it is (no file written again, and
// the verification reports nothing); one whose root is right but whose
// files are not (a stored hash the root does not read, damaged on disk)
// is replaced, with no mismatch to report.
func TestFullVerifyKeepsRightLog(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	f.publish(f.alice, "acme/fastjson", "1.1.0")
	head := f.head()
	logDir := f.repo.Main().LogDir()
	files := func() map[string]os.FileInfo {
		out := map[string]os.FileInfo{}
		filepath.Walk(logDir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && fi.Name() != "lock" {
				out[p] = fi
			}
			return err
		})
		return out
	}
	before := files()
	if _, err := f.repo.Verify(f.ctx, true); err != nil {
		t.Fatalf("full verify over a right log: %v", err)
	}
	f.checkLog(head)
	after := files()
	if len(after) != len(before) {
		t.Fatalf("full verify over a right log left %d files, there were %d", len(after), len(before))
	}
	for p, fi := range before {
		if a := after[p]; a == nil || !os.SameFile(fi, a) || !a.ModTime().Equal(fi.ModTime()) {
			t.Fatalf("full verify over a right log wrote %s again", p)
		}
	}

	// A stored hash damaged: the root reads only the top of the tree.
	f.repo.Close()
	p := filepath.Join(logDir, "hashes")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.Verify(f.ctx, true); err != nil {
		t.Fatalf("full verify over a log with a damaged stored hash: %v", err)
	}
	f.checkLog(head)
	if fixed, _ := os.ReadFile(p); bytes.Equal(fixed, data) {
		t.Fatal("full verify kept the damaged stored hash")
	}
	// And the log goes on from there.
	f.publish(f.alice, "acme/fastjson", "1.2.0")
	if _, err := f.repo.Verify(f.ctx, true); err != nil {
		t.Fatal(err)
	}
	f.checkLog(f.head())
}

// A verification that fails leaves the log where it was, nothing staged;
// the server's check of a push (CheckUpdate) does not touch it.
func TestLogUntouchedByFailures(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	head := f.head()
	// The marker and the log as they were before the next publish: the
	// verification below replays it, then meets the broken commit.
	saved := t.TempDir()
	copyDir(t, f.repo.Main().LogDir(), filepath.Join(saved, "log"))
	marker, _ := os.ReadFile(f.repo.Main().Marker)
	f.publish(f.alice, "acme/fastjson", "1.1.0")
	f.repo.Close()
	os.RemoveAll(f.repo.Main().LogDir())
	copyDir(t, filepath.Join(saved, "log"), f.repo.Main().LogDir())
	os.WriteFile(f.repo.Main().Marker, marker, 0o644)
	state := func() string {
		data, _ := os.ReadFile(filepath.Join(f.repo.Main().LogDir(), "state.json"))
		return string(data)
	}
	before := state()
	if _, err := f.repo.CheckUpdate(f.ctx, "", head, time.Now(), index.MaxClockSkew); err != nil {
		t.Fatal(err)
	}
	if state() != before {
		t.Fatal("CheckUpdate moved the log")
	}

	// A commit that breaks a rule, made with plain git.
	clone := filepath.Join(t.TempDir(), "clone")
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=m", "GIT_AUTHOR_EMAIL=m@x", "GIT_COMMITTER_NAME=m", "GIT_COMMITTER_EMAIL=m@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(".", "clone", "-q", filepath.Join(f.dir, "index.git"), clone)
	os.WriteFile(filepath.Join(clone, "root", "junk.json"), []byte("{}"), 0o644)
	run(clone, "add", ".")
	run(clone, "commit", "-q", "-m", "junk")
	run(clone, "push", "-q", "origin", "main")
	f.repo.ResetReader()
	if _, err := f.repo.Verify(f.ctx, false); err == nil {
		t.Fatal("a rule-breaking commit verified")
	}
	lg, _ := f.repo.LogOf(f.repo.Main())
	if state() != before || lg.Head() != head || lg.Staged() != 0 {
		t.Fatalf("a failed verification moved the log: head %.12s, %d staged", lg.Head(), lg.Staged())
	}
	if _, err := f.repo.Verify(f.ctx, true); err == nil {
		t.Fatal("a rule-breaking commit verified in full")
	}
	if state() != before {
		t.Fatal("a failed full verification replaced the log")
	}
	if ents, _ := os.ReadDir(f.dir); true {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".log.new-") {
				t.Fatalf("a failed full verification left %s", e.Name())
			}
		}
	}
}

func TestLineLogDir(t *testing.T) {
	for marker, want := range map[string]string{
		"/r/verified.json":                  "/r/log",
		"/r/remotes/origin.verified.json":   "/r/remotes/origin.log",
		"/r/upstreams/public.verified.json": "/r/upstreams/public.log",
	} {
		if got := (index.Line{Marker: marker}).LogDir(); got != want {
			t.Errorf("LogDir of marker %s = %s, want %s", marker, got, want)
		}
	}
}

// A log that cannot be kept (here its directory's name is taken by a
// file) does not stop a verification nor the reads behind it; once it
// can be, the next verification brings it to the verified head.
func TestLogCannotBeKept(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	f.repo.Close()
	logDir := f.repo.Main().LogDir()
	os.RemoveAll(logDir)
	os.WriteFile(logDir, []byte("in the way"), 0o644)
	res, err := f.repo.Verify(f.ctx, false)
	if err != nil {
		t.Fatalf("verify without a log: %v", err)
	}
	if res.LogErr == nil || res.Unsaved != nil {
		t.Fatalf("verify without a log: LogErr %v, Unsaved %v", res.LogErr, res.Unsaved)
	}
	if _, err := f.repo.Verified(f.ctx); err != nil {
		t.Fatalf("a read without a log: %v", err)
	}
	// More is appended meanwhile: the marker moves on without its log.
	f.publish(f.alice, "acme/fastjson", "1.1.0")
	os.Remove(logDir)
	if res, err := f.repo.Verify(f.ctx, false); err != nil || res.LogErr != nil {
		t.Fatalf("verify with room for the log: %v, %v", err, res.LogErr)
	}
	f.checkLog(f.head())
}

// A log brought to main over more commits than the walk hands over at
// once (256; 4 here): the walk stopped on the full channel with its last
// requests in this side's buffer while the reader waited for them, and
// every command hung for good (a pull of 258 commits, then anything).
func TestLogBroughtOverManyCommits(t *testing.T) {
	defer index.SetDeriveAhead(4)()
	f := newFixture(t)
	k := newSigner()
	for i := range 12 {
		if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: k.Public(), Holder: "many", Scopes: []string{fmt.Sprintf("publish:ns%d/*", i)}}, f.root); err != nil {
			t.Fatal(err)
		}
	}
	head := f.head()
	f.repo.Close()
	os.RemoveAll(f.repo.Main().LogDir())
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	if _, err := f.repo.Verify(ctx, false); err != nil {
		t.Fatalf("bringing the log over 12 commits: %v", err)
	}
	f.checkLog(head)
}
