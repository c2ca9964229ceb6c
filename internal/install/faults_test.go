package install

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/server/servertest"
)

// poison replaces the cached file of the only package's artifact with
// other bytes (of the same size, or fewer) and returns its path.
func poison(t *testing.T, w *world, into string, sameSize bool) (string, blob.Ref) {
	t.Helper()
	m, err := ReadManifest(into)
	if err != nil {
		t.Fatal(err)
	}
	ref := m.Packages[0].Artifact.Ref
	p, err := w.blobs.Path(ref)
	if err != nil {
		t.Fatal(err)
	}
	data := read(t, p)
	bad := []byte(data[:len(data)/2])
	if sameSize {
		bad = []byte(data)
		bad[len(bad)/2] ^= 1
	}
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, bad, 0o444); err != nil {
		t.Fatal(err)
	}
	return p, ref
}

// TestPoisonedCache is issue 12 item 12: a cached blob whose bytes no
// longer match its digest is named (its path, the expected and actual
// digest), removed, and fetched again, so that the install succeeds;
// whether its size changed or not.
func TestPoisonedCache(t *testing.T) {
	for _, sameSize := range []bool{true, false} {
		w := newWorld(t)
		w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
		w.served(servertest.Serve(w.World), nil, "packages:\n  acme/log: ^1.0\n")
		first := filepath.Join(t.TempDir(), "a")
		if _, err := w.install(first, false); err != nil {
			t.Fatal(err)
		}
		path, ref := poison(t, w, first, sameSize)
		into := filepath.Join(t.TempDir(), "b")
		res, err := w.install(into, false)
		if err != nil {
			t.Fatalf("same size %v: install over a poisoned cache: %v", sameSize, err)
		}
		if got := read(t, filepath.Join(into, "acme/log/README")); got != "acme/log 1.0.0\n" {
			t.Fatalf("installed %q", got)
		}
		if res.Fetched != 1 || res.Cached != 0 || len(res.Repaired) != 1 {
			t.Fatalf("same size %v: result %+v, want the blob fetched again and one repair", sameSize, res)
		}
		r := res.Repaired[0]
		if r.Path != path || r.Want != ref || r.GotSHA256 == ref.SHA256 || len(r.GotSHA256) != 64 ||
			!strings.Contains(r.Error(), path) || !strings.Contains(r.Error(), ref.SHA256) || !strings.Contains(r.Error(), r.GotSHA256) {
			t.Fatalf("the repair names %q: %+v", r.Error(), r)
		}
		if ce, err := w.blobs.Scrub(ref); ce != nil || err != nil {
			t.Fatalf("the cache still holds bad bytes: %v %v", ce, err)
		}
		if ok, _ := w.blobs.Stat(context.Background(), ref); !ok {
			t.Fatal("the blob fetched again is not in the cache")
		}
	}
}

// installFrom installs the project into dir with blobs from mirrors only,
// into the cache c (default the world's).
func (w *world) installFrom(dir string, mirrors []blob.Store, c Cache) (*Result, error) {
	w.T.Helper()
	ctx := context.Background()
	p, err := plan.ReadProject(w.project)
	if err != nil {
		w.T.Fatal(err)
	}
	srcs, err := plan.Open(ctx, p, plan.Options{Cache: w.cache})
	if err != nil {
		w.T.Fatal(err)
	}
	defer srcs.Close()
	if mirrors != nil {
		srcs[0].Blobs = mirrors
	}
	l, err := plan.Resolve(ctx, p, srcs)
	if err != nil {
		w.T.Fatal(err)
	}
	if c == nil {
		c = w.blobs
	}
	return Install(ctx, l, srcs, Options{Into: dir, Cache: c, Platform: "linux-amd64"})
}

// TestPoisonedCacheUnfetchable: a poisoned cache file that no mirror can
// replace fails the install with both causes named, and the bad file is
// gone (it cannot poison the next install).
func TestPoisonedCacheUnfetchable(t *testing.T) {
	for _, sameSize := range []bool{true, false} {
		w := newWorld(t)
		w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
		w.served(servertest.Serve(w.World), nil, "packages:\n  acme/log: ^1.0\n")
		first := filepath.Join(t.TempDir(), "a")
		if _, err := w.install(first, false); err != nil {
			t.Fatal(err)
		}
		path, _ := poison(t, w, first, sameSize)
		into := filepath.Join(t.TempDir(), "b")
		res, err := w.installFrom(into, []blob.Store{&blob.HTTP{URL: "http://127.0.0.1:1"}}, nil) // nothing listens there
		var ce *blob.CorruptError
		if err == nil || !errors.As(err, &ce) || ce.Path != path || !errors.Is(err, fs.ErrNotExist) ||
			!strings.Contains(err.Error(), "package acme/log@1.0.0: artifact linux-amd64.tar.gz: cached blob "+path+" is corrupt") ||
			!strings.Contains(err.Error(), "removed it; fetching it again: blob sha256:") || !strings.Contains(err.Error(), "no source has it") {
			t.Fatalf("same size %v: install = %+v, %v; want the corrupt file named and the failed fetch", sameSize, res, err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the poisoned file is still in the cache: %v", err)
		}
		if _, err := os.Lstat(into); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("something was materialised: %v", err)
		}
	}
}

// TestFullDisk is issue 12 item 12: a full disk during an install is an
// I/O error naming the path and "no space left on device", not "no
// mirror has it"; nothing is materialised.
func TestFullDisk(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.served(servertest.Serve(w.World), nil, "packages:\n  acme/log: ^1.0\n")
	into := filepath.Join(t.TempDir(), "deps")
	_, err := w.installFrom(into, nil, blobtest.FullDisk{FS: w.blobs})
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, blob.ErrMismatch) ||
		!strings.Contains(err.Error(), "package acme/log@1.0.0: artifact linux-amd64.tar.gz: blob sha256:") ||
		!strings.Contains(err.Error(), "storing it in the local store: write /dev/full: no space left on device") ||
		strings.Contains(err.Error(), "no source has it") {
		t.Fatalf("install onto a full disk = %v", err)
	}
	if _, err := os.Lstat(into); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("something was materialised: %v", err)
	}
}

// A source that serves other bytes than a blob's digest names is skipped
// for the next one, and named in the result (the CLI warns of it): the
// install succeeded from a later mirror and said nothing of the one
// caught serving substituted bytes. One that lacks the blob (404) is
// not named: it is merely incomplete.
func TestTamperingMirrorNamed(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	url := servertest.Serve(w.World)
	w.served(url, nil, "packages:\n  acme/log: ^1.0\n")
	liar := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.Write([]byte("other bytes")) }))
	defer liar.Close()
	empty := httptest.NewServer(http.NotFoundHandler())
	defer empty.Close()
	res, err := w.installFrom(filepath.Join(t.TempDir(), "a"), []blob.Store{&blob.HTTP{URL: empty.URL}, &blob.HTTP{URL: liar.URL}, &blob.HTTP{URL: url}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tampered) != 1 || res.Tampered[0].Source != liar.URL || res.Tampered[0].Blob.Size == 0 || !strings.Contains(res.Tampered[0].Error, "SECURITY") {
		t.Fatalf("tampered %+v, want the lying mirror %s named once", res.Tampered, liar.URL)
	}
}
