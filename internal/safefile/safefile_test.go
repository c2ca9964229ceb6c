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
