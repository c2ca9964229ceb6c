package install

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/server/servertest"
)

type world struct {
	*indextest.World
	project, cache string
	blobs          *blob.FS
}

func newWorld(t *testing.T) *world {
	w := &world{World: indextest.New(t), project: t.TempDir(), cache: t.TempDir()}
	var err error
	if w.blobs, err = blob.NewFS(filepath.Join(w.cache, "blobs")); err != nil {
		t.Fatal(err)
	}
	return w
}

// project writes cairn.yaml with repository lines and the rest.
func (w *world) project_(repo, rest string) {
	w.T.Helper()
	data := fmt.Sprintf("repositories:\n  - name: acme\n%s    introduction: %s\nplatforms: [linux-amd64]\n%s", repo, w.Intro, rest)
	if err := os.WriteFile(filepath.Join(w.project, "cairn.yaml"), []byte(data), 0o644); err != nil {
		w.T.Fatal(err)
	}
}

func (w *world) onDisk(rest string) { w.project_("    path: "+w.Dir+"\n", rest) }

func (w *world) served(url string, mirrors []string, rest string) {
	repo := "    url: " + url + "\n"
	if len(mirrors) > 0 {
		repo += "    mirrors: [" + strings.Join(mirrors, ", ") + "]\n"
	}
	w.project_(repo, rest)
}

// install locks the project and installs it into dir.
func (w *world) install(dir string, offline bool) (*Result, error) {
	w.T.Helper()
	return w.installWith(context.Background(), dir, offline, Options{Jobs: 4})
}

// installWith locks the project and installs it into dir with o (its
// target, cache and platform set here).
func (w *world) installWith(ctx context.Context, dir string, offline bool, o Options) (*Result, error) {
	p, err := plan.ReadProject(w.project)
	if err != nil {
		return nil, err
	}
	srcs, err := plan.Open(ctx, p, plan.Options{Cache: w.cache, Offline: offline})
	if err != nil {
		return nil, err
	}
	defer srcs.Close()
	l, err := plan.Resolve(ctx, p, srcs)
	if err != nil {
		return nil, err
	}
	if _, err := l.Marshal(); err != nil {
		return nil, err
	}
	o.Into, o.Cache, o.Platform = dir, w.blobs, "linux-amd64"
	return Install(ctx, l, srcs, o)
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestInstall(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/app", Version: "1.0.0", Deps: map[string]string{"acme/log": "^1.0"},
		Files: map[string]string{"bin/app": "#!/bin/sh\n", "share/doc.txt": "docs", "lib/link": "../share/doc.txt"}})
	w.onDisk("packages:\n  acme/app: ^1.0\n")
	into := filepath.Join(t.TempDir(), "deps")
	res, err := w.install(into, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Packages != 2 || res.Fetched != 2 || res.Cached != 0 || res.Replaced {
		t.Fatalf("result %+v", res)
	}
	if got := read(t, filepath.Join(into, "acme/app/share/doc.txt")); got != "docs" {
		t.Fatalf("installed file = %q", got)
	}
	if got := read(t, filepath.Join(into, "acme/log/README")); got != "acme/log 1.0.0\n" {
		t.Fatalf("installed file = %q", got)
	}
	m, err := ReadManifest(into)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Packages) != 2 || m.Packages[0].Name != "acme/app" || m.Packages[0].Artifact.Kind != "binary" || len(m.Packages[0].Files) != 3 {
		t.Fatalf("manifest %+v", m)
	}
	for _, f := range m.Packages[0].Files {
		if f.Path == "acme/app/share/doc.txt" && (f.Size != 4 || f.SHA256 != blob.DigestBytes([]byte("docs")).SHA256) {
			t.Fatalf("manifest entry %+v", f)
		}
	}

	// Again: everything comes from the cache, and the install is replaced.
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	res, err = w.install(into, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 1 || res.Cached != 1 || !res.Replaced {
		t.Fatalf("second result %+v", res)
	}
	if got := read(t, filepath.Join(into, "acme/log/README")); got != "acme/log 1.1.0\n" {
		t.Fatalf("after the upgrade: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(into), ".deps.cairn-staging-*")); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
	// A directory that is not an install is not replaced.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o644)
	if _, err := w.install(other, false); err == nil || !strings.Contains(err.Error(), "is not a cairn install") {
		t.Fatalf("installing over a foreign directory: %v", err)
	}
}

// tamper is a mirror in front of a server that changes blob bodies.
func tamper(t *testing.T, target string, change func([]byte) []byte) string {
	u, _ := url.Parse(target)
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(u.String() + r.URL.RequestURI())
		if err != nil {
			rw.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.HasPrefix(r.URL.Path, "/blobs/") && resp.StatusCode == 200 {
			body = change(body)
		}
		for k, v := range resp.Header {
			if k != "Content-Length" {
				rw.Header()[k] = v
			}
		}
		rw.WriteHeader(resp.StatusCode)
		rw.Write(body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestBadMirror is attack 3: a mirror that changes a byte, or sends more
// than the size, is refused and nothing is materialised; with a good
// mirror after it, the install succeeds — any mirror will do.
func TestBadMirror(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	good := servertest.Serve(w.World)
	flip := tamper(t, good, func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2] ^= 1; return c })
	longer := tamper(t, good, func(b []byte) []byte { return append(b, "more"...) })
	for _, bad := range []string{flip, longer} {
		w.served(good, nil, "packages:\n  acme/log: ^1.0\n")
		// The index comes from the good server; blobs from the bad mirror only.
		p, _ := plan.ReadProject(w.project)
		srcs, err := plan.Open(context.Background(), p, plan.Options{Cache: w.cache})
		if err != nil {
			t.Fatal(err)
		}
		srcs[0].Blobs = []blob.Store{&blob.HTTP{URL: bad}}
		l, err := plan.Resolve(context.Background(), p, srcs)
		if err != nil {
			t.Fatal(err)
		}
		into := filepath.Join(t.TempDir(), "deps")
		_, err = Install(context.Background(), l, srcs, Options{Into: into, Cache: w.blobs, Platform: "linux-amd64"})
		var me *blob.MismatchError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), "package acme/log@1.0.0") {
			t.Fatalf("install from a bad mirror: %v", err)
		}
		if _, err := os.Stat(into); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("something was materialised: %v", err)
		}
		if ok, _ := w.blobs.Stat(context.Background(), l.Packages[0].Artifacts[0].Ref); ok {
			t.Fatal("the bad bytes reached the cache")
		}
		srcs[0].Blobs = []blob.Store{&blob.HTTP{URL: bad}, &blob.HTTP{URL: good}}
		if _, err := Install(context.Background(), l, srcs, Options{Into: into, Cache: w.blobs, Platform: "linux-amd64"}); err != nil {
			t.Fatalf("with a good mirror after the bad one: %v", err)
		}
		srcs.Close()
		os.RemoveAll(filepath.Join(w.cache, "blobs", "sha256"))
	}
}

// TestOffline installs with the server gone: the cache holds everything.
func TestOffline(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	srv := servertest.Serve(w.World)
	w.served(srv, nil, "packages:\n  acme/log: ^1.0\n")
	if _, err := w.install(filepath.Join(t.TempDir(), "a"), false); err != nil {
		t.Fatal(err)
	}
	w.served("http://127.0.0.1:1", nil, "packages:\n  acme/log: ^1.0\n") // nothing listens there
	if _, err := w.install(filepath.Join(t.TempDir(), "b"), false); err == nil {
		t.Fatal("an online install reached a dead server")
	}
	w.served(srv, nil, "packages:\n  acme/log: ^1.0\n")
	res, err := w.install(filepath.Join(t.TempDir(), "c"), true)
	if err != nil || res.Cached != 1 || res.Fetched != 0 {
		t.Fatalf("offline: %+v, %v", res, err)
	}
}

// entry is a tar entry for crafted archives.
type entry struct {
	hdr  tar.Header
	body string
}

func craft(t *testing.T, entries ...entry) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestUnsafeArchives is attack 4: every escape is refused, naming the
// entry, and nothing is materialised.
func TestUnsafeArchives(t *testing.T) {
	file := func(name string) entry { return entry{tar.Header{Name: name, Typeflag: tar.TypeReg}, "x"} }
	link := func(name, to string) entry {
		return entry{tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}, ""}
	}
	for i, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"a ../ path", []entry{file("ok"), file("../../evil")}, `entry "../../evil": its path leaves`},
		{"a nested ../ path", []entry{file("a/../../evil")}, `entry "a/../../evil": its path leaves`},
		{"an absolute path", []entry{file("/etc/evil")}, `entry "/etc/evil": its path leaves`},
		{"a symlink out", []entry{link("l", "../../etc")}, `a symlink to "../../etc" points out`},
		{"an absolute symlink", []entry{link("l", "/etc/passwd")}, `a symlink to "/etc/passwd" points out`},
		{"a write through a symlink", []entry{link("d", "sub"), file("d/x")}, "goes through the symlink d"},
		{"a device", []entry{{tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, ""}}, "device and fifo entries"},
		{"a hard link", []entry{file("a"), {tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}, ""}}, `a hard link to "/etc/shadow" points out`},
		{"a path twice", []entry{file("a"), file("a")}, "holds this path twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.Publish(indextest.Package{Name: "acme/evil", Version: fmt.Sprintf("1.0.%d", i), Binary: craft(t, tc.entries...)})
			w.onDisk("packages:\n  acme/evil: '*'\n")
			into := filepath.Join(t.TempDir(), "deps")
			_, err := w.install(into, false)
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "linux-amd64.tar.gz") {
				t.Fatalf("install = %v; want an unsafe-archive error saying %q", err, tc.want)
			}
			if _, err := os.Stat(into); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("something was materialised: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(into), "..", "evil")); err == nil {
				t.Fatal("a file escaped")
			}
		})
	}
	// A file larger than the limit.
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/big", Version: "1.0.0", Binary: craft(t, entry{tar.Header{Name: "big", Typeflag: tar.TypeReg}, strings.Repeat("x", 5000)})})
	w.onDisk("packages:\n  acme/big: '*'\n")
	p, _ := plan.ReadProject(w.project)
	srcs, _ := plan.Open(context.Background(), p, plan.Options{Cache: w.cache})
	defer srcs.Close()
	l, _ := plan.Resolve(context.Background(), p, srcs)
	_, err := Install(context.Background(), l, srcs, Options{Into: filepath.Join(t.TempDir(), "d"), Cache: w.blobs, Platform: "linux-amd64", Limits: Limits{MaxFile: 4096}})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "entry \"big\": 5000 bytes, over the 4096-byte limit") {
		t.Fatalf("an oversized file: %v", err)
	}
}

// zipOf is a zip of entries: a name ending in "/" is a directory, a
// target starting with "->" makes a symlink.
func zipOf(t *testing.T, entries [][2]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e[0], Method: zip.Deflate}
		body := e[1]
		switch {
		case strings.HasSuffix(e[0], "/"):
			h.SetMode(fs.ModeDir | 0o755)
		case strings.HasPrefix(body, "->"):
			h.SetMode(fs.ModeSymlink | 0o777)
			body = body[2:]
		default:
			h.SetMode(0o755)
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestZip unpacks a zip (a directory, an executable, a link inside) and
// refuses one whose link or path escapes (attack 4, for zips).
func TestZip(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/z", Version: "1.0.0", BinaryFile: "z.zip",
		Binary: zipOf(t, [][2]string{{"bin/", ""}, {"bin/z", "#!/bin/sh\n"}, {"current", "->bin"}})})
	w.onDisk("packages:\n  acme/z: '*'\n")
	into := filepath.Join(t.TempDir(), "deps")
	if _, err := w.install(into, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(into, "acme/z/current/z"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("the zip's executable through its link: %v %v", fi, err)
	}
	for i, entries := range [][][2]string{
		{{"ok", "x"}, {"link", "->../../../etc"}},
		{{"../evil", "x"}},
	} {
		w := newWorld(t)
		w.Publish(indextest.Package{Name: "acme/z", Version: fmt.Sprintf("2.0.%d", i), BinaryFile: "z.zip", Binary: zipOf(t, entries)})
		w.onDisk("packages:\n  acme/z: '*'\n")
		into := filepath.Join(t.TempDir(), "deps")
		if _, err := w.install(into, false); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "linux-amd64-z.zip") {
			t.Fatalf("an escaping zip: %v", err)
		}
		if _, err := os.Stat(into); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("something was materialised: %v", err)
		}
	}
}
