package light_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server/servertest"
)

// signNew makes the server at url sign a checkpoint of w's main, moved
// by one commit: what any other client's read of the checkpoint does.
func signNew(t *testing.T, w *indextest.World, url, name string) {
	t.Helper()
	w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	note, _, err := get(url + "/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Claimed(note); err != nil {
		t.Fatalf("the checkpoint: %v: %s", err, note)
	}
}

func indices(files []index.MemFile) []int64 {
	var out []int64
	for _, f := range files {
		out = append(out, f.Index)
	}
	return out
}

// A checkpoint signed between a view's Open and its reads (every commit
// adds a leaf; every client's read of the checkpoint signs main's new
// head) leaves the view's reads working: they are answered at the view's
// tree, and hold the subject's files at that tree, not the ones added
// since.
func TestReadsAtViewSize(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	url, reads := counted(t, servertest.Serve(w), nil)
	ctx := context.Background()
	v := open(t, newClient(w, url, t.TempDir()))
	w.Audit("acme/fastjson", "1.0.0")
	signNew(t, w, url, "acme/other")
	newer := open(t, newClient(w, url, t.TempDir()))
	if newer.Checkpoint.Size <= v.Checkpoint.Size {
		t.Fatalf("no new checkpoint signed: %d after %d", newer.Checkpoint.Size, v.Checkpoint.Size)
	}
	files, err := v.Subject(ctx, "package acme/fastjson")
	if err != nil {
		t.Fatalf("a read after a new checkpoint was signed: %v", err)
	}
	now, err := newer.Subject(ctx, "package acme/fastjson")
	if err != nil {
		t.Fatal(err)
	}
	if len(now) != len(files)+1 {
		t.Fatalf("the view of size %d reads leaves %v, the newer one (size %d) %v: want the audit added since left out", v.Checkpoint.Size, indices(files), newer.Checkpoint.Size, indices(now))
	}
	for _, f := range files {
		if f.Index >= v.Checkpoint.Size {
			t.Fatalf("leaf %d read by the view of size %d", f.Index, v.Checkpoint.Size)
		}
	}
	v.Prefetch(ctx, "package acme/other", "root")
	if _, err := v.Subject(ctx, "package acme/other"); err != nil {
		t.Fatalf("a batch read after a new checkpoint was signed: %v", err)
	}
	if n := reads.n("/log/checkpoint"); n != 3 {
		t.Fatalf("%d reads of the checkpoint (two views, one signing), want 3: the view opened again", n)
	}
}

// A view older than every tree the server still answers at (410 Gone)
// opens the server's checkpoint again, once, proves it extends its own,
// and reads there the files its own tree holds.
func TestReadsReopenWhenGone(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	url, reads := counted(t, servertest.Serve(w), nil)
	ctx := context.Background()
	v := open(t, newClient(w, url, t.TempDir()))
	w.Audit("acme/fastjson", "1.0.0")
	for _, name := range packages(9) {
		signNew(t, w, url, name)
	}
	if resp, err := http.Get(url + "/api/v1/log/subject?s=root&size=" + itoa(v.Checkpoint.Size)); err != nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("a read at a tree 9 checkpoints old: %v %v, want 410 Gone", resp.Status, err)
	}
	before := reads.n("/log/checkpoint")
	files, err := v.Subject(ctx, "package acme/fastjson")
	if err != nil {
		t.Fatalf("a read at a tree the server no longer answers at: %v", err)
	}
	if len(files) != 2 || files[len(files)-1].Index >= v.Checkpoint.Size {
		t.Fatalf("the view of size %d reads leaves %v, want the descriptor and publish record only", v.Checkpoint.Size, indices(files))
	}
	if n := reads.n("/log/checkpoint") - before; n != 1 {
		t.Fatalf("%d reads of the checkpoint, want one (the view opened again once)", n)
	}
	v.Prefetch(ctx, "package acme/p3", "package acme/p8")
	if files, err := v.Subject(ctx, "package acme/p3"); err != nil || len(files) != 0 {
		t.Fatalf("a package published after the view's tree: %v, %v; want none", indices(files), err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Attack: a man in the middle serves, once, a checkpoint of the tree
// this machine verified (same size and root) with another map, and the
// light reads that map proves: the honest files of every subject but one
// of fastjson's, so that each document read passes its checks and its
// judgment against the checkpoint served. Either the checkpoint's map
// line is swapped in the honest note (no key: the signature does not
// cover it), or the key's holder signs it (the tree's last leaf is the
// honest map's). The client refuses the checkpoint after it read those
// documents (the checkpoint key's and the root's, to judge it), and
// keeps none of them: they would take the place of the honest ones read
// at the same tree, and a read offline later of what was kept online
// would be refused. A document is kept only after its checks and a
// verified checkpoint.
func TestMITMKeepsNothing(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical"})
	honest := servertest.Serve(w)
	ctx := context.Background()
	keySubject := "key " + mustKeyHex(t, keys.ID(w.Checkpointer.Public()))
	for _, tc := range []struct {
		name string
		note func(honestNote []byte, fg *servertest.Forgery) []byte
		want func(err error) bool
	}{
		{"the map line swapped, with no key", func(honestNote []byte, fg *servertest.Forgery) []byte {
			lines := strings.Split(string(honestNote), "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "cairn-map ") {
					lines[i] = "cairn-map " + base64.StdEncoding.EncodeToString(fg.Checkpoint.Map[:])
				}
			}
			return []byte(strings.Join(lines, "\n"))
		}, func(err error) bool {
			var bad *note.InvalidSignatureError
			return errors.As(err, &bad)
		}},
		{"signed by the key's holder", func(_ []byte, fg *servertest.Forgery) []byte {
			return fg.Note
		}, func(err error) bool {
			var me *light.MapLeafError
			return errors.As(err, &me)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			v := open(t, newClient(w, honest, dir))
			if _, err := v.Subject(ctx, "package acme/fastjson"); err != nil {
				t.Fatal(err)
			}
			fg := servertest.OmitFile(w, "package acme/fastjson", false)
			if fg.Checkpoint.Size != v.Checkpoint.Size || fg.Checkpoint.Root != v.Checkpoint.Root {
				t.Fatalf("the forgery is of the tree %d %x, not the one verified (%d %x)", fg.Checkpoint.Size, fg.Checkpoint.Root[:], v.Checkpoint.Size, v.Checkpoint.Root[:])
			}
			fg.Note = tc.note(v.Note, fg)
			mitm, reads := counted(t, serveForged(w, honest, fg), nil)

			_, err := newClient(w, mitm, dir).Open(ctx)
			var pe *light.ProofError
			if !errors.As(err, &pe) || !tc.want(err) {
				t.Fatalf("a checkpoint of the verified tree with another map: %v; want it refused for its map", err)
			}
			if n := reads.n("/api/v1/log/subject"); n < 2 {
				t.Fatalf("%d subject reads before the refusal, want the key's and the root's: nothing was read that could be kept", n)
			}

			off, err := newClient(w, honest, dir).OpenOffline(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, subject := range []string{keySubject, "root", "package acme/fastjson"} {
				if _, err := off.Subject(ctx, subject); err != nil {
					t.Fatalf("offline, %s, read online before the man in the middle: %v", subject, err)
				}
			}
		})
	}
}

func mustKeyHex(t *testing.T, id string) string {
	h, err := keys.HexFromID(id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A batch of which one document fails its checks keeps only the others:
// offline, the refused one was never read (ErrNotKept), not refused
// again from what the attacker served.
func TestBatchKeepsOnlyChecked(t *testing.T) {
	w := indextest.New(t)
	names := packages(2)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	url, _ := counted(t, servertest.Serve(w), func(path string, _ http.Header, body []byte) []byte {
		if !strings.HasPrefix(path, "/api/v1/log/subjects") {
			return body
		}
		var batch struct {
			Size     int64        `json:"size"`
			Subjects []subjectDoc `json:"subjects"`
		}
		json.Unmarshal(body, &batch)
		for k, d := range batch.Subjects {
			if d.Subject == "package acme/p1" {
				d.Files = d.Files[:len(d.Files)-1]
				d.Count = uint64(len(d.Files))
				batch.Subjects[k] = d
			}
		}
		out, _ := json.Marshal(batch)
		return out
	})
	dir := t.TempDir()
	v := open(t, newClient(w, url, dir))
	v.Prefetch(context.Background(), "package acme/p0", "package acme/p1")
	off, err := newClient(w, url, dir).OpenOffline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Subject(context.Background(), "package acme/p0"); err != nil {
		t.Fatalf("offline, the package the batch proved: %v", err)
	}
	if _, err := off.Subject(context.Background(), "package acme/p1"); !errors.Is(err, light.ErrNotKept) {
		t.Fatalf("offline, the package the batch refused: %v, want ErrNotKept", err)
	}
}

// A batch answer with a document more than asked is refused whole: the
// subjects asked are read again one by one.
func TestBatchExtraDocument(t *testing.T) {
	w := indextest.New(t)
	names := packages(3)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	url, reads := counted(t, servertest.Serve(w), func(path string, _ http.Header, body []byte) []byte {
		if !strings.HasPrefix(path, "/api/v1/log/subjects") {
			return body
		}
		var batch struct {
			Size     int64             `json:"size"`
			Subjects []json.RawMessage `json:"subjects"`
		}
		json.Unmarshal(body, &batch)
		batch.Subjects = append(batch.Subjects, batch.Subjects[0])
		out, _ := json.Marshal(batch)
		return out
	})
	v := open(t, newClient(w, url, t.TempDir()))
	v.Prefetch(context.Background(), "package acme/p0", "package acme/p1")
	before := reads.n("/api/v1/log/subject")
	for _, s := range []string{"package acme/p0", "package acme/p1"} {
		if _, err := v.Subject(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads.n("/api/v1/log/subject") - before; n < 2 {
		t.Fatalf("%d single reads after a batch answered with an extra document, want the 2 asked at least (the batch refused)", n)
	}
}

// Attack: a server (or a proxy in front of it) that answers every read
// at an older tree than the checkpoint it signed, one it still holds. A
// read it meets is refused as what it is, naming both sizes, and the
// view does not open again: it was taken for a race ("the server signed
// a new checkpoint during the read; nothing was refused: run the
// command again"), every time, with the checkpoint never moving.
func TestAttackAnswersAtAnOlderTree(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	target := servertest.Serve(w)
	older := open(t, newClient(w, target, t.TempDir()))
	w.Audit("acme/fastjson", "1.0.0")
	signNew(t, w, target, "acme/other")
	proxy := proxyTo(t, target)
	var checkpoints atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/log/checkpoint" {
			checkpoints.Add(1)
		}
		if strings.HasPrefix(r.URL.Path, "/api/v1/log/subject") {
			q := r.URL.Query()
			q.Set("size", itoa(older.Checkpoint.Size))
			r.URL.RawQuery = q.Encode()
		}
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(ts.Close)
	_, err := newClient(w, ts.URL, t.TempDir()).OpenPrefetch(context.Background(), "package acme/fastjson")
	var pe *light.ProofError
	if !errors.As(err, &pe) || errors.Is(err, light.ErrMoved) || !strings.Contains(err.Error(), "answered at log size "+itoa(older.Checkpoint.Size)+", older than the checkpoint's tree (size ") {
		t.Fatalf("reads answered at an older tree: %v, want a refusal naming both sizes", err)
	}
	if n := checkpoints.Load(); n != 1 {
		t.Fatalf("%d reads of the checkpoint: the view opened again, taking the attack for a race", n)
	}
}
