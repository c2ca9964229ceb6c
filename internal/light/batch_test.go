package light_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server/servertest"
)

// counter counts the requests a proxy of url passes, by path (without
// the query).
type counter struct {
	mu    sync.Mutex
	reads map[string]int
}

func counted(t *testing.T, target string, edit func(path string, h http.Header, body []byte) []byte) (string, *counter) {
	c := &counter{reads: map[string]int{}}
	return tamper(t, target, func(path string, h http.Header, body []byte) []byte {
		c.mu.Lock()
		p, _, _ := strings.Cut(path, "?")
		c.reads[p]++
		c.mu.Unlock()
		if edit != nil {
			return edit(path, h, body)
		}
		return body
	}), c
}

func (c *counter) n(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[path]
}

func packages(n int) []string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("acme/p%d", i))
	}
	return names
}

func showAll(t *testing.T, v *light.View, names []string) {
	t.Helper()
	c, err := v.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := c.Show(context.Background(), name, ""); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// Prefetch reads many subjects in one request (POST
// /api/v1/log/subjects), judged as each alone is: the catalog then reads
// nothing more, and a view offline reads them all from what the batch
// kept.
func TestPrefetchReadsInBatches(t *testing.T) {
	w := indextest.New(t)
	names := packages(5)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	w.Audit(names[0], "1.0.0")
	url, reads := counted(t, servertest.Serve(w), nil)
	dir := t.TempDir()
	v := open(t, newClient(w, url, dir))
	var subjects []string
	for _, name := range names {
		subjects = append(subjects, "package "+name)
	}
	batches := reads.n("/api/v1/log/subjects") // Open's: the root and the checkpoint key
	v.Prefetch(context.Background(), subjects...)
	singles := reads.n("/api/v1/log/subject")
	// One for the packages, one for the keys they name.
	if n := reads.n("/api/v1/log/subjects") - batches; n != 2 {
		t.Fatalf("%d batch reads for %d subjects, want 2 (the packages, then their keys)", n, len(names))
	}
	showAll(t, v, names)
	if n := reads.n("/api/v1/log/subject"); n != singles {
		t.Fatalf("the catalog read %d subjects one by one after they were prefetched", n-singles)
	}
	for _, s := range subjects {
		files, err := v.Subject(context.Background(), s)
		if err != nil || len(files) < 2 {
			t.Fatalf("%s: %d files, %v", s, len(files), err)
		}
	}

	off, err := newClient(w, url, dir).OpenOffline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	showAll(t, off, names)
	if _, err := off.Subject(context.Background(), "package acme/never"); !errors.Is(err, light.ErrNotKept) {
		t.Fatalf("offline, a subject never read: %v, want ErrNotKept", err)
	}
}

// A server that does not read batches (an older one, a static host) is
// read subject by subject.
func TestPrefetchWithoutBatches(t *testing.T) {
	w := indextest.New(t)
	names := packages(3)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	url, reads := counted(t, servertest.Serve(w), nil)
	old := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/log/subjects" {
			http.NotFound(rw, r)
			return
		}
		http.Redirect(rw, r, url+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer old.Close()
	v := open(t, newClient(w, old.URL, t.TempDir()))
	var subjects []string
	for _, name := range names {
		subjects = append(subjects, "package "+name)
	}
	v.Prefetch(context.Background(), subjects...)
	before := reads.n("/api/v1/log/subject")
	showAll(t, v, names)
	if after := reads.n("/api/v1/log/subject"); after != before || before < len(names) {
		t.Fatalf("read one by one: %d single reads by Prefetch, %d more by the catalog", before, after-before)
	}
}

// Attack 1 inside a batch: a server leaves a record out of one package
// of a batch. That package is refused, named; the others of the batch
// are read.
func TestBatchOmission(t *testing.T) {
	w := indextest.New(t)
	names := packages(3)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	w.Certify(author.Certification{Name: "acme/p1", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical"})
	omit := func(d subjectDoc) subjectDoc {
		if d.Subject == "package acme/p1" {
			d.Files = d.Files[:len(d.Files)-1] // the vulnerable record, the last one
			d.Count = uint64(len(d.Files))
		}
		return d
	}
	url, reads := counted(t, servertest.Serve(w), func(path string, _ http.Header, body []byte) []byte {
		return editDocs(path, body, true, omit)
	})
	v := open(t, newClient(w, url, t.TempDir()))
	v.Prefetch(context.Background(), "package acme/p0", "package acme/p1", "package acme/p2")
	singles := reads.n("/api/v1/log/subject")
	showAll(t, v, []string{"acme/p0", "acme/p2"})
	_, err := v.Subject(context.Background(), "package acme/p1")
	wantProofError(t, err, `subject "package acme/p1"`)
	// The batch refused it, and the read tried again (a failed read is
	// forgotten): one more read, of it alone.
	if n := reads.n("/api/v1/log/subject") - singles; n != 1 {
		t.Fatalf("%d single reads after the batch, want 1 (the package it refused)", n)
	}
}

// batchForger answers POST /api/v1/log/subjects as its forger answers
// each subject.
type batchForger struct {
	*servertest.Forger
	size int64 // the forged tree's
}

func (e batchForger) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/log/subjects" {
		e.Forger.ServeHTTP(rw, r)
		return
	}
	var docs []string
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		rec := httptest.NewRecorder()
		e.Forger.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/log/subject?s="+url.QueryEscape(sc.Text()), nil))
		docs = append(docs, rec.Body.String())
	}
	fmt.Fprintf(rw, `{"size":%d,"subjects":[%s]}`, e.size, strings.Join(docs, ","))
}

// A batch judged at once whose one package breaks a rule (a record
// signed after its key was revoked, in a log its operator signed) is
// judged again one subject at a time: that package is refused by the
// rule, naming it; the others of the batch are read.
func TestBatchBreakingRules(t *testing.T) {
	w := indextest.New(t)
	p := w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	if _, err := author.RevokeKey(w.Ctx, w.Repo, keys.ID(w.Security.Public()), "left", w.Root); err != nil {
		t.Fatal(err)
	}
	honest := servertest.Serve(w)
	payload, err := record.Build(record.Audited, []record.Subject{{Name: "acme/fastjson@1.0.0", Digest: map[string]string{"sha256": p.Ref.SHA256}}}, record.CertificationPredicate{Issued: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := record.Sign(payload, w.Security)
	if err != nil {
		t.Fatal(err)
	}
	fg := forgeRecord(w, forged, layout.VersionDir("acme/fastjson", "1.0.0"))
	f := servertest.NewForger(w, honest)
	f.Serve(fg)
	ev := httptest.NewServer(batchForger{f, fg.Checkpoint.Size})
	defer ev.Close()
	url, reads := counted(t, ev.URL, nil)

	v := open(t, newClient(w, url, t.TempDir()))
	batches := reads.n("/api/v1/log/subjects") // Open's: the root and the checkpoint key
	v.Prefetch(context.Background(), "package acme/fastjson", "package acme/log")
	// One for the packages, then the keys they name: in one batch, or
	// (as the packages' documents are proved one after the other, on a
	// loaded machine) one for each package's keys. Never one a subject.
	if n := reads.n("/api/v1/log/subjects") - batches; n < 2 || n > 3 {
		t.Fatalf("%d batch reads, want 2 or 3 (the packages, then their keys)", n)
	}
	_, err = v.Subject(context.Background(), "package acme/fastjson")
	wantProofError(t, err, `subject "package acme/fastjson"`)
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleKeyRevoked || re.Record != forged.ID {
		t.Fatalf("err = %v; want rule %s broken by record %s", err, index.RuleKeyRevoked, forged.ID)
	}
	before := reads.n("/api/v1/log/subject")
	if files, err := v.Subject(context.Background(), "package acme/log"); err != nil || len(files) == 0 {
		t.Fatalf("the package of the batch that breaks no rule: %d files, %v", len(files), err)
	}
	if n := reads.n("/api/v1/log/subject") - before; n != 0 {
		t.Fatalf("the package judged in the batch was read again (%d reads)", n)
	}
}

// BenchmarkPrefetch: a view reading 64 packages (each published and
// audited) with their proofs, judged by the rules, from a server on
// loopback: one batch, its keys and root.
func BenchmarkPrefetch(b *testing.B) {
	w := indextest.New(b)
	names := packages(64)
	var subjects []string
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
		w.Audit(name, "1.0.0")
		subjects = append(subjects, "package "+name)
	}
	url := servertest.Serve(w)
	c := newClient(w, url, "")
	ctx := context.Background()
	for b.Loop() {
		v, err := c.Open(ctx)
		if err != nil {
			b.Fatal(err)
		}
		v.Prefetch(ctx, subjects...)
		for _, s := range subjects {
			if _, err := v.Subject(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A fresh Open and a Prefetch of N packages make a fixed number of
// requests, whatever N (below one batch): the checkpoint; the root
// history and the checkpoint key's subject; the tiles of the map leaf's
// proof; one batch of packages and one of the keys they name. No
// subject is read one by one.
func TestOpenPrefetchRequests(t *testing.T) {
	w := indextest.New(t)
	names := packages(20)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	w.Audit(names[0], "1.0.0")
	w.Audit(names[1], "1.0.0")
	var mu sync.Mutex
	all := map[string]int{}
	url, reads := counted(t, servertest.Serve(w), func(path string, h http.Header, body []byte) []byte {
		mu.Lock()
		all[path]++
		mu.Unlock()
		return body
	})
	v := open(t, newClient(w, url, t.TempDir()))
	var subjects []string
	for _, name := range names {
		subjects = append(subjects, "package "+name)
	}
	v.Prefetch(context.Background(), subjects...)
	showAll(t, v, names)
	mu.Lock()
	total := 0
	for _, n := range all {
		total += n
	}
	mu.Unlock()
	if n := reads.n("/api/v1/log/subject"); n > 0 {
		t.Errorf("%d subjects read one by one, want none (the root history and the checkpoint key are read in one batch): %v", n, all)
	}
	if n := reads.n("/api/v1/log/subjects"); n != 3 {
		t.Errorf("%d batch reads, want 3 (the root history with the checkpoint key, the packages, then their keys): %v", n, all)
	}
	if total > 7 {
		t.Errorf("%d requests for a fresh Open and %d packages, want at most 7: %v", total, len(names), all)
	}
	t.Logf("%d requests: %v", total, all)
}

// editDocs applies change to every subject document of a light read's
// answer (JSON) for path: a batch's, and a single read's if singles is
// set; any other answer is left as it is.
func editDocs(path string, body []byte, singles bool, change func(subjectDoc) subjectDoc) []byte {
	switch {
	case strings.HasPrefix(path, "/api/v1/log/subjects"):
		var batch struct {
			Size     int64        `json:"size"`
			Subjects []subjectDoc `json:"subjects"`
		}
		json.Unmarshal(body, &batch)
		for k, d := range batch.Subjects {
			batch.Subjects[k] = change(d)
		}
		out, _ := json.Marshal(batch)
		return out
	case singles && strings.HasPrefix(path, "/api/v1/log/subject?"):
		var d subjectDoc
		json.Unmarshal(body, &d)
		out, _ := json.Marshal(change(d))
		return out
	}
	return body
}
