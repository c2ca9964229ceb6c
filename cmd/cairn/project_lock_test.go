package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/plan"
)

// TestLockConsistentEditsRefused is issue 12, item 5, at the command
// line: a cairn.lock edited consistently — its own digest recomputed,
// every entry one the index holds — is refused by both lock --check and
// install with exit 3, naming the entry, and install writes nothing.
func TestLockConsistentEditsRefused(t *testing.T) {
	w := indextest.New(t)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		w.Publish(indextest.Package{Name: "acme/log", Version: v})
	}
	for _, v := range []string{"1.2.3", "1.3.0"} {
		w.Publish(indextest.Package{Name: "acme/fastjson", Version: v, Deps: map[string]string{"acme/log": "^1.0"}})
	}
	proj, cache := t.TempDir(), t.TempDir()
	yaml := fmt.Sprintf("repositories:\n  - {name: acme, path: %s, introduction: %s}\npackages:\n  acme/fastjson: ^1.2\n  acme/log: ^1.0\nplatforms: [linux-amd64]\n", w.Dir, w.Intro)
	if err := os.WriteFile(filepath.Join(proj, "cairn.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cairn := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append(args, "--dir", proj, "--cache", cache), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, stderr := cairn("lock"); code != exitOK {
		t.Fatalf("lock: exit %d: %s", code, stderr)
	}
	good, err := os.ReadFile(filepath.Join(proj, "cairn.lock"))
	if err != nil {
		t.Fatal(err)
	}
	// A version published after the lock, inside its range.
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.2.0"})
	c, err := w.Repo.Catalog(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	// entry makes l's entry for name say version, as the index has it.
	entry := func(l *plan.Lock, name, version string) {
		t.Helper()
		e := l.Package(name)
		d, ref, err := c.Descriptor(name, version)
		if err != nil {
			t.Fatal(err)
		}
		e.Version, e.Descriptor = version, ref
		for i, a := range e.Artifacts {
			for _, x := range d.Artifacts {
				if x.Kind == a.Kind && x.Platform == a.Platform {
					e.Artifacts[i].File, e.Artifacts[i].Ref = x.File, x.Ref
				}
			}
		}
	}
	_, log100, err := c.Descriptor("acme/log", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(l *plan.Lock)
		want string
	}{
		{"an entry dropped", func(l *plan.Lock) { l.Packages = l.Packages[1:] },
			"package acme/fastjson: missing from cairn.lock; cairn.yaml resolves 1.3.0 at the pinned heads"},
		{"a downgrade inside the range", func(l *plan.Lock) { entry(l, "acme/fastjson", "1.2.3") },
			"package acme/fastjson: cairn.yaml resolves 1.3.0 at the pinned heads, cairn.lock says 1.2.3"},
		{"an upgrade inside the range", func(l *plan.Lock) { entry(l, "acme/log", "1.2.0") },
			"package acme/log: cairn.yaml resolves 1.1.0 at the pinned heads, cairn.lock says 1.2.0"},
		{"an emptied artifact list", func(l *plan.Lock) { l.Package("acme/log").Artifacts = []plan.LockedArtifact{} },
			"package acme/log: no artifact for linux-amd64 in cairn.lock; cairn.yaml resolves it to binary linux-amd64.tar.gz sha256:"},
		{"a changed descriptor digest", func(l *plan.Lock) { l.Package("acme/log").Descriptor = log100 },
			"package acme/log@1.1.0: descriptor " + log100.String() + " is not the index's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := plan.ParseLock(good)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(l)
			if _, err := plan.WriteLock(proj, l); err != nil {
				t.Fatal(err)
			}
			into := filepath.Join(t.TempDir(), "deps")
			for _, args := range [][]string{{"lock", "--check"}, {"install", "--into", into}, {"install", "--into", into, "--offline"}} {
				code, stdout, stderr := cairn(args...)
				if code != exitRefused || !strings.Contains(stderr, "cairn: error: cairn.lock: ") || !strings.Contains(stderr, tc.want) ||
					!strings.Contains(stderr, "cairn: hint: do not trust this lock") {
					t.Fatalf("cairn %s: exit %d\nstdout %s\nstderr %s\nwant exit %d and %q", strings.Join(args, " "), code, stdout, stderr, exitRefused, tc.want)
				}
			}
			if _, err := os.Stat(into); !os.IsNotExist(err) {
				t.Fatalf("a refused install left %s: %v", into, err)
			}
		})
	}
	// The lock as written: current, and it installs what cairn.yaml asks.
	if err := os.WriteFile(filepath.Join(proj, "cairn.lock"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := cairn("lock", "--check"); code != exitOK || !strings.Contains(stdout, "cairn.lock is current: 2 packages") {
		t.Fatalf("lock --check of the lock as written: exit %d: %s%s", code, stdout, stderr)
	}
	into := filepath.Join(t.TempDir(), "deps")
	if code, stdout, stderr := cairn("install", "--into", into, "--offline"); code != exitOK || !strings.Contains(stdout, "installed 2 packages") {
		t.Fatalf("install of the lock as written: exit %d: %s%s", code, stdout, stderr)
	}
}
