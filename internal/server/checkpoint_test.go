package server

import (
	"net/http"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index"
)

// A server without a checkpoint key says so in a way a client can tell
// apart from a missing or wrong checkpoint: 404 with the header
// Cairn-Checkpoint: none. One with a key serves a checkpoint without it.
func TestCheckpointNone(t *testing.T) {
	s := newServed(t, Options{})
	resp, body := s.do("GET", "/api/v1/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cairn-Checkpoint") != "none" {
		t.Fatalf("without a key: %s, Cairn-Checkpoint %q, want 404 and %q", resp.Status, resp.Header.Get("Cairn-Checkpoint"), "none")
	}
	if !strings.Contains(string(body), "signs no checkpoints") || !strings.Contains(string(body), "--checkpoint-key") {
		t.Fatalf("without a key, the body does not say why: %q", body)
	}

	ck := signer(t)
	withKey := newServed(t, Options{CheckpointKey: ck})
	if _, err := withKey.repo.Grant(withKey.ctx, index.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, withKey.root); err != nil {
		t.Fatal(err)
	}
	resp, body = withKey.do("GET", "/api/v1/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cairn-Checkpoint") == "none" {
		t.Fatalf("with a key: %s, Cairn-Checkpoint %q: %s", resp.Status, resp.Header.Get("Cairn-Checkpoint"), body)
	}
}
