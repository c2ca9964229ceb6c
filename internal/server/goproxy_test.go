package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	googleuuid "github.com/google/uuid"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	modzip "golang.org/x/mod/zip"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gomod"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
)

// goModuleDir writes a module with one package: go.mod and greet.go,
// whose Hello returns greeting.
func goModuleDir(t testing.TB, path, greeting string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+path+"\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "greet.go"), []byte("package greet\n\n// Hello greets.\nfunc Hello() string { return "+`"`+greeting+`"`+" }\n"), 0o644)
	return dir
}

// goBuilt is a Go module version made from a directory: its zip (as the
// go command makes it), go.mod, and their h1: hashes.
type goBuilt struct {
	zip, mod    string // files
	sum, modSum string
}

func buildGoModule(t *testing.T, dir, path, version string) goBuilt {
	t.Helper()
	b := goBuilt{zip: filepath.Join(t.TempDir(), "m.zip"), mod: filepath.Join(dir, "go.mod")}
	f, err := os.Create(b.zip)
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.CreateFromDir(f, module.Version{Path: path, Version: "v" + version}, dir); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b.sum, err = dirhash.HashZip(b.zip, dirhash.Hash1); err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(b.mod)
	b.modSum, _ = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(mod)), nil })
	return b
}

// pushGo publishes b as path@version in a clone of the fixture's index
// (its h1: hashes as b says), uploads its blobs with their descriptor,
// and pushes: it returns main before and after the push, and the push's
// output and error.
func (g *goFixture) pushGo(path, version string, b goBuilt) (before, after, out string, err error) {
	g.t.Helper()
	c := cloneOf(g.t, g.fixture)
	d := publishGo(g.t, c, g.gopher, path, version, b)
	var refs []blob.Ref
	for _, a := range d.Artifacts {
		refs = append(refs, a.Ref)
	}
	data, _ := d.Marshal()
	refs = append(refs, blob.DigestBytes(data))
	upload(g.t, g.fixture, c, refs...)
	before, _ = g.repo.Head(g.ctx, index.MainRef)
	out, err = pushClone(g.t, g.fixture, c)
	after, _ = g.repo.Head(g.ctx, index.MainRef)
	return before, after, out, err
}

// publishGo publishes a Go module version into repo, signed by s, with
// the descriptor's go member carrying b's hashes whatever the bytes are
// (a forged version: gomod.Build would not make it).
func publishGo(t testing.TB, repo *index.Repo, s keys.Signer, path, version string, b goBuilt) *descriptor.Descriptor {
	t.Helper()
	ctx := t.Context()
	zipRef, err := blob.PutFile(ctx, repo.Blobs, b.zip)
	if err != nil {
		t.Fatal(err)
	}
	modRef, err := blob.PutFile(ctx, repo.Blobs, b.mod)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head(ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	st, err := repo.State(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	uuid, err := st.UUID(path)
	if err != nil {
		t.Fatal(err)
	}
	if uuid == "" {
		uuid = googleuuid.NewString()
	}
	d := &descriptor.Descriptor{Schema: descriptor.Schema, Name: path, Version: version, UUID: uuid,
		Artifacts: []descriptor.Artifact{
			{Kind: descriptor.KindSource, File: "v" + version + ".zip", Ref: zipRef},
			{Kind: descriptor.KindGoMod, File: "v" + version + ".mod", Ref: modRef},
		},
		Go: &descriptor.GoModule{Module: path, Version: "v" + version, Sum: b.sum, ModSum: b.modSum}}
	data, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ref := blob.DigestBytes(data)
	if err := repo.Blobs.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	payload, err := record.Build(record.Authored, []record.Subject{{Name: d.ID(), Digest: map[string]string{"sha256": ref.SHA256}}},
		record.AuthoredPredicate{Descriptor: ref, Issued: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Append(ctx, index.Change{Records: []*record.Record{rec}, Descriptor: data}, "gopher <gopher@example.com>", "publish "+d.ID()); err != nil {
		t.Fatal(err)
	}
	return d
}

// goFixture is a served index where gopher may publish example.com/*
// and sec may certify vulnerabilities, with the server's policy pol
// (none if "").
type goFixture struct {
	*fixture
	gopher, sec keys.Signer
}

const noHighVulns = `forbid:
  - name: no-high-vulnerabilities
    property: vulnerable
    severity: high
`

func newGoFixture(t testing.TB, pol string, more ...func(*Options)) *goFixture {
	var p *policy.Policy
	if pol != "" {
		var err error
		if p, err = policy.Parse("policy.yaml", []byte(pol)); err != nil {
			t.Fatal(err)
		}
	}
	g := &goFixture{fixture: newFixture(t, func(o *Options) {
		o.Policy = p
		for _, f := range more {
			f(o)
		}
	}), gopher: signer(t), sec: signer(t)}
	if _, err := author.Grant(g.ctx, g.repo, author.KeyGrant{Key: g.gopher.Public(), Holder: "gopher", Scopes: []string{"publish:example.com/*"}}, g.root); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Grant(g.ctx, g.repo, author.KeyGrant{Key: g.sec.Public(), Holder: "sec-team", Scopes: []string{"certify:vulnerable", "certify:fixed"}}, g.root); err != nil {
		t.Fatal(err)
	}
	return g
}

// publish publishes a module version as cairn publish --go does
// (gomod.Build, author.PublishBuilt).
func (g *goFixture) publish(path, version, greeting string) *descriptor.Descriptor {
	g.t.Helper()
	return g.publishDir(goModuleDir(g.t, path, greeting), version)
}

// publishDir publishes the module in dir at version.
func (g *goFixture) publishDir(dir, version string) *descriptor.Descriptor {
	g.t.Helper()
	return g.publishFrom(dir, version, nil)
}

// publishImported publishes a module version as cairn import go does:
// with an imported record, a public module brought in (from a proxy
// the test names).
func (g *goFixture) publishImported(path, version, greeting string) *descriptor.Descriptor {
	g.t.Helper()
	return g.publishFrom(goModuleDir(g.t, path, greeting), version, &record.ImportedPredicate{Source: "https://proxy.example", Released: &importedReleased})
}

// importedReleased is when publishImported's versions were made, as
// their upstream said.
var importedReleased = time.Date(2019, 3, 1, 12, 0, 0, 0, time.UTC)

// An imported version's .info is dated when its upstream says it was
// made (kept in its imported record), not when it was brought in: the go
// command shows and compares those times.
func TestGoInfoOfImportedVersion(t *testing.T) {
	g := newGoFixture(t, "")
	g.publishImported("example.com/public", "1.0.0", "hello")
	g.publish("example.com/own", "1.0.0", "hello")
	resp, body := g.do("GET", "/go/example.com/public/@v/v1.0.0.info", nil, nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"Version":"v1.0.0","Time":"2019-03-01T12:00:00Z"}` {
		t.Errorf("the imported version's .info: %d %s, want its upstream's time", resp.StatusCode, body)
	}
	resp, body = g.do("GET", "/go/example.com/own/@v/v1.0.0.info", nil, nil)
	var info struct{ Time time.Time }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &info) != nil || time.Since(info.Time) > time.Hour {
		t.Errorf("a version published here: .info %d %s, want the time it was published", resp.StatusCode, body)
	}
}

func (g *goFixture) publishFrom(dir, version string, imported *record.ImportedPredicate) *descriptor.Descriptor {
	g.t.Helper()
	m, err := gomod.Build(dir, version)
	if err != nil {
		g.t.Fatal(err)
	}
	defer m.Close()
	files, err := m.Files()
	if err != nil {
		g.t.Fatal(err)
	}
	p, err := author.PublishBuilt(g.ctx, g.repo, author.Built{Descriptor: m.Descriptor, Files: files, Imported: imported}, g.gopher)
	if err != nil {
		g.t.Fatal(err)
	}
	return p.Descriptor
}

func (g *goFixture) vulnerable(path, version string) string {
	g.t.Helper()
	a, err := author.Certify(g.ctx, g.repo, author.Certification{Name: path, Version: version, Kind: record.Vulnerable, VulnID: "CVE-2026-1234", Severity: "high"}, g.sec)
	if err != nil {
		g.t.Fatal(err)
	}
	return a.Records[0]
}

// The GOPROXY protocol read directly: list, .info, .mod, .zip, @latest,
// case-encoded paths, 404s with one line of text.
func TestGoProxyProtocol(t *testing.T) {
	g := newGoFixture(t, "")
	d1 := g.publish("example.com/greet", "1.0.0", "hello")
	g.publish("example.com/greet", "1.1.0-rc.1", "hi")
	d2 := g.publish("example.com/greet", "1.1.0", "hey")
	g.publish("example.com/greet", "1.1.1-0.20260101000000-abcdefabcdef", "a commit after v1.1.0")
	dUp := g.publish("example.com/Upper", "0.1.0", "upper")
	publishAs(t, g.fixture, "acme/tool", "1.0.0") // a cairn package, not a Go module

	get := func(path string) (*http.Response, string) {
		resp, body := g.do("GET", path, nil, nil)
		return resp, string(body)
	}
	if resp, body := get("/go/example.com/greet/@v/list"); resp.StatusCode != 200 || body != "v1.0.0\nv1.1.0-rc.1\nv1.1.0\n" {
		t.Errorf("list: %d %q", resp.StatusCode, body)
	}
	resp, body := get("/go/example.com/greet/@v/v1.0.0.info")
	var info struct {
		Version string
		Time    time.Time
	}
	if err := json.Unmarshal([]byte(body), &info); resp.StatusCode != 200 || err != nil || info.Version != "v1.0.0" || time.Since(info.Time) > time.Hour || info.Time.Location() != time.UTC {
		t.Errorf(".info: %d %q (%v)", resp.StatusCode, body, err)
	}
	// A pseudo-version is not listed (the protocol), and is served by
	// name, dated by the time it names (the go command reads the two as
	// one: it was dated when it was appended).
	if resp, body := get("/go/example.com/greet/@v/v1.1.1-0.20260101000000-abcdefabcdef.info"); resp.StatusCode != 200 || !strings.Contains(body, `"Version":"v1.1.1-0.20260101000000-abcdefabcdef","Time":"2026-01-01T00:00:00Z"`) {
		t.Errorf("pseudo-version .info: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/go/example.com/greet/@latest"); resp.StatusCode != 200 || !strings.Contains(body, `"Version":"v1.1.0"`) {
		t.Errorf("@latest: %d %q, want v1.1.0 (the highest release)", resp.StatusCode, body)
	}
	if resp, body := get("/go/example.com/greet/@v/v1.1.0.mod"); resp.StatusCode != 200 || body != "module example.com/greet\n\ngo 1.21\n" {
		t.Errorf(".mod: %d %q", resp.StatusCode, body)
	}
	resp, zip := get("/go/example.com/greet/@v/v1.1.0.zip")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf(".zip: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := blob.DigestBytes([]byte(zip)); got != d2.Artifacts[0].Ref {
		t.Errorf(".zip is %v, the descriptor pins %v", got, d2.Artifacts[0].Ref)
	}
	_ = d1
	// Case-encoded: example.com/Upper is example.com/!upper.
	if resp, body := get("/go/example.com/!upper/@v/list"); resp.StatusCode != 200 || body != "v0.1.0\n" {
		t.Errorf("case-encoded list: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("/go/example.com/!upper/@v/v0.1.0.zip"); resp.StatusCode != 200 {
		t.Errorf("case-encoded zip: %d", resp.StatusCode)
	}
	_ = dUp
	for _, path := range []string{
		"/go/example.com/nothing/@v/list",        // no such module
		"/go/example.com/greet/@v/v9.9.9.info",   // no such version (nor v9.9.9+incompatible)
		"/go/example.com/greet/@v/v1.9.9.info",   // no such version
		"/go/example.com/greet/@v/v1.0.info",     // not canonical
		"/go/example.com/Upper/@v/list",          // not case-encoded
		"/go/acme/tool/@v/list",                  // not a module path
		"/go/example.com/greet/@v/v1.0.0.tar.gz", // not a GOPROXY file
	} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || strings.Count(body, "\n") != 1 {
			t.Errorf("GET %s: %d %s %q, want 404 with one line of text", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// A case variant of a published module is refused, not 404, on which
	// a GOPROXY list (cairn,direct) would ask its next entry for a
	// look-alike under that spelling; it names the published spelling.
	for _, path := range []string{"/go/example.com/upper/@v/list", "/go/example.com/upper/@v/v0.1.0.zip", "/go/example.com/!u!p!p!e!r/@latest"} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "differs only in case from example.com/Upper, which this repository publishes") || strings.Contains(body, "cairn import go") {
			t.Errorf("GET %s: %d %q, want 403 naming example.com/Upper", path, resp.StatusCode, body)
		}
	}
	// A long path is not repeated whole.
	long := "/go/example.com/" + strings.Repeat("a", 60<<10) + "/@v/list"
	if resp, body := get(long); resp.StatusCode != http.StatusNotFound || len(body) > 5<<10 || !strings.Contains(body, "bytes more)") {
		t.Errorf("GET of a 60 KiB module path: %d, a %d-byte body (%.80q…), want 404 with the path cut", resp.StatusCode, len(body), body)
	}
}

// goCommand runs the real go command in dir against the server's /go/
// as GOPROXY, with a module cache of the test's own (the build cache is
// the user's: content-addressed, it cannot serve a module the proxy did
// not).
type goCommand struct {
	t   *testing.T
	env []string
}

func newGoCommand(t *testing.T, proxy string) *goCommand {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the GOPROXY tests run the real go command, which is not on PATH:", err)
	}
	cache, err := exec.Command(goBin, "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	gopath := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + gopath,
		"GOPATH=" + gopath, "GOMODCACHE=" + filepath.Join(gopath, "mod"), "GOCACHE=" + strings.TrimSpace(string(cache)),
		"GOPROXY=" + proxy, "GONOSUMDB=example.com", "GOSUMDB=off", "GOTOOLCHAIN=local",
		"GOFLAGS=-mod=mod -modcacherw", "CGO_ENABLED=0",
	}
	return &goCommand{t: t, env: env}
}

// setenv sets one of the go command's variables, in place of its value.
func (g *goCommand) setenv(key, value string) {
	for i, kv := range g.env {
		if strings.HasPrefix(kv, key+"=") {
			g.env[i] = key + "=" + value
			return
		}
	}
	g.env = append(g.env, key+"="+value)
}

func (g *goCommand) run(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, g.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mainModule writes a program that requires example.com/greet at version.
func mainModule(t *testing.T, dir, version string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.21\n\nrequire example.com/greet "+version+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"example.com/greet\"\n\nfunc main() { println(greet.Hello()) }\n"), 0o644)
	os.Remove(filepath.Join(dir, "go.sum"))
}

// Attack 1 (issue 16): the real go command, through cairn serve with a
// policy, builds a program with an allowed version of a module and is
// refused one the policy forbids — pinned in go.mod, asked for directly
// — with the rule, the record and the hint in its own output; the
// refused version is absent from the list and @latest.
func TestAttackGoCommandRefusedByPolicy(t *testing.T) {
	g := newGoFixture(t, noHighVulns)
	d1 := g.publish("example.com/greet", "1.0.0", "hello from cairn")
	g.publish("example.com/greet", "1.1.0", "hello, vulnerable")
	vuln := g.vulnerable("example.com/greet", "1.1.0")
	goCmd := newGoCommand(t, g.url+"/go")
	dir := t.TempDir()

	out, err := goCmd.run(dir, "mod", "download", "-json", "example.com/greet@v1.0.0")
	var dl struct{ Version, Sum, GoModSum, Zip, Error string }
	if jerr := json.Unmarshal([]byte(out), &dl); err != nil || jerr != nil || dl.Error != "" {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	if dl.Version != "v1.0.0" || dl.Sum != d1.Go.Sum || dl.GoModSum != d1.Go.ModSum {
		t.Errorf("go mod download: %s %s %s, want v1.0.0 %s %s", dl.Version, dl.Sum, dl.GoModSum, d1.Go.Sum, d1.Go.ModSum)
	}
	if out, err := goCmd.run(dir, "list", "-m", "-versions", "example.com/greet"); err != nil || strings.TrimSpace(out) != "example.com/greet v1.0.0" {
		t.Errorf("go list -m -versions: %v %q, want v1.0.0 alone (v1.1.0 is refused)", err, out)
	}

	mainModule(t, dir, "v1.1.0")
	out, err = goCmd.run(dir, "build", "-o", "hello", ".")
	if err == nil {
		t.Fatalf("go build of a program pinning the refused v1.1.0 succeeded:\n%s", out)
	}
	t.Logf("go build:\n%s", out)
	for _, want := range []string{
		"403 Forbidden",
		"server response:",
		"cairn: refused by policy policy.yaml (sha256:" + g.srv.opts.Policy.Ref.SHA256[:8] + "…): example.com/greet@v1.1.0",
		`rule "no-high-vulnerabilities" (forbid vulnerable >= high): vulnerable CVE-2026-1234 (high) by sec-team`,
		"(record " + vuln[:16] + ")",
		"hint: use an allowed version (cairn show example.com/greet), or ask the issuer to answer the record with fixed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("go build's output lacks %q:\n%s", want, out)
		}
	}

	mainModule(t, dir, "v1.0.0")
	if out, err := goCmd.run(dir, "build", "-o", "hello", "."); err != nil {
		t.Fatalf("go build with the allowed v1.0.0: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(dir, "hello")).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello from cairn" {
		t.Errorf("the program built through cairn: %v %q", err, out)
	}

	// The refusals were counted, by rule and by how they were asked.
	_, metrics := g.do("GET", "/metrics", nil, nil)
	if !strings.Contains(string(metrics), `cairn_policy_refusals_total{rule="no-high-vulnerabilities",via="go"}`) {
		t.Errorf("/metrics counts no refusal via go:\n%s", grepLines(string(metrics), "cairn_policy"))
	}
	if !strings.Contains(string(metrics), `cairn_http_requests_total{code="403",route="go"}`) {
		t.Errorf("/metrics counts no 403 of the go route:\n%s", grepLines(string(metrics), "cairn_http_requests_total"))
	}
}

// A refused version's go.mod is served, its code not: the go command
// reads the go.mod of every version a requirement names to select
// versions, and a dependency whose go.mod predates graph pruning (go
// 1.16) requiring a refused version failed the build of a project that
// had moved past it (403 on the .mod), with a hint it could not follow.
func TestGoModOfARefusedVersionServed(t *testing.T) {
	g := newGoFixture(t, noHighVulns)
	g.publish("example.com/greet", "1.0.1", "hello, vulnerable")
	g.publish("example.com/greet", "1.0.3", "hello, fixed")
	g.vulnerable("example.com/greet", "1.0.1")
	dep := t.TempDir()
	os.WriteFile(filepath.Join(dep, "go.mod"), []byte("module example.com/dep\n\ngo 1.16\n\nrequire example.com/greet v1.0.1\n"), 0o644)
	os.WriteFile(filepath.Join(dep, "dep.go"), []byte("package dep\n\nimport \"example.com/greet\"\n\n// V greets.\nfunc V() string { return greet.Hello() }\n"), 0o644)
	g.publishDir(dep, "1.0.0")

	if resp, body := g.do("GET", "/go/example.com/greet/@v/v1.0.1.mod", nil, nil); resp.StatusCode != http.StatusOK || string(body) != "module example.com/greet\n\ngo 1.21\n" {
		t.Errorf("the refused version's go.mod: %s %q", resp.Status, body)
	}
	for _, f := range []string{"v1.0.1.zip", "v1.0.1.info"} {
		if resp, body := g.do("GET", "/go/example.com/greet/@v/"+f, nil, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "cairn: refused by policy") {
			t.Errorf("the refused version's %s: %s %q, want 403", f, resp.Status, body)
		}
	}

	goCmd := newGoCommand(t, g.url+"/go")
	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "go.mod"), []byte("module example.org/app\n\ngo 1.16\n\nrequire (\n\texample.com/dep v1.0.0\n\texample.com/greet v1.0.3\n)\n"), 0o644)
	os.WriteFile(filepath.Join(app, "main.go"), []byte("package main\n\nimport (\n\t\"example.com/dep\"\n\t\"example.com/greet\"\n)\n\nfunc main() { println(dep.V(), greet.Hello()) }\n"), 0o644)
	if out, err := goCmd.run(app, "build", "-o", "app", "."); err != nil {
		t.Fatalf("go build of a project past the refused version a dependency requires: %v\n%s", err, out)
	}
	// The refused version itself is still not built.
	os.WriteFile(filepath.Join(app, "go.mod"), []byte("module example.org/app\n\ngo 1.16\n\nrequire (\n\texample.com/dep v1.0.0\n\texample.com/greet v1.0.1\n)\n"), 0o644)
	os.Remove(filepath.Join(app, "go.sum"))
	if out, err := goCmd.run(app, "build", "-o", "app", "."); err == nil || !strings.Contains(out, "example.com/greet@v1.0.1") || !strings.Contains(out, "403 Forbidden") {
		t.Fatalf("go build selecting the refused version: %v, want its refusal\n%s", err, out)
	}
}

// A version its author retracted (go.mod's retract, in the latest
// version) stays retracted when the policy refuses that latest version:
// the go command reads retractions from the latest version it is shown,
// so @latest would fall back to the retracted version, unwarned. It
// falls back to the version below, and the retracted one is still
// served when asked for by name, as the go command serves it.
func TestGoRetractedByARefusedVersion(t *testing.T) {
	g := newGoFixture(t, noHighVulns)
	const path = "example.com/greet"
	g.publish(path, "1.0.0", "hello")
	g.publish(path, "1.1.0", "hello, broken")
	dir := goModuleDir(t, path, "hello, vulnerable")
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+path+"\n\ngo 1.21\n\nretract v1.1.0 // broken\n"), 0o644)
	g.publishDir(dir, "1.2.0")

	// With 1.2.0 allowed, the go command reads its retraction itself: the
	// list holds 1.1.0, and the go command warns of it and lists it as
	// retracted, as with any proxy.
	if _, body := g.do("GET", "/go/example.com/greet/@v/list", nil, nil); string(body) != "v1.0.0\nv1.1.0\nv1.2.0\n" {
		t.Errorf("list with the retracting version allowed: %q, want v1.0.0, v1.1.0 and v1.2.0", body)
	}
	goCmd := newGoCommand(t, g.url+"/go")
	if out, err := goCmd.run(t.TempDir(), "list", "-m", "-retracted", "-versions", "-json", path+"@latest"); err != nil || !strings.Contains(out, `"v1.1.0"`) || !strings.Contains(out, `"Version": "v1.2.0"`) {
		t.Errorf("go list -m -retracted -versions: %v\n%s", err, out)
	}
	if out, err := goCmd.run(t.TempDir(), "list", "-m", "-retracted", "-json", path+"@v1.1.0"); err != nil || !strings.Contains(out, `"Retracted": [`) || !strings.Contains(out, "broken") {
		t.Errorf("go list -m -retracted of the retracted version: %v, want its retraction and rationale\n%s", err, out)
	}
	g.vulnerable(path, "1.2.0")
	if _, body := g.do("GET", "/go/example.com/greet/@v/list", nil, nil); string(body) != "v1.0.0\n" {
		t.Errorf("list with the retracting version refused: %q, want v1.0.0 alone", body)
	}
	if _, body := g.do("GET", "/go/example.com/greet/@latest", nil, nil); !strings.Contains(string(body), `"Version":"v1.0.0"`) {
		t.Errorf("@latest with the retracting version refused: %s, want v1.0.0", body)
	}

	work := t.TempDir()
	mainModule(t, work, "v1.0.0")
	if out, err := goCmd.run(work, "get", path+"@latest"); err != nil {
		t.Fatalf("go get @latest: %v\n%s", err, out)
	}
	if gomodText := mustRead(t, filepath.Join(work, "go.mod")); !strings.Contains(gomodText, path+" v1.0.0") {
		t.Errorf("go get @latest chose another version than v1.0.0:\n%s", gomodText)
	}
	if out, err := goCmd.run(work, "get", path+"@v1.1.0"); err != nil || !strings.Contains(mustRead(t, filepath.Join(work, "go.mod")), path+" v1.1.0") {
		t.Errorf("go get of the retracted version by name: %v\n%s", err, out)
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// cloneOf is a replica of f's index, fetched over git from the server.
func cloneOf(t testing.TB, f *fixture) *index.Repo {
	t.Helper()
	c, err := index.InitReplica(f.ctx, filepath.Join(t.TempDir(), "clone"), f.repo.Config.Introduction)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := indextest.Git(t, c, "fetch", "-q", f.url+"/index.git", "+"+index.MainRef+":"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	return c
}

// Attack 4 (issue 16): a Go module version whose zip or go.mod does not
// hash to the h1: its descriptor carries is refused at push (nothing
// moves; the refusal names both hashes) and, put in the index behind the
// push's back, never served.
func TestAttackGoSumMismatch(t *testing.T) {
	g := newGoFixture(t, "")
	const path = "example.com/greet"
	good := buildGoModule(t, goModuleDir(t, path, "hello"), path, "1.0.0")
	other := buildGoModule(t, goModuleDir(t, path, "evil"), path, "1.0.0")
	badZip := good
	badZip.zip = other.zip // the descriptor's h1: is the good zip's; the bytes are not
	fakeH1 := "h1:" + strings.Repeat("A", 43) + "="
	badMod := good
	badMod.modSum = fakeH1

	t.Run("push", func(t *testing.T) {
		for i, tc := range []struct {
			name string
			b    goBuilt
			want string // in the refusal; "" if accepted
		}{
			{"zip", badZip, "the zip hashes to " + other.sum + ", but the descriptor says " + good.sum},
			{"go.mod", badMod, "go.mod hashes to " + good.modSum + ", but the descriptor says " + fakeH1},
			{"good", buildGoModule(t, goModuleDir(t, path, "hello"), path, "1.0.3"), ""}, // a zip of the version pushed
		} {
			version := "1.0." + string(rune('1'+i))
			before, after, out, err := g.pushGo(path, version, tc.b)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("%s: push refused:\n%s", tc.name, out)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s: a Go module whose held blobs do not hash to its h1: was accepted:\n%s", tc.name, out)
				continue
			}
			if !strings.Contains(out, "remote: cairn: refused: "+path+"@"+version+": the blobs this server holds do not match") || !strings.Contains(out, tc.want) {
				t.Errorf("%s: the refusal does not name both hashes (%q):\n%s", tc.name, tc.want, out)
			}
			if after != before {
				t.Errorf("%s: main moved on a refused push", tc.name)
			}
		}
	})

	t.Run("serve", func(t *testing.T) {
		publishGo(t, g.repo, g.gopher, path, "1.2.0-zip", badZip)
		publishGo(t, g.repo, g.gopher, path, "1.2.0-mod", badMod)
		for _, tc := range []struct{ path, want string }{
			{"/go/example.com/greet/@v/v1.2.0-zip.zip", "the zip hashes to " + other.sum},
			{"/go/example.com/greet/@v/v1.2.0-mod.mod", "go.mod hashes to " + good.modSum + ", but the descriptor says " + fakeH1},
		} {
			resp, body := g.do("GET", tc.path, nil, nil)
			if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), tc.want) {
				t.Errorf("GET %s: %d %q, want it refused naming %q", tc.path, resp.StatusCode, body, tc.want)
			}
		}
	})

	// A zip served once, then changed on the server's disk (its size
	// kept): no later copy reaches the go command whole, which takes a
	// module the checksum database does not know (GONOSUMDB) on the
	// proxy's word.
	t.Run("changed after served", func(t *testing.T) {
		b := buildGoModule(t, goModuleDir(t, path, "hello"), path, "1.3.0")
		d := publishGo(t, g.repo, g.gopher, path, "1.3.0", b)
		ref, _ := goArtifact(d, descriptor.KindSource)
		const zipPath = "/go/example.com/greet/@v/v1.3.0.zip"
		resp, body := g.do("GET", zipPath, nil, nil)
		want, _ := os.ReadFile(b.zip)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("GET %s: %d, %s; want the zip", zipPath, resp.StatusCode, body)
		}
		stored := filepath.Join(g.repo.Dir, "blobs", "sha256", ref.SHA256[:2], ref.SHA256)
		changed := bytes.Clone(want)
		changed[len(changed)/2] ^= 1
		if err := os.WriteFile(stored, changed, 0o644); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(g.url + zipPath)
		if err != nil {
			return // refused before an answer
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			t.Fatalf("GET %s: the zip changed on disk was served whole (%d bytes, changed: %v)", zipPath, len(got), bytes.Equal(got, changed))
		}
		if bytes.Equal(got, changed) {
			t.Fatalf("GET %s: every changed byte reached the client (%v)", zipPath, err)
		}

		// Gone from the store: a server error, not 404, on which the go
		// command would ask the next GOPROXY entry for a version this
		// index holds.
		os.Remove(stored)
		resp, body = g.do("GET", zipPath, nil, nil)
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "does not hold its zip") {
			t.Fatalf("GET %s of a zip gone from the store: %d %s, want 500 saying so", zipPath, resp.StatusCode, body)
		}
	})
}

// The server's policy beyond /go/: the blob of an artifact that only
// refused versions name is 403 with the same body, one an allowed
// version also names is served; the light package document keeps every
// version and lists the refusals; a record that answers the
// vulnerability (a new head) lifts the refusal; every refusal is counted.
func TestPolicyGateBlobsAndLight(t *testing.T) {
	g := newGoFixture(t, noHighVulns)
	g.publish("example.com/greet", "1.0.0", "hello")
	d2 := g.publish("example.com/greet", "1.1.0", "hello, vulnerable")
	vuln := g.vulnerable("example.com/greet", "1.1.0")
	// acme/x 1.0.0 and 1.1.0 hold the same bytes; 1.1.0 is refused.
	same := func(name, version string) *author.Published {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: "+name+"\nversion: "+version+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("the same bytes"), 0o644)
		p, err := author.Publish(g.ctx, g.repo, dir, g.alice)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	x1, x2 := same("acme/x", "1.0.0"), same("acme/x", "1.1.0")
	g.vulnerable("acme/x", "1.1.0")

	zip := d2.Artifacts[0].Ref.SHA256
	resp, body := g.do("GET", "/blobs/sha256/"+zip, nil, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "cairn: refused by policy policy.yaml") ||
		!strings.Contains(string(body), "example.com/greet@1.1.0") || !strings.Contains(string(body), vuln[:16]) {
		t.Errorf("GET the refused version's zip blob: %d %q, want 403 naming the version and the record", resp.StatusCode, body)
	}
	if x1.Descriptor.Artifacts[0].Ref != x2.Descriptor.Artifacts[0].Ref {
		t.Fatal("the two versions of acme/x do not share their artifact")
	}
	if resp, _ := g.do("GET", "/blobs/sha256/"+x1.Descriptor.Artifacts[0].SHA256, nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET an artifact an allowed version names too: %d, want 200", resp.StatusCode)
	}

	// In a batch, the refused artifact is missing, the other one sent.
	allowed := x1.Descriptor.Artifacts[0].Ref
	batch := fmt.Sprintf("sha256:%s %d\nsha256:%s %d\n", zip, d2.Artifacts[0].Size, allowed.SHA256, allowed.Size)
	resp, body = g.do("POST", "/blobs/batch", strings.NewReader(batch), nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "sha256:"+zip+" missing\nsha256:"+allowed.SHA256+" 14\nthe same bytes") {
		t.Errorf("batch of a refused and an allowed artifact: %d %q", resp.StatusCode, body)
	}

	resp, body = g.do("GET", "/api/v1/packages/example.com/greet", nil, nil)
	var doc PackageDoc
	if err := json.Unmarshal(body, &doc); resp.StatusCode != 200 || err != nil {
		t.Fatalf("light read: %d %v", resp.StatusCode, err)
	}
	if len(doc.Versions) != 2 || doc.Policy != "sha256:"+g.srv.opts.Policy.Ref.SHA256 ||
		len(doc.Refusals) != 1 || doc.Refusals[0].Version != "1.1.0" || doc.Refusals[0].Rule != "no-high-vulnerabilities" ||
		len(doc.Refusals[0].Records) != 1 || doc.Refusals[0].Records[0] != vuln {
		t.Errorf("light read: %d versions, policy %q, refusals %+v; want both versions and 1.1.0 refused by %s", len(doc.Versions), doc.Policy, doc.Refusals, vuln)
	}

	_, metrics := g.do("GET", "/metrics", nil, nil)
	for via, n := range map[string]string{"blob": "2", "light": "1"} {
		if !strings.Contains(string(metrics), `cairn_policy_refusals_total{rule="no-high-vulnerabilities",via="`+via+`"} `+n) {
			t.Errorf("/metrics: not %s refusals via %s:\n%s", n, via, grepLines(string(metrics), "cairn_policy"))
		}
	}

	// A module whose every version is refused: @latest is 403, not a 404
	// a GOPROXY list would go past.
	g.publish("example.com/bad", "1.0.0", "bad")
	g.vulnerable("example.com/bad", "1.0.0")
	if resp, body := g.do("GET", "/go/example.com/bad/@latest", nil, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "example.com/bad@v1.0.0") {
		t.Errorf("@latest of a module whose every version is refused: %d %q, want 403", resp.StatusCode, body)
	}
	if resp, body := g.do("GET", "/go/example.com/bad/@v/list", nil, nil); resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("list of a module whose every version is refused: %d %q, want empty", resp.StatusCode, body)
	}

	// The issuer answers the vulnerability: the next head allows 1.1.0.
	if _, err := author.Certify(g.ctx, g.repo, author.Certification{Name: "example.com/greet", Version: "1.1.0", Kind: record.Fixed, VulnID: "CVE-2026-1234"}, g.sec); err != nil {
		t.Fatal(err)
	}
	if resp, body := g.do("GET", "/go/example.com/greet/@v/v1.1.0.zip", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the zip of 1.1.0 once answered with fixed: %d %q", resp.StatusCode, body)
	}
	if resp, body := g.do("GET", "/go/example.com/greet/@v/list", nil, nil); string(body) != "v1.0.0\nv1.1.0\n" {
		t.Errorf("list once 1.1.0 is answered: %d %q", resp.StatusCode, body)
	}
}

// BenchmarkGate measures what the server's policy adds to a request
// (issue 16: at most 50 µs at the 95th percentile, which bench/run
// goproxy measures under load with wrk): the same requests, in process,
// to a server without a policy and to one with, after a warm-up (the
// judgments are kept per head). Compare the sub-benchmarks' ns/op.
func BenchmarkGate(b *testing.B) {
	serve := func(pol string) (http.Handler, string) {
		g := newGoFixture(b, pol)
		g.publish("example.com/greet", "1.0.0", "hello")
		g.publish("example.com/greet", "1.1.0", "hello, vulnerable")
		d := g.publish("example.com/greet", "1.2.0", "hello again")
		g.vulnerable("example.com/greet", "1.1.0")
		return g.srv.Handler(), d.Artifacts[0].SHA256
	}
	without, zip0 := serve("")
	with, zip1 := serve(noHighVulns)
	for _, req := range []struct{ name, path string }{
		{"info", "/go/example.com/greet/@v/v1.2.0.info"},
		{"list", "/go/example.com/greet/@v/list"},
		{"blob", "/blobs/sha256/ZIP"},
	} {
		for k, h := range []http.Handler{without, with} {
			p := strings.ReplaceAll(req.path, "ZIP", []string{zip0, zip1}[k])
			b.Run(req.name+[]string{"/plain", "/policy"}[k], func(b *testing.B) {
				for b.Loop() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
					if w.Code != http.StatusOK {
						b.Fatalf("GET %s: %d %s", p, w.Code, w.Body)
					}
				}
			})
		}
	}
}

// go get MODULE@v3.2.0 of a module with no /v3 asks for v3.2.0.info,
// which resolves to v3.2.0+incompatible, as proxy.golang.org answers;
// its .mod and .zip are asked for by the version .info gave.
func TestParseGoPathIncompatibleQuery(t *testing.T) {
	for _, tc := range []struct{ path, version, err string }{
		{"example.com/x/@v/v3.2.0.info", "v3.2.0+incompatible", ""},
		{"example.com/x/@v/v3.2.0+incompatible.info", "v3.2.0+incompatible", ""},
		{"example.com/x/@v/v3.2.0.zip", "", "should be v0 or v1, not v3"},
		{"example.com/x/v3/@v/v3.2.0.info", "v3.2.0", ""},
		{"example.com/x/v3/@v/v4.0.0.info", "", "should be v3, not v4"},
	} {
		req, err := parseGoPath(tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseGoPath(%q) = %+v, %v; want an error saying %q", tc.path, req, err, tc.err)
			}
			continue
		}
		if err != nil || req.version != tc.version {
			t.Errorf("parseGoPath(%q) = %+v, %v; want version %s", tc.path, req, err, tc.version)
		}
	}
}

// FuzzParseGoPath: whatever follows /go/, parseGoPath does not panic, and
// what it accepts is a valid module path (and a canonical version of it)
// that, escaped again, is the path it read.
func FuzzParseGoPath(f *testing.F) {
	for _, p := range []string{
		"example.com/greet/@v/list", "example.com/greet/@latest", "example.com/greet/@v/v1.0.0.info",
		"example.com/!upper/@v/v0.1.0.zip", "example.com/greet/v2/@v/v2.0.0.mod", "example.com/x/@v/v2.0.0+incompatible.mod",
		"example.com/x/@v/v1.0.0-!r!c.1.info", "example.com/x/@v/v1.0.info", "x/@v/list", "@v/list", "",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req, err := parseGoPath(p)
		if err != nil {
			return
		}
		if err := module.CheckPath(req.module); err != nil {
			if descriptor.CheckName(req.module) == nil {
				t.Fatalf("parseGoPath(%q) = %q, which CheckPath refuses (%v) and CheckName takes", p, req.module, err)
			}
			return // goGet answers 404
		}
		esc, _ := module.EscapePath(req.module)
		var again string
		switch req.file {
		case "list":
			again = esc + "/@v/list"
		case "latest":
			again = esc + "/@latest"
		default:
			if err := module.Check(req.module, req.version); err != nil {
				t.Fatalf("parseGoPath(%q): %s@%s: %v", p, req.module, req.version, err)
			}
			ev, _ := module.EscapeVersion(req.version)
			again = esc + "/@v/" + ev + "." + req.file
			if query, ok := strings.CutSuffix(ev, "+incompatible"); ok && req.file == "info" && p == esc+"/@v/"+query+".info" {
				again = p // .info of vN resolved to vN+incompatible
			}
		}
		if again != p {
			t.Fatalf("parseGoPath(%q) = %+v, which escapes back to %q", p, req, again)
		}
	})
}

// The go command checks public modules against a checksum database: it
// asks its proxy for the database first (/sumdb/NAME/supported), and
// cairn serve relays the ones it is told to (--go-sumdb), so a machine
// whose only way out is cairn still checks them. The go command
// verifies the database's answers itself: a relayed database whose
// go.sum line is not the module's makes it refuse the module.
func TestGoSumDBRelayed(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	lines := map[string]string{}
	var asked atomic.Int32
	// A real checksum database (x/mod's test server behind its HTTP
	// server), as sum.golang.org answers.
	real := sumdb.NewServer(sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		l, ok := lines[path+"@"+vers]
		if !ok {
			return nil, fmt.Errorf("%s@%s: not found", path, vers)
		}
		return []byte(l), nil
	}))
	db := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		real.ServeHTTP(w, r)
	}))
	defer db.Close()
	g := newGoFixture(t, "", func(o *Options) {
		o.GoSumDBs = []GoSumDB{{Name: "sum.example.com", URL: db.URL}, {Name: "leaky.example", URL: "http://user:s3cret@127.0.0.1:1/base"}}
	})
	const path = "example.com/greet"
	good := g.publishImported(path, "1.0.0", "hello")
	other := g.publishImported(path, "1.0.1", "hello again")
	mu.Lock()
	lines[path+"@v1.0.0"] = fmt.Sprintf("%s v1.0.0 %s\n%s v1.0.0/go.mod %s\n", path, good.Go.Sum, path, good.Go.ModSum)
	lines[path+"@v1.0.1"] = fmt.Sprintf("%s v1.0.1 %s\n%s v1.0.1/go.mod %s\n", path, good.Go.Sum, path, other.Go.ModSum) // not 1.0.1's zip
	mu.Unlock()

	goCmd := newGoCommand(t, g.url+"/go")
	goCmd.setenv("GOSUMDB", vkey) // sum.example.com, reachable only through cairn
	goCmd.setenv("GONOSUMDB", "")
	dir := t.TempDir()
	if out, err := goCmd.run(dir, "mod", "download", "-json", path+"@v1.0.0"); err != nil {
		t.Fatalf("go mod download checked against the relayed database: %v\n%s", err, out)
	}
	if asked.Load() == 0 {
		t.Fatal("the checksum database was never asked")
	}
	out, err := goCmd.run(dir, "mod", "download", "-json", path+"@v1.0.1")
	if err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("a module the relayed database does not vouch for: %v\n%s", err, out)
	}
	// Only the database's own paths are relayed; another database is not.
	// A mirror's password is the server's: not in a client's answer.
	if resp, body := g.do("GET", "/go/sumdb/leaky.example/latest", nil, nil); resp.StatusCode != http.StatusBadGateway || strings.Contains(string(body), "s3cret") {
		t.Errorf("a database not reached: %d %q, want 502 without the mirror's password", resp.StatusCode, body)
	}
	for _, p := range []string{"/go/sumdb/sum.example.com/../../etc/passwd", "/go/sumdb/sum.example.com/index.html", "/go/sumdb/sum.golang.org/supported",
		"/go/sumdb/sum.example.com/lookup/example.com/" + strings.Repeat("a", 700) + "@v1.0.0", "/go/sumdb/sum.example.com/lookup/example.com/a@v1.0.0-" + strings.Repeat("a", 200), "/go/sumdb/sum.example.com/lookup/example.com/a@v1@v2", "/go/sumdb/sum.example.com/tile/8/99/000", "/go/sumdb/sum.example.com/tile/8/0/" + strings.Repeat("x001/", 20) + "001"} {
		if resp, _ := g.do("GET", p, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// Attack (a leak): the go command, told nothing of an internal module
// (GONOSUMDB unset), asks the checksum database for it through cairn's
// relay, which forwarded the organisation's module path to the public
// database. Now the lookup of a module published here (or beneath one),
// in any case, is refused with 403 and the GONOSUMDB to set, and never
// reaches the database; an imported module's, or an unknown one's, is
// relayed.
func TestGoSumDBLookupOfOwnModuleNotRelayed(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	lines := map[string]string{}
	var lookups []string
	real := sumdb.NewServer(sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if l, ok := lines[path+"@"+vers]; ok {
			return []byte(l), nil
		}
		return nil, fmt.Errorf("%s@%s: not found", path, vers)
	}))
	db := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/lookup/") {
			mu.Lock()
			lookups = append(lookups, r.URL.Path)
			mu.Unlock()
		}
		real.ServeHTTP(w, r)
	}))
	defer db.Close()
	g := newGoFixture(t, "", func(o *Options) { o.GoSumDBs = []GoSumDB{{Name: "sum.example.com", URL: db.URL}} })
	const own, public = "example.com/greet", "example.com/public"
	g.publish(own, "1.0.0", "hello")
	pub := g.publishImported(public, "1.0.0", "hello world")
	mu.Lock()
	lines[public+"@v1.0.0"] = fmt.Sprintf("%s v1.0.0 %s\n%s v1.0.0/go.mod %s\n", public, pub.Go.Sum, public, pub.Go.ModSum)
	mu.Unlock()

	goCmd := newGoCommand(t, g.url+"/go")
	goCmd.setenv("GOSUMDB", vkey)
	goCmd.setenv("GONOSUMDB", "")
	dir := t.TempDir()
	out, err := goCmd.run(dir, "mod", "download", own+"@v1.0.0")
	if err == nil || !strings.Contains(out, "GONOSUMDB="+own) {
		t.Fatalf("go mod download of the organisation's own module with no GONOSUMDB: %v, want a failure naming GONOSUMDB=%s\n%s", err, own, out)
	}
	if out, err := goCmd.run(dir, "mod", "download", public+"@v1.0.0"); err != nil {
		t.Fatalf("an imported module, checked against the relayed database: %v\n%s", err, out)
	}
	goCmd.setenv("GONOSUMDB", own)
	if out, err := goCmd.run(dir, "mod", "download", own+"@v1.0.0"); err != nil {
		t.Fatalf("with GONOSUMDB=%s: %v\n%s", own, err, out)
	}

	for _, c := range []struct{ lookup, why string }{
		{"example.com/greet@v1.0.0", "example.com/greet is published here"},
		{"example.com/greet@v9.9.9", "example.com/greet is published here"}, // a version not (yet) published
		{"example.com/!greet@v1.0.0", "example.com/Greet differs only in case from example.com/greet"},
		{"example.com/greet/v2@v2.0.0", "example.com/greet/v2 lies beneath example.com/greet"},
	} {
		resp, body := g.do("GET", "/go/sumdb/sum.example.com/lookup/"+c.lookup, nil, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), c.why) || !strings.Contains(string(body), "GONOSUMDB=example.com/greet") {
			t.Errorf("lookup/%s: %d %q, want 403 saying %q and the GONOSUMDB to set", c.lookup, resp.StatusCode, body, c.why)
		}
	}
	// Neither an imported module nor one unknown here is the
	// organisation's: relayed, the database answers.
	if resp, body := g.do("GET", "/go/sumdb/sum.example.com/lookup/"+public+"@v1.0.0", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("lookup/%s@v1.0.0: %d %q, want the database's 200", public, resp.StatusCode, body)
	}
	if resp, body := g.do("GET", "/go/sumdb/sum.example.com/lookup/example.com/unknown@v1.0.0", nil, nil); resp.StatusCode == http.StatusForbidden {
		t.Errorf("lookup of a module unknown here: %d %q, want the database's answer", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lookups {
		if strings.Contains(strings.ToLower(l), "/greet") {
			t.Errorf("the database was asked %s: the organisation's module name left", l)
		}
	}
	if !slices.Contains(lookups, "/lookup/example.com/unknown@v1.0.0") {
		t.Errorf("the database's lookups %q: the unknown module's was not relayed", lookups)
	}
}
