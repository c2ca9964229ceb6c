package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A first-day surprise: 'cairn key new keys/x.key' with no keys/ directory
// must name the missing directory and say how to make it, not report a
// temporary file that was never meant to be seen. Like ssh-keygen, cairn
// does not make the directory itself.
func TestKeyNewMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"key", "new", filepath.Join(keysDir, "x.key")}, &out, &errb)
	stderr := errb.String()
	if code != exitNotFound {
		t.Errorf("exit %d, want %d (not found); stderr %q", code, exitNotFound, stderr)
	}
	if !strings.HasPrefix(stderr, "cairn: error: ") || !strings.Contains(stderr, "directory "+keysDir+" does not exist") {
		t.Errorf("stderr %q: want an error naming the missing directory %s", stderr, keysDir)
	}
	if strings.Contains(stderr, ".tmp-") {
		t.Errorf("stderr %q names a temporary file", stderr)
	}
	if !strings.Contains(stderr, "cairn: hint: ") || !strings.Contains(stderr, "mkdir -p "+keysDir) {
		t.Errorf("stderr %q: want a hint with mkdir -p %s", stderr, keysDir)
	}
	if _, err := os.Stat(keysDir); !os.IsNotExist(err) {
		t.Errorf("the directory was made (%v): cairn key new makes no directories", err)
	}

	// Made as the hint says, the same command works.
	if err := os.Mkdir(keysDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"key", "new", filepath.Join(keysDir, "x.key")}, &out, &errb); code != exitOK {
		t.Fatalf("key new after mkdir: exit %d: %s", code, errb.String())
	}
}
