package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A pull refused for what a server serves exits 3 (refused by a security
// check), and each refusal says what the server did, with a hint that
// blames the server, never the local copy: a server that signs no
// checkpoints (not tampering: ask its operator), a rollback (an ancestor
// of the verified head: try another mirror), a fork (another history).
// Every server here is a real `cairn serve` of one repository.
func TestPullRefusals(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	call := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	must := func(args ...string) string {
		t.Helper()
		code, out, errs := call(args...)
		if code != exitOK {
			t.Fatalf("cairn %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	at := func(name string) string { return filepath.Join(dir, name) }
	for _, k := range []string{"root", "alice", "server"} {
		must("key", "new", at(k+".key"))
	}
	out := must("init", at("repo"), "--root-key", at("root.key"))
	m := regexp.MustCompile(`(?m)^introduction ([0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init printed no introduction:\n%s", out)
	}
	intro, repo := m[1], at("repo")
	must("key", "grant", "--repo", repo, "--key", at("root.key"), at("alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")
	must("key", "grant", "--repo", repo, "--key", at("root.key"), at("server.key.pub"), "--holder", "server", "--scope", "checkpoint")
	git := func(gitDir string, args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	head := func() string { return git(filepath.Join(repo, "index.git"), "rev-parse", "refs/heads/main") }
	pkg := func(version string) string {
		d := at("pkg-" + version)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "cairn-package.yaml"), []byte("name: acme/x\nversion: "+version+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(d, "src.tar.gz"), []byte("source "+version), 0o644)
		return d
	}
	serve := func(name string, args ...string) string {
		t.Helper()
		ready := at(name + ".url")
		done := make(chan int, 1)
		go func() {
			code, _, _ := call(append([]string{"serve", "--repo", repo, "--addr", "127.0.0.1:0", "--ready-file", ready, "--sync", "0"}, args...)...)
			done <- code
		}()
		t.Cleanup(func() { cancel(); <-done })
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if u, err := os.ReadFile(ready); err == nil {
				return strings.TrimSpace(string(u))
			}
			select {
			case code := <-done:
				t.Fatalf("cairn serve exited %d", code)
			default:
			}
		}
		t.Fatal("cairn serve did not start within 10 s")
		return ""
	}
	signed := serve("signed", "--checkpoint-key", at("server.key"))
	unsigned := serve("unsigned")
	laptop := at("laptop")
	must("remote", "add", "origin", signed, "--introduction", intro, "--repo", laptop)
	must("remote", "add", "bare", unsigned, "--introduction", intro, "--repo", laptop)
	before := head()
	must("publish", "--repo", repo, "--key", at("alice.key"), pkg("1.0.0"))
	after := head()
	must("pull", "--repo", laptop, "origin")

	// A man in the middle replays the checkpoint of this head after the
	// server moved on: the laptop stays at the checkpointed head, and says
	// what waits past it.
	resp, err := http.Get(signed + "/api/v1/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	must("publish", "--repo", repo, "--key", at("alice.key"), pkg("1.1.0"))
	newer := head()
	target, _ := url.Parse(signed)
	proxy := httputil.NewSingleHostReverseProxy(target)
	mitm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/checkpoint" {
			w.Write(old)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer mitm.Close()
	must("remote", "add", "mitm", mitm.URL, "--introduction", intro, "--repo", laptop)
	if out := must("pull", "--repo", laptop, "mitm"); !strings.Contains(out, "mitm: the server's head "+newer+" is 1 commit(s) past its checkpoint's "+after+": they wait until a checkpoint covers them\n") || !strings.Contains(out, "main: up to date\n") {
		t.Errorf("pull behind a replayed checkpoint printed:\n%s", out)
	}

	refused := func(what, remote string, want ...string) {
		t.Helper()
		code, _, errs := call("pull", "--repo", laptop, remote)
		if code != exitRefused {
			t.Errorf("%s: exit %d, want %d\n%s", what, code, exitRefused, errs)
		}
		for _, w := range want {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", what, w, errs)
			}
		}
		for _, blame := range []string{"do not use this copy", "restore main", "compare its checkpoint"} {
			if strings.Contains(errs, blame) {
				t.Errorf("%s: the hint says %q:\n%s", what, blame, errs)
			}
		}
		if h := git(filepath.Join(laptop, "index.git"), "rev-parse", "refs/heads/main"); h != after {
			t.Errorf("%s: the laptop's main moved to %s", what, h)
		}
	}

	refused("a server without a checkpoint key", "bare",
		"cairn: error: remote bare ("+unsigned+") signs no checkpoints",
		"cairn: hint: ask the operator of "+unsigned+" to run cairn serve with --checkpoint-key KEY, a key the root granted the checkpoint scope")

	// The server goes back in time. It refuses to sign the smaller tree
	// itself: it keeps the last checkpoint it signed...
	git(filepath.Join(repo, "index.git"), "update-ref", "refs/heads/main", before)
	os.Remove(filepath.Join(repo, "verified.json"))
	if code, _, errs := call("pull", "--repo", laptop, "origin"); code == exitOK || !strings.Contains(errs, "SECURITY ERROR: refusing to sign a checkpoint of size 6 at head "+before+": the log shrank from 9 to 6 leaves") {
		t.Errorf("a server whose main went back: exit %d, want its refusal to sign:\n%s", code, errs)
	}
	// ... but a restored backup, which forgot it, signs it.
	os.Remove(filepath.Join(repo, "checkpoint"))
	restored := serve("restored", "--checkpoint-key", at("server.key"))
	must("remote", "set-url", "origin", restored, "--repo", laptop)
	refused("a rollback", "origin",
		"cairn: error: SECURITY ERROR: remote origin ("+restored+") rolled back: it serves head "+before+", an ancestor of "+after+", which was verified from it before",
		"cairn: hint: the server at "+restored+", or a mirror in front of it, went back to an older head; this copy is intact: try another mirror, and tell the server's operator")

	// Then it grows another history from there.
	must("publish", "--repo", repo, "--key", at("alice.key"), pkg("2.0.0"))
	forked := head()
	refused("a fork", "origin",
		"cairn: error: SECURITY ERROR: remote origin ("+restored+") serves another history: its head "+forked+" neither descends from nor precedes "+after,
		"cairn: hint: this copy is intact and keeps the history verified before: do not trust the server at "+restored)
}
