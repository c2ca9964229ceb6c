package server

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/witness/witnesstest"
)

// A push returns once the served checkpoint is of the head it made,
// cosigned: a client that reads the checkpoint right after (the
// pusher's other machine, as the README's walkthrough does) finds the
// push in the log, not the tree before it while the checkpoint loop
// waits on a slow witness.
func TestPushReturnsWithItsCheckpoint(t *testing.T) {
	lw := witnesstest.Start(t, "witness.example.org/slow")
	target, err := url.Parse(lw.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond) // a witness across an ocean
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	wit, err := ParseWitness(slow.URL + "=" + lw.VKey)
	if err != nil {
		t.Fatal(err)
	}
	ck := signer(t)
	s := newServed(t, Options{CheckpointKey: ck, Witnesses: []Witness{wit}})
	origin := checkpoint.Origin(s.repo.Config.Introduction)
	lw.AddLog(t, origin, checkpoint.VKey(origin, ck.Public()))
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, s.root); err != nil {
		t.Fatal(err)
	}
	for i, version := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		c, p := publishInClone(t, s.fixture, "acme/x", version, [][3]string{{"source", "", "src.tar.gz"}})
		upload(t, s.fixture, c, p.Ref, artifact(p.Descriptor, "source"))
		if out, err := pushClone(t, s.fixture, c); err != nil {
			t.Fatalf("push %d: %v\n%s", i, err, out)
		}
		head, err := c.Head(s.ctx, index.MainRef)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := s.do("GET", "/log/checkpoint", nil, nil)
		cp, err := checkpoint.Claimed(body)
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("push %d: GET /log/checkpoint: %s, %v\n%s", i, resp.Status, err, body)
		}
		if cp.Head != head {
			t.Fatalf("push %d returned, and the checkpoint served right after is of %s, not the pushed head %s", i, cp.Head, head)
		}
	}
}
