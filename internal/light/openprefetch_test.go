package light_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/server/servertest"
)

// keyLeftOut returns a proxy of honest that answers the checkpoint key's
// subject with its files left out (a refusal of the checkpoint): once
// the batch of packages was answered and after a pause, and served is
// closed then.
func keyLeftOut(t *testing.T, w *indextest.World, honest string) (proxy string, served chan struct{}) {
	keySubject := "key " + mustKeyHex(t, keys.ID(w.Checkpointer.Public()))
	served = make(chan struct{})
	var once sync.Once
	proxy = tamper(t, honest, func(path string, _ http.Header, body []byte) []byte {
		single := strings.HasPrefix(path, "/api/v1/log/subject?s="+url.QueryEscape(keySubject)+"&")
		switch {
		case single || strings.HasPrefix(path, "/api/v1/log/subjects") && slices.Contains(batchSubjects(body), keySubject):
			select {
			case <-served:
				time.Sleep(100 * time.Millisecond)
			case <-time.After(5 * time.Second):
			}
			if single {
				return leftOut(body)
			}
			return leftOutIn(t, body, keySubject)
		case strings.HasPrefix(path, "/api/v1/log/subjects"):
			once.Do(func() { close(served) })
		}
		return body
	})
	return proxy, served
}

// leftOut is a subject document with its files left out.
func leftOut(body []byte) []byte {
	var d subjectDoc
	json.Unmarshal(body, &d)
	d.Files, d.Count = d.Files[:0], 0
	out, _ := json.Marshal(d)
	return out
}

// batchSubjects are the subjects of a batch's answer (as JSON: tamper).
func batchSubjects(body []byte) []string {
	var b wireBatch
	json.Unmarshal(body, &b)
	var out []string
	for _, d := range b.Subjects {
		out = append(out, d.Subject)
	}
	return out
}

// leftOutIn is a batch's answer with subject's files left out.
func leftOutIn(t *testing.T, body []byte, subject string) []byte {
	var b wireBatch
	if err := json.Unmarshal(body, &b); err != nil {
		t.Errorf("a batch's answer: %v", err)
		return body
	}
	for i := range b.Subjects {
		if d := &b.Subjects[i]; d.Subject == subject {
			d.Files, d.Count = d.Files[:0], 0
		}
	}
	out, _ := json.Marshal(b)
	return out
}

// Attack: against OpenPrefetch, whose batch of packages is read and
// judged while the checkpoint is verified, a man in the middle answers
// the checkpoint key's subject, after the batch was read, with the key
// left out. The checkpoint is refused, and nothing read to judge it is
// kept: no checkpoint, no document.
func TestRefusedPrefetchKeepsNothing(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	mitm, served := keyLeftOut(t, w, servertest.Serve(w))
	dir := t.TempDir()
	_, err := newClient(w, mitm, dir).OpenPrefetch(context.Background(), "package acme/fastjson", "package acme/log")
	wantProofError(t, err, "the checkpoint")
	select {
	case <-served:
	default:
		t.Fatal("the batch was never read: the attack tests nothing")
	}
	var kept []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			kept = append(kept, p)
		}
		return nil
	})
	if len(kept) > 0 {
		t.Fatalf("a refused checkpoint kept %q", kept)
	}
}

// OpenPrefetch returns only once every read it started ended: after a
// refusal that comes while its prefetch is still reading (a man in the
// middle answers the checkpoint key's subject with the key left out at
// once, and the batch of packages late), no request reaches the server
// once it returned (the keys the packages name, read after them), and
// nothing is kept.
func TestOpenPrefetchEndsItsReads(t *testing.T) {
	w := indextest.New(t)
	names := packages(4)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	honest := servertest.Serve(w)
	keySubject := "key " + mustKeyHex(t, keys.ID(w.Checkpointer.Public()))
	batch := make(chan struct{})
	var once sync.Once
	mitm := tamper(t, honest, func(path string, _ http.Header, body []byte) []byte {
		switch {
		case strings.HasPrefix(path, "/api/v1/log/subject?s="+url.QueryEscape(keySubject)+"&"):
			<-batch
			return leftOut(body)
		case !strings.HasPrefix(path, "/api/v1/log/subjects"):
		case slices.Contains(batchSubjects(body), keySubject):
			<-batch
			return leftOutIn(t, body, keySubject)
		default:
			once.Do(func() { close(batch) })
			time.Sleep(300 * time.Millisecond)
		}
		return body
	})
	var mu sync.Mutex
	var last time.Time
	target, _ := url.Parse(mitm)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = time.Now()
		mu.Unlock()
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(front.Close)
	var subjects []string
	for _, name := range names {
		subjects = append(subjects, "package "+name)
	}
	dir := t.TempDir()
	_, err := newClient(w, front.URL, dir).OpenPrefetch(context.Background(), subjects...)
	wantProofError(t, err, "the checkpoint")
	returned := time.Now()
	time.Sleep(600 * time.Millisecond) // what reads not ended would still ask
	mu.Lock()
	at := last
	mu.Unlock()
	if at.After(returned) {
		t.Fatalf("a request reached the server %v after OpenPrefetch returned", at.Sub(returned))
	}
	var kept []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			kept = append(kept, p)
		}
		return nil
	})
	if len(kept) > 0 {
		t.Fatalf("a refused checkpoint kept %q", kept)
	}
}

// A fresh OpenPrefetch of N packages and the repository's upstreams
// makes the requests of an Open and one Prefetch (TestOpenPrefetchRequests),
// and returns with every subject read: reads after it make no request.
func TestOpenPrefetchReadsAhead(t *testing.T) {
	w := indextest.New(t)
	names := packages(20)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	w.Audit(names[0], "1.0.0")
	url, reads := counted(t, servertest.Serve(w), nil)
	subjects := []string{"upstreams"}
	for _, name := range names {
		subjects = append(subjects, "package "+name)
	}
	ctx := context.Background()
	v, err := newClient(w, url, t.TempDir()).OpenPrefetch(ctx, subjects...)
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	if n := reads.n("/api/v1/log/subjects"); n != 3 {
		t.Errorf("%d batch reads, want 3 (the root history with the checkpoint key, the packages and upstreams, then their keys)", n)
	}
	if n := reads.n("/api/v1/log/subject"); n > 0 {
		t.Errorf("%d subjects read one by one, want none (the root history and the checkpoint key are read in one batch)", n)
	}
	before := reads.total()
	if _, err := v.Upstreams(ctx); err != nil {
		t.Fatal(err)
	}
	showAll(t, v, names)
	if after := reads.total(); after != before {
		t.Errorf("%d requests after OpenPrefetch returned, want none: it reads what it was given before it returns", after-before)
	}
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.reads {
		n += k
	}
	return n
}

// A batch answer one of whose documents is not a subject document (a
// count that is not a number) refuses that subject alone: the others are
// proved and kept, as each alone would be (no read of them again), and
// the refused one, read again alone, is refused naming it; offline, it
// was never read.
func TestBatchUndecodableDocument(t *testing.T) {
	w := indextest.New(t)
	names := packages(3)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	spoil := func(d map[string]json.RawMessage) {
		if string(d["subject"]) == `"package acme/p1"` {
			d["count"] = json.RawMessage(`"many"`)
		}
	}
	url, reads := counted(t, servertest.Serve(w), func(path string, _ http.Header, body []byte) []byte {
		switch {
		case strings.HasPrefix(path, "/api/v1/log/subjects"):
			var batch struct {
				Size     int64                        `json:"size"`
				Subjects []map[string]json.RawMessage `json:"subjects"`
			}
			json.Unmarshal(body, &batch)
			for _, d := range batch.Subjects {
				spoil(d)
			}
			out, _ := json.Marshal(batch)
			return out
		case strings.HasPrefix(path, "/api/v1/log/subject?"):
			var d map[string]json.RawMessage
			json.Unmarshal(body, &d)
			spoil(d)
			out, _ := json.Marshal(d)
			return out
		}
		return body
	})
	dir := t.TempDir()
	ctx := context.Background()
	v, err := newClient(w, url, dir).OpenPrefetch(ctx, "package acme/p0", "package acme/p1", "package acme/p2")
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	before := reads.total()
	for _, s := range []string{"package acme/p0", "package acme/p2"} {
		if _, err := v.Subject(ctx, s); err != nil {
			t.Fatalf("%s, which the batch proved: %v", s, err)
		}
	}
	if n := reads.total() - before; n != 0 {
		t.Fatalf("%d reads of the subjects the batch proved, want none", n)
	}
	_, err = v.Subject(ctx, "package acme/p1")
	wantProofError(t, err, `subject "package acme/p1"`)
	if !strings.Contains(err.Error(), "not a subject document") {
		t.Fatalf("the refusal says %q, want that its answer is not a subject document", err)
	}
	off, err := newClient(w, url, dir).OpenOffline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"package acme/p0", "package acme/p2"} {
		if _, err := off.Subject(ctx, s); err != nil {
			t.Fatalf("offline, %s, which the batch proved: %v", s, err)
		}
	}
	if _, err := off.Subject(ctx, "package acme/p1"); !errors.Is(err, light.ErrNotKept) {
		t.Fatalf("offline, the package the batch refused: %v, want ErrNotKept", err)
	}
}

// earlyPaths returns a proxy of honest that records the batch reads'
// paths (with their queries) and answers those asked with no tree size
// (OpenPrefetch's first, asked with the checkpoint) edited by edit.
func earlyPaths(t *testing.T, honest string, edit func(b *wireBatch)) (string, func() []string) {
	var mu sync.Mutex
	var paths []string
	proxy := tamper(t, honest, func(path string, _ http.Header, body []byte) []byte {
		if !strings.HasPrefix(path, "/api/v1/log/subjects") {
			return body
		}
		mu.Lock()
		paths = append(paths, path)
		mu.Unlock()
		if path != "/api/v1/log/subjects" || edit == nil {
			return body
		}
		var b wireBatch
		if err := json.Unmarshal(body, &b); err != nil {
			t.Errorf("the early batch: %v", err)
			return body
		}
		edit(&b)
		out, _ := json.Marshal(b)
		return out
	})
	return proxy, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), paths...)
	}
}

func earlyWorld(t *testing.T) (*indextest.World, []string, []string) {
	w := indextest.New(t)
	names := packages(20)
	var subjects []string
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
		subjects = append(subjects, "package "+name)
	}
	w.Audit(names[0], "1.0.0")
	return w, names, subjects
}

// OpenPrefetch asks for its first batch with the checkpoint, before it
// knows the tree's size (no ?size: the server's latest), and uses that
// answer, checked against the checkpoint as any batch is: the packages
// are not asked again.
func TestOpenPrefetchAsksWithTheCheckpoint(t *testing.T) {
	w, names, subjects := earlyWorld(t)
	url, paths := earlyPaths(t, servertest.Serve(w), nil)
	v, err := newClient(w, url, t.TempDir()).OpenPrefetch(context.Background(), subjects...)
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	got := paths()
	if len(got) != 3 || slices.Index(got, "/api/v1/log/subjects") < 0 || len(slices.DeleteFunc(slices.Clone(got), func(p string) bool { return p == "/api/v1/log/subjects" })) != 2 {
		t.Fatalf("batch reads %q; want 3: the packages with no size, asked with the checkpoint, then at its size the root history with the checkpoint key, and the packages' keys", got)
	}
	showAll(t, v, names)
}

// The server moved between the first batch and the checkpoint (or says
// so): the batch is of another tree than the checkpoint's, so it is not
// used; the packages are asked again at the checkpoint's tree, and read.
func TestOpenPrefetchEarlyBatchOfAnotherTree(t *testing.T) {
	w, names, subjects := earlyWorld(t)
	url, paths := earlyPaths(t, servertest.Serve(w), func(b *wireBatch) {
		b.Size++
		for i := range b.Subjects {
			b.Subjects[i].Size++
		}
	})
	v, err := newClient(w, url, t.TempDir()).OpenPrefetch(context.Background(), subjects...)
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	sized := 0
	for _, p := range paths() {
		if strings.HasPrefix(p, "/api/v1/log/subjects?size=") {
			sized++
		}
	}
	if sized != 3 {
		t.Errorf("batch reads %q; want, at the checkpoint's size, the root history with the checkpoint key, the packages read again, then their keys", paths())
	}
	showAll(t, v, names)
}

// Attack: a man in the middle changes a file of a package in the first
// batch, the one asked before the checkpoint is known. It is refused as
// in any batch (its bytes are not its entry's): the package is read
// again alone, at the checkpoint's tree, and what the view shows is the
// index's.
func TestAttackEarlyBatchChanged(t *testing.T) {
	w, names, subjects := earlyWorld(t)
	proxy, _ := earlyPaths(t, servertest.Serve(w), func(b *wireBatch) {
		f := &b.Subjects[3].Files[0]
		f.Content = append(bytes.Clone(f.Content), ' ')
	})
	var mu sync.Mutex
	again := 0
	proxy = tamper(t, proxy, func(path string, _ http.Header, body []byte) []byte {
		if strings.HasPrefix(path, "/api/v1/log/subject?s="+url.QueryEscape(subjects[3])+"&") {
			mu.Lock()
			again++
			mu.Unlock()
		}
		return body
	})
	v, err := newClient(w, proxy, t.TempDir()).OpenPrefetch(context.Background(), subjects...)
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	if _, err := v.Subject(context.Background(), subjects[3]); err != nil {
		t.Fatalf("the changed package, read again: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if again != 1 {
		t.Errorf("the changed package was read alone %d times, want once (its batch's document refused)", again)
	}
	showAll(t, v, names)
}

// inflight is a transport that counts the requests in progress.
type inflight struct {
	next http.RoundTripper
	n    atomic.Int32
}

func (f *inflight) RoundTrip(r *http.Request) (*http.Response, error) {
	f.n.Add(1)
	defer f.n.Add(-1)
	return f.next.RoundTrip(r)
}

// OpenPrefetch's first batch, asked with the checkpoint, ends with Open:
// against a server that holds that batch's answer and then fails the
// checkpoint, OpenPrefetch returns its error with no request of its own
// still in progress (the batch is cancelled, not left to run on).
func TestOpenPrefetchEndsItsEarlyReads(t *testing.T) {
	w, _, subjects := earlyWorld(t)
	honest, _ := url.Parse(servertest.Serve(w))
	proxy := httputil.NewSingleHostReverseProxy(honest)
	asked := make(chan struct{})
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/log/subjects" && r.URL.RawQuery == "":
			io.Copy(io.Discard, r.Body) // then net/http sees the client leave
			once.Do(func() { close(asked) })
			select { // an answer held until the client leaves
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			http.Error(rw, "late", http.StatusServiceUnavailable)
		case r.URL.Path == "/log/checkpoint":
			select {
			case <-asked:
			case <-time.After(5 * time.Second):
			}
			http.Error(rw, "no checkpoint today", http.StatusServiceUnavailable)
		default:
			proxy.ServeHTTP(rw, r)
		}
	}))
	t.Cleanup(front.Close)
	tr := &inflight{next: http.DefaultTransport.(*http.Transport).Clone()}
	c := newClient(w, front.URL, t.TempDir())
	c.HTTP = &http.Client{Transport: tr}
	_, err := c.OpenPrefetch(context.Background(), subjects...)
	if err == nil || !strings.Contains(err.Error(), "fetching the checkpoint") {
		t.Fatalf("OpenPrefetch: %v, want the checkpoint's failure", err)
	}
	select {
	case <-asked:
	default:
		t.Fatal("the first batch was never asked with the checkpoint: the test tests nothing")
	}
	if n := tr.n.Load(); n != 0 {
		t.Fatalf("%d requests still in progress once OpenPrefetch returned, want none", n)
	}
}

// traced is a transport that records, in order, when each request asks
// for a connection and when it was written ("get PATH", "wrote PATH").
type traced struct {
	next   http.RoundTripper
	mu     sync.Mutex
	events []string
}

func (tr *traced) add(e string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, e)
}

func (tr *traced) RoundTrip(r *http.Request) (*http.Response, error) {
	path := r.URL.RequestURI()
	ctx := httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		GetConn:      func(string) { tr.add("get " + path) },
		WroteRequest: func(httptrace.WroteRequestInfo) { tr.add("wrote " + path) },
	})
	return tr.next.RoundTrip(r.WithContext(ctx))
}

// OpenPrefetch's first batches leave once the checkpoint's request is
// written, not before: none of them can take the connection dialled for
// the checkpoint, which every other read of Open waits for.
func TestOpenPrefetchAsksTheCheckpointFirst(t *testing.T) {
	w, names, subjects := earlyWorld(t)
	tr := &traced{next: http.DefaultTransport.(*http.Transport).Clone()}
	c := newClient(w, servertest.Serve(w), t.TempDir())
	c.HTTP = &http.Client{Transport: tr}
	v, err := c.OpenPrefetch(context.Background(), subjects...)
	if err != nil {
		t.Fatal(err)
	}
	v.Kept()
	tr.mu.Lock()
	events := slices.Clone(tr.events)
	tr.mu.Unlock()
	wrote := slices.Index(events, "wrote /log/checkpoint")
	early := slices.Index(events, "get /api/v1/log/subjects")
	if wrote < 0 || early < 0 {
		t.Fatalf("requests %q: want the checkpoint and a batch with no size", events)
	}
	if early < wrote {
		t.Errorf("requests %q: a first batch asked for a connection before the checkpoint's request was written", events)
	}
	showAll(t, v, names)
}
