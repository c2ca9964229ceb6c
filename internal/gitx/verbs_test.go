package gitx

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// commitAt commits files on parent dated unix, and returns the commit.
func commitAt(t *testing.T, r *Repo, rd *Reader, parent string, unix int64, files ...string) string {
	t.Helper()
	base := ""
	var parents []string
	if parent != "" {
		c, err := rd.Commit(parent)
		if err != nil {
			t.Fatal(err)
		}
		base, parents = c.Tree, []string{parent}
	}
	var fl []File
	for _, f := range files {
		fl = append(fl, File{Path: f, Data: []byte("content of " + f)})
	}
	b := r.NewBatch()
	tree, err := b.AddToTree(rd, base, fl)
	if err != nil {
		t.Fatal(err)
	}
	id := b.Write("commit", FormatCommit(tree, parents, "cairn <test>", unix, "test"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	return id
}

// The history verbs answer over the commits of head not in base, in
// the order each promises.
func TestHistoryVerbs(t *testing.T) {
	ctx, r, rd := newRepo(t)
	c1 := commitAt(t, r, rd, "", 1000, "a/1")
	c2 := commitAt(t, r, rd, c1, 2000, "a/2", "b/x/3")
	c3 := commitAt(t, r, rd, c2, 3000, "b/4")
	if err := r.UpdateRef(ctx, "refs/heads/main", c3, "", "test"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.RevList(ctx, c1, "refs/heads/main"); err != nil || !slices.Equal(got, []string{c2, c3}) {
		t.Errorf("RevList(c1, main) = %v, %v; want [c2 c3] oldest first", got, err)
	}
	if got, err := r.RevList(ctx, "", c3); err != nil || !slices.Equal(got, []string{c1, c2, c3}) {
		t.Errorf("RevList(\"\", c3) = %v, %v; want all three", got, err)
	}
	for _, c := range []struct {
		base, head string
		want       int
	}{{"", c3, 3}, {c1, c3, 2}, {c3, c1, 0}, {c3, c3, 0}} {
		if got, err := r.Count(ctx, c.base, c.head); err != nil || got != c.want {
			t.Errorf("Count(%.7s, %.7s) = %d, %v; want %d", c.base, c.head, got, err, c.want)
		}
	}
	if got, err := r.CommitTimes(ctx, c1, c3); err != nil || !slices.Equal(got, []int64{3000, 2000}) {
		t.Errorf("CommitTimes(c1, c3) = %v, %v; want [3000 2000], newest first", got, err)
	}
	if got, err := r.CommitTimes(ctx, c3, c3); err != nil || len(got) != 0 {
		t.Errorf("CommitTimes(c3, c3) = %v, %v; want none", got, err)
	}
	if got, err := r.RootCommits(ctx, "refs/heads/main"); err != nil || !slices.Equal(got, []string{c1}) {
		t.Errorf("RootCommits(main) = %v, %v; want [c1]", got, err)
	}
	if _, err := r.Count(ctx, "", "refs/heads/nothere"); err == nil {
		t.Error("Count of an absent ref: no error")
	}

	var files, dirs []string
	if err := r.LsTree(ctx, c3, false, nil, func(e TreeItem) error { files = append(files, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/1", "a/2", "b/4", "b/x/3"}; !slices.Equal(files, want) {
		t.Errorf("LsTree files = %v, want %v", files, want)
	}
	if err := r.LsTree(ctx, c3, true, []string{"b"}, func(e TreeItem) error { dirs = append(dirs, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"b", "b/x"}; !slices.Equal(dirs, want) {
		t.Errorf("LsTree dirs under b = %v, want %v", dirs, want)
	}
}

func TestConfigGet(t *testing.T) {
	ctx, r, _ := newRepo(t)
	if v, ok, err := r.ConfigGet(ctx, "remote.origin.url"); err != nil || ok || v != "" {
		t.Fatalf("unset key: %q, %v, %v; want absent, no error", v, ok, err)
	}
	if _, err := r.run(ctx, nil, "config", "remote.origin.url", "https://example.com/index.git"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.ConfigGet(ctx, "remote.origin.url"); err != nil || !ok || v != "https://example.com/index.git" {
		t.Fatalf("set key: %q, %v, %v", v, ok, err)
	}
}

// Repack leaves one pack holding everything.
func TestRepack(t *testing.T) {
	ctx, r, rd := newRepo(t)
	head := ""
	for i := range 3 {
		head = commitAt(t, r, rd, head, 1000, "f"+strconv.Itoa(i))
	}
	if err := r.UpdateRef(ctx, "refs/heads/main", head, "", "test"); err != nil {
		t.Fatal(err)
	}
	if err := r.Repack(ctx); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(r.GitDir, "objects", "pack", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d packs after Repack, want 1", len(packs))
	}
	if n, err := r.Count(ctx, "", head); err != nil || n != 3 {
		t.Fatalf("after Repack: %d commits, %v", n, err)
	}
	// Its commit-graph, which git checks and reads the walk from.
	if _, err := os.Stat(filepath.Join(r.GitDir, "objects", "info", "commit-graphs", "commit-graph-chain")); err != nil {
		t.Fatalf("no commit-graph after Repack: %v", err)
	}
	if out, err := r.run(ctx, nil, "commit-graph", "verify"); err != nil {
		t.Fatalf("git commit-graph verify: %v\n%s", err, out)
	}
}

// CheckoutTree brings a work tree along; a bare repository is left be.
func TestCheckoutTree(t *testing.T) {
	ctx := context.Background()
	work := filepath.Join(t.TempDir(), "work")
	if out, err := exec.Command("git", "init", "-q", work).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	r, err := Open(work)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	c1 := commitAt(t, r, rd, "", 1000, "a")
	c2 := commitAt(t, r, rd, c1, 1000, "b")
	if err := r.CheckoutTree(ctx, "", c1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(work, "a")); err != nil {
		t.Fatalf("after reset to c1: %v", err)
	}
	if err := r.CheckoutTree(ctx, c1, c2); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(work, "b")); err != nil || string(data) != "content of b" {
		t.Fatalf("after c1→c2: %q, %v", data, err)
	}
	_, bare, brd := newRepo(t)
	b1 := commitAt(t, bare, brd, "", 1000, "a")
	if err := bare.CheckoutTree(ctx, "", b1); err != nil {
		t.Fatalf("a bare repository: %v, want nothing done", err)
	}
}

// backend serves repositories under root with HTTPBackend as a plain CGI
// runner would, receive-pack on.
func backend(t *testing.T, r *Repo) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		env := []string{
			"GATEWAY_INTERFACE=CGI/1.1",
			"REQUEST_METHOD=" + req.Method,
			"QUERY_STRING=" + req.URL.RawQuery,
			"PATH_INFO=" + strings.TrimPrefix(req.URL.Path, "/r.git"),
			"CONTENT_TYPE=" + req.Header.Get("Content-Type"),
			"PATH=" + os.Getenv("PATH"),
		}
		if enc := req.Header.Get("Content-Encoding"); enc != "" {
			env = append(env, "HTTP_CONTENT_ENCODING="+enc)
		}
		if p := req.Header.Get("Git-Protocol"); p != "" {
			env = append(env, "HTTP_GIT_PROTOCOL="+p)
		}
		cmd, err := r.HTTPBackend(req.Context(), HTTPBackendOptions{Env: env, Config: [][2]string{{"http.receivepack", "true"}}, MaxRequestBuffer: 10 << 20})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		body, _ := io.ReadAll(req.Body)
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.Output()
		if err != nil && len(out) == 0 {
			http.Error(w, err.Error(), 500)
			return
		}
		br := bufio.NewReader(bytes.NewReader(out))
		h, err := textproto.NewReader(br).ReadMIMEHeader()
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		code := 200
		if st := h.Get("Status"); len(st) >= 3 {
			code, _ = strconv.Atoi(st[:3])
			h.Del("Status")
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		io.Copy(w, br)
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL + "/r.git"
}

// A repository served by HTTPBackend answers the remote verbs: LsRemote
// lists its refs, Fetch brings them, Push lands a fast-forward and
// reports a non-fast-forward as a rejected ref with git's reason.
func TestRemoteVerbsOverHTTPBackend(t *testing.T) {
	ctx, srv, srd := newRepo(t)
	c1 := commitAt(t, srv, srd, "", 1000, "a")
	if err := srv.UpdateRef(ctx, "refs/heads/main", c1, "", "test"); err != nil {
		t.Fatal(err)
	}
	if err := srv.UpdateRef(ctx, "refs/upstreams/up", c1, "", "test"); err != nil {
		t.Fatal(err)
	}
	url := backend(t, srv)

	refs, err := srv.LsRemote(ctx, url, "refs/upstreams/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0] != (RemoteRef{Name: "refs/upstreams/up", ID: c1}) {
		t.Fatalf("LsRemote(refs/upstreams/*) = %v", refs)
	}

	_, cl, crd := newRepo(t)
	if err := cl.Fetch(ctx, FetchOptions{URL: url, Refspecs: []string{"+refs/heads/main:refs/remotes/origin/main"}, NoNegotiation: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := cl.ResolveRef(ctx, "refs/remotes/origin/main"); got != c1 {
		t.Fatalf("after Fetch: origin/main at %q, want %s", got, c1)
	}
	c2 := commitAt(t, cl, crd, c1, 2000, "b")
	res, err := cl.Push(ctx, url, c2, "refs/heads/main")
	if err != nil {
		t.Fatalf("fast-forward push: %v (%+v)", err, res)
	}
	if res.Rejected() {
		t.Fatalf("fast-forward push reported %+v", res.Refs)
	}
	if got, _ := srv.ResolveRef(ctx, "refs/heads/main"); got != c2 {
		t.Fatalf("server's main at %s after the push, want %s", got, c2)
	}
	if err := cl.Fetch(ctx, FetchOptions{URL: url, Refspecs: []string{"+refs/heads/main:refs/remotes/origin/main"}, Tips: []string{c2}}); err != nil {
		t.Fatal(err)
	}

	other := commitAt(t, cl, crd, c1, 3000, "c") // not a descendant of c2
	res, err = cl.Push(ctx, url, other, "refs/heads/main")
	if err == nil {
		t.Fatal("a non-fast-forward push landed")
	}
	if res == nil || !res.Rejected() {
		t.Fatalf("non-fast-forward push: result %+v, want a rejected ref", res)
	}
	if r := res.Refs[0]; r.Flag != '!' || r.Summary != "[rejected]" || r.Reason == "" {
		t.Fatalf("rejected ref = %+v, want flag !, [rejected] and git's reason", r)
	}
	if got, _ := srv.ResolveRef(ctx, "refs/heads/main"); got != c2 {
		t.Fatalf("server's main moved to %s on a rejected push", got)
	}
}

func TestParsePushPorcelain(t *testing.T) {
	out := "To http://x/index.git\n" +
		"!\trefs/heads/main:refs/heads/main\t[remote rejected] (pre-receive hook declined)\n" +
		"*\trefs/heads/a:refs/heads/b\t[new branch]\n" +
		"Done\n"
	got := ParsePushPorcelain([]byte(out))
	want := []PushedRef{
		{Flag: '!', From: "refs/heads/main", To: "refs/heads/main", Summary: "[remote rejected]", Reason: "pre-receive hook declined"},
		{Flag: '*', From: "refs/heads/a", To: "refs/heads/b", Summary: "[new branch]"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ParsePushPorcelain = %+v\nwant %+v", got, want)
	}
}
