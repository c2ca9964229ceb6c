//go:build unix

package safefile

import (
	"os"
	"path/filepath"
	"testing"
)

// A lock held through one open file is not taken through another until
// it is released; Lock waits for it.
func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := open(), open()
	if held, err := TryLock(a); !held || err != nil {
		t.Fatalf("a free lock: held %v, %v", held, err)
	}
	if held, err := TryLock(b); held || err != nil {
		t.Fatalf("a lock held through another file: held %v, %v; want not held, no error", held, err)
	}
	done := make(chan error)
	go func() { done <- Lock(b) }()
	select {
	case err := <-done:
		t.Fatalf("Lock returned (%v) while the lock was held", err)
	default:
	}
	a.Close()
	if err := <-done; err != nil {
		t.Fatalf("Lock once released: %v", err)
	}
	if held, err := TryLock(open()); held || err != nil {
		t.Fatalf("the lock Lock took: held through a third file %v, %v", held, err)
	}
}
