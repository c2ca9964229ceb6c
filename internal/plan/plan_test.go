package plan

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server/servertest"
)

// world is an index with a small package graph, a snapshot lts-1.0
// labelled lts-1.0, and a project directory.
type world struct {
	*indextest.World
	project string
	lts     blob.Ref
}

func newWorld(t *testing.T) *world {
	w := &world{World: indextest.New(t), project: t.TempDir()}
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
		w.Publish(indextest.Package{Name: "acme/log", Version: v})
	}
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.2.3", Deps: map[string]string{"acme/log": "^1.0"}})
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.3.0", Deps: map[string]string{"acme/log": "^1.0"}})
	w.Publish(indextest.Package{Name: "acme/app", Version: "1.0.0", Deps: map[string]string{"acme/fastjson": "^1.2", "acme/log": ">=1.1.0"}})
	c, err := w.Repo.Catalog(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	// A file of plain name@version lines is not a snapshot file: the
	// error says what one is, in its words, not the decoder's Go types.
	if _, err := BuildSnapshot(c, "lts.txt", []byte("acme/fastjson@1.2.3\nacme/log@1.1.0\n"), nil); err == nil || !strings.Contains(err.Error(), "a snapshot file (name: NAME, then packages: a list of name@version)") || strings.Contains(err.Error(), "plan.") {
		t.Errorf("a file of lines: %v", err)
	}
	snap, err := BuildSnapshot(c, "lts-1.0.yaml", []byte("name: lts-1.0\ntoolchain: {name: go, version: 1.26.8}\npackages:\n  - acme/fastjson@1.2.3\n  - {name: acme/log, version: 1.1.0, flags: {debug: \"off\"}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, w.lts, err = author.CreateSnapshot(w.Ctx, w.Repo, snap, w.Curator); err != nil {
		t.Fatal(err)
	}
	if _, _, err := author.SetLabel(w.Ctx, w.Repo, "lts-1.0", w.lts.SHA256, w.Curator); err != nil {
		t.Fatal(err)
	}
	w.write("policy.yaml", "issuers:\n  security: [acme-security]\nforbid:\n  - name: high-vulnerabilities\n    property: vulnerable\n    severity: high\n")
	return w
}

func (w *world) write(name, content string) {
	w.T.Helper()
	if err := os.WriteFile(filepath.Join(w.project, name), []byte(content), 0o644); err != nil {
		w.T.Fatal(err)
	}
}

// projectFile is a cairn.yaml over the world's index on disk.
func (w *world) projectFile(rest string) string {
	return fmt.Sprintf("repositories:\n  - name: acme\n    path: %s\n    introduction: %s\n%s", w.Dir, w.Intro, rest)
}

// lock resolves the project in the world's directory.
func (w *world) lock(o Options) (*Project, Sources, *Lock, error) {
	w.T.Helper()
	p, err := ReadProject(w.project)
	if err != nil {
		return nil, nil, nil, err
	}
	srcs, err := Open(context.Background(), p, o)
	if err != nil {
		return p, nil, nil, err
	}
	w.T.Cleanup(srcs.Close)
	l, err := Resolve(context.Background(), p, srcs)
	return p, srcs, l, err
}

func versions(l *Lock) string {
	var out []string
	for _, p := range l.Packages {
		out = append(out, p.ID())
	}
	return strings.Join(out, " ")
}

func TestResolve(t *testing.T) {
	w := newWorld(t)
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npackages:\n  acme/app: ^1.0\nplatforms: [linux-amd64, darwin-arm64]\npolicy: policy.yaml\n"))
	p, srcs, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/app@1.0.0 acme/fastjson@1.2.3 acme/log@1.1.0" {
		t.Fatalf("plan = %s", got)
	}
	if l.Snapshot == nil || l.Snapshot.Ref != w.lts || l.Snapshot.Label != "lts-1.0" || l.Snapshot.Name != "lts-1.0" {
		t.Fatalf("snapshot pin = %+v, want %v", l.Snapshot, w.lts)
	}
	head, _ := w.Repo.Head(w.Ctx, index.MainRef)
	if len(l.Repositories) != 1 || l.Repositories[0].Head != head || l.Repositories[0].Introduction != w.Intro {
		t.Fatalf("repositories = %+v", l.Repositories)
	}
	fj := l.Package("acme/fastjson")
	c, _ := w.Repo.Catalog(w.Ctx, index.MainRef)
	d, ref, _ := c.Descriptor("acme/fastjson", "1.2.3")
	if fj.Descriptor != ref || len(fj.Artifacts) != 2 || fj.Artifacts[0].Kind != "binary" || fj.Artifacts[0].Ref != d.Artifacts[1].Ref ||
		fj.Artifacts[1].Platform != "darwin-arm64" || fj.Artifacts[1].Kind != "source" {
		t.Fatalf("fastjson locked as %+v; descriptor %+v", fj, d)
	}
	wantWhy := []string{"required by acme/app@1.0.0 (^1.2)", "snapshot lts-1.0 (label lts-1.0, sha256:" + w.lts.SHA256[:12] + ")"}
	if strings.Join(fj.ChosenBy, "|") != strings.Join(wantWhy, "|") {
		t.Fatalf("fastjson chosen by %q, want %q", fj.ChosenBy, wantWhy)
	}

	// Deterministic: the same inputs give the same bytes.
	a, _ := l.Marshal()
	_, _, l2, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := l2.Marshal()
	if !bytes.Equal(a, b) {
		t.Fatalf("two locks of the same inputs differ:\n%s\n%s", a, b)
	}
	if err := Check(w.Ctx, p, l, nil, srcs); err != nil {
		t.Fatalf("a fresh lock fails its check: %v", err)
	}

	// Without the snapshot, ranges pick the highest version every range
	// accepts.
	w.write("cairn.yaml", w.projectFile("packages:\n  acme/app: ^1.0\n"))
	if _, _, l, err = w.lock(Options{}); err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/app@1.0.0 acme/fastjson@1.3.0 acme/log@1.1.0" {
		t.Fatalf("plan = %s", got)
	}
	if l.Package("acme/log").Artifacts[0].Platform != "source" {
		t.Fatalf("no platforms: want the source artifact, got %+v", l.Package("acme/log").Artifacts)
	}

	// A range the snapshot's pin cannot meet is a conflict that names both.
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npackages:\n  acme/app: ^1.0\n  acme/fastjson: ^1.3\n"))
	if _, _, l, err = w.lock(Options{}); err != nil || l.Package("acme/fastjson").Version != "1.3.0" {
		t.Fatalf("an extra range overrides the snapshot's version: %v, %v", err, l)
	}
	w.Publish(indextest.Package{Name: "acme/new", Version: "1.0.0", Deps: map[string]string{"acme/log": "^2.0"}})
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npackages:\n  acme/new: ^1.0\n"))
	_, _, _, err = w.lock(Options{})
	if !errors.Is(err, ErrUnresolvable) || !strings.Contains(err.Error(), "snapshot lts-1.0") || !strings.Contains(err.Error(), "acme/new@1.0.0 requires acme/log ^2.0") {
		t.Fatalf("conflict: %v", err)
	}
	w.write("cairn.yaml", w.projectFile("packages:\n  acme/missing: ^1.0\n"))
	if _, _, _, err = w.lock(Options{}); !errors.Is(err, ErrUnresolvable) || !strings.Contains(err.Error(), "acme/missing is published in none") {
		t.Fatalf("missing package: %v", err)
	}
}

// A lock's encoding is the lock with its digest, indented, whatever
// holds it (a policy and a snapshot pinned, chosen_by with <, > and &).
func TestLockMarshal(t *testing.T) {
	w := newWorld(t)
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npackages:\n  acme/app: \">=1.0 <2.0\"\nplatforms: [linux-amd64]\npolicy: policy.yaml\n"))
	_, _, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.MarshalIndent(l, "", "  ")
	if !bytes.Equal(got, append(want, '\n')) || l.Policy == nil || l.Snapshot == nil || !bytes.Contains(got, []byte(`\u003c2.0`)) {
		t.Fatalf("Marshal:\n%s\nwant:\n%s", got, want)
	}
	l.Digest = ""
	body, _ := json.MarshalIndent(l, "", "  ")
	if sum := sha256.Sum256(append(body, '\n')); !bytes.Contains(got, []byte(`"digest": "sha256:`+hex.EncodeToString(sum[:])+`"`)) {
		t.Fatalf("the digest is not the sha256 of the lock without it:\n%s", got)
	}
}

// TestLockEdited is attack 1 (a lock edited by hand) and attack 2
// (mix-and-match): each edit is refused, naming the entry.
func TestLockEdited(t *testing.T) {
	w := newWorld(t)
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npackages:\n  acme/app: ^1.0\nplatforms: [linux-amd64]\npolicy: policy.yaml\n"))
	p, srcs, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := l.Marshal()
	c, _ := w.Repo.Catalog(w.Ctx, index.MainRef)
	other, _, _ := c.Descriptor("acme/fastjson", "1.3.0")
	_, otherRef, _ := c.Descriptor("acme/log", "2.0.0")
	for _, tc := range []struct {
		name     string
		edit     func(l *Lock)
		redigest bool // the editor recomputes the lock's own digest
		want     []string
	}{
		{"a digest", func(l *Lock) { l.Package("acme/log").Descriptor.SHA256 = strings.Repeat("0", 64) }, false,
			[]string{"edited by hand", "package acme/log@1.1.0: descriptor sha256:0000"}},
		{"a digest, with the lock's digest recomputed", func(l *Lock) { l.Package("acme/log").Artifacts[0].SHA256 = strings.Repeat("1", 64) }, true,
			[]string{"package acme/log@1.1.0: artifact linux-amd64.tar.gz"}},
		{"a size", func(l *Lock) { l.Package("acme/app").Descriptor.Size++ }, true, []string{"package acme/app@1.0.0: descriptor"}},
		{"a version", func(l *Lock) { l.Package("acme/log").Version = "2.0.0" }, true, []string{"package acme/log@2.0.0: descriptor"}},
		{"a URL", func(l *Lock) { l.Repositories[0].Location = "https://evil.example" }, true, []string{"repository acme: location https://evil.example"}},
		{"a descriptor of another version", func(l *Lock) { l.Package("acme/log").Descriptor = otherRef }, true, []string{"package acme/log@1.1.0: descriptor"}},
		{"an artifact of another version", func(l *Lock) {
			a := &l.Package("acme/fastjson").Artifacts[0]
			a.Ref = other.Artifacts[1].Ref
		}, true, []string{"package acme/fastjson@1.2.3: artifact linux-amd64.tar.gz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e Lock
			if err := json.Unmarshal(good, &e); err != nil {
				t.Fatal(err)
			}
			tc.edit(&e)
			data, _ := json.MarshalIndent(&e, "", "  ")
			data = append(data, '\n')
			if tc.redigest {
				data, _ = e.Marshal()
			}
			parsed, perr := ParseLock(data)
			if tc.redigest != (perr == nil) {
				t.Fatalf("ParseLock = %v", perr)
			}
			err := Check(w.Ctx, p, parsed, perr, srcs)
			if !errors.Is(err, ErrLockMismatch) {
				t.Fatalf("Check = %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("Check = %v; want it to say %q", err, want)
				}
			}
		})
	}
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npackages:\n  acme/app: ^1.0\nplatforms: [linux-amd64]\npolicy: policy.yaml\n# a comment\n"))
	p2, _ := ReadProject(w.project)
	var le *LockError
	if err := Check(w.Ctx, p2, l, nil, srcs); !errors.As(err, &le) || !le.Stale || !strings.Contains(err.Error(), "cairn.yaml changed") {
		t.Fatalf("a changed project: %v", err)
	}
}

// TestVerified is attack 6: a label or a range under --verified is
// refused with its line; a pinned project passes.
func TestVerified(t *testing.T) {
	w := newWorld(t)
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npackages:\n  acme/app: ^1.0\n"))
	p, err := ReadProject(w.project)
	if err != nil {
		t.Fatal(err)
	}
	err = p.CheckVerified()
	var ue *UnpinnedError
	if !errors.As(err, &ue) || len(ue.Offenders) != 2 || !strings.Contains(err.Error(), "cairn.yaml:5: snapshot: label lts-1.0 can move") ||
		!strings.Contains(err.Error(), `cairn.yaml:7: package acme/app: range "^1.0"`) {
		t.Fatalf("CheckVerified = %v", err)
	}
	c, _ := w.Repo.Catalog(w.Ctx, index.MainRef)
	_, app, _ := c.Descriptor("acme/app", "1.0.0")
	w.write("cairn.yaml", w.projectFile(fmt.Sprintf("snapshot: {name: lts-1.0, sha256: %s, size: %d}\npackages:\n  acme/app: {version: 1.0.0, sha256: %s, size: %d}\nverified: true\n", w.lts.SHA256, w.lts.Size, app.SHA256, app.Size)))
	p, _, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckVerified(); err != nil || !p.Verified {
		t.Fatalf("a pinned project: %v", err)
	}
	if got := versions(l); got != "acme/app@1.0.0 acme/fastjson@1.2.3 acme/log@1.1.0" {
		t.Fatalf("plan = %s", got)
	}
	// A pin whose digest is not the index's is refused.
	w.write("cairn.yaml", w.projectFile(fmt.Sprintf("packages:\n  acme/app: {version: 1.0.0, sha256: %s, size: %d}\n", app.SHA256, app.Size+1)))
	if _, _, _, err := w.lock(Options{}); !errors.Is(err, ErrUnresolvable) || !strings.Contains(err.Error(), "is pinned to descriptor") {
		t.Fatalf("a wrong pin: %v", err)
	}
}

// TestServedAndOffline resolves against a real server into the cache, then
// again offline after the server is gone.
func TestServedAndOffline(t *testing.T) {
	w := newWorld(t)
	url := servertest.Serve(w.World)
	cache := t.TempDir()
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\n    light: false\nsnapshot: lts-1.0\nplatforms: [linux-amd64]\npolicy: policy.yaml\n", url, w.Intro))
	_, srcs, l, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/fastjson@1.2.3 acme/log@1.1.0" || l.Repositories[0].Location != url {
		t.Fatalf("plan = %s from %+v", got, l.Repositories)
	}
	pol, err := LoadPolicy(mustProject(t, w.project), "", srcs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Evaluate(l, srcs, pol, time.Now()); err != nil {
		t.Fatalf("policy: %v", err)
	}
	// A high vulnerability certified after the lock: the next evaluation,
	// after a pull, refuses and says which package and rule.
	w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: "vulnerable", VulnID: "GHSA-9999", Severity: "high"})
	_, srcs2, _, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Evaluate(l, srcs2, pol, time.Now())
	var re *policy.RefusedError
	if !errors.As(err, &re) || len(re.Verdicts) != 1 || !strings.Contains(err.Error(), "acme/log@1.1.0: forbid high-vulnerabilities: vulnerable GHSA-9999 (high)") {
		t.Fatalf("Evaluate = %v", err)
	}
	srcs.Close()
	srcs2.Close()
	// Offline: the cache alone.
	_, _, l3, err := w.lock(Options{Cache: cache, Offline: true})
	if err != nil || versions(l3) != versions(l) {
		t.Fatalf("offline: %v, %v", err, l3)
	}
	if _, _, _, err := w.lock(Options{Cache: t.TempDir(), Offline: true}); err == nil || !strings.Contains(err.Error(), "never fetched") {
		t.Fatalf("offline with an empty cache: %v", err)
	}
}

func mustProject(t *testing.T, dir string) *Project {
	p, err := ReadProject(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func withOrigin(c checkpoint.Checkpoint, origin string) checkpoint.Checkpoint {
	c.Origin = origin
	return c
}

func withHead(c checkpoint.Checkpoint, head string) checkpoint.Checkpoint {
	c.Head = head
	return c
}

// TestLockCheckpoint: a lock resolved from a server holds the server's
// signed checkpoint; Check refuses one that was edited, signed by a key
// without the checkpoint scope, or dropped; locking again with the head
// unmoved keeps the checkpoint, so the bytes stay the same.
func TestLockCheckpoint(t *testing.T) {
	w := newWorld(t)
	url := servertest.Serve(w.World)
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\n    light: false\nsnapshot: lts-1.0\n", url, w.Intro))
	p, srcs, l, err := w.lock(Options{Cache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	lr := l.Repositories[0]
	sc, err := checkpoint.Open([]byte(lr.Checkpoint), checkpoint.Origin(w.Intro), []ed25519.PublicKey{w.Checkpointer.Public()})
	if err != nil || sc.Head != lr.Head || sc.Introduction() != w.Intro || lr.Records == 0 || sc.Size <= int64(lr.Records) {
		t.Fatalf("the lock's checkpoint %q: %v, %+v (lock head %s)", lr.Checkpoint, err, sc, lr.Head)
	}
	if err := Check(w.Ctx, p, l, nil, srcs); err != nil {
		t.Fatalf("Check of a fresh lock: %v", err)
	}
	sign := func(s keys.Signer, c checkpoint.Checkpoint) string {
		note, err := checkpoint.Sign(c, s)
		if err != nil {
			t.Fatal(err)
		}
		return string(note)
	}
	earlier := sc.Checkpoint
	earlier.Time = earlier.Time.Add(-time.Hour)
	for _, tc := range []struct {
		name, checkpoint, want string
	}{
		{"edited", strings.Replace(lr.Checkpoint, fmt.Sprintf("\n%d\n", sc.Size), fmt.Sprintf("\n%d\n", sc.Size+1), 1), "checkpoint"},
		{"signed by the publisher", sign(w.Publisher, sc.Checkpoint), "not signed by a key trusted to sign it"},
		{"of another index", sign(w.Checkpointer, withOrigin(sc.Checkpoint, checkpoint.Origin(strings.Repeat("ab", 32)))), "is of origin cairn.dev/index/abababab"},
		{"of another history", sign(w.Checkpointer, withHead(sc.Checkpoint, strings.Repeat("0", 40))), "does not contain"},
		{"dropped", "", "holds no checkpoint"},
	} {
		edited := *l
		edited.Repositories = []LockedRepo{lr}
		edited.Repositories[0].Checkpoint = tc.checkpoint
		if _, err := edited.Marshal(); err != nil {
			t.Fatal(err)
		}
		err := Check(w.Ctx, p, &edited, nil, srcs)
		var le *LockError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "repository acme: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check = %v, want %q", tc.name, err, tc.want)
		}
	}
	// Locking again: a checkpoint of the unmoved head is kept, another
	// head's is not.
	prev := *l
	prev.Repositories = []LockedRepo{lr}
	prev.Repositories[0].Checkpoint = sign(w.Checkpointer, earlier)
	if err := Check(w.Ctx, p, &prev, nil, srcs); err != nil {
		t.Fatalf("Check with an earlier checkpoint: %v", err)
	}
	again, err := Resolve(w.Ctx, p, srcs)
	if err != nil {
		t.Fatal(err)
	}
	again.KeepCheckpoints(w.Ctx, &prev, srcs)
	a, _ := again.Marshal()
	b, _ := prev.Marshal()
	if !bytes.Equal(a, b) {
		t.Fatalf("locking again with nothing new changed the lock:\n%s\nwas\n%s", a, b)
	}
	again.Repositories[0].Checkpoint = lr.Checkpoint
	forged := prev
	forged.Repositories = []LockedRepo{prev.Repositories[0]}
	forged.Repositories[0].Checkpoint = sign(w.Publisher, earlier)
	again.KeepCheckpoints(w.Ctx, &forged, srcs)
	if again.Repositories[0].Checkpoint != lr.Checkpoint {
		t.Fatal("kept a checkpoint that does not check")
	}
	prev.Repositories[0].Head = strings.Repeat("1", 40)
	again.KeepCheckpoints(w.Ctx, &prev, srcs)
	if again.Repositories[0].Checkpoint != lr.Checkpoint {
		t.Fatal("kept the checkpoint of a lock at another head")
	}
}

// TestHolderNamesAcrossRepositories: a holder name is the name one root
// gave. With two repositories, each granting an "acme-security", a
// policy's bare holder name is refused, and HOLDER@REPOSITORY does not
// accept the other repository's namesake (the attack: an audit by
// another root's "acme-security" passing for ours).
func TestHolderNamesAcrossRepositories(t *testing.T) {
	w := newWorld(t)
	other := indextest.New(t) // its own root, and its own "acme-security"
	other.Publish(indextest.Package{Name: "acme/tool", Version: "1.0.0"})
	other.Audit("acme/tool", "1.0.0")
	w.Audit("acme/log", "1.1.0")
	project := w.projectFile(fmt.Sprintf("  - name: other\n    path: %s\n    introduction: %s\npackages:\n  acme/log: 1.1.0\n  acme/tool: ^1\npolicy: policy.yaml\n", other.Dir, other.Intro))
	w.write("cairn.yaml", project)
	w.write("policy.yaml", "require:\n  - {name: audited, property: audited, by: acme-security}\n")
	p, srcs, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadPolicy(p, "", srcs)
	var fe *policy.FileError
	if !errors.As(err, &fe) || fe.Line != 2 || fe.Rule != "audited" || !strings.Contains(err.Error(), `issuer "acme-security" is a holder name, and the project reads 2 repositories (acme, other)`) {
		t.Fatalf("a bare holder name with two repositories: %v", err)
	}
	w.write("policy.yaml", "require:\n  - {name: audited, property: audited, by: acme-security@nowhere}\n")
	if _, err := LoadPolicy(p, "", srcs); err == nil || !strings.Contains(err.Error(), `the project reads no repository "nowhere"`) {
		t.Fatalf("an unknown repository: %v", err)
	}
	w.write("policy.yaml", "issuers:\n  security: [acme-security@acme]\nrequire:\n  - {name: audited, property: audited, by: security}\n")
	pol, err := LoadPolicy(p, "", srcs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Evaluate(l, srcs, pol, time.Now())
	var re *policy.RefusedError
	if !errors.As(err, &re) || len(re.Verdicts) != 1 || re.Verdicts[0].Package != "acme/tool@1.0.0" {
		t.Fatalf("Evaluate = %v, want acme/tool refused: its audit is by another root's acme-security", err)
	}
	// The same rule with the other repository named accepts it.
	w.write("policy.yaml", "require:\n  - {name: audited, property: audited, by: [acme-security@acme, acme-security@other]}\n")
	if pol, err = LoadPolicy(p, "", srcs); err != nil {
		t.Fatal(err)
	}
	if _, err := Evaluate(l, srcs, pol, time.Now()); err != nil {
		t.Fatalf("both repositories' teams named: %v", err)
	}
}

// TestUpstreamThroughOrganisation: an organisation's index that follows
// an upstream offers the upstream's packages to its projects (its own
// names first); the organisation's certifications of an upstream version
// count beside the upstream's own records, each judged by the root that
// named its holder: the upstream's "acme-security" does not pass for the
// organisation's, and an upstream's fixed record does not answer what the
// organisation declared.
func TestUpstreamThroughOrganisation(t *testing.T) {
	up := newWorld(t)
	upURL := servertest.Serve(up.World)
	up.Audit("acme/log", "1.0.0") // by the upstream's own acme-security
	org := indextest.New(t)
	org.Publish(indextest.Package{Name: "acme/internal", Version: "1.0.0", Deps: map[string]string{"acme/log": "^1.0"}})
	org.Audit("acme/internal", "1.0.0")
	// Its publisher's publish:acme/* would make every acme/ name internal
	// (the upstream's acme/log too): revoked, only acme/internal is.
	if _, err := author.RevokeKey(org.Ctx, org.Repo, keys.ID(org.Publisher.Public()), "acme/ is the upstream's", org.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := author.DeclareUpstream(org.Ctx, org.Repo, "public", upURL, up.Intro, org.Root); err != nil {
		t.Fatal(err)
	}
	sync := func() {
		t.Helper()
		if _, err := remote.Sync(org.Ctx, org.Repo, remote.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	org.Audit("acme/log", "1.1.0") // the organisation's audit of the upstream version: upstreams/public/…
	w := &world{World: org, project: t.TempDir()}
	w.write("policy.yaml", "require:\n  - {name: audited, property: audited, by: acme-security@corp}\nforbid:\n  - {name: high, property: vulnerable, severity: high}\n")
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, path: %s, introduction: %s}\npackages:\n  acme/internal: ^1\npolicy: policy.yaml\nplatforms: [linux-amd64]\n", org.Dir, org.Intro))
	evaluate := func() (*Lock, error) {
		t.Helper()
		p, srcs, l, err := w.lock(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := srcs.Names(); !slices.Equal(got, []string{"corp", "corp/public"}) {
			t.Fatalf("sources %v", got)
		}
		pol, err := LoadPolicy(p, "", srcs)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(w.Ctx, p, l, nil, srcs); err != nil {
			t.Fatalf("Check: %v", err)
		}
		_, err = Evaluate(l, srcs, pol, time.Now())
		return l, err
	}
	l, err := evaluate()
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if got := versions(l); got != "acme/internal@1.0.0 acme/log@1.1.0" {
		t.Fatalf("plan %s", got)
	}
	if log := l.Package("acme/log"); log.Repository != "corp/public" || l.Repositories[1].Introduction != up.Intro || l.Repositories[1].Location != "path:"+org.Dir {
		t.Fatalf("acme/log from %s; repositories %+v", log.Repository, l.Repositories)
	}
	// Pinned to 1.0.0, which only the upstream's acme-security audited.
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, path: %s, introduction: %s}\npackages:\n  acme/internal: ^1\n  acme/log: 1.0.0\npolicy: policy.yaml\nplatforms: [linux-amd64]\n", org.Dir, org.Intro))
	_, err = evaluate()
	var re *policy.RefusedError
	if !errors.As(err, &re) || len(re.Verdicts) != 1 || re.Verdicts[0].Package != "acme/log@1.0.0" || !strings.Contains(err.Error(), "require audited: no active audited by acme-security@corp") {
		t.Fatalf("the upstream's acme-security passed for the organisation's: %v", err)
	}
	// The organisation declares a vulnerability of 1.1.0; the upstream's
	// fixed record does not answer it.
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, path: %s, introduction: %s}\npackages:\n  acme/internal: ^1\npolicy: policy.yaml\nplatforms: [linux-amd64]\n", org.Dir, org.Intro))
	org.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Vulnerable, VulnID: "GHSA-org-1", Severity: "high"})
	up.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Fixed, VulnID: "GHSA-org-1", Note: "we say so"})
	sync()
	_, err = evaluate()
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "acme/log@1.1.0: forbid high: vulnerable GHSA-org-1 (high; fixed record ") || !strings.Contains(err.Error(), "is corp/public's, and answers only corp/public's records) by acme-security") {
		t.Fatalf("an upstream's fixed answered the organisation's vulnerability: %v", err)
	}
	// The organisation's own fixed record does.
	org.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Fixed, VulnID: "GHSA-org-1", Note: "not reachable here"})
	if _, err := evaluate(); err != nil {
		t.Fatalf("after the organisation's fixed: %v", err)
	}
	// The upstream's artifact is fetched from the upstream when the
	// organisation's store lacks it.
	_, srcs, _, _ := w.lock(Options{})
	art := l.Package("acme/log").Artifacts[0]
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	chain := &blob.Chain{Local: local, Mirrors: srcs.Get("corp/public").Blobs}
	if err := chain.Fetch(w.Ctx, art.Ref); err != nil {
		t.Fatalf("fetching the upstream artifact: %v", err)
	}
}

// TestFreshness: a policy's max_age reads a record's issued time as the
// index holds it: fresh when judged now, stale when judged past the
// window; the verdict names the time it was judged at.
func TestFreshness(t *testing.T) {
	w := newWorld(t)
	w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Audited})
	url := servertest.Serve(w.World)
	for _, light := range []bool{false, true} {
		t.Run(fmt.Sprintf("light=%v", light), func(t *testing.T) {
			w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\n    light: %v\npackages:\n  acme/log: 1.1.0\n", url, w.Intro, light))
			_, srcs, _, err := w.lock(Options{Cache: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer srcs.Close()
			pol, err := policy.Parse("policy.yaml", []byte("require:\n  - {name: audit, property: audited, max_age: 1h}\n"))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			v, err := Verdict(srcs.Get("acme"), pol, "acme/log", "1.1.0", nil, now)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Allowed || !v.JudgedAt.Equal(now.UTC()) {
				t.Fatalf("judged now: %+v", v)
			}
			v, err = Verdict(srcs.Get("acme"), pol, "acme/log", "1.1.0", nil, now.Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed || !strings.Contains(v.Rules[0].Reason, "is older than max_age 1h") {
				t.Fatalf("judged two hours later: %+v", v)
			}
		})
	}
}
