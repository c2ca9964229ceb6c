package descriptor

import (
	"errors"
	"strings"
	"testing"
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
