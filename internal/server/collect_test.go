package server

import (
	"bytes"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
)

// One object store shared by two repositories (it is content-addressed):
// the other one holds blob X there. alice, who may upload to this server,
// PUTs X's bytes (she can read them anywhere): the store holds X, so the
// upload writes nothing, and the server's collector must not delete X
// after the grace period — this server never wrote it.
func TestCollectKeepsABlobItDidNotWrite(t *testing.T) {
	f := newBucketFixture(t, false)
	x := bytes.Repeat([]byte("the other index's artifact "), 1000)
	ref := blob.DigestBytes(x)
	other, err := blob.OpenBucket(f.ctx, "file://"+f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Put(f.ctx, ref, bytes.NewReader(x)); err != nil {
		t.Fatal(err)
	}
	f.upload(x) // to this server: nothing written
	mine := f.upload([]byte("an upload this server wrote, which no record refers to"))
	removed, err := f.srv.CollectUploads(f.ctx, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := other.Stat(f.ctx, ref); !ok || err != nil {
		t.Fatalf("the other repository's blob was deleted from the shared bucket by this server's collector (%v)", err)
	}
	// What this server wrote and nothing refers to is still collected.
	if len(removed) != 1 || removed[0] != mine.SHA256 {
		t.Fatalf("collected %v, want only this server's own upload %s", removed, mine.SHA256)
	}
	if ok, _ := other.Stat(f.ctx, mine); ok {
		t.Fatalf("this server's unreferenced upload is still in the bucket after the grace period")
	}
}
