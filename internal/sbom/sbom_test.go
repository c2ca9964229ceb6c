package sbom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/plan"
)

// schema compiles the official CycloneDX 1.6 JSON schema from the
// cyclonedx-go module's directory (with the SPDX and JSF schemas it
// references, from the same directory), formats asserted.
func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-json", "github.com/CycloneDX/cyclonedx-go").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/CycloneDX/cyclonedx-go: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go list -m -json gave no module directory (%v): %s", err, out)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for url, file := range map[string]string{
		"http://cyclonedx.org/schema/bom-1.6.schema.json":  "bom-1.6.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schemax.json",
	} {
		f, err := os.Open(filepath.Join(mod.Dir, "schema", file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile("http://cyclonedx.org/schema/bom-1.6.schema.json")
	if err != nil {
		t.Fatalf("compiling the CycloneDX 1.6 schema: %v", err)
	}
	return s
}

func validate(s *jsonschema.Schema, doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// world is an index on disk and a lock of it for three platforms:
// acme/app depends on acme/log; acme/log has a binary for linux-amd64
// only, so its source serves the two others.
type world struct {
	*indextest.World
	lock *plan.Lock
	srcs plan.Sources
}

func newWorld(t *testing.T) *world {
	w := &world{World: indextest.New(t)}
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	w.Publish(indextest.Package{Name: "acme/app", Version: "2.0.0-rc.1", Deps: map[string]string{"acme/log": "^1.0"},
		Platforms: []string{"linux-amd64", "darwin-arm64", "windows-amd64"}})
	dir := t.TempDir()
	yaml := fmt.Sprintf("repositories:\n  - name: acme\n    path: %s\n    introduction: %s\npackages:\n  acme/app: ^2.0.0-rc\nplatforms: [linux-amd64, darwin-arm64, windows-amd64]\n", w.Dir, w.Intro)
	if err := os.WriteFile(filepath.Join(dir, plan.ProjectFile), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := plan.ReadProject(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.srcs, err = plan.Open(w.Ctx, p, plan.Options{Cache: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.srcs.Close)
	if w.lock, err = plan.Resolve(w.Ctx, p, w.srcs); err != nil {
		t.Fatal(err)
	}
	if _, err := w.lock.Marshal(); err != nil { // its digest
		t.Fatal(err)
	}
	return w
}

// open reads a locked blob from its repository's stores, as cairn sbom
// does through the blob cache.
func (w *world) open(ctx context.Context, pkg *plan.Locked, ref blob.Ref) (io.ReadCloser, error) {
	c := &blob.Chain{Local: must(blob.NewFS(w.T.TempDir())), Mirrors: w.srcs.Get(pkg.Repository).Blobs}
	return c.Open(ctx, ref)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func (w *world) bytesOf(ref blob.Ref) []byte {
	w.T.Helper()
	data, err := blob.ReadAll(w.Ctx, w.srcs.Get("acme").Blobs[0], ref)
	if err != nil {
		w.T.Fatal(err)
	}
	return data
}

// The parts of a document the tests read.
type bomDoc struct {
	BOMFormat    string `json:"bomFormat"`
	SpecVersion  string `json:"specVersion"`
	SerialNumber string `json:"serialNumber"`
	Metadata     struct {
		Timestamp string    `json:"timestamp"`
		Component component `json:"component"`
		Tools     struct {
			Components []component `json:"components"`
		} `json:"tools"`
	} `json:"metadata"`
	Components   []component `json:"components"`
	Dependencies []struct {
		Ref       string   `json:"ref"`
		DependsOn []string `json:"dependsOn"`
	} `json:"dependencies"`
}

type component struct {
	BOMRef    string `json:"bom-ref"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	PURL      string `json:"purl"`
	Publisher string `json:"publisher"`
	Supplier  struct {
		Name string   `json:"name"`
		URL  []string `json:"url"`
	} `json:"supplier"`
	Licenses []struct {
		Expression string `json:"expression"`
	} `json:"licenses"`
	Hashes []struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	} `json:"hashes"`
	Properties []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"properties"`
	Components []component `json:"components"`
}

func (c component) props(name string) []string {
	var out []string
	for _, p := range c.Properties {
		if p.Name == name {
			out = append(out, p.Value)
		}
	}
	return out
}

func (c component) hash(alg string) string {
	for _, h := range c.Hashes {
		if h.Alg == alg {
			return h.Content
		}
	}
	return ""
}

// A lock's SBOM is valid CycloneDX 1.6 and says what the lock pins: each
// package with its purl, publisher and descriptor; each artifact once
// with the SHA-256 and SHA-512 of its bytes and the platforms it serves;
// the dependency graph as the lock resolved it.
func TestMake(t *testing.T) {
	w := newWorld(t)
	doc, err := Make(w.Ctx, w.lock, w.srcs, Options{Open: w.open, Tool: "cairn v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(schema(t), doc.JSON); err != nil {
		t.Fatalf("the document does not validate against the CycloneDX 1.6 schema: %v\n%s", err, doc.JSON)
	}
	var got bomDoc
	if err := json.Unmarshal(doc.JSON, &got); err != nil {
		t.Fatal(err)
	}
	if got.BOMFormat != "CycloneDX" || got.SpecVersion != "1.6" {
		t.Errorf("bomFormat %q specVersion %q, want CycloneDX 1.6", got.BOMFormat, got.SpecVersion)
	}
	if got.SerialNumber != doc.Serial || !strings.HasPrefix(doc.Serial, "urn:uuid:") {
		t.Errorf("serialNumber %q, Document.Serial %q", got.SerialNumber, doc.Serial)
	}
	if got.Metadata.Timestamp != "" {
		t.Errorf("timestamp %q with no time given", got.Metadata.Timestamp)
	}
	if m := got.Metadata.Component; m.BOMRef != LockRef || !slices.Equal(m.props("cairn:lock"), []string{w.lock.Digest}) || !slices.Equal(m.props("cairn:project"), []string{w.lock.Project}) {
		t.Errorf("metadata.component %+v: want the lock %s", m, w.lock.Digest)
	}
	if tools := got.Metadata.Tools.Components; len(tools) != 1 || tools[0].Name != "cairn" || tools[0].Version != "v1.2.3" {
		t.Errorf("metadata.tools %+v, want cairn v1.2.3", tools)
	}
	if doc.Packages != 2 || len(got.Components) != 2 {
		t.Fatalf("%d packages (%d components), want 2", doc.Packages, len(got.Components))
	}
	files := 0
	for i, c := range got.Components {
		pkg := &w.lock.Packages[i]
		ns, name, _ := strings.Cut(pkg.Name, "/")
		if c.BOMRef != pkg.ID() || c.Type != "library" || c.Name != pkg.Name || c.Version != pkg.Version ||
			c.PURL != "pkg:generic/"+ns+"/"+name+"@"+pkg.Version || c.Publisher != "alice" || c.Supplier.Name != "acme" || len(c.Supplier.URL) != 0 {
			t.Errorf("component %d: %+v, want %s published by alice from acme (on disk: no URL)", i, c, pkg.ID())
		}
		if len(c.Licenses) != 1 || c.Licenses[0].Expression != "MIT" {
			t.Errorf("%s: licenses %+v, want MIT", pkg.ID(), c.Licenses)
		}
		if !slices.Equal(c.props("cairn:descriptor"), []string{pkg.Descriptor.SHA256}) || !slices.Equal(c.props("cairn:repository"), []string{"acme"}) {
			t.Errorf("%s: properties %+v", pkg.ID(), c.Properties)
		}
		// Each distinct artifact once, with every platform it serves.
		want := map[string][]string{}
		for _, a := range pkg.Artifacts {
			want[a.SHA256] = append(want[a.SHA256], a.Platform)
		}
		if len(c.Components) != len(want) {
			t.Errorf("%s: %d file components, want %d", pkg.ID(), len(c.Components), len(want))
		}
		for _, f := range c.Components {
			files++
			s256 := f.hash("SHA-256")
			i := slices.IndexFunc(pkg.Artifacts, func(a plan.LockedArtifact) bool { return a.SHA256 == s256 })
			if i < 0 {
				t.Fatalf("%s: file %s: SHA-256 %q is of no locked artifact", pkg.ID(), f.Name, s256)
			}
			a := pkg.Artifacts[i]
			data := w.bytesOf(a.Ref)
			if f.Name != a.File || f.BOMRef != pkg.ID()+"#sha256:"+a.SHA256 || !slices.Equal(f.props("cairn:kind"), []string{a.Kind}) || !slices.Equal(f.props("cairn:size"), []string{fmt.Sprint(a.Size)}) {
				t.Errorf("%s: file %+v, want %s", pkg.ID(), f, a.File)
			}
			sum256, sum512 := sha256.Sum256(data), sha512.Sum512(data)
			if f.Type != "file" || s256 != hex.EncodeToString(sum256[:]) || f.hash("SHA-512") != hex.EncodeToString(sum512[:]) {
				t.Errorf("%s: file %s: hashes %+v, want the sha256 and sha512 of its bytes", pkg.ID(), f.Name, f.Hashes)
			}
			if !slices.Equal(f.props("cairn:platform"), want[s256]) {
				t.Errorf("%s: file %s serves %q, want %q", pkg.ID(), f.Name, f.props("cairn:platform"), want[s256])
			}
		}
	}
	if doc.Artifacts != files || files != 5 { // app: three binaries; log: its binary, and its source for two platforms
		t.Errorf("%d artifacts (%d file components), want 5", doc.Artifacts, files)
	}
	if log := got.Components[1]; len(log.Components) != 2 || !slices.Equal(log.Components[1].props("cairn:platform"), []string{"darwin-arm64", "windows-amd64"}) {
		t.Errorf("acme/log's source serves %q, want darwin-arm64 and windows-amd64", log.Components)
	}
	deps := map[string][]string{}
	for _, d := range got.Dependencies {
		deps[d.Ref] = d.DependsOn
	}
	wantDeps := map[string][]string{LockRef: {"acme/app@2.0.0-rc.1"}, "acme/app@2.0.0-rc.1": {"acme/log@1.1.0"}, "acme/log@1.1.0": nil}
	if fmt.Sprint(deps) != fmt.Sprint(wantDeps) || len(got.Dependencies) != 3 {
		t.Errorf("dependencies %v, want %v", got.Dependencies, wantDeps)
	}

	// The same lock and bytes: the same document.
	again, err := Make(w.Ctx, w.lock, w.srcs, Options{Open: w.open, Tool: "cairn v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.JSON, doc.JSON) {
		t.Errorf("two documents of one lock differ:\n%s\n%s", doc.JSON, again.JSON)
	}
	// Another lock: another serial number.
	other := *w.lock
	other.Platforms = other.Platforms[:1]
	if _, err := other.Marshal(); err != nil {
		t.Fatal(err)
	}
	od, err := Make(w.Ctx, &other, w.srcs, Options{Open: w.open})
	if err != nil {
		t.Fatal(err)
	}
	if od.Serial == doc.Serial {
		t.Errorf("locks %s and %s have one serial number %s", w.lock.Digest, other.Digest, doc.Serial)
	}
}

// The schema is a real check: a document that breaks it is refused.
func TestSchemaRefuses(t *testing.T) {
	w := newWorld(t)
	doc, err := Make(w.Ctx, w.lock, w.srcs, Options{Open: w.open, Time: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	s := schema(t)
	if err := validate(s, doc.JSON); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc.JSON, []byte(`"timestamp": "2026-11-30T10:00:00Z"`)) {
		t.Errorf("no timestamp for the time given:\n%s", doc.JSON)
	}
	for _, c := range []struct{ what, old, new string }{
		{"an unknown hash algorithm", `"alg": "SHA-512"`, `"alg": "SHA-1024"`},
		{"a hash that is not hex", `"content": "`, `"content": "zz`},
		{"a component of no type", `"type": "file"`, `"type": "folder"`},
		{"a timestamp that is no date", `"timestamp": "2026-11-30T10:00:00Z"`, `"timestamp": "yesterday"`},
	} {
		bad := bytes.Replace(doc.JSON, []byte(c.old), []byte(c.new), 1)
		if bytes.Equal(bad, doc.JSON) {
			t.Fatalf("%s: %s is not in the document", c.what, c.old)
		}
		if err := validate(s, bad); err == nil {
			t.Errorf("%s validates", c.what)
		}
	}
}

// A document derived again where the artifacts are not at hand states
// the claimed SHA-512s (Claims) without reading them, and is the same
// document; an artifact Open cannot read is an error that says which.
func TestClaims(t *testing.T) {
	w := newWorld(t)
	doc, err := Make(w.Ctx, w.lock, w.srcs, Options{Open: w.open})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := Claims(doc.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != doc.Artifacts {
		t.Fatalf("%d claims of %d artifacts", len(claims), doc.Artifacts)
	}
	again, err := Make(w.Ctx, w.lock, w.srcs, Options{SHA512: claims})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.JSON, doc.JSON) {
		t.Errorf("derived again from the claims, the document differs")
	}
	gone := func(ctx context.Context, pkg *plan.Locked, ref blob.Ref) (io.ReadCloser, error) {
		return nil, fmt.Errorf("blob %s: %w", ref.SHA256, fs.ErrNotExist)
	}
	_, err = Make(w.Ctx, w.lock, w.srcs, Options{Open: gone})
	if !errors.Is(err, ErrUnread) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "acme/app@2.0.0-rc.1's artifact") {
		t.Errorf("artifacts unread: %v", err)
	}
	if _, err := Claims([]byte(`{"bomFormat": 7}`)); err == nil {
		t.Error("Claims read a document that is not CycloneDX")
	}
}

// A lock that names another descriptor than its repository holds is no
// plan to describe.
func TestOtherDescriptor(t *testing.T) {
	w := newWorld(t)
	l := *w.lock
	l.Packages = slices.Clone(l.Packages)
	l.Packages[1].Descriptor = l.Packages[0].Descriptor
	_, err := Make(w.Ctx, &l, w.srcs, Options{Open: w.open})
	if err == nil || !strings.Contains(err.Error(), "package acme/log@1.1.0: repository acme holds descriptor sha256:") {
		t.Errorf("a lock naming acme/app's descriptor for acme/log: %v", err)
	}
}

func TestPURL(t *testing.T) {
	for _, c := range []struct{ name, version, loc, want string }{
		{"acme/log", "1.1.0", "path:/srv/index", "pkg:generic/acme/log@1.1.0"},
		{"acme/log", "2.0.0-rc.1", "https://cairn.acme.example", "pkg:generic/acme/log@2.0.0-rc.1?repository_url=https://cairn.acme.example"},
		{"acme/log", "1.0.0", "http://127.0.0.1:8080/upstreams/public", "pkg:generic/acme/log@1.0.0?repository_url=http://127.0.0.1:8080/upstreams/public"},
		{"acme/log", "1.0.0", "https://h.example/a b?x=1&y", "pkg:generic/acme/log@1.0.0?repository_url=https://h.example/a%20b%3Fx%3D1%26y"},
	} {
		if got := PURL(c.name, c.version, c.loc); got != c.want {
			t.Errorf("PURL(%q, %q, %q) = %q, want %q", c.name, c.version, c.loc, got, c.want)
		}
	}
}

// Make encodes its document with Encode, which writes the BOM as it is,
// not EncodeVersion, which copies it to convert it to a version first:
// for a BOM of SpecVersion the conversion changes nothing, so the bytes
// are those EncodeVersion writes.
func TestEncodeIsEncodeVersion(t *testing.T) {
	w := newWorld(t)
	doc, err := Make(w.Ctx, w.lock, w.srcs, Options{Open: w.open, Time: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), Tool: "cairn v0.0.0-test"})
	if err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(doc.JSON), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := cdx.NewBOMEncoder(&again, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false).EncodeVersion(&bom, SpecVersion); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), doc.JSON) {
		got, want := doc.JSON, again.Bytes()
		t.Fatalf("Make wrote\n%s\nEncodeVersion writes\n%s", got, want)
	}
}

// Indented says whether a document is the one whose compact encoding
// it is given, byte for byte: Make's document is its compact encoding
// indented, and no byte of it can change, go or come without Indented
// saying no.
func TestIndented(t *testing.T) {
	w := newWorld(t)
	o := Options{Open: w.open, Tool: "cairn v1.2.3"}
	doc, err := Make(w.Ctx, w.lock, w.srcs, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Compact = true
	compact, err := Make(w.Ctx, w.lock, w.srcs, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(compact.JSON) >= len(doc.JSON) || !json.Valid(compact.JSON) || compact.Serial != doc.Serial {
		t.Fatalf("the compact document: %d bytes (the document %d)", len(compact.JSON), len(doc.JSON))
	}
	if !Indented(doc.JSON, compact.JSON) {
		t.Fatal("Make's document is not its compact encoding indented")
	}
	for i := range doc.JSON {
		changed := bytes.Clone(doc.JSON)
		changed[i] ^= 0x20
		if Indented(changed, compact.JSON) {
			t.Fatalf("byte %d changed (%q): still the document", i, doc.JSON[i])
		}
		if Indented(append(bytes.Clone(doc.JSON[:i]), doc.JSON[i+1:]...), compact.JSON) {
			t.Fatalf("byte %d dropped (%q): still the document", i, doc.JSON[i])
		}
		if Indented(slices.Insert(bytes.Clone(doc.JSON), i, ' '), compact.JSON) {
			t.Fatalf("a space before byte %d: still the document", i)
		}
	}
	if Indented(append(bytes.Clone(doc.JSON), '\n'), compact.JSON) || Indented(doc.JSON[:len(doc.JSON)-1], compact.JSON) {
		t.Fatal("a newline more or less at the end: still the document")
	}
}

// Indented agrees with encoding/json's Indent (which the encoder's
// pretty output is) on any JSON, whatever one byte of it is changed to.
func FuzzIndented(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"x\"y\\"},[],{}],"c":"é\u00e9"}`), uint16(3), byte('x'))
	f.Add([]byte(`"s"`), uint16(0), byte(' '))
	f.Add([]byte(`[[[]],[{}]]`), uint16(7), byte('\n'))
	f.Fuzz(func(t *testing.T, data []byte, at uint16, b byte) {
		if !json.Valid(data) {
			return
		}
		var c bytes.Buffer
		if err := json.Compact(&c, data); err != nil {
			t.Fatal(err)
		}
		c.WriteByte('\n')
		compact := c.Bytes()
		var want bytes.Buffer
		if err := json.Indent(&want, compact, "", "  "); err != nil {
			t.Fatal(err)
		}
		if !Indented(want.Bytes(), compact) {
			t.Fatalf("%q indented is not %q", compact, want.Bytes())
		}
		changed := bytes.Clone(want.Bytes())
		changed[int(at)%len(changed)] = b
		if got := Indented(changed, compact); got != bytes.Equal(changed, want.Bytes()) {
			t.Fatalf("%q with byte %d %q: Indented says %v", want.Bytes(), int(at)%len(changed), b, got)
		}
		if Indented(want.Bytes()[:int(at)%len(changed)], compact) {
			t.Fatalf("%q cut at %d: still indented", want.Bytes(), int(at)%len(changed))
		}
	})
}
