package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

// logServed is a server with a checkpoint key, granted, and a few
// packages published.
func logServed(t *testing.T) (*served, []byte, torchwood.Checkpoint) {
	t.Helper()
	ck := signer(t)
	s := newServed(t, Options{CheckpointKey: ck})
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, s.root); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
		publishOne(t, s.fixture, v)
	}
	resp, signed := s.do("GET", "/log/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(CheckpointKeyHeader) != keys.ID(ck.Public()) {
		t.Fatalf("/log/checkpoint: %s, %s %q: %s", resp.Status, CheckpointKeyHeader, resp.Header.Get(CheckpointKeyHeader), signed)
	}
	_, again := s.do("GET", "/api/v1/checkpoint", nil, nil)
	if !bytes.Equal(signed, again) {
		t.Fatalf("/log/checkpoint and /api/v1/checkpoint differ:\n%s\n%s", signed, again)
	}
	// Read as a tlog client written elsewhere reads it: x/mod's note
	// verifier with the vkey, torchwood's checkpoint parser.
	origin := checkpoint.Origin(s.repo.Config.Introduction)
	v, err := note.NewVerifier(checkpoint.VKey(origin, ck.Public()))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("x/mod note: %v\n%s", err, signed)
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil || c.Origin != origin {
		t.Fatalf("torchwood: %+v, %v", c, err)
	}
	return s, signed, c
}

// A tlog-tiles client written elsewhere (torchwood's Client over its
// TileFetcher) reads every entry of a cairn server by its URL alone and
// verifies them against /log/checkpoint's root; the entries are the
// index's files, in index order. Tiles are immutable; past the tree, 404.
func TestLogTilesReadByTorchwood(t *testing.T) {
	s, _, c := logServed(t)
	head, err := s.repo.Head(s.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Extension, "cairn-head "+head+"\n") {
		t.Fatalf("the checkpoint is not of main's head %s: %q", head, c.Extension)
	}
	fetcher, err := torchwood.NewTileFetcher(s.url + "/log/")
	if err != nil {
		t.Fatal(err)
	}
	client, err := torchwood.NewClient(fetcher)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var n int64
	var last []byte
	for i, entry := range client.Entries(context.Background(), c.Tree, 0) {
		n++
		last = entry
		if translog.IsMapEntry(entry) {
			if _, err := translog.ParseMapEntry(entry); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			continue
		}
		e, err := translog.ParseEntry(entry)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		paths = append(paths, e.Path)
	}
	if err := client.Err(); err != nil {
		t.Fatalf("torchwood client: %v", err)
	}
	if n != c.N || c.N == 0 {
		t.Fatalf("read %d entries, the checkpoint has %d", n, c.N)
	}
	// The tree's last leaf is the head's map leaf, with the checkpoint's
	// map root: a witness that checks only the tree covers the map.
	me, err := translog.ParseMapEntry(last)
	if err != nil {
		t.Fatalf("the checkpoint's last leaf: %v", err)
	}
	if !strings.Contains(c.Extension, "cairn-map "+base64.StdEncoding.EncodeToString(me.Root[:])+"\n") || me.Commit != head {
		t.Fatalf("the checkpoint's last leaf %q is not the map leaf of its head and map root: %q", last, c.Extension)
	}
	if !strings.HasPrefix(paths[0], "root/") {
		t.Fatalf("leaf 0 is %s, want the introduction's root record", paths[0])
	}

	resp, _ := s.do("GET", "/log/tile/0/000.p/"+itoa(c.N), nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("Cache-Control") != immutable {
		t.Fatalf("a partial tile: %s, Content-Type %q, Cache-Control %q", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	// Read again, from memory (a bundle the light reads kept first, too):
	// the same bytes and headers.
	subject, _ := s.do("GET", "/api/v1/log/subject?s=root", nil, nil)
	if subject.StatusCode != http.StatusOK {
		t.Fatalf("a subject read: %s", subject.Status)
	}
	for _, p := range []string{"/log/tile/0/000.p/" + itoa(c.N), "/log/tile/entries/000.p/" + itoa(c.N)} {
		var first []byte
		for i := 0; i < 3; i++ {
			resp, body := s.do("GET", p, nil, nil)
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("Cache-Control") != immutable {
				t.Fatalf("%s, read %d: %s, Content-Length %d of %d bytes, headers %v", p, i+1, resp.Status, resp.ContentLength, len(body), resp.Header)
			}
			if i == 0 {
				first = body
			} else if !bytes.Equal(body, first) {
				t.Fatalf("%s, read %d: other bytes than the first read", p, i+1)
			}
		}
	}
	for _, past := range []string{"/log/tile/0/000.p/" + itoa(c.N+1), "/log/tile/0/001", "/log/tile/entries/000", "/log/tile/1/000.p/1", "/log/tile/x", "/log/tile/0/000.p/0"} {
		if resp, body := s.do("GET", past, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s %s, want 404", past, resp.Status, body)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Attack 2, a tile with other hashes: a proxy in front of an honest
// server that changes one entry of a bundle is caught by the same tlog
// client, against the checkpoint's root.
func TestAttackTamperedTileRefusedByClient(t *testing.T) {
	s, _, c := logServed(t)
	target, _ := url.Parse(s.url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/log/tile/entries/") {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body = bytes.Replace(body, []byte("acme"), []byte("evil"), 1)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	ts := httptest.NewServer(proxy)
	defer ts.Close()
	fetcher, err := torchwood.NewTileFetcher(ts.URL + "/log/")
	if err != nil {
		t.Fatal(err)
	}
	client, err := torchwood.NewClient(fetcher)
	if err != nil {
		t.Fatal(err)
	}
	for range client.Entries(context.Background(), c.Tree, 0) {
	}
	if err := client.Err(); err == nil {
		t.Fatal("a changed entry bundle was read without error")
	}
}

// GET /api/v1/log/subject answers every file of a subject with the map
// proof against the served checkpoint: the client's checks (contents
// against entries, the chain, the map root) pass, and a subject the index
// does not hold comes with a proof of its absence.
func TestLogSubject(t *testing.T) {
	s, signed, c := logServed(t)
	sc, err := checkpoint.Claimed(signed)
	if err != nil {
		t.Fatal(err)
	}
	var doc SubjectDoc
	resp, body := s.do("GET", "/api/v1/log/subject?s="+url.QueryEscape("package acme/x"), nil, nil)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("subject: %s %s", resp.Status, body)
	}
	if doc.Subject != "package acme/x" || doc.Size != c.N || doc.Count != uint64(len(doc.Files)) || len(doc.Files) < 3 {
		t.Fatalf("subject doc: %+v", doc)
	}
	var value translog.Value
	for _, f := range doc.Files {
		e, err := translog.ParseEntry([]byte(f.Entry))
		if err != nil {
			t.Fatal(err)
		}
		if e.SHA256 != sha256.Sum256(f.Content) || e.Size != int64(len(f.Content)) {
			t.Fatalf("file %d (%s): the content is not the entry's", f.Index, e.Path)
		}
		value = value.Extend(f.Index, translog.LeafHash([]byte(f.Entry)))
	}
	if err := translog.VerifyMap(sc.Map, doc.Subject, &value, doc.Proof); err != nil {
		t.Fatalf("the map proof: %v", err)
	}
	// One file left out: the proof no longer proves (attack 1, the
	// server's side of it: what the light client checks).
	short := translog.Value{}
	for _, f := range doc.Files[1:] {
		short = short.Extend(f.Index, translog.LeafHash([]byte(f.Entry)))
	}
	if err := translog.VerifyMap(sc.Map, doc.Subject, &short, doc.Proof); !errors.Is(err, translog.ErrMapProof) {
		t.Fatalf("a file left out: %v, want ErrMapProof", err)
	}

	resp, body = s.do("GET", "/api/v1/log/subject?s="+url.QueryEscape("package acme/none"), nil, nil)
	var none SubjectDoc
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &none) != nil || none.Count != 0 || len(none.Files) != 0 {
		t.Fatalf("an absent subject: %s %s", resp.Status, body)
	}
	if err := translog.VerifyMap(sc.Map, none.Subject, nil, none.Proof); err != nil {
		t.Fatalf("the proof of absence: %v", err)
	}
	if resp, _ := s.do("GET", "/api/v1/log/subject", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no subject: %s", resp.Status)
	}
}

// GET /api/v1/log/record/ID gives a record's leaf; its inclusion proof,
// computed from the tiles by a tlog client written elsewhere, checks
// against the checkpoint's root.
func TestLogRecord(t *testing.T) {
	s, signed, c := logServed(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/x\nversion: 3.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source 3.0.0"), 0o644)
	p, err := author.Publish(s.ctx, s.repo, dir, s.alice)
	if err != nil {
		t.Fatal(err)
	}
	// The record is past the checkpoint fetched before: a new one covers it.
	_, signed2 := s.do("GET", "/log/checkpoint", nil, nil)
	if bytes.Equal(signed, signed2) {
		t.Fatal("no new checkpoint after a publish")
	}
	n, err := note.Open(signed2, note.VerifierList(mustVerifier(t, s, signed2)))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil || c2.N <= c.N {
		t.Fatalf("the new checkpoint %+v (%v) does not grow from %d", c2, err, c.N)
	}
	var f LogFile
	resp, body := s.do("GET", "/api/v1/log/record/"+p.Records[0], nil, nil)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &f) != nil {
		t.Fatalf("record: %s %s", resp.Status, body)
	}
	data, _, err := s.repo.Record(s.ctx, p.Records[0])
	if err != nil || !bytes.Equal(data, f.Content) {
		t.Fatalf("the record's content is not the index's (%v)", err)
	}
	fetcher, err := torchwood.NewTileFetcher(s.url + "/log/")
	if err != nil {
		t.Fatal(err)
	}
	client, err := torchwood.NewClient(fetcher)
	if err != nil {
		t.Fatal(err)
	}
	entry, proof, err := client.Entry(context.Background(), c2.Tree, f.Index)
	if err != nil || string(entry) != f.Entry {
		t.Fatalf("torchwood's entry %d: %q, %v; the server said %q", f.Index, entry, err, f.Entry)
	}
	if err := tlog.CheckRecord(proof, c2.N, c2.Hash, f.Index, translog.LeafHash(entry)); err != nil {
		t.Fatalf("inclusion: %v", err)
	}
	if resp, _ := s.do("GET", "/api/v1/log/record/"+strings.Repeat("0", 64), nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown record: %s", resp.Status)
	}
}

func mustVerifier(t *testing.T, s *served, signed []byte) note.Verifier {
	t.Helper()
	ks, err := s.repo.KeysGranted(s.ctx, mustHead(t, s), "checkpoint")
	if err != nil || len(ks) != 1 {
		t.Fatalf("checkpoint keys: %v, %v", ks, err)
	}
	v, err := note.NewVerifier(checkpoint.VKey(checkpoint.Origin(s.repo.Config.Introduction), ed25519.PublicKey(ks[0].Pub)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHead(t *testing.T, s *served) string {
	head, err := s.repo.Head(s.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	return head
}

// A witness that hangs does not stall the log's readers: while the
// server waits on it to cosign a checkpoint of main's new head, GET
// /log/checkpoint and tile reads answer at once from the latest
// checkpoint signed; once the witness gives up, the new one is served.
func TestLogReadsDoNotWaitOnWitness(t *testing.T) {
	ck := signer(t)
	wk, _, _ := ed25519.GenerateKey(nil)
	vk, err := witness.VerifierKey("slow.example", wk)
	if err != nil {
		t.Fatal(err)
	}
	var hanging atomic.Bool
	entered, release := make(chan struct{}, 16), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hanging.Load() {
			entered <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		http.Error(w, "not today", http.StatusServiceUnavailable)
	}))
	defer slow.Close()
	defer close(release)
	s := newServed(t, Options{CheckpointKey: ck, Witnesses: []Witness{{URL: slow.URL, VKey: vk}}})
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, s.root); err != nil {
		t.Fatal(err)
	}
	publishOne(t, s.fixture, "1.0.0")
	resp, before := s.do("GET", "/log/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/log/checkpoint: %s %s", resp.Status, before)
	}
	old, err := checkpoint.Claimed(before)
	if err != nil {
		t.Fatal(err)
	}

	hanging.Store(true)
	publishOne(t, s.fixture, "1.1.0")
	type answer struct {
		status int
		body   []byte
		err    error
	}
	get := func(path string, timeout time.Duration) answer {
		hc := &http.Client{Timeout: timeout}
		resp, err := hc.Get(s.url + path)
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, b, err}
	}
	signing := make(chan answer, 1)
	go func() { signing <- get("/log/checkpoint", time.Minute) }()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the new checkpoint never reached the witness")
	}
	start := time.Now()
	if a := get("/log/checkpoint", 3*time.Second); a.err != nil || a.status != http.StatusOK || !bytes.Equal(a.body, before) {
		t.Fatalf("/log/checkpoint while a witness hangs: %d %v, want the previous checkpoint at once:\n%s", a.status, a.err, a.body)
	}
	tile := "/log/tile/0/000.p/" + itoa(old.Size)
	if a := get(tile, 3*time.Second); a.err != nil || a.status != http.StatusOK || len(a.body) != int(old.Size)*32 {
		t.Fatalf("%s while a witness hangs: %d %v, %d bytes", tile, a.status, a.err, len(a.body))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("reads took %v while a witness hung", d)
	}
	hanging.Store(false)
	release <- struct{}{} // the hanging handler gives up
	a := <-signing
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("the signing read: %d %v %s", a.status, a.err, a.body)
	}
	next, err := checkpoint.Claimed(a.body)
	if err != nil || next.Size <= old.Size {
		t.Fatalf("after the witness gave up: %+v %v, want a checkpoint past size %d", next, err, old.Size)
	}
}

// POST /api/v1/log/subjects answers many subjects of one tree in one
// response, in the order asked, each exactly as GET /api/v1/log/subject
// answers it (its files and its own map proof, present or absent); a
// request for more than MaxSubjects is refused whole.
func TestLogSubjects(t *testing.T) {
	s, _, c := logServed(t)
	asked := []string{"package acme/none", "root", "package acme/x"}
	resp, body := s.do("POST", "/api/v1/log/subjects", strings.NewReader(strings.Join(asked, "\n")+"\n\n"), nil)
	var batch struct {
		Size     int64             `json:"size"`
		Subjects []json.RawMessage `json:"subjects"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &batch) != nil {
		t.Fatalf("subjects: %s %s", resp.Status, body)
	}
	if batch.Size != c.N || len(batch.Subjects) != len(asked) {
		t.Fatalf("subjects: size %d (want %d), %d documents (want %d)", batch.Size, c.N, len(batch.Subjects), len(asked))
	}
	for i, subject := range asked {
		resp, one := s.do("GET", "/api/v1/log/subject?s="+url.QueryEscape(subject), nil, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(bytes.TrimSpace(one), batch.Subjects[i]) {
			t.Errorf("subject %d of the batch:\n%s\nwant the single read's:\n%s", i, batch.Subjects[i], one)
		}
	}
	many := strings.Repeat("root\n", MaxSubjects+1)
	if resp, body := s.do("POST", "/api/v1/log/subjects", strings.NewReader(many), nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d subjects: %s %s, want 413", MaxSubjects+1, resp.Status, body)
	}
	long := strings.Repeat("x", 1025)
	if resp, body := s.do("POST", "/api/v1/log/subjects", strings.NewReader(long), nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a subject of 1025 bytes: %s %s, want 400", resp.Status, body)
	}
}

// The subject documents a server keeps are of one tree: after a new
// checkpoint, a subject is answered at the new tree, with the files
// added since (the single read and the batch alike).
func TestLogSubjectFollowsTree(t *testing.T) {
	s, _, c := logServed(t)
	read := func() (one, batch SubjectDoc) {
		resp, body := s.do("GET", "/api/v1/log/subject?s="+url.QueryEscape("package acme/x"), nil, nil)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &one) != nil {
			t.Fatalf("subject: %s %s", resp.Status, body)
		}
		var b struct{ Subjects []SubjectDoc }
		resp, body = s.do("POST", "/api/v1/log/subjects", strings.NewReader("package acme/x\n"), nil)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &b) != nil || len(b.Subjects) != 1 {
			t.Fatalf("subjects: %s %s", resp.Status, body)
		}
		return one, b.Subjects[0]
	}
	before, _ := read()
	if before.Size != c.N {
		t.Fatalf("size %d, want %d", before.Size, c.N)
	}
	publishOne(t, s.fixture, "3.0.0")
	if resp, body := s.do("GET", "/log/checkpoint", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("checkpoint: %s %s", resp.Status, body)
	}
	one, batch := read()
	for _, d := range []SubjectDoc{one, batch} {
		if d.Size <= before.Size || d.Count <= before.Count || len(d.Files) != int(d.Count) {
			t.Fatalf("after a new checkpoint: size %d, %d files (before: size %d, %d files)", d.Size, d.Count, before.Size, before.Count)
		}
	}
}

// A light read at a stated tree (?size=N) is answered at that tree while
// it is one of the last keptTrees checkpoints' (the single read and the
// batch alike, with the files of that tree only), and 410 Gone after; a
// size that is no number is 400.
func TestLogSubjectAtSize(t *testing.T) {
	s, _, c := logServed(t)
	subject := "?s=" + url.QueryEscape("package acme/x")
	at := func(size int64) (int, SubjectDoc, SubjectDoc) {
		var one SubjectDoc
		resp, body := s.do("GET", "/api/v1/log/subject"+subject+"&size="+strconv.FormatInt(size, 10), nil, nil)
		if resp.StatusCode != http.StatusOK {
			if resp.StatusCode == http.StatusGone && !strings.Contains(string(body), "ask at its size") {
				t.Fatalf("a 410 without its hint: %s", body)
			}
			r2, _ := s.do("POST", "/api/v1/log/subjects?size="+strconv.FormatInt(size, 10), strings.NewReader("package acme/x\n"), nil)
			if r2.StatusCode != resp.StatusCode {
				t.Fatalf("at size %d: GET %s, POST %s", size, resp.Status, r2.Status)
			}
			return resp.StatusCode, one, one
		}
		if json.Unmarshal(body, &one) != nil {
			t.Fatalf("subject: %s", body)
		}
		var b struct{ Subjects []SubjectDoc }
		resp, body = s.do("POST", "/api/v1/log/subjects?size="+strconv.FormatInt(size, 10), strings.NewReader("package acme/x\n"), nil)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &b) != nil || len(b.Subjects) != 1 {
			t.Fatalf("subjects: %s %s", resp.Status, body)
		}
		return http.StatusOK, one, b.Subjects[0]
	}
	code, before, _ := at(c.N)
	if code != http.StatusOK || before.Size != c.N {
		t.Fatalf("at the latest tree: %d, size %d", code, before.Size)
	}
	for k := range keptTrees {
		publishOne(t, s.fixture, fmt.Sprintf("3.0.%d", k))
		if resp, body := s.do("GET", "/log/checkpoint", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("checkpoint: %s %s", resp.Status, body)
		}
		if k == 0 {
			code, one, batch := at(c.N)
			for _, d := range []SubjectDoc{one, batch} {
				if code != http.StatusOK || d.Size != c.N || d.Count != before.Count || len(d.Files) != len(before.Files) {
					t.Fatalf("at the tree before a new checkpoint: %d, size %d, %d files; want size %d, %d files", code, d.Size, d.Count, c.N, before.Count)
				}
			}
			if code, _, _ := at(c.N + 100000); code != http.StatusGone {
				t.Fatalf("at a tree never signed: %d, want 410", code)
			}
		}
	}
	if code, _, _ := at(c.N); code != http.StatusGone {
		t.Fatalf("at a tree %d checkpoints old: %d, want 410", keptTrees, code)
	}
	for _, q := range []string{"abc", "-1", "012"} {
		if resp, _ := s.do("GET", "/api/v1/log/subject"+subject+"&size="+q, nil, nil); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("size=%s: %s, want 400", q, resp.Status)
		}
	}
}
