//go:build s3

// The log published to a real S3 implementation: scripts/seaweedfs starts
// SeaweedFS's S3 server on loopback and runs these with
// CAIRN_TEST_S3_ENDPOINT set; run it, not `go test -tags s3` by hand.
package remote

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"filippo.io/torchwood"
	gcblob "gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob/blobtest"
	"cairn.dev/cairn/internal/index"
)

// bucketServer serves a bucket's objects over HTTP, as a CDN in front of
// the object store does.
func bucketServer(t *testing.T, b *gcblob.Bucket) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := b.ReadAll(r.Context(), strings.TrimPrefix(r.URL.Path, "/"))
		if gcerrors.Code(err) == gcerrors.NotFound {
			http.NotFound(w, r)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// The log published to S3 (SeaweedFS) is read back by torchwood's tlog
// client and by a replica of the index on a plain git host; a second
// publish writes only the tiles S3 lacks.
func TestS3PublishLog(t *testing.T) {
	w := newWorld(t)
	h := newPlainHost(t)
	alice := w.publishLib()
	h.push(w)
	b, err := gcblob.OpenBucket(w.ctx, blobtest.NewS3Bucket(t, "cairn-log")+"&prefix=log/")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	first, err := PublishLog(w.ctx, w.repo, b, "s3", PublishOptions{Key: w.ckpt})
	if err != nil {
		t.Fatalf("publishing to S3: %v", err)
	}
	logURL := bucketServer(t, b)

	tree := publishedTree(t, first.Checkpoint)
	fetcher, err := torchwood.NewTileFetcher(logURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := torchwood.NewClient(fetcher)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	for range tc.Entries(w.ctx, tree, 0) {
		n++
	}
	if err := tc.Err(); err != nil || n != tree.N {
		t.Fatalf("torchwood read %d of %d entries from S3: %v", n, tree.N, err)
	}

	c, err := index.InitReplica(w.ctx, w.dir+"/s3-client", w.intro)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := Add(c, Remote{Name: "origin", URL: h.gitURL, Log: logURL, Mirrors: []string{h.mirrorURL}, Introduction: w.intro}); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(w.ctx, c, "origin", Options{}); err != nil {
		t.Fatalf("pull with the checkpoint on S3: %v", err)
	}

	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/lib", "1.1.0"), alice); err != nil {
		t.Fatal(err)
	}
	h.push(w)
	second, err := PublishLog(w.ctx, w.repo, b, "s3", PublishOptions{Key: w.ckpt})
	if err != nil || second.From != first.Size {
		t.Fatalf("second publish to S3: %+v, %v", second, err)
	}
	if p, err := Pull(w.ctx, c, "origin", Options{}); err != nil || p.Main != "fast-forwarded" {
		t.Fatalf("second pull: %+v, %v", p, err)
	}
	// Nothing but the log's paths under the prefix.
	it := b.List(nil)
	for {
		o, err := it.Next(w.ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if o.Key != CheckpointKey && !strings.HasPrefix(o.Key, "tile/") {
			t.Errorf("S3 holds %s beside the log", o.Key)
		}
	}
}
