// Package blobtest is the conformance suite every blob.Store runs:
// blobtest.Run(t, store) is the whole test of a new backend.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"cairn.dev/cairn/internal/blob"
)

// Run checks that s keeps the blob.Store contract.
func Run(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := make([]byte, 100_000)
	rand.Read(data)
	ref := blob.DigestBytes(data)

	t.Run("missing is fs.ErrNotExist", func(t *testing.T) {
		_, err := s.Open(ctx, ref)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open(missing) = %v, want fs.ErrNotExist", err)
		}
		if ok, err := s.Stat(ctx, ref); ok || err != nil {
			t.Fatalf("Stat(missing) = %v, %v", ok, err)
		}
	})
	t.Run("wrong bytes are refused and not stored", func(t *testing.T) {
		bad := bytes.Clone(data)
		bad[500] ^= 1
		assertMismatch(t, s.Put(ctx, ref, bytes.NewReader(bad)))
		assertMismatch(t, s.Put(ctx, ref, bytes.NewReader(data[:len(data)-1])))
		assertMismatch(t, s.Put(ctx, ref, io.MultiReader(bytes.NewReader(data), strings.NewReader("x"))))
		if ok, _ := s.Stat(ctx, ref); ok {
			t.Fatal("a refused Put left the blob stored")
		}
	})
	t.Run("an endless source is cut off at size+1", func(t *testing.T) {
		src := &countingReader{}
		assertMismatch(t, s.Put(ctx, blob.Ref{SHA256: ref.SHA256, Size: 10}, src))
		if src.n > 10+1+32<<10 {
			t.Fatalf("Put read %d bytes of an endless stream for a 10-byte blob", src.n)
		}
	})
	t.Run("put then open round-trips", func(t *testing.T) {
		if err := s.Put(ctx, ref, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, ref, bytes.NewReader(data)); err != nil {
			t.Fatalf("second Put of the same blob: %v", err)
		}
		got, err := blob.ReadAll(ctx, s, ref)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAll: %v (equal=%v)", err, bytes.Equal(got, data))
		}
		if ok, err := s.Stat(ctx, ref); !ok || err != nil {
			t.Fatalf("Stat = %v, %v", ok, err)
		}
	})
	t.Run("the empty blob", func(t *testing.T) {
		e := blob.DigestBytes(nil)
		if err := s.Put(ctx, e, bytes.NewReader(nil)); err != nil {
			t.Fatal(err)
		}
		got, err := blob.ReadAll(ctx, s, e)
		if err != nil || len(got) != 0 {
			t.Fatalf("empty blob: %q, %v", got, err)
		}
	})
	t.Run("concurrent puts of one blob", func(t *testing.T) {
		d := make([]byte, 50_000)
		rand.Read(d)
		r := blob.DigestBytes(d)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Put(ctx, r, bytes.NewReader(d))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := blob.ReadAll(ctx, s, r)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("after concurrent puts: %v", err)
		}
	})
	if a, ok := s.(blob.Adder); ok {
		t.Run("add hashes on the way in", func(t *testing.T) {
			d := []byte("bytes of a digest nobody told the store")
			ref, err := a.Add(ctx, bytes.NewReader(d))
			if err != nil || ref != blob.DigestBytes(d) {
				t.Fatalf("Add = %v, %v; want %v", ref, err, blob.DigestBytes(d))
			}
			got, err := blob.ReadAll(ctx, s, ref)
			if err != nil || !bytes.Equal(got, d) {
				t.Fatalf("read back after Add: %v", err)
			}
		})
	}
	t.Run("malformed refs are refused", func(t *testing.T) {
		if _, err := s.Open(ctx, blob.Ref{SHA256: "../../etc/passwd", Size: 1}); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open(path traversal) = %v", err)
		}
	})
}

func assertMismatch(t *testing.T, err error) {
	t.Helper()
	var me *blob.MismatchError
	if !errors.As(err, &me) || !errors.Is(err, blob.ErrMismatch) {
		t.Fatalf("err = %v, want *blob.MismatchError", err)
	}
}

type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	c.n += len(p)
	return len(p), nil
}
