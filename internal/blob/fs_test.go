package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
)

func TestFS(t *testing.T) {
	s, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Run(t, s)
}

// A blob corrupted on disk after it was stored is caught on read.
func TestFSCorruptionCaughtOnRead(t *testing.T) {
	dir := t.TempDir()
	s, _ := blob.NewFS(dir)
	data := []byte("the original bytes")
	ref := blob.DigestBytes(data)
	ctx := context.Background()
	if _, err := blob.PutFile(ctx, s, writeFile(t, data)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sha256", ref.SHA256[:2], ref.SHA256)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("the tampered bytes"), 0o644)
	if _, err := blob.ReadAll(ctx, s, ref); !errors.Is(err, blob.ErrMismatch) {
		t.Fatalf("read of tampered blob = %v, want ErrMismatch", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(entries) != 0 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func writeFile(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, data, 0o644)
	return p
}

// TestCrashedWriterHelper is the writer TestCrashLeftovers kills: run
// with CAIRN_TEST_WRITER=DIR, it puts 1 MiB of a 16 MiB blob into the
// store at DIR, then blocks reading stdin until it is killed.
func TestCrashedWriterHelper(t *testing.T) {
	dir := os.Getenv("CAIRN_TEST_WRITER")
	if dir == "" {
		return
	}
	s, err := blob.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref := blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 16 << 20}
	s.Put(context.Background(), ref, io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), os.Stdin))
	t.Fatal("the writer was not killed")
}

// temps lists the store's temporary files.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// waitFor polls until cond holds, for at most five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
	}
}

// TestCrashLeftovers is issue 12 item 13: a writer killed mid-blob (kill
// -9, another process) leaves a partial temporary file, which the next
// open of the store removes; the temporary file of a writer that is
// still alive — another process, or this one — is never removed, and
// that writer's blob lands whole.
func TestCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	if _, err := blob.NewFS(dir); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestCrashedWriterHelper$")
	child.Env = append(os.Environ(), "CAIRN_TEST_WRITER="+dir)
	stdin, err := child.StdinPipe() // never written: the writer blocks
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	waitFor(t, "the writer's first MiB", func() bool {
		for _, n := range temps(t, dir) {
			if fi, err := os.Stat(filepath.Join(dir, "tmp", n)); err == nil && fi.Size() >= 1<<20 {
				return true
			}
		}
		return false
	})

	// A live writer in this process too.
	data := bytes.Repeat([]byte("live"), 1<<16)
	ref := blob.DigestBytes(data)
	pr, pw := io.Pipe()
	s, _ := blob.NewFS(dir)
	put := make(chan error, 1)
	go func() { put <- s.Put(context.Background(), ref, pr) }()
	pw.Write(data[:1000])
	waitFor(t, "the second writer's temporary file", func() bool { return len(temps(t, dir)) == 2 })

	// Opening the store collects; both writers are alive.
	if _, err := blob.NewFS(dir); err != nil {
		t.Fatal(err)
	}
	if left := temps(t, dir); len(left) != 2 {
		t.Fatalf("a live writer's temporary file was removed: %v left", left)
	}
	pw.Write(data[1000:])
	pw.Close()
	if err := <-put; err != nil {
		t.Fatalf("the live writer's put: %v", err)
	}
	if got, err := blob.ReadAll(context.Background(), s, ref); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the live writer's blob: %d bytes, %v", len(got), err)
	}

	// kill -9: the partial file stays until the store is opened again.
	child.Process.Kill() // SIGKILL
	child.Wait()
	if left := temps(t, dir); len(left) != 1 {
		t.Fatalf("after the kill: %v", left)
	}
	if _, err := blob.NewFS(dir); err != nil {
		t.Fatal(err)
	}
	if left := temps(t, dir); len(left) != 0 {
		t.Fatalf("a killed writer's partial blob was not collected: %v", left)
	}
}

// Scrub names a stored file that no longer holds its blob (the path,
// expected and actual digests) and removes it; a whole blob, or a
// missing one, is left alone.
func TestFSScrub(t *testing.T) {
	dir := t.TempDir()
	s, _ := blob.NewFS(dir)
	ctx := context.Background()
	data := []byte("the original bytes")
	ref, err := blob.PutFile(ctx, s, writeFile(t, data))
	if err != nil {
		t.Fatal(err)
	}
	if ce, err := s.Scrub(ref); ce != nil || err != nil {
		t.Fatalf("a whole blob: %v, %v", ce, err)
	}
	if ce, err := s.Scrub(blob.DigestBytes([]byte("absent"))); ce != nil || err != nil {
		t.Fatalf("a missing blob: %v, %v", ce, err)
	}
	p := filepath.Join(dir, "sha256", ref.SHA256[:2], ref.SHA256)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("the tampered bytes"), 0o644)
	ce, err := s.Scrub(ref)
	bad := blob.DigestBytes([]byte("the tampered bytes"))
	if err != nil || ce == nil || !errors.Is(ce, blob.ErrCorrupt) || ce.Path != p || ce.Want != ref || ce.GotSHA256 != bad.SHA256 || ce.GotSize != bad.Size {
		t.Fatalf("a corrupt blob: %+v, %v", ce, err)
	}
	want := "cached blob " + p + " is corrupt: want sha256:" + ref.SHA256 + " (18 bytes), the file has sha256:" + bad.SHA256 + " (18 bytes)"
	if ce.Error() != want {
		t.Fatalf("error %q, want %q", ce.Error(), want)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the corrupt file was kept: %v", err)
	}
}

// A staged blob is not in the store until it is committed; an aborted one
// leaves nothing behind; one the store holds already needs no commit.
func TestFSStage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blob.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stage(ctx, strings.NewReader("staged"))
	if err != nil {
		t.Fatal(err)
	}
	if want := blob.DigestBytes([]byte("staged")); st.Ref != want {
		t.Fatalf("staged as %v, want %v", st.Ref, want)
	}
	if ok, _ := s.Stat(ctx, st.Ref); ok {
		t.Fatal("a staged blob is in the store before its commit")
	}
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := blob.ReadAll(ctx, s, st.Ref)
	if err != nil || string(got) != "staged" {
		t.Fatalf("after the commit: %q, %v", got, err)
	}
	st.Abort() // after a commit: a no-op
	if ok, _ := s.Stat(ctx, st.Ref); !ok {
		t.Fatal("Abort after Commit removed the blob")
	}

	again, err := s.Stage(ctx, strings.NewReader("staged"))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Commit(); err != nil {
		t.Fatalf("committing a blob stored already: %v", err)
	}

	dropped, err := s.Stage(ctx, strings.NewReader("dropped"))
	if err != nil {
		t.Fatal(err)
	}
	dropped.Abort()
	if ok, _ := s.Stat(ctx, dropped.Ref); ok {
		t.Fatal("an aborted blob is in the store")
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("temporary files left behind: %v", tmp)
	}
}
