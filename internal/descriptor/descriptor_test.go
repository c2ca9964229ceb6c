package descriptor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
)

func sample() *Descriptor {
	return &Descriptor{
		Schema: Schema, Name: "acme/fastjson", Version: "1.2.3", UUID: "6f1c2a3e-8d1b-4c8e-9a51-0d7c1e2f3a4b",
		Dependencies: []Dependency{{Name: "acme/base", Version: ">=1.0.0 <2.0.0"}},
		Artifacts: []Artifact{
			{Kind: "source", File: "fastjson-1.2.3.tar.gz"},
			{Kind: "binary", Platform: "linux-amd64", File: "fastjson-linux-amd64.tar.gz"},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	d := sample()
	for i := range d.Artifacts {
		d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
	}
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := d2.Marshal()
	if string(b) != string(b2) {
		t.Fatal("marshal is not deterministic")
	}
	if a, ok := d2.Artifact("linux-amd64"); !ok || a.File != "fastjson-linux-amd64.tar.gz" {
		t.Fatalf("Artifact(linux-amd64) = %v, %v", a, ok)
	}
	// Same content, other spacing: not canonical, so refused.
	if _, err := Parse([]byte(strings.ReplaceAll(string(b), "  ", " "))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("non-canonical descriptor accepted: %v", err)
	}
}

func TestCheckRejects(t *testing.T) {
	cases := map[string]func(d *Descriptor){
		"no namespace":     func(d *Descriptor) { d.Name = "fastjson" },
		"uppercase":        func(d *Descriptor) { d.Name = "Acme/x" },
		"bad version":      func(d *Descriptor) { d.Version = "v1.2" },
		"bad uuid":         func(d *Descriptor) { d.UUID = "x" },
		"bad range":        func(d *Descriptor) { d.Dependencies[0].Version = ">>1" },
		"no artifacts":     func(d *Descriptor) { d.Artifacts = nil },
		"binary no plat":   func(d *Descriptor) { d.Artifacts[1].Platform = "" },
		"path in file":     func(d *Descriptor) { d.Artifacts[0].File = "../x" },
		"duplicate source": func(d *Descriptor) { d.Artifacts[1] = d.Artifacts[0] },
		"bad digest":       func(d *Descriptor) { d.Artifacts[0].SHA256 = "zz" },
		"file of 201":      func(d *Descriptor) { d.Artifacts[0].File = strings.Repeat("f", 201) },
		"platform of 65":   func(d *Descriptor) { d.Artifacts[1].Platform = strings.Repeat("p", 65) },
	}
	for name, mut := range cases {
		d := sample()
		for i := range d.Artifacts {
			d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
		}
		mut(d)
		if err := d.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Check = %v, want ErrInvalid", name, err)
		}
	}
}

// The longest names allowed pass.
func TestCheckLongest(t *testing.T) {
	d := sample()
	for i := range d.Artifacts {
		d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
	}
	d.Artifacts[0].File, d.Artifacts[1].Platform = strings.Repeat("f", 200), strings.Repeat("p", 64)
	if err := d.Check(); err != nil {
		t.Fatalf("a file name of 200 and a platform of 64: %v", err)
	}
}

func TestManifestStrict(t *testing.T) {
	if _, err := ParseManifest([]byte("name: acme/x\nversoin: 1.0.0\n")); err == nil || !strings.Contains(err.Error(), "versoin") {
		t.Fatalf("unknown field not reported: %v", err)
	}
	if _, err := ParseManifest(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty manifest: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	d := sample()
	for i := range d.Artifacts {
		d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
	}
	b, _ := d.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		if err := d.Check(); err != nil {
			t.Fatalf("Parse accepted what Check refuses: %v", err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("name: acme/x\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: x.tar.gz\n"))
	f.Add([]byte("[: {"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseManifest(data); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error outside ErrInvalid: %v", err)
		}
	})
}

func TestOversized(t *testing.T) {
	big := []byte("name: acme/x\nsummary: " + strings.Repeat("x", MaxSize) + "\n")
	if _, err := ParseManifest(big); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("oversized manifest: %v", err)
	}
	if _, err := Parse(big); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("oversized descriptor: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	good := []string{
		"acme/fastjson", "acme/x_y", "example.com/greet", "golang.org/x/mod",
		"github.com/BurntSushi/toml/v2", "example.com/greet/v2", "gopkg.in/yaml.v3",
		"example.com/" + strings.Repeat("a", 243), // 255 bytes
	}
	for _, n := range good {
		if err := CheckName(n); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{
		"", "fastjson", "example.com", "a/../b", "example.com/../b", "example.com/./b",
		"Example.com/x", "Acme/x", "acme/X", "example.com//x", "example.com/x/",
		"/example.com/x", "-x.com/y", "example.com/a b", "example.com/x@v1",
		"example.com/" + strings.Repeat("a", 244), // 256 bytes
		"example.com/greet/1.0.0", "example.com/greet/v2/2.0.0+incompatible",
		"example.com/x/v1", // x/mod refuses /v1
	}
	for _, n := range bad {
		if err := CheckName(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalid", n, err)
		}
	}
}

func TestFoldName(t *testing.T) {
	if FoldName("Corp.example/Greet") != FoldName("corp.example/greet") {
		t.Fatal("names differing only in case fold apart")
	}
	if FoldName("corp.example/greet") == FoldName("corp.example/greet2") {
		t.Fatal("different names fold together")
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"1.0.0", "0.0.0-20261109003541-7506e5f91cd6", "2.0.0+incompatible", "3.1.0-rc.1+incompatible", "1.2.3-rc.1"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("CheckVersion(%q) = %v, want nil", v, err)
		}
	}
	for _, v := range []string{"v1.0.0", "1.0", "1.0.0+build", "1.0.0+build.1", "2.0.0+incompatible+incompatible", "1.0.0+incompatible", "0.1.0+incompatible", "01.0.0", "", "+incompatible"} {
		if err := CheckVersion(v); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckVersion(%q) = %v, want ErrInvalid", v, err)
		}
	}
}

const (
	h1a = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	h1b = "h1:PGYUMFcLq6kKcSbamTGZZhgBhCVxOb6sctjx8idDzjg="
)

func goSample() *Descriptor {
	return &Descriptor{
		Schema: Schema, Name: "example.com/greet/v2", Version: "2.1.0", UUID: "6f1c2a3e-8d1b-4c8e-9a51-0d7c1e2f3a4b",
		Artifacts: []Artifact{
			{Kind: KindSource, File: "v2.1.0.zip", Ref: blob.Ref{SHA256: strings.Repeat("a", 64), Size: 10}},
			{Kind: KindGoMod, File: "v2.1.0.mod", Ref: blob.Ref{SHA256: strings.Repeat("b", 64), Size: 20}},
		},
		Go: &GoModule{Module: "example.com/greet/v2", Version: "v2.1.0", Sum: h1a, ModSum: h1b},
	}
}

func TestGoDescriptor(t *testing.T) {
	d := goSample()
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if *d2.Go != *d.Go {
		t.Fatalf("round trip: %+v, want %+v", d2.Go, d.Go)
	}
	if a, ok := d2.Artifact("go.mod"); !ok || a.File != "v2.1.0.mod" {
		t.Fatalf("Artifact(go.mod) = %v, %v", a, ok)
	}
	if !strings.Contains(string(b), `"mod_sum": "`+h1b+`"`) {
		t.Fatalf("descriptor lacks mod_sum:\n%s", b)
	}

	inc := goSample()
	inc.Name, inc.Version, inc.Go.Module, inc.Go.Version = "example.com/old", "2.0.0+incompatible", "example.com/old", "v2.0.0+incompatible"
	inc.Artifacts[0].File, inc.Artifacts[1].File = "v2.0.0+incompatible.zip", "v2.0.0+incompatible.mod"
	if err := inc.Check(); err != nil {
		t.Fatalf("+incompatible module: %v", err)
	}

	cases := map[string]func(d *Descriptor){
		"third artifact": func(d *Descriptor) {
			d.Artifacts = append(d.Artifacts, Artifact{Kind: KindBinary, Platform: "linux-amd64", File: "x", Ref: d.Artifacts[0].Ref})
		},
		"module != name":       func(d *Descriptor) { d.Go.Module = "example.com/other/v2" },
		"version != v+version": func(d *Descriptor) { d.Go.Version = "v2.1.1" },
		"major mismatch": func(d *Descriptor) {
			d.Version, d.Go.Version = "1.0.0", "v1.0.0"
			d.Artifacts[0].File, d.Artifacts[1].File = "v1.0.0.zip", "v1.0.0.mod"
		},
		"bad h1 prefix":    func(d *Descriptor) { d.Go.Sum = strings.Replace(h1a, "h1:", "h2:", 1) },
		"bad h1 length":    func(d *Descriptor) { d.Go.ModSum = "h1:AAAA" },
		"bad h1 base64":    func(d *Descriptor) { d.Go.Sum = "h1:" + strings.Repeat("!", 44) },
		"url base64":       func(d *Descriptor) { d.Go.Sum = strings.ReplaceAll(strings.ReplaceAll(h1a, "+", "-"), "/", "_") },
		"dependencies":     func(d *Descriptor) { d.Dependencies = []Dependency{{Name: "acme/base", Version: ">=1.0.0"}} },
		"zip named wrong":  func(d *Descriptor) { d.Artifacts[0].File = "greet.zip" },
		"mod named wrong":  func(d *Descriptor) { d.Artifacts[1].File = "go.mod" },
		"swapped order":    func(d *Descriptor) { d.Artifacts[0], d.Artifacts[1] = d.Artifacts[1], d.Artifacts[0] },
		"no go.mod":        func(d *Descriptor) { d.Artifacts = d.Artifacts[:1] },
		"go-mod platform":  func(d *Descriptor) { d.Artifacts[1].Platform = "linux-amd64" },
		"cairn name":       func(d *Descriptor) { d.Name, d.Go.Module = "acme/greet", "acme/greet" },
		"build metadata":   func(d *Descriptor) { d.Version, d.Go.Version = "2.1.0+build", "v2.1.0+build" },
		"no go, go-mod":    func(d *Descriptor) { d.Go = nil },
		"go-mod elsewhere": func(d *Descriptor) { *d = *sample(); d.Artifacts[1] = Artifact{Kind: KindGoMod, File: "go.mod"} },
	}
	for name, mut := range cases {
		d := goSample()
		mut(d)
		for i := range d.Artifacts {
			if d.Artifacts[i].SHA256 == "" {
				d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("c", 64), 10
			}
		}
		if err := d.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Check = %v, want ErrInvalid", name, err)
		}
	}
}

// A descriptor without Go marshals exactly as before the member existed,
// so that no existing version's digest changes.
func TestNoGoUnchanged(t *testing.T) {
	d := sample()
	for i := range d.Artifacts {
		d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
	}
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The digest this descriptor had before GoModule was added.
	const want = "a706761bc73116f159a8d20003edaab316e923a51ff7a207e6947269e32cc92c"
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("descriptor digest %s, want %s (unchanged):\n%s", got, want, b)
	}
}
