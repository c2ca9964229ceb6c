package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server/servertest"
)

// relock re-encodes an edited lock as its editor would: every field as
// edited, and the lock's own digest recomputed, so that only the index
// can tell.
func relock(t *testing.T, good []byte, edit func(l *Lock)) (*Lock, error) {
	t.Helper()
	var e Lock
	if err := json.Unmarshal(good, &e); err != nil {
		t.Fatal(err)
	}
	edit(&e)
	data, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return ParseLock(data)
}

// lockedAt is name@version as a lock entry for linux-amd64, read from the
// index: the consistent edit an attacker would make.
func lockedAt(t *testing.T, c *index.Catalog, name, version string) (blob.Ref, []LockedArtifact) {
	t.Helper()
	d, ref, err := c.Descriptor(name, version)
	if err != nil {
		t.Fatal(err)
	}
	a, err := pick(d, "linux-amd64")
	if err != nil {
		t.Fatal(err)
	}
	return ref, []LockedArtifact{a}
}

// TestLockConsistentEdits is issue 12, item 5: a lock edited
// consistently — its own digest recomputed, every entry one the index
// holds — is still refused, because the check re-derives what the lock
// should say from cairn.yaml at the heads the lock pins, and names the
// entry that differs.
func TestLockConsistentEdits(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/extra", Version: "1.0.0"})
	w.write("cairn.yaml", w.projectFile("packages:\n  acme/app: ^1.0\n  acme/log: ^1.0\nplatforms: [linux-amd64]\n"))
	p, _, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/app@1.0.0 acme/fastjson@1.3.0 acme/log@1.1.0" {
		t.Fatalf("plan = %s", got)
	}
	good, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pinned := l.Repositories[0].Head
	// A version published after the lock: the lock's head does not hold
	// it, today's index does.
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.2.0"})
	_, srcs, _, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if srcs[0].Head() == pinned {
		t.Fatal("the index did not move")
	}
	// The lock as written is current at the head it pins, though the
	// index has moved on.
	parsed, perr := ParseLock(good)
	if err := Check(w.Ctx, p, parsed, perr, srcs); err != nil {
		t.Fatalf("the unedited lock: %v", err)
	}
	c, err := w.Repo.Catalog(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	fj123, fj123Art := lockedAt(t, c, "acme/fastjson", "1.2.3")
	log120, log120Art := lockedAt(t, c, "acme/log", "1.2.0")
	log100, _ := lockedAt(t, c, "acme/log", "1.0.0")
	extra, extraArt := lockedAt(t, c, "acme/extra", "1.0.0")
	_, log110Art := lockedAt(t, c, "acme/log", "1.1.0")
	now := srcs[0].Head()

	for _, tc := range []struct {
		name string
		edit func(l *Lock)
		want []string
	}{
		{"an entry dropped", func(l *Lock) {
			l.Packages = append(l.Packages[:1], l.Packages[2:]...)
		}, []string{"package acme/fastjson: missing from cairn.lock; cairn.yaml resolves 1.3.0 at the pinned heads"}},
		{"a downgrade inside the range", func(l *Lock) {
			e := l.Package("acme/fastjson")
			e.Version, e.Descriptor, e.Artifacts = "1.2.3", fj123, fj123Art
		}, []string{"package acme/fastjson: cairn.yaml resolves 1.3.0 at the pinned heads, cairn.lock says 1.2.3"}},
		{"an upgrade inside the range", func(l *Lock) {
			e := l.Package("acme/log")
			e.Version, e.Descriptor, e.Artifacts = "1.2.0", log120, log120Art
		}, []string{"package acme/log: cairn.yaml resolves 1.1.0 at the pinned heads, cairn.lock says 1.2.0"}},
		{"an emptied artifact list", func(l *Lock) {
			l.Package("acme/log").Artifacts = []LockedArtifact{}
		}, []string{"package acme/log: no artifact for linux-amd64 in cairn.lock; cairn.yaml resolves it to binary linux-amd64.tar.gz sha256:" + log110Art[0].SHA256}},
		{"an artifact moved to another platform", func(l *Lock) {
			l.Package("acme/log").Artifacts[0].Platform = "darwin-arm64"
		}, []string{"package acme/log: no artifact for linux-amd64 in cairn.lock", "package acme/log: artifact for darwin-arm64 in cairn.lock, which cairn.yaml's platforms do not name"}},
		{"a changed descriptor digest", func(l *Lock) {
			l.Package("acme/log").Descriptor = log100
		}, []string{"package acme/log@1.1.0: descriptor " + log100.String() + " is not the index's"}},
		{"an entry added", func(l *Lock) {
			l.Packages = append(l.Packages, Locked{Name: "acme/extra", Version: "1.0.0", Repository: "acme", Descriptor: extra, ChosenBy: []string{"cairn.yaml:9 wants ^1"}, Artifacts: extraArt})
		}, []string{"package acme/extra: in cairn.lock, but cairn.yaml does not resolve to it at the pinned heads"}},
		{"a reason changed", func(l *Lock) {
			l.Package("acme/app").ChosenBy = []string{"snapshot lts-9"}
		}, []string{`package acme/app: chosen_by ["snapshot lts-9"] in cairn.lock; cairn.yaml resolves it as ["cairn.yaml:6 wants ^1.0"]`}},
		{"the head moved forward, the entries kept", func(l *Lock) {
			l.Repositories[0].Head = now
		}, []string{"package acme/log: cairn.yaml resolves 1.2.0 at the pinned heads, cairn.lock says 1.1.0"}},
		{"a head the replica does not have", func(l *Lock) {
			l.Repositories[0].Head = strings.Repeat("1", 40)
		}, []string{"repository acme: head " + strings.Repeat("1", 40) + " is not in the verified replica"}},
		{"a head that is a ref, not a commit", func(l *Lock) {
			l.Repositories[0].Head = "main"
		}, []string{`repository acme: head "main" is not a commit id`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parsed, perr := relock(t, good, tc.edit)
			if perr != nil {
				t.Fatalf("ParseLock of a consistent edit = %v", perr)
			}
			err := Check(w.Ctx, p, parsed, nil, srcs)
			if !errors.Is(err, ErrLockMismatch) {
				t.Fatalf("Check = %v, want a refusal", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("Check = %v\nwant it to say %q", err, want)
				}
			}
			t.Log(err)
		})
	}
}

// TestLockConsistentEditsSnapshot: the snapshot pin is re-derived too.
func TestLockConsistentEditsSnapshot(t *testing.T) {
	w := newWorld(t)
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\nplatforms: [linux-amd64]\n"))
	p, srcs, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := l.Marshal()
	for _, tc := range []struct {
		name string
		edit func(l *Lock)
		want string
	}{
		{"dropped", func(l *Lock) { l.Snapshot = nil }, "snapshot: cairn.yaml resolves lts-1.0 (label lts-1.0, sha256:" + w.lts.SHA256[:12] + ") at the pinned heads, cairn.lock has none"},
		{"another label", func(l *Lock) { l.Snapshot.Label = "lts-2.0" }, "snapshot: cairn.yaml resolves lts-1.0 (label lts-1.0, sha256:" + w.lts.SHA256[:12] + ") at the pinned heads, cairn.lock says lts-1.0 (label lts-2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parsed, perr := relock(t, good, tc.edit)
			if perr != nil {
				t.Fatal(perr)
			}
			err := Check(w.Ctx, p, parsed, nil, srcs)
			if !errors.Is(err, ErrLockMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v\nwant it to say %q", err, tc.want)
			}
		})
	}
}

// TestLockCheckOffline: a lock made from a server is checked offline
// from the cache alone, an edit is still refused there, and a head the
// cache's replica does not hold (the lock was made elsewhere, after a
// pull this cache has not made) is named.
func TestLockCheckOffline(t *testing.T) {
	w := newWorld(t)
	url := servertest.Serve(w.World)
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\n    light: false\npackages:\n  acme/app: ^1.0\nplatforms: [linux-amd64]\n", url, w.Intro))
	old := t.TempDir()
	if _, _, _, err := w.lock(Options{Cache: old}); err != nil {
		t.Fatal(err)
	}
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.4.0", Deps: map[string]string{"acme/log": "^1.0"}})
	cache := t.TempDir()
	p, _, l, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/app@1.0.0 acme/fastjson@1.4.0 acme/log@1.1.0" {
		t.Fatalf("plan = %s", got)
	}
	good, _ := l.Marshal()
	open := func(cache string) Sources {
		t.Helper()
		srcs, err := Open(context.Background(), p, Options{Cache: cache, Offline: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srcs.Close)
		return srcs
	}
	offline := open(cache)
	parsed, perr := ParseLock(good)
	if err := Check(w.Ctx, p, parsed, perr, offline); err != nil {
		t.Fatalf("offline check of a good lock: %v", err)
	}
	parsed, perr = relock(t, good, func(l *Lock) {
		e := l.Package("acme/fastjson")
		c, _ := w.Repo.Catalog(w.Ctx, index.MainRef)
		e.Version = "1.3.0"
		e.Descriptor, e.Artifacts = lockedAt(t, c, "acme/fastjson", "1.3.0")
	})
	if err := Check(w.Ctx, p, parsed, perr, offline); !errors.Is(err, ErrLockMismatch) || !strings.Contains(err.Error(), "package acme/fastjson: cairn.yaml resolves 1.4.0 at the pinned heads, cairn.lock says 1.3.0") {
		t.Fatalf("offline check of a downgrade: %v", err)
	}
	parsed, perr = ParseLock(good)
	err = Check(w.Ctx, p, parsed, perr, open(old))
	if !errors.Is(err, ErrLockMismatch) || !strings.Contains(err.Error(), "repository acme: head "+l.Repositories[0].Head+" is not in the verified replica") {
		t.Fatalf("a head the cache does not hold: %v", err)
	}
}
