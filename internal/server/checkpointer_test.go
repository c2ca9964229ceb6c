package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

var testOrigin = checkpoint.Origin(strings.Repeat("a", 64))

// grow appends a commit of n files named by tag to st, with its map leaf
// (n+1 leaves), and commits it at a head made of tag and the new size.
func grow(t *testing.T, st *translog.Store, tag string, n int) {
	t.Helper()
	head := fmt.Sprintf("%040x", st.Size()+st.Staged()+int64(n)+1)
	head = head[:40-len(tag)] + tag
	var es []translog.Entry
	for i := range n {
		data := fmt.Appendf(nil, "%s %d", tag, i)
		es = append(es, translog.NewEntry(head, 1795320000, fmt.Sprintf("labels/%s/%d.json", tag, st.Size()+int64(i)), data))
	}
	if _, err := st.AppendCommit(head, 1795320000, es); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(head); err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T) *translog.Store {
	st, err := translog.OpenStore(t.TempDir(), index.SubjectsOf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func view(t *testing.T, st *translog.Store) logView {
	t.Helper()
	v, err := viewOf(st)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newCkpt(t *testing.T, key keys.Signer, path string, ws []Witness, out *syncBuffer) *checkpointer {
	t.Helper()
	c, err := newCheckpointer(key, testOrigin, time.Hour, ws, http.DefaultClient, slog.New(slog.NewTextHandler(out, nil)), path, path+".copy")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The server signs a checkpoint of each new tree and again once the
// interval has passed, keeps it across restarts, and never signs a tree
// that the last one signed is not a prefix of: a log that shrank, or
// whose leaves changed (a history rewritten behind its back), is refused
// with both checkpoints, and the last one stays the last one signed.
func TestCheckpointerNeverInconsistent(t *testing.T) {
	key := signer(t)
	path := filepath.Join(t.TempDir(), "checkpoint")
	var out syncBuffer
	c := newCkpt(t, key, path, nil, &out)
	st := newStore(t)
	grow(t, st, "a", 3)
	t0 := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)

	c1, note1, err := c.at(context.Background(), view(t, st), t0)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := checkpoint.Open(note1, testOrigin, []ed25519.PublicKey{key.Public()})
	if err != nil || sc.Checkpoint != *c1 || c1.Size != 4 || c1.Root != st.Root() || c1.Head != st.Head() || !c1.Time.Equal(t0) {
		t.Fatalf("first checkpoint %+v (%v), want the store's tree at %s", c1, err, t0)
	}
	if kept, _ := os.ReadFile(path); !bytes.Equal(kept, note1) {
		t.Fatalf("kept %q, want the note served", kept)
	}
	if copied, _ := os.ReadFile(path + ".copy"); !bytes.Equal(copied, note1) {
		t.Fatalf("the log's copy is %q", copied)
	}
	if _, again, _ := c.at(context.Background(), view(t, st), t0.Add(time.Minute)); !bytes.Equal(again, note1) {
		t.Fatal("a minute later, with main unmoved, another checkpoint was signed")
	}
	c2, _, err := c.at(context.Background(), view(t, st), t0.Add(61*time.Minute))
	if err != nil || !c2.Time.Equal(t0.Add(61*time.Minute)) || c2.Size != 4 {
		t.Fatalf("past the interval: %+v, %v; want a new checkpoint of the same tree", c2, err)
	}
	grow(t, st, "a", 2)
	c3, note3, err := c.at(context.Background(), view(t, st), t0.Add(62*time.Minute))
	if err != nil || c3.Size != 7 || c3.Head != st.Head() {
		t.Fatalf("main moved: %+v, %v", c3, err)
	}

	// A restart remembers what it signed: a log of another history, of a
	// smaller size, is refused.
	for name, other := range map[string]func(*translog.Store){
		"rewritten": func(o *translog.Store) { grow(t, o, "b", 6) },
		"shrunk":    func(o *translog.Store) { grow(t, o, "a", 4) },
	} {
		c := newCkpt(t, key, path, nil, &out)
		o := newStore(t)
		other(o)
		_, _, err := c.at(context.Background(), view(t, o), t0.Add(63*time.Minute))
		var ie *InconsistentError
		if !errors.As(err, &ie) || ie.Last != *c3 || ie.Next.Head != o.Head() || !strings.Contains(err.Error(), "SECURITY ERROR") || !bytes.Contains([]byte(err.Error()), note3) {
			t.Fatalf("%s log: %v, want an *InconsistentError with both checkpoints", name, err)
		}
		if kept, _ := os.ReadFile(path); !bytes.Equal(kept, note3) {
			t.Fatalf("%s log: the kept checkpoint changed", name)
		}
		if last, note := c.latest(); *last != *c3 || !bytes.Equal(note, note3) {
			t.Fatalf("%s log: serves %+v", name, last)
		}
	}
	if !strings.Contains(out.String(), "checkpoint refused") {
		t.Fatalf("the refusal was not logged: %s", out.String())
	}
	// The same history, grown: signed.
	c = newCkpt(t, key, path, nil, &out)
	same := newStore(t)
	grow(t, same, "a", 3)
	grow(t, same, "a", 2)
	grow(t, same, "a", 1)
	if c4, _, err := c.at(context.Background(), view(t, same), t0.Add(64*time.Minute)); err != nil || c4.Size != 9 {
		t.Fatalf("the same history grown: %+v, %v", c4, err)
	}
	// A clock that went back does not take the checkpoint's time with it.
	grow(t, same, "a", 1)
	if c5, _, err := c.at(context.Background(), view(t, same), t0); err != nil || !c5.Time.Equal(t0.Add(64*time.Minute)) {
		t.Fatalf("the clock went back: %+v, %v; want the last checkpoint's time", c5, err)
	}
}

// cairnWitness serves a cairn witness of testOrigin's log key on a real
// HTTP server; its state is dir.
func cairnWitness(t *testing.T, name string, logKey keys.Signer) (url, vkey string) {
	t.Helper()
	st, err := witness.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddLog(testOrigin, checkpoint.VKey(testOrigin, logKey.Public())); err != nil {
		t.Fatal(err)
	}
	w, err := witness.NewServer(name, signer(t), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(w)
	t.Cleanup(ts.Close)
	return ts.URL, w.VerifierKey()
}

// Each new checkpoint goes to every witness; the cosignatures that
// verify are served with it. A witness that is down, or whose
// cosignature is not by the key it was configured with, is logged and
// left out. A witness that holds a size the server forgot (a restart)
// answers 409 and gets a proof from its size.
func TestCheckpointerWitnesses(t *testing.T) {
	key := signer(t)
	u1, v1 := cairnWitness(t, "w1.example", key)
	u2, v2 := cairnWitness(t, "w2.example", key)
	u3, _ := cairnWitness(t, "w3.example", key)
	_, v4 := cairnWitness(t, "w4.example", key)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	ws := []Witness{{URL: u1, VKey: v1}, {URL: u2, VKey: v2}, {URL: down.URL, VKey: v2}, {URL: u3, VKey: v4}}
	path := filepath.Join(t.TempDir(), "checkpoint")
	var out syncBuffer
	c := newCkpt(t, key, path, ws, &out)
	st := newStore(t)
	grow(t, st, "a", 3)
	now := time.Now()
	_, note, err := c.at(context.Background(), view(t, st), now)
	if err != nil {
		t.Fatal(err)
	}
	both, err := witness.NewPolicy([]string{v1, v2, v4}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := both.Check(note, testOrigin); err != nil || n != 2 {
		t.Fatalf("cosigned by %d (%v), want w1 and w2:\n%s", n, err, note)
	}
	if _, err := checkpoint.Open(note, testOrigin, []ed25519.PublicKey{key.Public()}); err != nil {
		t.Fatalf("the cosigned note does not open: %v", err)
	}
	for _, want := range []string{"witness=" + down.URL, "witness=" + u3} {
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "a witness did not cosign the checkpoint") {
			t.Fatalf("the log does not name %s:\n%s", want, out.String())
		}
	}

	// A restart takes each witness's size from the sizes kept; with them
	// lost or unreadable, from the cosignatures the checkpoint kept.
	sizes := filepath.Join(filepath.Dir(path), witnessSizesFile)
	restarted := func(want int64) {
		t.Helper()
		c = newCkpt(t, key, path, ws[:2], &out)
		for _, w := range c.witnesses {
			if w.size != want {
				t.Errorf("after a restart, witness %s is believed to hold size %d, want %d", w.URL, w.size, want)
			}
		}
	}
	var kept witnessSizes
	if b, err := os.ReadFile(sizes); err != nil || json.Unmarshal(b, &kept) != nil {
		t.Fatalf("the witnesses' sizes kept: %s, %v", b, err)
	}
	// w2's key is also given at the URL that is down: the witness holds
	// what it cosigned at either. w4's key (at w3's URL) cosigned nothing.
	if want := (witnessSizes{v1: 4, v2: 4, v4: 0}); !maps.Equal(kept, want) {
		t.Errorf("the witnesses' sizes kept: %v, want %v", kept, want)
	}
	restarted(4) // 3 files and the map leaf
	if err := os.WriteFile(sizes, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	restarted(4)
	if !strings.Contains(out.String(), "the witnesses' sizes kept are unreadable") {
		t.Errorf("unreadable sizes not logged:\n%s", out.String())
	}
	// A restart that lost the witnesses' sizes (the file gone, and the
	// checkpoint kept without their cosignatures: a crash while they
	// answered) submits from 0: they answer 409, and get a proof from the
	// size they hold.
	if err := os.Remove(sizes); err != nil {
		t.Fatalf("the witnesses' sizes were not kept: %v", err)
	}
	i := bytes.Index(note, []byte("\n\n— "))
	j := bytes.IndexByte(note[i+2:], '\n')
	if err := os.WriteFile(path, note[:i+2+j+1], 0o644); err != nil {
		t.Fatal(err)
	}
	restarted(0)
	grow(t, st, "a", 300)
	_, note, err = c.at(context.Background(), view(t, st), now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := both.Check(note, testOrigin); err != nil || n != 2 {
		t.Fatalf("after a restart, cosigned by %d (%v), want 2", n, err)
	}
	// What they hold now is kept again.
	restarted(305)
}

// A witness the server trusts answers with its own valid cosignature and
// a bogus line under the name and key hash of another witness, one that
// clients trust: the server keeps only the answering witness's own line
// that verifies, and logs the rest, so the served note still opens for
// a client trusting both (note.Open refuses a bad signature by a key it
// knows).
func TestCheckpointerWitnessInjectsLine(t *testing.T) {
	_, p1, _ := ed25519.GenerateKey(nil)
	_, p2, _ := ed25519.GenerateKey(nil)
	st, err := witness.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := signer(t)
	if _, err := st.AddLog(testOrigin, checkpoint.VKey(testOrigin, key.Public())); err != nil {
		t.Fatal(err)
	}
	w1, err := witness.NewServer("w1.example", keys.NewSigner(p1), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	vk2, err := witness.VerifierKey("w2.example", p2.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	w2, err := witness.ParseWitness(vk2)
	if err != nil {
		t.Fatal(err)
	}
	bogus := make([]byte, 4+8+ed25519.SignatureSize)
	binary.BigEndian.PutUint32(bogus, w2.Verifier().KeyHash())
	binary.BigEndian.PutUint64(bogus[4:], 1)
	injected := "— w2.example " + base64.StdEncoding.EncodeToString(bogus) + "\n"
	// Also a line under w1's own name and key hash that does not verify.
	forged := make([]byte, 4+8+ed25519.SignatureSize)
	w1w, _ := witness.ParseWitness(w1.VerifierKey())
	binary.BigEndian.PutUint32(forged, w1w.Verifier().KeyHash())
	forgedLine := "— w1.example " + base64.StdEncoding.EncodeToString(forged) + "\n"
	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		w1.ServeHTTP(rec, r)
		rw.WriteHeader(rec.Code)
		rw.Write(rec.Body.Bytes())
		if rec.Code == http.StatusOK {
			io.WriteString(rw, injected+forgedLine)
		}
	}))
	defer evil.Close()
	var out syncBuffer
	c := newCkpt(t, key, filepath.Join(t.TempDir(), "checkpoint"), []Witness{{URL: evil.URL, VKey: w1.VerifierKey()}}, &out)
	s := newStore(t)
	grow(t, s, "a", 3)
	_, note, err := c.at(context.Background(), view(t, s), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(note, []byte(injected)) || bytes.Contains(note, []byte(forgedLine)) {
		t.Fatalf("the served note carries a line the witness added in another's name or forged:\n%s", note)
	}
	pol, err := witness.NewPolicy([]string{w1.VerifierKey(), vk2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pol.Check(note, testOrigin); err != nil || n != 1 {
		t.Fatalf("a client trusting w1 and w2, quorum 1: %d cosignatures, %v; note:\n%s", n, err, note)
	}
	if !strings.Contains(out.String(), "dropped") {
		t.Errorf("the dropped lines were not logged:\n%s", out.String())
	}
}

// A checkpoint is kept durably before any witness sees it: when a
// witness gets it, the server's checkpoint file already holds it, so a
// crash then restarts from the tree the witnesses hold, and a history
// rewritten since is refused rather than signed.
func TestCheckpointerKeptBeforeWitnessed(t *testing.T) {
	key := signer(t)
	u, vk := cairnWitness(t, "w1.example", key)
	path := filepath.Join(t.TempDir(), "checkpoint")
	var kept []byte // the checkpoint file as the witness got the submission
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		file, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(body, file) {
			t.Errorf("the witness got a checkpoint not yet kept (%v): file\n%s\nsubmission\n%s", err, file, body)
		}
		kept = file
		resp, err := http.Post(u+"/add-checkpoint", r.Header.Get("Content-Type"), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	var out syncBuffer
	c := newCkpt(t, key, path, []Witness{{URL: proxy.URL, VKey: vk}}, &out)
	st := newStore(t)
	grow(t, st, "a", 3)
	if _, _, err := c.at(context.Background(), view(t, st), time.Now()); err != nil {
		t.Fatal(err)
	}
	grow(t, st, "b", 2)
	next, note, err := c.at(context.Background(), view(t, st), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.witnesses[0].policy.Check(note, testOrigin); err != nil || n != 1 {
		t.Fatalf("not cosigned: %d, %v\n%s", n, err, note)
	}
	if on, _ := os.ReadFile(path); !bytes.Equal(on, note) {
		t.Fatalf("the file does not hold the cosigned note:\n%s\nwant\n%s", on, note)
	}
	// A crash just after the submission: restart from the file as it was.
	crashed := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.WriteFile(crashed, kept, 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := newCkpt(t, key, crashed, nil, &out)
	if l, _ := c2.latest(); l == nil || l.Size != next.Size || l.Root != next.Root {
		t.Fatalf("restarted from %+v, want the tree the witness holds (size %d)", l, next.Size)
	}
	rewritten := newStore(t)
	grow(t, rewritten, "a", 3)
	grow(t, rewritten, "c", 2)
	var inc *InconsistentError
	if _, _, err := c2.at(context.Background(), view(t, rewritten), time.Now().Add(2*time.Hour)); !errors.As(err, &inc) {
		t.Fatalf("a history rewritten after the crash: %v, want an InconsistentError", err)
	}
}

// The checkpoint's head and map root are its tree's last leaf's: a log
// whose last leaf is not its head's map leaf is not signed.
func TestViewNeedsHeadMapLeaf(t *testing.T) {
	st := newStore(t)
	grow(t, st, "a", 2)
	v := view(t, st)
	if v.Head != st.Head() || v.Size != 3 {
		t.Fatalf("view %+v", v)
	}
	// Files appended with no map leaf after them.
	if _, _, err := st.Append(translog.NewEntry(strings.Repeat("d", 40), 1795320000, "labels/x/1.json", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(strings.Repeat("d", 40)); err != nil {
		t.Fatal(err)
	}
	if _, err := viewOf(st); !errors.Is(err, translog.ErrCorrupt) || !strings.Contains(err.Error(), "not a map leaf") {
		t.Fatalf("a log that does not end with a map leaf: %v, want ErrCorrupt", err)
	}
	// A map leaf of another commit than the head.
	o := newStore(t)
	grow(t, o, "a", 2)
	if err := o.Begin(o.Head()); err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(strings.Repeat("e", 40)); err != nil { // moves the head only
		t.Fatal(err)
	}
	if _, err := viewOf(o); !errors.Is(err, translog.ErrCorrupt) || !strings.Contains(err.Error(), "map leaf of") {
		t.Fatalf("a log whose last map leaf is of another commit: %v, want ErrCorrupt", err)
	}
}

// A reader that finds main moved while another caller signs (the server's
// own loop, woken by the push a client just made) gets the checkpoint of
// the head it found, not the one before it, on a server without
// witnesses: it waits for the signer, which only writes. With witnesses,
// which may take up to their timeout, it gets the latest one at once.
func TestCheckpointerReaderWaitsForSigner(t *testing.T) {
	for _, withWitness := range []bool{false, true} {
		t.Run(fmt.Sprintf("witness=%v", withWitness), func(t *testing.T) {
			key := signer(t)
			var ws []Witness
			if withWitness {
				u, vkey := cairnWitness(t, "w.example", key)
				ws = []Witness{{URL: u, VKey: vkey}}
			}
			var out syncBuffer
			c := newCkpt(t, key, filepath.Join(t.TempDir(), "checkpoint"), ws, &out)
			st := newStore(t)
			grow(t, st, "a", 3)
			now := time.Now()
			before, _, err := c.at(context.Background(), view(t, st), now)
			if err != nil {
				t.Fatal(err)
			}
			grow(t, st, "a", 2) // a push landed
			moved := view(t, st)

			c.signing.Lock() // a signer at work
			busy := make(chan struct{})
			testHookSignerBusy = func() { close(busy) }
			t.Cleanup(func() { testHookSignerBusy = nil })
			got := make(chan *checkpoint.Checkpoint, 1)
			go func() {
				l, _, err := c.at(context.Background(), moved, now)
				if err != nil {
					t.Error(err)
				}
				got <- l
			}()
			<-busy
			if withWitness {
				if l := <-got; l == nil || *l != *before {
					t.Errorf("with a witness, the reader got %+v, want the latest signed at once (%+v)", l, before)
				}
				c.signing.Unlock()
				return
			}
			c.signing.Unlock()
			if l := <-got; l == nil || l.Size != moved.Size || l.Head != moved.Head {
				t.Fatalf("the reader got %+v, want the checkpoint of the head it found (size %d, head %s), not the one before (size %d)", l, moved.Size, moved.Head, before.Size)
			}
		})
	}
}
