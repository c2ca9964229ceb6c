package servertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/translog"
)

// Forgery is a log that the holder of an index's checkpoint key forges
// from the honest one (main's, as w's repository holds it now): its
// leaves, the map its checkpoint names, and that checkpoint, signed with
// w.Checkpointer. A Forger serves it. Its git history stays the honest
// one: a forger cannot forge that, every replica verifies it.
type Forgery struct {
	// Checkpoint is the forged checkpoint, and Note it signed by
	// w.Checkpointer. Replace Note (cosigned, tampered) before serving.
	Checkpoint checkpoint.Checkpoint
	Note       []byte
	// Map is the map the checkpoint names.
	Map *translog.Map
	// Omitted is the honest leaf the map leaves out (-1: none).
	Omitted int64
	// Base is the size of the honest tree it was forged from.
	Base int64

	entries [][]byte         // every leaf's entry text
	content map[int64][]byte // the bytes of the leaves added to the honest ones
	hashes  []tlog.Hash      // the stored hashes of entries
}

// OmitFile forges a map of main's log that leaves out the last file of
// subject (a record, say), signed with the real key. With leaf false the
// honest tree (same size and root, which witnesses may have cosigned) is
// signed with that map, its last leaf still the honest map's; with leaf
// true the tree's last leaf (main's map leaf) is written again with the
// forged map's root: a tree of the honest size with another root.
func OmitFile(w *indextest.World, subject string, leaf bool) *Forgery {
	w.T.Helper()
	fg := honestLog(w)
	full := mapOf(fg.entries, -1)
	_, leaves, ok := full.Get(subject)
	if !ok || len(leaves) < 2 {
		w.T.Fatalf("forging a map without the last file of %s: it has files %v", subject, leaves)
	}
	fg.Omitted = leaves[len(leaves)-1]
	fg.Map = mapOf(fg.entries, fg.Omitted)
	last, err := translog.ParseMapEntry(fg.entries[len(fg.entries)-1])
	if err != nil {
		w.T.Fatalf("the honest log's last leaf: %v", err)
	}
	if leaf {
		fg.entries[len(fg.entries)-1] = translog.MapEntry{Commit: last.Commit, Time: last.Time, Root: fg.Map.Root()}.Text()
	}
	fg.sign(w, last.Commit)
	return fg
}

// AppendCommit forges main's log with one more commit, whose entries
// and their contents add makes (given the commit's id and time), and
// its map leaf: a tree that breaks whatever rule the entries break,
// signed with the real key.
func AppendCommit(w *indextest.World, add func(commit string, time int64) ([]translog.Entry, [][]byte)) *Forgery {
	w.T.Helper()
	fg := honestLog(w)
	last, err := translog.ParseMapEntry(fg.entries[len(fg.entries)-1])
	if err != nil {
		w.T.Fatalf("the honest log's last leaf: %v", err)
	}
	commit, t := strings.Repeat("e", 40), last.Time+1
	added, contents := add(commit, t)
	for k, e := range added {
		fg.entries = append(fg.entries, e.Text())
		fg.content[int64(len(fg.entries)-1)] = contents[k]
	}
	fg.Map = mapOf(fg.entries, -1)
	fg.entries = append(fg.entries, translog.MapEntry{Commit: commit, Time: t, Root: fg.Map.Root()}.Text())
	fg.sign(w, commit)
	return fg
}

// honestLog returns a Forgery holding main's log as it is now.
func honestLog(w *indextest.World) *Forgery {
	w.T.Helper()
	lg, err := w.Repo.LogOf(w.Repo.Main())
	if err != nil {
		w.T.Fatal(err)
	}
	fg := &Forgery{Omitted: -1, Base: lg.Size(), content: map[int64][]byte{}}
	if err := lg.Range(0, lg.Size(), func(_ int64, text []byte) error {
		fg.entries = append(fg.entries, bytes.Clone(text))
		return nil
	}); err != nil {
		w.T.Fatal(err)
	}
	if len(fg.entries) == 0 {
		w.T.Fatal("forging an empty log")
	}
	return fg
}

// mapOf is the map of entries, leaving out the leaf omit (-1: none).
func mapOf(entries [][]byte, omit int64) *translog.Map {
	m := translog.NewMap()
	for i, text := range entries {
		if int64(i) == omit || translog.IsMapEntry(text) {
			continue
		}
		p, err := translog.ParseEntry(text)
		if err != nil {
			continue // not a file: of no subject
		}
		for _, s := range index.SubjectsOf(p.Path) {
			m.Add(s, int64(i), translog.LeafHash(text))
		}
	}
	return m
}

// sign computes the forged tree and signs its checkpoint, of head.
func (fg *Forgery) sign(w *indextest.World, head string) {
	w.T.Helper()
	hr := fg.hashReader()
	for i, text := range fg.entries {
		hs, err := tlog.StoredHashes(int64(i), text, hr)
		if err != nil {
			w.T.Fatal(err)
		}
		fg.hashes = append(fg.hashes, hs...)
	}
	size := int64(len(fg.entries))
	root, err := tlog.TreeHash(size, hr)
	if err != nil {
		w.T.Fatal(err)
	}
	fg.Checkpoint = checkpoint.Checkpoint{Origin: checkpoint.Origin(w.Intro), Size: size, Root: root, Map: fg.Map.Root(), Head: head, Time: time.Now().UTC().Truncate(time.Second)}
	if fg.Note, err = checkpoint.Sign(fg.Checkpoint, w.Checkpointer); err != nil {
		w.T.Fatal(err)
	}
}

func (fg *Forgery) hashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = fg.hashes[x]
		}
		return out, nil
	})
}

// Prove is the forged tree's consistency proof from the tree of old
// leaves, as a witness is sent it (witness.ProveFunc).
func (fg *Forgery) Prove(old int64) (tlog.TreeProof, error) {
	return tlog.ProveTree(fg.Checkpoint.Size, old, fg.hashReader())
}

// Forger is the server of an index whose operator holds the checkpoint
// key. Until Serve is called it passes everything to the honest server;
// then it serves the forgery: its checkpoint (Note), tiles, and subject
// reads that its map proves (the honest files at its base tree, without
// the one it omits, with those it added), one by one (a batch read is
// 404). Everything else (git, blobs, records) is the honest server's.
type Forger struct {
	URL string

	honest string
	proxy  *httputil.ReverseProxy
	keyID  string
	forged atomic.Pointer[Forgery]
}

// NewForger starts a forger in front of the honest server of w's index;
// it stops with the test.
func NewForger(w *indextest.World, honest string) *Forger {
	w.T.Helper()
	u, err := url.Parse(honest)
	if err != nil {
		w.T.Fatal(err)
	}
	f := &Forger{honest: honest, proxy: httputil.NewSingleHostReverseProxy(u), keyID: keys.ID(w.Checkpointer.Public())}
	ts := httptest.NewServer(f)
	w.T.Cleanup(ts.Close)
	f.URL = ts.URL
	return f
}

// Serve makes the forger serve fg from now on.
func (f *Forger) Serve(fg *Forgery) { f.forged.Store(fg) }

// ServeHTTP serves the forgery, or the honest server before Serve.
func (f *Forger) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	fg := f.forged.Load()
	if fg == nil {
		f.proxy.ServeHTTP(rw, r)
		return
	}
	switch {
	case r.URL.Path == "/log/checkpoint":
		rw.Header().Set(server.CheckpointKeyHeader, f.keyID)
		rw.Write(fg.Note)
	case r.URL.Path == "/api/v1/log/subjects":
		http.NotFound(rw, r) // read one by one
	case r.URL.Path == "/api/v1/log/subject":
		out, err := f.subject(fg, r.URL.Query().Get("s"))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		rw.Write(out)
	case strings.HasPrefix(r.URL.Path, "/log/"):
		tile, err := torchwood.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/log/"))
		if err != nil {
			http.NotFound(rw, r)
			return
		}
		if tile.L == -1 {
			if tile.N*torchwood.TileWidth+int64(tile.W) > int64(len(fg.entries)) {
				http.NotFound(rw, r)
				return
			}
			var b []byte
			for _, text := range fg.entries[tile.N*torchwood.TileWidth : tile.N*torchwood.TileWidth+int64(tile.W)] {
				b, _ = torchwood.AppendTileEntry(b, text)
			}
			rw.Write(b)
			return
		}
		data, err := tlog.ReadTileData(tile, fg.hashReader())
		if err != nil {
			http.NotFound(rw, r)
			return
		}
		rw.Write(data)
	default:
		f.proxy.ServeHTTP(rw, r) // git, blobs, records: the honest ones
	}
}

// subject is the forgery's document of subject: the honest server's
// files of it at the base tree (asked after its checkpoint, so that it
// has signed that tree), without the omitted one, with the added ones,
// and the forged map's proof.
func (f *Forger) subject(fg *Forgery, subject string) ([]byte, error) {
	if _, err := f.get("/log/checkpoint"); err != nil {
		return nil, err
	}
	body, err := f.get(fmt.Sprintf("/api/v1/log/subject?s=%s&size=%d", url.QueryEscape(subject), fg.Base))
	if err != nil {
		return nil, err
	}
	var d server.SubjectDoc
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("the honest server's document of %s: %w", subject, err)
	}
	files := d.Files[:0]
	for _, file := range d.Files {
		if file.Index != fg.Omitted {
			files = append(files, file)
		}
	}
	value, leaves, _ := fg.Map.Get(subject)
	for _, i := range leaves {
		if data, ok := fg.content[i]; ok {
			files = append(files, server.LogFile{Index: i, Entry: string(fg.entries[i]), Content: data})
		}
	}
	d.Files, d.Count, d.Size = files, value.Count, fg.Checkpoint.Size
	d.Proof = fg.Map.Prove(subject)
	return json.Marshal(d)
}

// get reads path of the honest server; an answer other than 200 is an
// error.
func (f *Forger) get(path string) ([]byte, error) {
	resp, err := http.Get(f.honest + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("the honest server, GET %s: %s: %s", path, resp.Status, body)
	}
	return body, err
}
