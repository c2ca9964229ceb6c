package light_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
)

// A view reads a server's refusals only when its checkpoint names a
// policy (light.PolicyHeader): a server without one costs no request. A
// package the project names is read while the checkpoint is verified
// (OpenPrefetch), once, and one read later beside its subject; a package the server does not serve has none;
// offline, the refusals read online at that checkpoint are read again
// with no request.
func TestViewRefusals(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	w.Publish(indextest.Package{Name: "acme/other", Version: "1.0.0"})
	vuln := w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Vulnerable, VulnID: "GHSA-v-1", Severity: "high"}).Records[0]
	pol, err := policy.Parse("org.yaml", []byte("forbid:\n  - {name: no-high, property: vulnerable, severity: high}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	counted := func(target string) (string, *atomic.Int32) {
		var n atomic.Int32
		return tamper(t, target, func(path string, _ http.Header, body []byte) []byte {
			if strings.HasPrefix(path, "/api/v1/packages/") {
				n.Add(1)
			}
			return body
		}), &n
	}

	plain, n := counted(servertest.Serve(w))
	v, err := newClient(w, plain, t.TempDir()).OpenPrefetch(ctx, "package acme/log")
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	if rf, err := v.Refusals(ctx, "acme/log"); err != nil || rf != nil || v.Policy() != "" || n.Load() != 0 {
		t.Fatalf("a server without a policy: refusals %+v, %v, policy %q, %d package documents read", rf, err, v.Policy(), n.Load())
	}

	gated, n := counted(servertest.ServeWith(w, server.Options{Policy: pol}))
	dir := t.TempDir()
	v, err = newClient(w, gated, dir).OpenPrefetch(ctx, "package acme/log")
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	if v.Policy() != "org.yaml" || n.Load() != 1 {
		t.Fatalf("a server with a policy: policy %q, %d package documents read while opening, want 1", v.Policy(), n.Load())
	}
	rf, err := v.Refusals(ctx, "acme/log")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, rf *light.Refusals) {
		t.Helper()
		r := rf.Of("1.1.0")
		if r == nil || rf.Of("1.0.0") != nil || r.Rule != "no-high" || r.Mode != "forbid" || len(r.Records) != 1 || r.Records[0] != vuln ||
			!strings.Contains(r.Reason, "GHSA-v-1") || rf.Policy != "org.yaml" || !strings.HasPrefix(rf.Digest, "sha256:") || rf.Source != "" {
			t.Fatalf("%s: refusals %+v", what, rf)
		}
	}
	check("online", rf)
	if n.Load() != 1 {
		t.Fatalf("the refusals prefetched were read again: %d package documents", n.Load())
	}
	// A package read as resolution reaches it: its refusals are read
	// beside its subject, once.
	if _, err := v.Subject(ctx, "package acme/other"); err != nil || n.Load() != 2 {
		t.Fatalf("reading a package's subject: %v; %d package documents read, want 2", err, n.Load())
	}
	if rf, err := v.Refusals(ctx, "acme/other"); err != nil || rf == nil || len(rf.List) != 0 || n.Load() != 2 {
		t.Fatalf("a package the server refuses nothing of: %+v, %v, %d package documents read", rf, err, n.Load())
	}
	if rf, err := v.Refusals(ctx, "acme/none"); err != nil || rf != nil {
		t.Fatalf("a package the server does not serve: %+v, %v", rf, err)
	}

	off, err := newClient(w, gated, dir).OpenOffline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := n.Load()
	rf, err = off.Refusals(ctx, "acme/log")
	if err != nil {
		t.Fatal(err)
	}
	check("offline", rf)
	if n.Load() != before {
		t.Fatal("offline, the refusals were asked of the server")
	}
}
