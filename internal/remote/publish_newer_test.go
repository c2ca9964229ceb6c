package remote

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A publisher holding an older checkpoint of the same tree (a
// job's `cairn log publish` without --checkpoint-key, publishing the one
// cairn serve signed earlier, while `serve --log-to` published a fresher
// one) must not write it over the fresher one: the published log's time
// would go back, and its age run out sooner. It leaves the newer
// checkpoint, as it leaves a larger tree, and says so.
func TestPublishKeepsNewerCheckpointOfSameTree(t *testing.T) {
	w := newWorld(t)
	h := newPlainHost(t)
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := PublishLog(w.ctx, w.repo, h.bucket, "the store", PublishOptions{Key: w.ckpt, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := os.ReadFile(filepath.Join(h.logDir, "checkpoint"))
	stale := func() time.Time { return now.Add(-20 * time.Minute) }
	p, err := PublishLog(w.ctx, w.repo, h.bucket, "the store", PublishOptions{Key: w.ckpt, Now: stale})
	got, _ := os.ReadFile(filepath.Join(h.logDir, "checkpoint"))
	if !bytes.Equal(got, fresh) {
		t.Fatalf("a checkpoint 20 minutes older, of the same tree, was written over the fresh one (publish said %v)", err)
	}
	if err != nil || !p.Kept {
		t.Fatalf("publishing an older checkpoint of the same tree: err %v, kept %v; want no error, kept", err, p != nil && p.Kept)
	}
}
