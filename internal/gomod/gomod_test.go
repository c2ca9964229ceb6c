package gomod

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	modzip "golang.org/x/mod/zip"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
)

// writeModule writes a module directory: go.mod and one Go file whose
// greeting is greet.
func writeModule(t *testing.T, path, greet string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":   "module " + path + "\n\ngo 1.22\n",
		"greet.go": "package greet\n\n// Hello greets.\nfunc Hello() string { return " + fmt.Sprintf("%q", greet) + " }\n",
		"LICENSE":  "MIT\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T, dir, version string) *Module {
	t.Helper()
	m, err := Build(dir, version)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// proxy is a GOPROXY made in the test: the files of the modules it
// serves, by URL path under its root.
type proxy struct {
	mu    sync.Mutex
	files map[string][]byte
	srv   *httptest.Server
}

func newProxy(t *testing.T) *proxy {
	p := &proxy{files: map[string][]byte{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		data, ok := p.files[r.URL.Path]
		p.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, "not found: %s\n", r.URL.Path)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// add serves m (its .info, .mod, .zip and @latest).
func (p *proxy) add(t *testing.T, m *Module) {
	t.Helper()
	zip, err := os.ReadFile(m.Zip)
	if err != nil {
		t.Fatal(err)
	}
	p.set(t, m.Descriptor.Go.Module, m.Descriptor.Go.Version, m.Mod, zip)
}

func (p *proxy) set(t *testing.T, path, version string, mod, zip []byte) {
	t.Helper()
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(version)
	info, _ := json.Marshal(Info{Version: version, Time: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)})
	p.mu.Lock()
	defer p.mu.Unlock()
	at := "/" + ep + "/@v/" + ev
	p.files[at+".info"], p.files[at+".mod"], p.files[at+".zip"] = info, mod, zip
	p.files["/"+ep+"/@latest"] = info
	p.files["/"+ep+"/@v/list"] = append(p.files["/"+ep+"/@v/list"], version+"\n"...)
}

// sumDB is a real checksum database (sumdb.TestServer behind
// sumdb.Server) that holds the go.sum lines of the modules given to it.
type sumDB struct {
	SumDB
	mu    sync.Mutex
	lines map[string]string // path@version → go.sum lines
	srv   *httptest.Server
}

func newSumDB(t *testing.T, name string) *sumDB {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return newSumDBKey(t, skey, vkey)
}

func newSumDBKey(t *testing.T, skey, vkey string) *sumDB {
	db := &sumDB{lines: map[string]string{}}
	ts := sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		db.mu.Lock()
		defer db.mu.Unlock()
		l, ok := db.lines[path+"@"+vers]
		if !ok {
			return nil, fmt.Errorf("%s@%s: %w", path, vers, os.ErrNotExist)
		}
		return []byte(l), nil
	})
	db.srv = httptest.NewServer(sumdb.NewServer(ts))
	t.Cleanup(db.srv.Close)
	var err error
	if db.SumDB, err = ParseSumDB(vkey + " " + db.srv.URL); err != nil {
		t.Fatal(err)
	}
	return db
}

// vouch makes the database hold m's hashes.
func (db *sumDB) vouch(m *Module) {
	g := m.Descriptor.Go
	db.set(g.Module, g.Version, g.Sum, g.ModSum)
}

func (db *sumDB) set(path, version, sum, modSum string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.lines[path+"@"+version] = fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, sum, path, version, modSum)
}

func upstream(t *testing.T, p *proxy, db *sumDB) Upstream {
	return Upstream{Client: http.DefaultClient, Proxy: p.srv.URL, SumDB: db.SumDB, CacheDir: t.TempDir()}
}

func TestBuild(t *testing.T) {
	dir := writeModule(t, "example.com/greet", "hello")
	m := build(t, dir, "1.0.0")
	d := m.Descriptor
	d.UUID = "0b2b0c52-5b8e-4a5e-9d5b-3f6f1b0b8a11"
	if _, err := d.Marshal(); err != nil {
		t.Fatalf("Build's descriptor does not check: %v", err)
	}
	if d.Name != "example.com/greet" || d.Version != "1.0.0" || d.Go.Version != "v1.0.0" || d.Go.Module != d.Name {
		t.Fatalf("descriptor names %s@%s (go %+v)", d.Name, d.Version, d.Go)
	}
	if a := d.Artifacts[0]; a.Kind != descriptor.KindSource || a.File != "v1.0.0.zip" {
		t.Errorf("artifact 0 is %+v, want the source zip v1.0.0.zip", a)
	}
	if a := d.Artifacts[1]; a.Kind != descriptor.KindGoMod || a.File != "v1.0.0.mod" || a.Ref != blob.DigestBytes(m.Mod) {
		t.Errorf("artifact 1 is %+v, want go.mod's bytes as v1.0.0.mod", a)
	}
	if err := CheckSums(d, m.Zip, m.Mod); err != nil {
		t.Fatal(err)
	}
	// The same directory makes the same zip: its digest is the version's.
	again := build(t, dir, "v1.0.0")
	if again.Descriptor.Artifacts[0].Ref != d.Artifacts[0].Ref || again.Descriptor.Go.Sum != d.Go.Sum {
		t.Errorf("building twice made two zips: %v and %v", d.Artifacts[0].Ref, again.Descriptor.Artifacts[0].Ref)
	}
}

// TestBuildGoCommand checks Build against the go command itself: served
// as a GOPROXY directory, the module is downloaded by go, which hashes
// what it got; its go.sum hashes must be the descriptor's.
func TestBuildGoCommand(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("this test checks Build against the real go command, which is not on PATH:", err)
	}
	m := build(t, writeModule(t, "example.com/Greet/v2", "hello"), "v2.1.0")
	root := t.TempDir()
	at := filepath.Join(root, "example.com", "!greet", "v2", "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		t.Fatal(err)
	}
	zip, _ := os.ReadFile(m.Zip)
	info := []byte(`{"Version":"v2.1.0","Time":"2026-11-30T12:00:00Z"}`)
	for name, data := range map[string][]byte{"v2.1.0.info": info, "v2.1.0.mod": m.Mod, "v2.1.0.zip": zip, "list": []byte("v2.1.0\n")} {
		if err := os.WriteFile(filepath.Join(at, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(gobin, "mod", "download", "-json", "example.com/Greet/v2@v2.1.0")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOPROXY=file://"+filepath.ToSlash(root), "GOSUMDB=off", "GOFLAGS=-modcacherw",
		"GOMODCACHE="+t.TempDir(), "GO111MODULE=on", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	var got struct{ Sum, GoModSum string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("go mod download -json: %v\n%s", err, out)
	}
	if got.Sum != m.Descriptor.Go.Sum || got.GoModSum != m.Descriptor.Go.ModSum {
		t.Fatalf("the go command hashes the module to %s, %s; the descriptor says %s, %s", got.Sum, got.GoModSum, m.Descriptor.Go.Sum, m.Descriptor.Go.ModSum)
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		path, version, want string
	}{
		{"example.com/greet", "2.0.0", "module example.com/greet/v2 in go.mod"},
		{"example.com/greet/v2", "1.0.0", "the path example.com/greet/v2 names major version v2: publish a v2 version, or module example.com/greet (no major version in the path) for a v0 or v1 version"},
		{"example.com/greet/v2", "0.1.0", "or module example.com/greet (no major version in the path)"},
		{"example.com/greet/v2", "3.0.0", "the path example.com/greet/v2 names major version v2: publish a v2 version, or module example.com/greet/v3 in go.mod"},
		{"gopkg.in/greet.v3", "1.0.0", "the path gopkg.in/greet.v3 names major version v3: publish a v3 version, or module gopkg.in/greet.v1 in go.mod"},
		{"example.com/greet", "2.0.0+incompatible", "cannot have a +incompatible version"},
		{"example.com/greet", "1.0", "want a full semantic version"},
		{"example.com/greet", "v1.0.0+build", "want a full semantic version"},
		{"greet", "1.0.0", "malformed module path"},
	} {
		_, err := Build(writeModule(t, tc.path, "hi"), tc.version)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build %s@%s: %v, want an error saying %q", tc.path, tc.version, err, tc.want)
		}
	}
	dir := t.TempDir()
	if _, err := Build(dir, "1.0.0"); err == nil || !strings.Contains(err.Error(), "go mod init") {
		t.Errorf("Build without go.mod: %v", err)
	}
	// A go.mod the go command cannot parse: every build needing the
	// version would fail, and it could never be published again.
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/bad\n\ngo 1.21\nrequire (\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.go"), []byte("package bad\n"), 0o644)
	if _, err := Build(dir, "1.0.0"); err == nil || !strings.Contains(err.Error(), "does not parse as the go command reads it") || !strings.Contains(err.Error(), "unterminated block") {
		t.Errorf("Build with a go.mod that does not parse: %v", err)
	}
}

func TestCheckSums(t *testing.T) {
	m := build(t, writeModule(t, "example.com/greet", "hello"), "1.0.0")
	other := build(t, writeModule(t, "example.com/greet", "HELLO"), "1.0.0")
	var se *SumError
	err := CheckSums(m.Descriptor, other.Zip, m.Mod)
	if !errors.As(err, &se) || se.File != "zip" || se.Want != m.Descriptor.Go.Sum || se.Got != other.Descriptor.Go.Sum ||
		!strings.Contains(err.Error(), m.Descriptor.Go.Sum) || !strings.Contains(err.Error(), other.Descriptor.Go.Sum) {
		t.Fatalf("another zip: %v, want a SumError naming both hashes", err)
	}
	err = CheckSums(m.Descriptor, m.Zip, append(m.Mod, '\n'))
	if !errors.As(err, &se) || se.File != "go.mod" || !errors.Is(err, ErrSumMismatch) {
		t.Fatalf("another go.mod: %v, want a SumError on go.mod", err)
	}
	if err := CheckSums(m.Descriptor, "", m.Mod); err != nil {
		t.Fatalf("go.mod alone: %v", err)
	}
	plain := *m.Descriptor
	plain.Go = nil
	if err := CheckSums(&plain, m.Zip, m.Mod); err == nil {
		t.Fatal("a descriptor with no go member passed")
	}
}

// CheckFiles refuses another module's files under hashes made over them:
// a zip whose files lie under evil.example/x@v1.0.0/, a go.mod declaring
// evil.example/x. The module's own files pass.
func TestCheckFiles(t *testing.T) {
	m := build(t, writeModule(t, "example.com/greet", "hello"), "1.0.0")
	evil := build(t, writeModule(t, "evil.example/x", "evil"), "1.0.0")
	if err := CheckFiles(m.Descriptor, m.Zip, m.Mod); err != nil {
		t.Fatalf("the module's own files: %v", err)
	}
	forged := *m.Descriptor // the h1 hashes of evil's files, under example.com/greet
	g := *m.Descriptor.Go
	g.Sum, g.ModSum = evil.Descriptor.Go.Sum, evil.Descriptor.Go.ModSum
	forged.Go = &g
	if err := CheckSums(&forged, evil.Zip, evil.Mod); err != nil {
		t.Fatalf("the forged hashes do not match: %v", err)
	}
	err := CheckFiles(&forged, "", evil.Mod)
	if !errors.Is(err, ErrNotModule) || !strings.Contains(err.Error(), `go.mod declares module "evil.example/x", not example.com/greet`) {
		t.Errorf("another module's go.mod: %v", err)
	}
	// A go.mod that does not parse, under hashes made over it (a push).
	broken := []byte("module example.com/greet\n\nrequire (\n")
	bd := *m.Descriptor
	bg := *m.Descriptor.Go
	bg.ModSum, _ = ModSum(broken)
	bd.Go = &bg
	if err := CheckFiles(&bd, "", broken); !errors.Is(err, ErrNotModule) || !strings.Contains(err.Error(), "go.mod does not parse as the go command reads it") {
		t.Errorf("a go.mod that does not parse: %v", err)
	}
	err = CheckFiles(&forged, evil.Zip, nil)
	if !errors.Is(err, ErrNotModule) || !strings.Contains(err.Error(), "not a module zip of example.com/greet@v1.0.0") {
		t.Errorf("another module's zip: %v", err)
	}
}

func TestImport(t *testing.T) {
	m := build(t, writeModule(t, "github.com/BurntSushi/toml", "hello"), "v1.4.0")
	p, db := newProxy(t), newSumDB(t, "sum.example.com")
	p.add(t, m)
	db.vouch(m)
	u := upstream(t, p, db)
	got, v, err := Import(context.Background(), u, "github.com/BurntSushi/toml", "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Descriptor.Go.Sum != m.Descriptor.Go.Sum || got.Descriptor.Artifacts[0].Ref != m.Descriptor.Artifacts[0].Ref {
		t.Errorf("imported %+v, want %+v", got.Descriptor.Go, m.Descriptor.Go)
	}
	want := []string{
		"github.com/BurntSushi/toml v1.4.0 " + m.Descriptor.Go.Sum,
		"github.com/BurntSushi/toml v1.4.0/go.mod " + m.Descriptor.Go.ModSum,
	}
	if strings.Join(v.Lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("evidence lines %q, want %q", v.Lines, want)
	}
	// The evidence stands alone: the tree note verifies under the key.
	verifier, _ := note.NewVerifier(db.Key)
	if _, err := note.Open(v.Tree, note.VerifierList(verifier)); err != nil {
		t.Errorf("the kept tree note does not verify: %v\n%s", err, v.Tree)
	}
	// Files gives both artifacts' bytes.
	files, err := got.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got.Descriptor.Artifacts {
		f, err := os.Open(files[a.File])
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := blob.Digest(f)
		f.Close()
		if ref != a.Ref {
			t.Errorf("file of %s is %v, want %v", a.File, ref, a.Ref)
		}
	}
	// latest is the highest release the proxy lists, whatever its
	// optional @latest says (proxy.golang.org's answers 404 here).
	p.mu.Lock()
	p.files["/github.com/!burnt!sushi/toml/@latest"] = []byte(`{"Version":"v1.3.2"}`)
	p.mu.Unlock()
	l, _, err := Import(context.Background(), u, "github.com/BurntSushi/toml", "latest")
	if err != nil || l.Descriptor.Version != "1.4.0" {
		t.Fatalf("import @latest: %v", err)
	}
	l.Close()
}

// latest as the go command takes it: the highest release listed, else
// the highest pre-release, passing over versions the highest one's go.mod
// retracts; the proxy's @latest only when the list names no version.
func TestLatestVersion(t *testing.T) {
	const path = "example.com/greet"
	for _, tc := range []struct {
		name   string
		list   string
		modOf  string // the version whose go.mod is read: the highest candidate
		mod    string
		latest string // the proxy's @latest; "" for 404
		want   string // "" for an error
	}{
		{"releases", "v1.0.0\nv1.2.0\nv1.10.0\nv1.11.0-rc.1\n", "v1.10.0", "module example.com/greet\n", `{"Version":"v1.2.0"}`, "v1.10.0"},
		{"pre-releases only", "v1.0.0-rc.1\nv1.0.0-rc.2\n", "v1.0.0-rc.2", "module example.com/greet\n", "", "v1.0.0-rc.2"},
		{"retracted", "v1.0.0\nv1.1.0\nv1.2.0\n", "v1.2.0", "module example.com/greet\nretract [v1.1.0, v1.2.0]\n", "", "v1.0.0"},
		{"all retracted", "v1.0.0\n", "v1.0.0", "module example.com/greet\nretract v1.0.0\n", "", ""},
		{"every release retracted", "v1.0.0\nv1.1.0-rc.1\n", "v1.0.0", "module example.com/greet\nretract v1.0.0\n", "", "v1.1.0-rc.1"},
		{"pseudo-versions only", "v0.0.0-20260101000000-abcdefabcdef\n", "", "", `{"Version":"v0.0.0-20260101000000-abcdefabcdef"}`, "v0.0.0-20260101000000-abcdefabcdef"},
		{"no list", "", "", "", `{"Version":"v1.0.0"}`, "v1.0.0"},
		{"nothing", "", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.list != "" {
				files["/example.com/greet/@v/list"] = tc.list
			}
			if tc.modOf != "" {
				files["/example.com/greet/@v/"+tc.modOf+".mod"] = tc.mod
			}
			if tc.latest != "" {
				files["/example.com/greet/@latest"] = tc.latest
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if body, ok := files[r.URL.Path]; ok {
					io.WriteString(w, body)
					return
				}
				http.NotFound(w, r)
			}))
			defer srv.Close()
			got, err := latestVersion(t.Context(), srv.Client(), srv.URL, path, path)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("latest: %s, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("latest: %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestImportZipNotInSumDB is issue 16's attack 2: the proxy serves a zip
// that is not the one the checksum database holds. The import is
// refused, and the error shows both hashes.
func TestImportZipNotInSumDB(t *testing.T) {
	honest := build(t, writeModule(t, "example.com/greet", "hello"), "1.0.0")
	evil := build(t, writeModule(t, "example.com/greet", "hello, and your keys"), "1.0.0")
	p, db := newProxy(t), newSumDB(t, "sum.example.com")
	p.add(t, evil)
	db.vouch(honest)
	tmpBefore, _ := filepath.Glob(filepath.Join(os.TempDir(), "cairn-gomod-*"))
	_, _, err := Import(context.Background(), upstream(t, p, db), "example.com/greet", "v1.0.0")
	var se *SumError
	if !errors.As(err, &se) || se.File != "zip" || se.Want != honest.Descriptor.Go.Sum || se.Got != evil.Descriptor.Go.Sum {
		t.Fatalf("import of a zip the database does not hold: %v, want a SumError", err)
	}
	for _, s := range []string{"SECURITY ERROR", honest.Descriptor.Go.Sum, evil.Descriptor.Go.Sum, "checksum database sum.example.com"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	tmpAfter, _ := filepath.Glob(filepath.Join(os.TempDir(), "cairn-gomod-*"))
	if len(tmpAfter) > len(tmpBefore)+2 { // the two builds' are the test's
		t.Errorf("a refused import left its files: %v", tmpAfter)
	}

	// A go.mod the database does not hold, with the honest zip.
	p.add(t, honest)
	ep := "/example.com/greet/@v/v1.0.0.mod"
	p.mu.Lock()
	p.files[ep] = append(append([]byte{}, honest.Mod...), []byte("require example.com/evil v1.0.0\n")...)
	p.mu.Unlock()
	_, _, err = Import(context.Background(), upstream(t, p, db), "example.com/greet", "v1.0.0")
	if !errors.As(err, &se) || se.File != "go.mod" || se.Want != honest.Descriptor.Go.ModSum {
		t.Fatalf("import of a go.mod the database does not hold: %v, want a SumError", err)
	}
}

// TestFetchRefuses: what a GOPROXY may not serve.
func TestFetchRefuses(t *testing.T) {
	m := build(t, writeModule(t, "example.com/greet", "hello"), "1.0.0")
	other := build(t, writeModule(t, "example.com/other", "hello"), "1.0.0")
	zip, _ := os.ReadFile(m.Zip)
	otherZip, _ := os.ReadFile(other.Zip)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		serve func(p *proxy)
		want  string
	}{
		{"an info for another version", func(p *proxy) {
			p.set(t, "example.com/greet", "v1.0.0", m.Mod, zip)
			p.files["/example.com/greet/@v/v1.0.0.info"] = []byte(`{"Version":"v1.0.1"}`)
		}, `answers for version "v1.0.1"`},
		{"a go.mod of another module", func(p *proxy) { p.set(t, "example.com/greet", "v1.0.0", other.Mod, zip) },
			`go.mod declares module "example.com/other"`},
		{"another module's zip", func(p *proxy) { p.set(t, "example.com/greet", "v1.0.0", m.Mod, otherZip) },
			"not a module zip of example.com/greet@v1.0.0"},
		{"a zip cut one byte short", func(p *proxy) { p.set(t, "example.com/greet", "v1.0.0", m.Mod, zip[:len(zip)-1]) },
			"not a module zip"},
		{"nothing", func(p *proxy) {}, "404 Not Found: server response: not found: /example.com/greet/@v/v1.0.0.info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t)
			tc.serve(p)
			f, err := Fetch(ctx, http.DefaultClient, p.srv.URL, "example.com/greet", "v1.0.0")
			if err == nil {
				f.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch: %v, want an error saying %q", err, tc.want)
			}
		})
	}

	// The go command's caps: a zip or a go.mod one byte over is refused.
	p := newProxy(t)
	p.set(t, "example.com/greet", "v1.0.0", m.Mod, zip)
	defer func(z, mm int64) { maxZip, maxMod = z, mm }(maxZip, maxMod)
	maxZip = int64(len(zip)) - 1
	if _, err := Fetch(ctx, http.DefaultClient, p.srv.URL, "example.com/greet", "v1.0.0"); err == nil || !strings.Contains(err.Error(), "go command's cap") {
		t.Fatalf("a zip over the cap: %v", err)
	}
	maxZip, maxMod = int64(len(zip)), int64(len(m.Mod))-1
	if _, err := Fetch(ctx, http.DefaultClient, p.srv.URL, "example.com/greet", "v1.0.0"); err == nil || !strings.Contains(err.Error(), "go command's cap") {
		t.Fatalf("a go.mod over the cap: %v", err)
	}
	maxMod = int64(len(m.Mod))
	f, err := Fetch(ctx, http.DefaultClient, p.srv.URL, "example.com/greet", "v1.0.0")
	if err != nil {
		t.Fatalf("a zip and go.mod at the caps: %v", err)
	}
	f.Close()
}

// TestImportZipOneByteLonger: a zip with a byte more than the module's
// zip is other bytes than the module zip whose digest the database's hash
// vouches for; whatever archive/zip makes of it, the import either
// refuses it or pins exactly the bytes the h1 hash was computed over.
func TestImportZipOneByteLonger(t *testing.T) {
	m := build(t, writeModule(t, "example.com/greet", "hello"), "1.0.0")
	zip, _ := os.ReadFile(m.Zip)
	p, db := newProxy(t), newSumDB(t, "sum.example.com")
	p.set(t, "example.com/greet", "v1.0.0", m.Mod, append(zip, 0))
	db.vouch(m)
	got, _, err := Import(context.Background(), upstream(t, p, db), "example.com/greet", "v1.0.0")
	if err != nil {
		t.Logf("refused: %v", err)
		return // refused
	}
	defer got.Close()
	if got.Descriptor.Artifacts[0].Size != int64(len(zip))+1 {
		t.Fatalf("imported a zip of %d bytes as %v", len(zip)+1, got.Descriptor.Artifacts[0].Ref)
	}
	if err := CheckSums(got.Descriptor, got.Zip, got.Mod); err != nil {
		t.Fatal(err)
	}
}

// TestSumDBFork: a checksum database that shows this client a history
// other than the one it showed before is a security error, with its
// evidence.
func TestSumDBFork(t *testing.T) {
	a := build(t, writeModule(t, "example.com/a", "a"), "1.0.0")
	b := build(t, writeModule(t, "example.com/b", "b"), "1.0.0")
	skey, vkey, err := note.GenerateKey(rand.Reader, "sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	ctx := context.Background()
	one := newSumDBKey(t, skey, vkey)
	one.vouch(a)
	if _, err := one.Lookup(ctx, http.DefaultClient, cache, "example.com/a", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	// The same key, another history: b where a was.
	two := newSumDBKey(t, skey, vkey)
	two.vouch(b)
	_, err = two.Lookup(ctx, http.DefaultClient, cache, "example.com/b", "v1.0.0")
	var se *SecurityError
	if !errors.As(err, &se) || !errors.Is(err, ErrSecurity) || !strings.Contains(err.Error(), "SECURITY ERROR") {
		t.Fatalf("a forked database: %v, want a SecurityError", err)
	}
	if !strings.Contains(se.Msg, "sum.example.com") {
		t.Errorf("the security error carries no evidence: %s", se.Msg)
	}
}

func TestParseSumDB(t *testing.T) {
	_, vkey, _ := note.GenerateKey(rand.Reader, "sum.example.com")
	for _, tc := range []struct {
		in, name, url, err string
	}{
		{"sum.golang.org", "sum.golang.org", "https://sum.golang.org", ""},
		{"sum.golang.google.cn", "sum.golang.org", "https://sum.golang.google.cn", ""},
		{vkey, "sum.example.com", "https://sum.example.com", ""},
		{vkey + " http://127.0.0.1:9/", "sum.example.com", "http://127.0.0.1:9", ""},
		{"off", "", "", "GOSUMDB=off"},
		{"", "", "", "want a key"},
		{"sum.example.com", "", "", "the key"},
		{vkey + " ftp://x", "", "", "want http"},
	} {
		db, err := ParseSumDB(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSumDB(%q): %v, want an error saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || db.Name != tc.name || db.URL != tc.url {
			t.Errorf("ParseSumDB(%q) = %+v, %v", tc.in, db, err)
		}
	}
}

// TestImportVersions: the versions the go command has that cairn names
// otherwise — a +incompatible version of a module without go.mod (the
// proxy serves the go.mod it synthesizes), a pseudo-version — import as
// versions whose descriptors check, named without the "v".
func TestImportVersions(t *testing.T) {
	p, db := newProxy(t), newSumDB(t, "sum.example.com")
	for _, tc := range []struct{ path, version string }{
		{"example.com/old", "v2.0.0+incompatible"},
		{"example.com/greet", "v0.0.0-20261109003541-7506e5f91cd6"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "old.go"), []byte("package old\n"), 0o644)
		zipPath := filepath.Join(t.TempDir(), "m.zip")
		f, _ := os.Create(zipPath)
		if err := modzip.CreateFromDir(f, module.Version{Path: tc.path, Version: tc.version}, dir); err != nil {
			t.Fatal(err)
		}
		f.Close()
		zip, _ := os.ReadFile(zipPath)
		mod := []byte("module " + tc.path + "\n")
		p.set(t, tc.path, tc.version, mod, zip)
		sum, _ := dirhash.HashZip(zipPath, dirhash.Hash1)
		modSum, _ := ModSum(mod)
		db.set(tc.path, tc.version, sum, modSum)
		m, _, err := Import(context.Background(), upstream(t, p, db), tc.path, tc.version)
		if err != nil {
			t.Fatalf("%s@%s: %v", tc.path, tc.version, err)
		}
		d := *m.Descriptor
		d.UUID = "0b2b0c52-5b8e-4a5e-9d5b-3f6f1b0b8a11"
		if _, err := d.Marshal(); err != nil || d.Version != strings.TrimPrefix(tc.version, "v") || d.Artifacts[0].File != tc.version+".zip" {
			t.Errorf("%s@%s: descriptor %s@%s (%s): %v", tc.path, tc.version, d.Name, d.Version, d.Artifacts[0].File, err)
		}
		m.Close()
	}
}

func FuzzParseSumDB(f *testing.F) {
	f.Add("sum.golang.org")
	f.Add("sum.example.com+12345678+AbCd sum.example.com")
	f.Add("off")
	f.Fuzz(func(t *testing.T, s string) {
		db, err := ParseSumDB(s)
		if err != nil {
			return
		}
		again, err := ParseSumDB(db.String())
		if err != nil || again != db {
			t.Fatalf("ParseSumDB(%q) = %+v; its String %q parses to %+v, %v", s, db, db.String(), again, err)
		}
	})
}

func FuzzGoVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "v1.2.3", "v2.0.0+incompatible", "v0.0.0-20261109003541-7506e5f91cd6", "1.2", "v1.2.3+meta"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := GoVersion(s)
		if err != nil {
			return
		}
		if err := descriptor.CheckVersion(strings.TrimPrefix(v, "v")); err != nil {
			t.Fatalf("GoVersion(%q) = %q, which cairn does not take as a version: %v", s, v, err)
		}
	})
}
