package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("one"), Options{Perm: 0o600}); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("content %q, want two", b)
	}
	if err := Write(p, []byte("three"), Options{Exclusive: true}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("exclusive write over a file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("an exclusive write replaced the file: %q", b)
	}
	q := filepath.Join(dir, "g")
	if err := Write(q, []byte("x"), Options{Perm: 0o600, Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(q); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestWriteParts(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteParts(p, [][]byte{[]byte("one"), nil, []byte("\n"), []byte("two")}, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one\ntwo" {
		t.Fatalf("content %q, want the parts joined", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestPending(t *testing.T) {
	dir := t.TempDir()
	a, err := Create(filepath.Join(dir, "a"), []byte("alpha"), 0o444)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(filepath.Join(dir, "b"), []byte("beta"), 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Create(filepath.Join(dir, "c"), []byte("gamma"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a pending file is in place before Install: %v", err)
	}
	if err := SyncAll(a, b); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pending{a, b} {
		if err := p.Install(); err != nil {
			t.Fatal(err)
		}
	}
	c.Discard()
	if err := c.Install(); err == nil {
		t.Fatal("a discarded file was installed")
	}
	a.Discard() // after Install: a no-op
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "alpha" {
		t.Fatalf("a holds %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "a")); fi.Mode().Perm() != 0o444 {
		t.Fatalf("a has mode %v, want 0444", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "b")); fi.Mode().Perm() != 0o644 {
		t.Fatalf("b has mode %v, want the default 0644", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("want a and b alone, found %v (a temporary file left behind, or c installed)", entries)
	}
}
