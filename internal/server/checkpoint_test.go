package server

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
)

// A server without a checkpoint key says so in a way a client can tell
// apart from a missing or wrong checkpoint: 404 with the header
// Cairn-Checkpoint: none. One with a key serves a checkpoint without it.
func TestCheckpointNone(t *testing.T) {
	s := newServed(t, Options{})
	if resp, _ := s.do("GET", "/log/checkpoint", nil, nil); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cairn-Checkpoint") != "none" {
		t.Fatalf("/log/checkpoint without a key: %s, Cairn-Checkpoint %q, want 404 and %q", resp.Status, resp.Header.Get("Cairn-Checkpoint"), "none")
	}
	resp, body := s.do("GET", "/api/v1/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cairn-Checkpoint") != "none" {
		t.Fatalf("without a key: %s, Cairn-Checkpoint %q, want 404 and %q", resp.Status, resp.Header.Get("Cairn-Checkpoint"), "none")
	}
	if !strings.Contains(string(body), "signs no checkpoints") || !strings.Contains(string(body), "--checkpoint-key") {
		t.Fatalf("without a key, the body does not say why: %q", body)
	}

	ck := signer(t)
	withKey := newServed(t, Options{CheckpointKey: ck})
	if _, err := author.Grant(withKey.ctx, withKey.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, withKey.root); err != nil {
		t.Fatal(err)
	}
	resp, body = withKey.do("GET", "/api/v1/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cairn-Checkpoint") == "none" {
		t.Fatalf("with a key: %s, Cairn-Checkpoint %q: %s", resp.Status, resp.Header.Get("Cairn-Checkpoint"), body)
	}
}

// A checkpoint is signed only over a head this server verifies, through
// the same verification as /healthz: a record deleted behind the
// server's back gets no checkpoint, but 503 naming the rule and commit.
func TestCheckpointRefusedOnTamperedIndex(t *testing.T) {
	ck := signer(t)
	s := newServed(t, Options{CheckpointKey: ck})
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, s.root); err != nil {
		t.Fatal(err)
	}
	publishOne(t, s.fixture, "1.0.0")
	if resp, body := s.do("GET", "/api/v1/checkpoint", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("checkpoint before: %s %s", resp.Status, body)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := gitIn(t, ".", "clone", "-q", indextest.GitDir(t, s.repo), clone); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	out, _ := gitIn(t, clone, "ls-files", "packages")
	behindItsBack(t, clone, "rm", "-q", strings.Fields(out)[0])
	commit, _ := gitIn(t, clone, "rev-parse", "--short=12", "HEAD")
	resp, body := s.do("GET", "/api/v1/checkpoint", nil, nil)
	if want := "rule append-only broken in commit " + strings.TrimSpace(commit); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), want) {
		t.Fatalf("checkpoint of a tampered index: %s %q, want 503 naming %q", resp.Status, body, want)
	}
}

// The checkpoint is answered from the view of main found last while main
// has not moved; but main moved back, behind the server's back, to a
// head the server answered before it verified a later one, is verified
// again and refused (the history was rewritten), not answered from there.
func TestCheckpointRefusedOnMainMovedBack(t *testing.T) {
	ck := signer(t)
	s := newServed(t, Options{CheckpointKey: ck})
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, s.root); err != nil {
		t.Fatal(err)
	}
	publishOne(t, s.fixture, "1.0.0")
	old, err := s.repo.Head(s.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	_, first := s.do("GET", "/log/checkpoint", nil, nil)
	if resp, again := s.do("GET", "/log/checkpoint", nil, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(again, first) {
		t.Fatalf("checkpoint again, main unmoved: %s %q, want %q", resp.Status, again, first)
	}
	publishOne(t, s.fixture, "1.0.1")
	if resp, body := s.do("GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after a publish: %s %s", resp.Status, body)
	}
	if out, err := gitIn(t, ".", "--git-dir", indextest.GitDir(t, s.repo), "update-ref", index.MainRef, old); err != nil {
		t.Fatalf("update-ref: %v\n%s", err, out)
	}
	resp, body := s.do("GET", "/log/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "does not descend") {
		t.Fatalf("checkpoint of main moved back: %s %q, want 503 saying main was rewritten", resp.Status, body)
	}
}

// A server does not sign a checkpoint every client would refuse: with a
// key the index has not granted the checkpoint scope, or whose grant has
// expired, the checkpoint is 503 saying so and what to do (clients read
// "the server is not ready", not a forgery); granted, it is signed.
func TestCheckpointKeyMustBeGranted(t *testing.T) {
	ck := signer(t)
	s := newServed(t, Options{CheckpointKey: ck})
	resp, body := s.do("GET", "/log/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "is not granted the checkpoint scope in the index") || !strings.Contains(string(body), "cairn key grant") {
		t.Fatalf("an ungranted key: %s %s", resp.Status, body)
	}
	past := time.Now().Add(-time.Hour)
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}, Expires: &past}, s.root); err != nil {
		t.Fatal(err)
	}
	resp, body = s.do("GET", "/log/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "may not sign a checkpoint now") || !strings.Contains(string(body), "expired") {
		t.Fatalf("a key whose grant expired: %s %s", resp.Status, body)
	}
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, s.root); err != nil {
		t.Fatal(err)
	}
	if resp, body = s.do("GET", "/log/checkpoint", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("granted again: %s %s", resp.Status, body)
	}
}

// A server restarted with another checkpoint key (the old one rotated
// out) serves a checkpoint its new key signed, at once, not the one the
// old key signed before the restart, which its key header would name
// wrongly; the new one extends the old one's tree.
func TestCheckpointKeyRotatedAcrossRestart(t *testing.T) {
	f, old, origin := retryFixture(t)
	// Granted first: main does not move between the two servers, so the
	// checkpoint kept is of the very head served after the restart.
	rotated := signer(t)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: rotated.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, f.root); err != nil {
		t.Fatal(err)
	}
	stop := serveOn(t, f, Options{CheckpointKey: old})
	get := func() ([]byte, string) {
		t.Helper()
		resp, body := f.do("GET", "/log/checkpoint", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/log/checkpoint: %s %s", resp.Status, body)
		}
		return body, resp.Header.Get(CheckpointKeyHeader)
	}
	before, _ := get()
	stop()
	serveOn(t, f, Options{CheckpointKey: rotated})
	after, named := get()
	if named != keys.ID(rotated.Public()) {
		t.Fatalf("key header %q, want the new key %s", named, keys.ID(rotated.Public()))
	}
	sc, err := checkpoint.Open(after, origin, []ed25519.PublicKey{rotated.Public()})
	if err != nil {
		t.Fatalf("the checkpoint served after the restart does not verify under the new key: %v\n%s", err, after)
	}
	prev, err := checkpoint.Claimed(before)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Size != prev.Size || sc.Head != prev.Head {
		t.Fatalf("size %d at %s after the restart, %d at %s before: want the same tree, signed again", sc.Size, sc.Head, prev.Size, prev.Head)
	}
}
