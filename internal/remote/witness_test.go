package remote

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

// witnessOf runs a cairn witness of w's index (its checkpoint key) on a
// real HTTP server.
func (w *world) witnessOf(name string) server.Witness {
	w.t.Helper()
	st, err := witness.OpenState(w.t.TempDir())
	if err != nil {
		w.t.Fatal(err)
	}
	origin := checkpoint.Origin(w.intro)
	if _, err := st.AddLog(origin, checkpoint.VKey(origin, w.ckpt.Public())); err != nil {
		w.t.Fatal(err)
	}
	ws, err := witness.NewServer(name, newSigner(w.t), st, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	ts := httptest.NewServer(ws)
	w.t.Cleanup(ts.Close)
	return server.Witness{URL: ts.URL, VKey: ws.VerifierKey()}
}

// trusting makes an empty replica that follows url as "origin", trusting
// the witnesses vkeys with quorum.
func (w *world) trusting(name, url string, quorum int, vkeys ...string) *index.Repo {
	w.t.Helper()
	r, err := index.InitReplica(w.ctx, filepath.Join(w.dir, name), w.intro)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { r.Close() })
	if err := Add(r, Remote{Name: "origin", URL: url, Introduction: w.intro, Witnesses: vkeys, Quorum: quorum}); err != nil {
		w.t.Fatal(err)
	}
	return r
}

// A pull counts the cosignatures of the witnesses the remote trusts,
// each key once, and refuses a checkpoint below the quorum with the
// witnesses found and missing; a witness the server does not submit to
// (unknown to it) adds nothing. A remote with no witnesses, or a quorum
// of 0, is told that a split view cannot be detected.
func TestPullWitnessQuorum(t *testing.T) {
	w := newWorld(t)
	w1, w2 := w.witnessOf("w1.example"), w.witnessOf("w2.example")
	idle := w.witnessOf("idle.example") // trusted by clients, never submitted to
	url := w.serve(w.repo, server.Options{Witnesses: []server.Witness{w1, w2}})

	p, err := Pull(w.ctx, w.trusting("both", url, 2, w1.VKey, w2.VKey, w1.VKey), "origin", Options{})
	if err != nil || p.Cosigned != 2 || p.Unwitnessed {
		t.Fatalf("two of two: %+v, %v", p, err)
	}
	p, err = Pull(w.ctx, w.trusting("none", url, 0), "origin", Options{})
	if err != nil || !p.Unwitnessed || p.Cosigned != 0 {
		t.Fatalf("no witnesses named: %+v, %v; want Unwitnessed", p, err)
	}
	// Witnesses named with a quorum of 0 detect nothing either: one rule.
	p, err = Pull(w.ctx, w.trusting("zero", url, 0, w1.VKey), "origin", Options{})
	if err != nil || !p.Unwitnessed || p.Cosigned != 1 {
		t.Fatalf("a witness named with quorum 0: %+v, %v; want Unwitnessed", p, err)
	}
	c := w.trusting("idle", url, 2, w1.VKey, idle.VKey)
	_, err = Pull(w.ctx, c, "origin", Options{})
	var qe *witness.QuorumError
	var ce *CheckpointError
	if !errors.As(err, &qe) || !errors.As(err, &ce) || len(ce.Evidence) == 0 || !strings.Contains(err.Error(), "SECURITY ERROR") ||
		!strings.Contains(err.Error(), "found: w1.example; missing: idle.example") {
		t.Fatalf("a quorum not met: %v, want a *CheckpointError with a *witness.QuorumError naming both", err)
	}
	if head, _ := c.Head(w.ctx, index.MainRef); head != "" {
		t.Fatalf("main made at %s from a refused pull", head)
	}
	if err := Add(c, Remote{Name: "bad", URL: url, Introduction: w.intro, Witnesses: []string{w1.VKey}, Quorum: 2}); err == nil {
		t.Fatal("a quorum of 2 of 1 witness was accepted")
	}
}

// Attack 4, the split view: a server that shows one client a history and
// another client a different one, both with checkpoints its key signed,
// is caught by a witness both clients trust: the witness cosigns the
// first tree it sees and refuses the other, so the second client's pull
// is refused below quorum.
func TestAttackSplitViewCaughtByWitness(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	wit := w.witnessOf("w1.example")
	// The same index at the same head, then two histories.
	other, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "other"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := indextest.Git(t, other, "fetch", "-q", indextest.GitDir(t, w.repo), index.MainRef+":"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Publish(w.ctx, other, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	seen := w.serve(w.repo, server.Options{Witnesses: []server.Witness{wit}})
	hidden := w.serve(other, server.Options{Witnesses: []server.Witness{wit}})

	if p, err := Pull(w.ctx, w.trusting("a", seen, 1, wit.VKey), "origin", Options{}); err != nil || p.Cosigned != 1 {
		t.Fatalf("the first history: %+v, %v", p, err)
	}
	b := w.trusting("b", hidden, 1, wit.VKey)
	_, err = Pull(w.ctx, b, "origin", Options{})
	var qe *witness.QuorumError
	var ce *CheckpointError
	if !errors.As(err, &qe) || !errors.As(err, &ce) || !strings.Contains(string(ce.Evidence), "\ncairn-head ") {
		t.Fatalf("the other history: %v, want refused below quorum with its checkpoint", err)
	}
	if head, _ := b.Head(w.ctx, index.MainRef); head != "" {
		t.Fatalf("main made at %s from a refused pull", head)
	}
	// Without a witness the same client would have taken it: that is what
	// the warning says.
	if p, err := Pull(w.ctx, w.trusting("blind", hidden, 0), "origin", Options{}); err != nil || !p.Unwitnessed {
		t.Fatalf("without witnesses: %+v, %v", p, err)
	}
}

// Attack 3: a server whose log was tampered with (its leaves are not the
// files of its git history, while its head is) signs a checkpoint of that
// log; every full replica, which computes the log from the history it
// verifies, refuses it with both trees.
func TestAttackCheckpointRootNotHistory(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := w.repo.Verified(w.ctx); err != nil {
		t.Fatal(err)
	}
	// The server's log, rewritten with its last entry changed, at the
	// same head.
	honest, err := w.repo.StoreOf(w.repo.Main())
	if err != nil {
		t.Fatal(err)
	}
	head := honest.Head()
	tmp := filepath.Join(w.dir, "tampered-log")
	forged, err := translog.OpenStore(tmp, index.SubjectsOf)
	if err != nil {
		t.Fatal(err)
	}
	size := honest.Size()
	lastFile := size - 2 // the last commit's last file, before its map leaf
	var files []translog.Entry
	err = honest.Range(0, size, func(i int64, text []byte) error {
		if translog.IsMapEntry(text) {
			me, err := translog.ParseMapEntry(text)
			if err != nil {
				return err
			}
			_, err = forged.AppendCommit(me.Commit, me.Time, files)
			files = nil
			return err
		}
		e, err := translog.ParseEntry(text)
		if err != nil {
			return err
		}
		if i == lastFile {
			e.Size++
		}
		files = append(files, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := forged.Commit(head); err != nil {
		t.Fatal(err)
	}
	forged.Close()
	dir := w.repo.Dir
	w.repo.Close()
	logDir := w.repo.Main().LogDir()
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, logDir); err != nil {
		t.Fatal(err)
	}
	r, err := index.Open(w.ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	url := w.serve(r)

	c := w.trusting("c", url, 0)
	_, perr := Pull(w.ctx, c, "origin", Options{})
	var ce *CheckpointError
	if !errors.As(perr, &ce) || !strings.Contains(perr.Error(), "the checkpoint's tree is not the one its history gives") || len(ce.Evidence) == 0 {
		t.Fatalf("a checkpoint of a tampered log: %v, want a *CheckpointError", perr)
	}
	rm, err := Get(c, "origin")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := c.StoreOf(rm.incoming(c))
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []tlog.Hash{mine.Root(), forgedRoot(t, ce.Evidence)} {
		if !strings.Contains(perr.Error(), fmt.Sprintf("%x", root[:])) {
			t.Fatalf("the error does not name root %x: %v", root[:], perr)
		}
	}
	if head, _ := c.Head(w.ctx, index.MainRef); head != "" {
		t.Fatalf("main made at %s from a refused pull", head)
	}
}

func forgedRoot(t *testing.T, note []byte) tlog.Hash {
	c, err := checkpoint.Claimed(note)
	if err != nil {
		t.Fatal(err)
	}
	return c.Root
}
