package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gcblob "gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
)

// fileBucket opens a file:// bucket on a new directory, as a user would
// name it, and returns the directory too.
func fileBucket(t *testing.T) (*blob.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := blob.OpenBucket(context.Background(), (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// memBucket is a store on a new mem:// bucket, and the bucket itself, to
// change objects behind the store's back.
func memBucket(t *testing.T) (*gcblob.Bucket, *blob.Bucket) {
	t.Helper()
	b, err := gcblob.OpenBucket(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	s := blob.NewBucket(b, "mem://")
	t.Cleanup(func() { s.Close() })
	return b, s
}

func TestBucketConformance(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		s, _ := fileBucket(t)
		blobtest.Run(t, s)
	})
	t.Run("mem", func(t *testing.T) {
		s, err := blob.OpenBucket(context.Background(), "mem://")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		blobtest.Run(t, s)
	})
	t.Run("prefix", func(t *testing.T) {
		dir := t.TempDir()
		s, err := blob.OpenBucket(context.Background(), "file://"+filepath.ToSlash(dir)+"?prefix=cairn/")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		data := []byte("under a prefix")
		ref := blob.DigestBytes(data)
		if err := s.Put(context.Background(), ref, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "cairn", "sha256", ref.SHA256)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("the object is not at cairn/sha256/HEX under the bucket: %q, %v", got, err)
		}
	})
}

// A refused upload leaves no object and no temporary file: the bucket's
// directory holds exactly what was stored before.
func TestBucketRefusedUploadLeavesNothing(t *testing.T) {
	s, dir := fileBucket(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("cairn "), 200_000) // over one buffer: written in pieces
	ref := blob.DigestBytes(data)
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 1 // the last byte: everything before it is uploaded first
	err := s.Put(ctx, ref, bytes.NewReader(bad))
	var me *blob.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("Put(wrong bytes) = %v, want a *MismatchError", err)
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Fatalf("a refused upload left %v", left)
	}
	if ok, err := s.Stat(ctx, ref); ok || err != nil {
		t.Fatalf("Stat after a refused upload = %v, %v", ok, err)
	}
}

// An object changed in the bucket behind cairn's back (same size, other
// bytes; or another size) is refused when read, with the evidence.
func TestBucketTamperedObjectIsCaught(t *testing.T) {
	ctx := context.Background()
	b, s := memBucket(t)
	data := []byte("the bytes the index names")
	ref := blob.DigestBytes(data)
	if err := s.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, evil := range [][]byte{[]byte("THE bytes the index names"), []byte("shorter")} {
		if err := b.WriteAll(ctx, s.Key(ref), evil, nil); err != nil {
			t.Fatal(err)
		}
		_, err := blob.ReadAll(ctx, s, ref)
		var me *blob.MismatchError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), "SECURITY ERROR") {
			t.Fatalf("reading a tampered object (%q) = %v, want a *MismatchError", evil, err)
		}
	}
	// Stat compares the size: a short object is not the blob.
	if ok, err := s.Stat(ctx, ref); ok || err != nil {
		t.Fatalf("Stat of an object of another size = %v, %v", ok, err)
	}
}

// An object of the blob's size but other bytes, written behind cairn's
// back, is not counted as stored: Put writes the blob again and it reads
// back right (a size-only Stat kept the wrong object for good).
func TestBucketWrongObjectIsRepaired(t *testing.T) {
	ctx := context.Background()
	b, s := memBucket(t)
	data := []byte("the bytes the index names")
	ref := blob.DigestBytes(data)
	for _, meta := range []map[string]string{nil, {"sha256": "0000"}} {
		if err := b.WriteAll(ctx, s.Key(ref), []byte("THE bytes the index names"), &gcblob.WriterOptions{Metadata: meta}); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Stat(ctx, ref); ok || err != nil {
			t.Fatalf("Stat of a same-size object with other bytes (metadata %v) = %v, %v", meta, ok, err)
		}
		if err := s.Put(ctx, ref, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if got, err := blob.ReadAll(ctx, s, ref); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after Put over a wrong object: %q, %v", got, err)
		}
	}
}

func TestBucketErrors(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"no scheme", "nosuch://bucket"} {
		if _, err := blob.OpenBucket(ctx, u); err == nil {
			t.Errorf("OpenBucket(%q) succeeded", u)
		}
	}
	s, _ := fileBucket(t)
	ref := blob.DigestBytes([]byte("absent"))
	_, err := s.Open(ctx, ref)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "sha256/"+ref.SHA256) {
		t.Fatalf("Open(missing) = %v, want fs.ErrNotExist naming the object", err)
	}
	// A directory cannot sign URLs: the server streams instead.
	if _, err := s.SignedURL(ctx, ref, 0); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("SignedURL on file:// = %v, want errors.ErrUnsupported", err)
	}
	// A read cut short by the store is not a blob either.
	data := []byte("0123456789")
	r := blob.DigestBytes(data)
	if err := s.Put(ctx, r, io.LimitReader(bytes.NewReader(data), 5)); !errors.Is(err, blob.ErrMismatch) {
		t.Fatalf("Put(short) = %v", err)
	}
}

// A file:// bucket stages each write beside its object, not in $TMPDIR:
// a bucket on another file system than $TMPDIR (a volume of its own)
// failed every write ("invalid cross-device link"), and a killed
// upload's staging file was left in /tmp, outside the store. Here
// $TMPDIR is a directory that does not exist: a write staged there fails.
func TestFileBucketStagesInItsDirectory(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), "no-such-tmp")
	t.Setenv("TMPDIR", tmp)
	s, dir := fileBucket(t)
	data := []byte("staged beside its object")
	ref := blob.DigestBytes(data)
	if err := s.Put(context.Background(), ref, bytes.NewReader(data)); err != nil {
		t.Fatalf("a write to a file:// bucket with $TMPDIR elsewhere: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "sha256", ref.SHA256))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the object: %q, %v", got, err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("$TMPDIR %s was written to: %v", tmp, err)
	}
}
