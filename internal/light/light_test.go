package light_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

func TestMain(m *testing.M) { servertest.Main(m) }

// newClient is a light client of the repository served at url, keeping
// its state in dir.
func newClient(w *indextest.World, url, dir string) *light.Client {
	return &light.Client{BaseURL: url, Introduction: w.Intro, StateDir: dir}
}

func open(t *testing.T, c *light.Client) *light.View {
	t.Helper()
	v, err := c.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// judgedWorld is an index with every judgment test 7 of the issue names:
// a record ended by a revoke and one by a supersede, a record whose key
// was revoked after it signed, one by a key whose grant has expired
// since, names internal by publication and by a publish grant, a label
// moved twice.
type judgedWorld struct {
	*indextest.World
	temp, gone keys.Signer
}

func newJudgedWorld(t *testing.T) *judgedWorld {
	w := &judgedWorld{World: indextest.New(t), temp: indextest.NewSigner(), gone: indextest.NewSigner()}
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.1.0"})
	w.Publish(indextest.Package{Name: "acme/log", Version: "2.0.0"})
	aud := w.Audit("acme/fastjson", "1.0.0")
	if _, err := author.Revoke(w.Ctx, w.Repo, aud, "wrong build", w.Security); err != nil {
		t.Fatal(err)
	}
	vuln := w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "high"})
	w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical", Supersedes: vuln.Records[0]})
	// A key whose grant expires a second from now certifies now.
	until := time.Now().Add(time.Second)
	if _, err := author.Grant(w.Ctx, w.Repo, author.KeyGrant{Key: w.temp.Public(), Holder: "contractor", Scopes: []string{"certify:audited"}, Expires: &until}, w.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Certify(w.Ctx, w.Repo, author.Certification{Name: "acme/log", Version: "2.0.0", Kind: record.Audited}, w.temp); err != nil {
		t.Fatal(err)
	}
	// A key revoked after it certified.
	w.Grant(w.gone, "old-ci", "certify:tested", "publish:tools/*")
	if _, err := author.Certify(w.Ctx, w.Repo, author.Certification{Name: "acme/fastjson", Version: "1.1.0", Kind: record.Tested}, w.gone); err != nil {
		t.Fatal(err)
	}
	if _, err := author.RevokeKey(w.Ctx, w.Repo, keys.ID(w.gone.Public()), "CI rebuilt", w.Root); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(until) + 100*time.Millisecond)
	return w
}

// A light client and a full replica of the same server judge the same
// records identically: the record views (status: revoked, superseded,
// issuer key revoked; times; order), the keys (revoked, expired grants),
// internal names.
func TestLightJudgesAsReplica(t *testing.T) {
	w := newJudgedWorld(t)
	url := servertest.Serve(w.World)
	ctx := context.Background()

	// The full replica: cairn pull's.
	rep, err := index.InitReplica(ctx, filepath.Join(t.TempDir(), "replica"), w.Intro)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	if err := remote.Add(rep, remote.Remote{Name: "origin", URL: url, Introduction: w.Intro}); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Pull(ctx, rep, "origin", remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := rep.Catalog(ctx, pulled.Head)
	if err != nil {
		t.Fatal(err)
	}

	v := open(t, newClient(w.World, url, t.TempDir()))
	if v.Checkpoint.Head != pulled.Head {
		t.Fatalf("the light client read head %s, the replica pulled %s", v.Checkpoint.Head, pulled.Head)
	}
	if !v.Unwitnessed || v.Cosigned != 0 {
		t.Fatalf("a client that names no witness: unwitnessed %v, cosigned %d", v.Unwitnessed, v.Cosigned)
	}
	lc, err := v.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, read func(c *index.Catalog) (any, error)) {
		t.Helper()
		a, errA := read(full)
		b, errB := read(lc)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("%s: the replica says error %v, the light client %v", what, errA, errB)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s:\nreplica %+v\nlight   %+v", what, a, b)
		}
	}
	for _, name := range []string{"acme/fastjson", "acme/log", "acme/none"} {
		same("show "+name, func(c *index.Catalog) (any, error) { return c.Show(ctx, name, "") })
		same("versions of "+name, func(c *index.Catalog) (any, error) { return c.Versions(name) })
	}
	for _, s := range []keys.Signer{w.Publisher, w.Security, w.Curator, w.temp, w.gone, w.Checkpointer} {
		id := keys.ID(s.Public())
		same("key "+id, func(c *index.Catalog) (any, error) { return c.Key(id) })
	}
	for _, name := range []string{"acme/new", "tools/x", "acme/fastjson", "other/x"} {
		same("internal "+name, func(c *index.Catalog) (any, error) { return c.Internal(name) })
	}

	// The judgments themselves, not merely equal ones.
	views, err := lc.Show(ctx, "acme/fastjson", "")
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]int{}
	for _, vv := range views {
		for _, r := range vv.Records {
			status[vv.Version+" "+r.Kind+" "+r.Status.String()]++
		}
	}
	for _, want := range []string{"1.0.0 audited revoked", "1.0.0 vulnerable superseded", "1.0.0 vulnerable active", "1.1.0 tested issuer key revoked"} {
		if status[want] != 1 {
			t.Errorf("no record %q among %v", want, status)
		}
	}
	if k, _ := lc.Key(keys.ID(w.temp.Public())); k == nil || len(k.Active(time.Now())) != 0 {
		t.Errorf("the contractor's grant: %+v, want expired now", k)
	}
	if in, err := lc.Internal("tools/x"); err != nil || in {
		t.Errorf("a revoked key's publish grant made tools/x internal: %v, %v", in, err)
	}
}

// The view reads each subject once, and a record's inclusion proof is
// the one a tlog client written elsewhere (torchwood's) computes from
// the same tiles.
func TestRecordInclusion(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	id := w.Audit("acme/fastjson", "1.0.0")
	url := servertest.Serve(w)
	v := open(t, newClient(w, url, t.TempDir()))
	ctx := context.Background()
	rec, err := v.Record(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	cp := v.Checkpoint
	if err := tlog.CheckRecord(rec.Proof, cp.Size, cp.Root, rec.Index, translog.LeafHash(rec.Text)); err != nil {
		t.Fatalf("the proof does not check: %v", err)
	}
	tf, err := torchwood.NewTileFetcher(url + "/log/")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := torchwood.NewClient(tf)
	if err != nil {
		t.Fatal(err)
	}
	entry, proof, err := tc.Entry(ctx, cp.Tree(), rec.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(entry, rec.Text) || !reflect.DeepEqual(proof, rec.Proof) {
		t.Fatalf("torchwood reads leaf %d as %q with proof %x; the light client %q with %x", rec.Index, entry, proof, rec.Text, rec.Proof)
	}
	if _, err := v.Record(ctx, strings.Repeat("0", 64)); err == nil {
		t.Fatal("a record the index does not hold was found")
	}
}

// tamper serves url through a proxy that lets edit change what it
// answers for a path (query included); edit returns the body to serve.
func tamper(t *testing.T, target string, edit func(path string, h http.Header, body []byte) []byte) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(r *http.Response) error {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		r.Body.Close()
		// A compact batch is edited as the JSON one it says (the edits
		// are written for JSON), and sent compact again; an edit the
		// compact encoding cannot carry is sent as JSON, which the
		// client accepts too.
		compact := r.Header.Get("Content-Type") == translog.SubjectsMedia
		if compact {
			body = compactToJSON(t, body)
		}
		body = edit(r.Request.URL.RequestURI(), r.Header, body)
		if compact {
			if c, ok := jsonToCompact(body); ok {
				body = c
			} else {
				r.Header.Set("Content-Type", "application/json")
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Del("Content-Length")
		return nil
	}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	return ts.URL
}

// wireBatch is a batch read's JSON answer, as the server writes it.
type wireBatch struct {
	Size     int64          `json:"size"`
	Subjects []wireBatchDoc `json:"subjects"`
}

type wireBatchDoc struct {
	Subject string            `json:"subject"`
	Size    int64             `json:"size"`
	Count   uint64            `json:"count"`
	Files   []wireBatchFile   `json:"files"`
	Proof   translog.MapProof `json:"proof"`
}

type wireBatchFile struct {
	Index   int64  `json:"index"`
	Entry   string `json:"entry"`
	Content []byte `json:"content"`
}

// compactToJSON returns the JSON answer of a compact batch's.
func compactToJSON(t *testing.T, body []byte) []byte {
	docs, _, err := translog.ParseSubjects(body)
	if err != nil {
		t.Errorf("the server's compact batch: %v", err)
		return body
	}
	var b wireBatch
	for _, d := range docs {
		b.Size = d.Size
		doc := wireBatchDoc{Subject: d.Subject, Size: d.Size, Count: d.Count, Files: []wireBatchFile{}, Proof: d.Proof}
		for _, f := range d.Files {
			doc.Files = append(doc.Files, wireBatchFile{f.Index, string(f.Entry), f.Content})
		}
		b.Subjects = append(b.Subjects, doc)
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Error(err)
	}
	return out
}

// jsonToCompact returns the compact batch of a JSON answer, if it can
// carry it (every document of the batch's size, every member of its
// type).
func jsonToCompact(body []byte) ([]byte, bool) {
	var b wireBatch
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, false
	}
	out := translog.AppendSubjectsHeader(nil, b.Size, len(b.Subjects))
	for _, d := range b.Subjects {
		if d.Size != b.Size {
			return nil, false
		}
		doc := translog.SubjectDoc{Subject: d.Subject, Size: d.Size, Count: d.Count, Proof: d.Proof}
		for _, f := range d.Files {
			doc.Files = append(doc.Files, translog.SubjectFile{Index: f.Index, Entry: []byte(f.Entry), Content: f.Content})
		}
		out = translog.AppendSubject(out, &doc)
	}
	return out, true
}

// subjectDoc is a light read's answer, as an attacker edits it.
type subjectDoc struct {
	Subject string            `json:"subject"`
	Size    int64             `json:"size"`
	Count   uint64            `json:"count"`
	Files   []json.RawMessage `json:"files"`
	Proof   json.RawMessage   `json:"proof"`
}

func wantProofError(t *testing.T, err error, says string) {
	t.Helper()
	var pe *light.ProofError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), says) || len(pe.Checkpoint) == 0 {
		t.Fatalf("err = %v; want a *light.ProofError with its checkpoint, saying %q", err, says)
	}
}

// Attack 1: a server leaves one record out of a package's files (a
// vulnerable record, say) and fixes the count: the light client refuses,
// naming the package. Attack 2: a server serves a record that is not in
// its log, or tiles with other hashes: refused.
func TestAttacksOnReads(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical"})
	audit := w.Audit("acme/fastjson", "1.0.0")
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	honest := servertest.Serve(w)
	ctx := context.Background()

	omit := tamper(t, honest, func(path string, _ http.Header, body []byte) []byte {
		if !strings.HasPrefix(path, "/api/v1/log/subject") || !strings.Contains(path, "fastjson") {
			return body
		}
		var d subjectDoc
		json.Unmarshal(body, &d)
		for i, f := range d.Files {
			if bytes.Contains(f, []byte("vulnerable")) || i == len(d.Files)-1 {
				d.Files = append(d.Files[:i], d.Files[i+1:]...)
				break
			}
		}
		d.Count = uint64(len(d.Files))
		out, _ := json.Marshal(d)
		return out
	})
	v := open(t, newClient(w, omit, t.TempDir()))
	c, err := v.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Show(ctx, "acme/fastjson", "")
	wantProofError(t, err, `subject "package acme/fastjson"`)
	if _, err := c.Show(ctx, "acme/log", ""); err != nil {
		t.Fatalf("an untouched package: %v", err)
	}

	// A record served at a leaf that is another file's.
	moved := tamper(t, honest, func(path string, _ http.Header, body []byte) []byte {
		if !strings.HasPrefix(path, "/api/v1/log/record/") {
			return body
		}
		var f map[string]any
		json.Unmarshal(body, &f)
		f["index"] = f["index"].(float64) - 1
		out, _ := json.Marshal(f)
		return out
	})
	v = open(t, newClient(w, moved, t.TempDir()))
	_, err = v.Record(ctx, audit)
	wantProofError(t, err, "is not in the log the checkpoint signs")

	// An entry bundle with another entry: its leaf hashes are the right
	// edge's level-0 hash tile, which no longer leads to the root.
	flipped := tamper(t, honest, func(path string, _ http.Header, body []byte) []byte {
		if strings.HasPrefix(path, "/log/tile/entries/") {
			body = bytes.Replace(body, []byte("packages/"), []byte("packagez/"), 1)
		}
		return body
	})
	_, err = newClient(w, flipped, t.TempDir()).Open(ctx)
	wantProofError(t, err, "the server's log does not prove the checkpoint's last leaf")
	if strings.Contains(err.Error(), "the key that signed the checkpoint") {
		t.Errorf("a changed entry bundle is blamed on the checkpoint's key: %v", err)
	}
	// A hash tile with other hashes. A client computes the right edge's
	// level-0 tile from the last entry bundle, so the log must be larger
	// than one tile for a record's proof to read one: a log grown by a
	// commit of 300 files (of no subject), signed by the log's key.
	big := servertest.AppendCommit(w, func(commit string, time int64) ([]translog.Entry, [][]byte) {
		var es []translog.Entry
		var cs [][]byte
		for k := range 300 {
			data := []byte(fmt.Sprint(k))
			es = append(es, translog.NewEntry(commit, time, fmt.Sprintf("padding/%03d", k), data))
			cs = append(cs, data)
		}
		return es, cs
	})
	bigURL := serveForged(w, honest, big)
	v = open(t, newClient(w, bigURL, t.TempDir()))
	if _, err := v.Record(ctx, audit); err != nil {
		t.Fatalf("a record of the large log, from its tiles: %v", err)
	}
	flipped = tamper(t, bigURL, func(path string, _ http.Header, body []byte) []byte {
		if path == "/log/tile/0/000" && len(body) > 0 {
			body = append([]byte(nil), body...)
			body[0] ^= 1
		}
		return body
	})
	v = open(t, newClient(w, flipped, t.TempDir()))
	_, err = v.Record(ctx, audit)
	wantProofError(t, err, "is not in the log the checkpoint signs")
}

// forkOf copies w's repository (its checkpoint key granted first) into a
// second world: the same introduction, so that each can grow its own
// history — a server showing two clients two trees of one origin.
func forkOf(t *testing.T, w *indextest.World) *indextest.World {
	if w.Checkpointer == nil {
		w.Checkpointer = indextest.NewSigner()
		w.Grant(w.Checkpointer, "server", "checkpoint")
	}
	dir := filepath.Join(t.TempDir(), "fork")
	if out, err := exec.Command("cp", "-a", w.Dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	r, err := index.Open(w.Ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f := *w
	f.Repo, f.Dir = r, dir
	return &f
}

// Attack 5 and 4: a rollback of the tree, a replayed old checkpoint, a
// consistency proof that does not prove, and a split view are refused
// with both checkpoints as evidence; the client's state does not move.
func TestAttacksOnCheckpoints(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	fork := forkOf(t, w)
	a := servertest.Serve(w)
	state := t.TempDir()
	c := newClient(w, a, state)
	first := open(t, c)

	// A checkpoint replayed after a newer one was seen: a rollback.
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.1.0"})
	second := open(t, c)
	if second.Checkpoint.Size <= first.Checkpoint.Size {
		t.Fatalf("the log did not grow: %d then %d", first.Checkpoint.Size, second.Checkpoint.Size)
	}
	replay := tamper(t, a, func(path string, _ http.Header, body []byte) []byte {
		if path == "/log/checkpoint" {
			return first.Note
		}
		return body
	})
	_, err := newClient(w, replay, state).Open(context.Background())
	wantInconsistent(t, err, "rollback", second.Note, first.Note)

	// A checkpoint too old to show what came after it.
	late := newClient(w, a, t.TempDir())
	late.Now = func() time.Time { return time.Now().Add(checkpoint.DefaultMaxAge + time.Hour) }
	_, err = late.Open(context.Background())
	wantProofError(t, err, "too old")

	// The fork grows another history from the same introduction.
	fork.Publish(indextest.Package{Name: "acme/evil", Version: "1.0.0"})
	b := servertest.Serve(fork)
	other := open(t, newClient(fork, b, t.TempDir()))
	switch {
	case other.Checkpoint.Size == second.Checkpoint.Size:
		_, err = newClient(w, b, state).Open(context.Background())
		wantInconsistent(t, err, "split view", second.Note, other.Note)
	default:
		t.Fatalf("the fork is of size %d, the original %d: want equal sizes for a split view", other.Checkpoint.Size, second.Checkpoint.Size)
	}
	fork.Publish(indextest.Package{Name: "acme/evil", Version: "1.0.1"})
	bigger := open(t, newClient(fork, b, t.TempDir()))
	_, err = newClient(w, b, state).Open(context.Background())
	wantInconsistent(t, err, "inconsistent", second.Note, bigger.Note)

	// Nothing refused was kept: the honest server still follows.
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.2.0"})
	if _, err := c.Open(context.Background()); err != nil {
		t.Fatalf("the honest server after the attacks: %v", err)
	}
}

func wantInconsistent(t *testing.T, err error, problem string, stored, served []byte) {
	t.Helper()
	var ie *light.InconsistentError
	if !errors.As(err, &ie) || ie.Problem != problem || !bytes.Equal(ie.Stored, stored) || !bytes.Equal(ie.Served, served) ||
		!strings.Contains(err.Error(), string(stored)) || !strings.Contains(err.Error(), string(served)) {
		t.Fatalf("err = %v; want a %s with both checkpoints as evidence", err, problem)
	}
}

// The checkpoint's key is the index's word, not the server's: a hint
// naming a key without the checkpoint scope, or no key granted at all,
// and a client pinned to another index, are refused; so is a checkpoint
// below the client's witness quorum.
func TestCheckpointKey(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	a := servertest.Serve(w)
	hint := func(id string) string {
		return tamper(t, a, func(path string, h http.Header, body []byte) []byte {
			if path == "/log/checkpoint" {
				h.Set(light.KeyHeader, id)
			}
			return body
		})
	}
	_, err := newClient(w, hint(keys.ID(w.Publisher.Public())), t.TempDir()).Open(context.Background())
	wantProofError(t, err, "signing a checkpoint needs checkpoint")
	_, err = newClient(w, hint(keys.ID(indextest.NewSigner().Public())), t.TempDir()).Open(context.Background())
	wantProofError(t, err, "is not granted in the index")

	other := indextest.New(t)
	if _, err := newClient(other, a, t.TempDir()).Open(context.Background()); err == nil || !strings.Contains(err.Error(), "another repository") {
		t.Fatalf("a client pinned to another index: %v", err)
	}

	wk, err := witness.VerifierKey("witness.example", indextest.NewSigner().Public())
	if err != nil {
		t.Fatal(err)
	}
	pol, err := witness.NewPolicy([]string{wk}, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(w, a, t.TempDir())
	c.Witnesses = pol
	_, err = c.Open(context.Background())
	var qe *witness.QuorumError
	if !errors.As(err, &qe) {
		t.Fatalf("below the witness quorum: %v, want a *witness.QuorumError", err)
	}
}

// A subject read by many readers at once is fetched once.
func TestSubjectReadOnce(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	a := servertest.Serve(w)
	var mu sync.Mutex
	reads := map[string]int{}
	counted := tamper(t, a, func(path string, _ http.Header, body []byte) []byte {
		if strings.HasPrefix(path, "/api/v1/log/subjects") {
			path += " " + strings.Join(batchSubjects(body), ", ") // a batch by what it asks
		}
		mu.Lock()
		reads[path]++
		mu.Unlock()
		return body
	})
	v := open(t, newClient(w, counted, t.TempDir()))
	c, err := v.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.Show(context.Background(), "acme/fastjson", ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for path, n := range reads {
		if n != 1 {
			t.Errorf("%s read %d times", path, n)
		}
	}
}

// Open proves the checkpoint's last leaf (its map leaf) with one request
// more than before: the last entry bundle, whose leaf hashes are the
// right edge's level-0 hash tile, so that tile is never fetched; the
// consistency proof from the checkpoint verified before reads the tiles
// the map leaf's proof read. Each tile is read once.
func TestOpenMapLeafRequests(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	a := servertest.Serve(w)
	var mu sync.Mutex
	var tiles []string
	counted := tamper(t, a, func(path string, _ http.Header, body []byte) []byte {
		if strings.HasPrefix(path, "/log/tile/") {
			mu.Lock()
			tiles = append(tiles, path)
			mu.Unlock()
		}
		return body
	})
	c := newClient(w, counted, t.TempDir())
	for round := range 2 {
		tiles = nil
		v := open(t, c)
		n := v.Checkpoint.Size
		if n >= 256 {
			t.Fatalf("the log has %d leaves: this test wants them in one tile", n)
		}
		want := fmt.Sprintf("/log/tile/entries/000.p/%d", n)
		if len(tiles) != 1 || tiles[0] != want {
			t.Fatalf("open %d (size %d) read tiles %q, want only %s", round, n, tiles, want)
		}
		if v.MapLeaf == nil || v.MapLeaf.Index != n-1 || v.MapLeaf.Entry.Commit != v.Checkpoint.Head || v.MapLeaf.Entry.Root != v.Checkpoint.Map {
			t.Fatalf("the view's map leaf %+v, checkpoint %+v", v.MapLeaf, v.Checkpoint.Checkpoint)
		}
		w.Publish(indextest.Package{Name: "acme/fastjson", Version: fmt.Sprintf("1.%d.0", round+1)})
	}
}

// forgeRecord is the log of a server whose operator holds the checkpoint
// key and signs a log that breaks the rules: the honest log with one
// more commit, adding the record forged in dir, and its map leaf.
func forgeRecord(w *indextest.World, forged *record.Record, dir string) *servertest.Forgery {
	return servertest.AppendCommit(w, func(commit string, time int64) ([]translog.Entry, [][]byte) {
		return []translog.Entry{translog.NewEntry(commit, time, layout.RecordPath(dir, forged.ID), forged.Raw)}, [][]byte{forged.Raw}
	})
}

// serveForged serves fg, forged from the index the honest server
// serves, and returns its URL.
func serveForged(w *indextest.World, honest string, fg *servertest.Forgery) string {
	f := servertest.NewForger(w, honest)
	f.Serve(fg)
	return f.URL
}

func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

func get(u string) ([]byte, http.Header, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.Header, err
}

// A server whose operator signs a log that breaks the rules — a record
// signed after its key was revoked, one signed after its key's grant
// expired — is refused by the light client when it reads the package,
// and the same history is refused by a full replica's replay: both by
// the same rule, naming the same record (attack 7: one test drives both).
func TestSignedLogBreakingRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rule  string
		setup func(t *testing.T, w *indextest.World) keys.Signer // the key that signs the forged record
	}{
		{"signed after its key was revoked", index.RuleKeyRevoked, func(t *testing.T, w *indextest.World) keys.Signer {
			if _, err := author.RevokeKey(w.Ctx, w.Repo, keys.ID(w.Security.Public()), "left", w.Root); err != nil {
				t.Fatal(err)
			}
			return w.Security
		}},
		{"signed after its grant expired", index.RuleKeyExpired, func(t *testing.T, w *indextest.World) keys.Signer {
			temp := indextest.NewSigner()
			until := time.Now().Add(time.Second)
			if _, err := author.Grant(w.Ctx, w.Repo, author.KeyGrant{Key: temp.Public(), Holder: "contractor", Scopes: []string{"certify:audited"}, Expires: &until}, w.Root); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(until) + 1100*time.Millisecond)
			// The index moves on past the expiry: the forged record's
			// commit comes after it.
			w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
			return temp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := indextest.New(t)
			p := w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
			signer := tc.setup(t, w)
			honest := servertest.Serve(w)
			payload, err := record.Build(record.Audited, []record.Subject{{Name: "acme/fastjson@1.0.0", Digest: map[string]string{"sha256": p.Ref.SHA256}}}, record.CertificationPredicate{Issued: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			forged, err := record.Sign(payload, signer)
			if err != nil {
				t.Fatal(err)
			}
			dir := layout.VersionDir("acme/fastjson", "1.0.0")
			ev := serveForged(w, honest, forgeRecord(w, forged, dir))

			// The light client.
			v := open(t, newClient(w, ev, t.TempDir())) // root and keys read fine
			c, err := v.Catalog()
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Show(context.Background(), "acme/fastjson", "")
			wantProofError(t, err, `subject "package acme/fastjson"`)
			var re *index.RuleError
			if !errors.As(err, &re) || re.Rule != tc.rule || re.Record != forged.ID {
				t.Fatalf("light client: err = %v; want rule %s broken by record %s", err, tc.rule, forged.ID)
			}

			// A full replica of the same history: the honest one, then a
			// commit adding the forged record, one second after the head
			// (as the evil log's entry is).
			err = replayWith(t, w, layout.RecordPath(dir, forged.ID), forged.Raw)
			re = nil
			if !errors.As(err, &re) || re.Rule != tc.rule || re.Record != forged.ID {
				t.Fatalf("full replica: err = %v; want rule %s broken by record %s", err, tc.rule, forged.ID)
			}
		})
	}
}

// replayWith is a full replica's verdict on w's history with one more
// commit, a second after its head, adding content at path.
func replayWith(t *testing.T, w *indextest.World, path string, content []byte) error {
	t.Helper()
	work := filepath.Join(t.TempDir(), "forged")
	git := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", work, "-c", "user.name=mallory", "-c", "user.email=mallory@example.com"}, args...)...)
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "clone", "-q", "--branch", strings.TrimPrefix(index.MainRef, "refs/heads/"), indextest.GitDir(t, w.Repo), work).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	var at int64
	fmt.Sscan(git(nil, "log", "-1", "--format=%ct"), &at)
	if err := os.MkdirAll(filepath.Join(work, filepath.Dir(path)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, path), content, 0o644); err != nil {
		t.Fatal(err)
	}
	git(nil, "add", path)
	date := fmt.Sprintf("@%d +0000", at+1)
	git([]string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}, "commit", "-q", "-m", "forged")
	rep, err := index.InitReplica(w.Ctx, filepath.Join(t.TempDir(), "replica"), w.Intro)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	if _, err := indextest.Git(t, rep, "fetch", "-q", work, "HEAD:"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	_, err = rep.Verify(w.Ctx, true)
	return err
}

// serveWith serves w's index as cairn serve does, submitting its
// checkpoints to witnesses.
func serveWith(t *testing.T, w *indextest.World, witnesses ...server.Witness) string {
	srv, err := server.New(w.Repo, server.Options{CheckpointKey: w.Checkpointer, Witnesses: witnesses, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts.URL
}

// Attack 4, the split view: a server shows one client a history and
// another client a different one of the same origin, both signed by its
// key. A witness both clients trust cosigns the first tree it sees and
// refuses the other, so the light client shown the other refuses it below
// its quorum; one that trusts no witness takes it, and is told so.
func TestSplitViewCaughtByWitness(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	fork := forkOf(t, w)
	st, err := witness.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	origin := checkpoint.Origin(w.Intro)
	if _, err := st.AddLog(origin, checkpoint.VKey(origin, w.Checkpointer.Public())); err != nil {
		t.Fatal(err)
	}
	ws, err := witness.NewServer("w1.example", indextest.NewSigner(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	wts := httptest.NewServer(ws)
	defer wts.Close()
	wit := server.Witness{URL: wts.URL, VKey: ws.VerifierKey()}
	pol, err := witness.NewPolicy([]string{wit.VKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Publish(indextest.Package{Name: "acme/x", Version: "1.0.0"})
	fork.Publish(indextest.Package{Name: "acme/x", Version: "2.0.0"})
	seen, hidden := serveWith(t, w, wit), serveWith(t, fork, wit)

	a := newClient(w, seen, t.TempDir())
	a.Witnesses = pol
	if v := open(t, a); v.Cosigned != 1 || v.Unwitnessed {
		t.Fatalf("the first history: cosigned by %d, unwitnessed %v", v.Cosigned, v.Unwitnessed)
	}
	b := newClient(w, hidden, t.TempDir())
	b.Witnesses = pol
	_, err = b.Open(context.Background())
	var qe *witness.QuorumError
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "\ncairn-head ") {
		t.Fatalf("the other history: %v, want refused below quorum with its checkpoint", err)
	}
	if v := open(t, newClient(w, hidden, t.TempDir())); !v.Unwitnessed {
		t.Fatal("a client that trusts no witness was not told a split view goes unseen")
	}
}
