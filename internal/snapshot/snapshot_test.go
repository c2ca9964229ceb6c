package snapshot

import (
	"bytes"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
)

func sample() *Snapshot {
	d := blob.Ref{SHA256: strings.Repeat("a", 64), Size: 10}
	return &Snapshot{Schema: Schema, Name: "lts-1.0", Toolchain: &Toolchain{Name: "go", Version: "1.26.8"},
		Packages: []Entry{{Name: "acme/b", Version: "1.0.0", Descriptor: d}, {Name: "acme/a", Version: "2.0.0", Descriptor: d, Flags: map[string]string{"cgo": "0"}}}}
}

func TestCanonical(t *testing.T) {
	s := sample()
	if _, err := s.Marshal(); err == nil {
		t.Fatal("unsorted entries accepted")
	}
	s.Sort()
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := got.Entry("acme/a"); !ok || e.Version != "2.0.0" || e.Flags["cgo"] != "0" {
		t.Fatalf("entry = %+v, %v", e, ok)
	}
	if _, err := Parse(bytes.Replace(data, []byte("  "), []byte(" "), 1)); err == nil {
		t.Fatal("a non-canonical encoding of the same set parsed: one set would have two digests")
	}
	s.Packages = append(s.Packages, s.Packages[1])
	if _, err := s.Marshal(); err == nil {
		t.Fatal("a package listed twice accepted")
	}
}

// A flag's name is at most 64 bytes.
func TestFlagNameLength(t *testing.T) {
	for n, ok := range map[int]bool{64: true, 65: false} {
		s := sample()
		s.Sort()
		s.Packages[0].Flags = map[string]string{strings.Repeat("f", n): "1"}
		if err := s.Check(); (err == nil) != ok {
			t.Errorf("a flag name of %d bytes: %v", n, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	s := sample()
	s.Sort()
	data, _ := s.Marshal()
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		again, err := s.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatal("a snapshot that parses does not round-trip")
		}
	})
}
