package light_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/witness"
	"cairn.dev/cairn/internal/witness/witnesstest"
)

// testWitness starts a cairn witness of w's log over httptest.
func testWitness(t *testing.T, w *indextest.World, name string) (url, vkey string) {
	t.Helper()
	st, err := witness.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	origin := checkpoint.Origin(w.Intro)
	if _, err := st.AddLog(origin, checkpoint.VKey(origin, w.Checkpointer.Public())); err != nil {
		t.Fatal(err)
	}
	ws, err := witness.NewServer(name, indextest.NewSigner(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(ws)
	t.Cleanup(ts.Close)
	return ts.URL, ws.VerifierKey()
}

// Attack: the log's key holder signs the honest tree (same size and root,
// which witnesses cosigned) with a map that omits the vulnerable record,
// and serves it with the reads that map proves. The witness that cosigned
// the honest checkpoint refuses it (one map per tree); a witness that never
// saw the tree cosigns it (it can check only the tree), but the tree's
// last leaf is the map leaf of the honest map: the client that verified
// the honest checkpoint and a client that never saw one both refuse it,
// naming both map roots. Offline, the checkpoint kept is held to the
// quorum, and its map leaf kept with it is checked again.
func TestMapOmitsRecordSplitView(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical"})

	url1, vkey1 := testWitness(t, w, "w1.example")
	url2, vkey2 := testWitness(t, w, "w2.example")
	pol, err := witness.NewPolicy([]string{vkey1, vkey2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	honest := serveWith(t, w, server.Witness{URL: url1, VKey: vkey1})
	a := newClient(w, honest, t.TempDir())
	a.Witnesses = pol
	va := open(t, a)
	if va.Cosigned != 1 {
		t.Fatalf("honest checkpoint cosigned by %d trusted witnesses, want 1", va.Cosigned)
	}

	cp := va.Checkpoint.Checkpoint
	om := omitRecord(t, w, cp, "package acme/fastjson")
	evilCP, evil := om.Checkpoint, om.Note
	noProof := func(int64) (tlog.TreeProof, error) { return nil, nil }
	_, err = witness.Cosign(ctx, nil, url1, cp.Size, evil, noProof)
	var ce *witness.ConflictError
	if !errors.As(err, &ce) || !ce.Fork() {
		t.Fatalf("the witness that cosigned the tree, asked to cosign it with another map: %v; want a 409 at its size", err)
	}
	cos, err := witness.Cosign(ctx, nil, url2, 0, evil, noProof)
	if err != nil {
		t.Fatalf("a witness that never saw the tree: %v", err)
	}
	evil, err = witness.AppendCosignatures(evil, cos)
	if err != nil {
		t.Fatal(err)
	}

	om.Note = evil
	ev := serveForged(w, honest, om)

	honestMap, evilMap := hex.EncodeToString(cp.Map[:]), hex.EncodeToString(evilCP.Map[:])
	refused := func(who string, err error) {
		t.Helper()
		var pe *light.ProofError
		var me *light.MapLeafError
		if !errors.As(err, &pe) || !bytes.Equal(pe.Checkpoint, evil) || !errors.As(err, &me) ||
			!strings.Contains(err.Error(), honestMap) || !strings.Contains(err.Error(), evilMap) || me.Index != cp.Size-1 {
			t.Fatalf("%s, served the honest tree with another map: %v\nwant a *ProofError (the checkpoint as evidence) from a *MapLeafError naming the checkpoint's map %s and the last leaf's %s", who, err, evilMap, honestMap)
		}
	}
	a.BaseURL = ev
	_, err = a.Open(ctx)
	refused("the client that verified the honest checkpoint", err)
	// A client that never saw the honest checkpoint is not fooled either:
	// the map is in the tree the witness cosigned.
	fresh := newClient(w, ev, t.TempDir())
	fresh.Witnesses = pol
	_, err = fresh.Open(ctx)
	refused("a client that never verified a checkpoint", err)
	// A lock naming it, checked against the honest view: the same tree,
	// so the same last leaf, which is not its map's.
	_, err = va.Older(ctx, evil)
	refused("a view checking an older checkpoint (a lock's)", err)
	// The refusal kept the honest checkpoint: offline reads it.
	a.BaseURL = honest
	off, err := a.OpenOffline(ctx)
	if err != nil || string(off.Note) != string(va.Note) {
		t.Fatalf("offline after the refusal: %v", err)
	}

	// Offline, a checkpoint below the configured quorum is refused.
	strict, err := witness.NewPolicy([]string{vkey1, vkey2}, 2)
	if err != nil {
		t.Fatal(err)
	}
	a.Witnesses = strict
	if _, err := a.OpenOffline(ctx); err == nil || !strings.Contains(err.Error(), a.StateDir) {
		t.Fatalf("offline with quorum 2 of a checkpoint cosigned by 1: %v; want refused, naming the state", err)
	}

	// Offline, the map leaf kept with the checkpoint is checked again: one
	// edited in the state is refused.
	a.Witnesses = pol
	if off.MapLeaf == nil || off.MapLeaf.Entry.Root != cp.Map || off.MapLeaf.Entry.Commit != cp.Head {
		t.Fatalf("offline view's map leaf: %+v", off.MapLeaf)
	}
	statePath := filepath.Join(a.StateDir, w.Intro+".checkpoint.json")
	state, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(state, []byte(honestMap), []byte(evilMap), 1)
	if bytes.Equal(edited, state) {
		t.Fatalf("the state %s does not keep the map leaf:\n%s", statePath, state)
	}
	if err := os.WriteFile(statePath, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	var me *light.MapLeafError
	if _, err := a.OpenOffline(ctx); !errors.As(err, &me) || !strings.Contains(err.Error(), statePath) {
		t.Fatalf("offline with a map leaf edited in the state: %v; want a *MapLeafError naming the state", err)
	}
}

// omitRecord is the honest tree of cp signed again with a map that omits
// the last file of subject, the tree's last leaf still the honest map's.
func omitRecord(t *testing.T, w *indextest.World, cp checkpoint.Checkpoint, subject string) *servertest.Forgery {
	t.Helper()
	om := servertest.OmitFile(w, subject, false)
	if c := om.Checkpoint; c.Size != cp.Size || c.Root != cp.Root || c.Head != cp.Head || c.Map == cp.Map {
		t.Fatalf("the forgery of the tree of %+v: %+v; want the same tree with another map", cp, c)
	}
	return om
}

// The attack above against litewitness, a witness written elsewhere that
// checks only the tree: it cosigned the honest checkpoint, and cosigns
// the honest tree signed again with a map that omits the vulnerable
// record (the same tree: nothing for it to refuse). A light client that
// trusts it refuses that checkpoint all the same, even with no memory of
// the honest one: the tree's last leaf is the honest map's.
func TestMapOmitsRecordLitewitness(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical"})

	lw := witnesstest.Start(t, "witness.example.org/lite")
	origin := checkpoint.Origin(w.Intro)
	lw.AddLog(t, origin, checkpoint.VKey(origin, w.Checkpointer.Public()))
	pol, err := witness.NewPolicy([]string{lw.VKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	honest := serveWith(t, w, server.Witness{URL: lw.URL, VKey: lw.VKey})
	a := newClient(w, honest, t.TempDir())
	a.Witnesses = pol
	va := open(t, a)
	if va.Cosigned != 1 {
		t.Fatalf("the honest checkpoint is cosigned by %d trusted witnesses, want litewitness's", va.Cosigned)
	}

	cp := va.Checkpoint.Checkpoint
	om := omitRecord(t, w, cp, "package acme/fastjson")
	evil := om.Note
	noProof := func(int64) (tlog.TreeProof, error) { return nil, nil }
	cos, err := witness.Cosign(ctx, nil, lw.URL, cp.Size, evil, noProof)
	if err != nil {
		t.Fatalf("litewitness, asked to cosign the tree it cosigned with another map: %v (it checks only the tree)", err)
	}
	if evil, err = witness.AppendCosignatures(evil, cos); err != nil {
		t.Fatal(err)
	}
	if n, err := pol.Check(evil, origin); err != nil || n != 1 {
		t.Fatalf("the other map's checkpoint meets the quorum: %d, %v", n, err)
	}

	om.Note = evil
	fresh := newClient(w, serveForged(w, honest, om), t.TempDir())
	fresh.Witnesses = pol
	_, err = fresh.Open(ctx)
	var pe *light.ProofError
	var me *light.MapLeafError
	if !errors.As(err, &pe) || !errors.As(err, &me) || !bytes.Equal(pe.Checkpoint, evil) ||
		!strings.Contains(err.Error(), hex.EncodeToString(om.Checkpoint.Map[:])) || !strings.Contains(err.Error(), hex.EncodeToString(cp.Map[:])) {
		t.Fatalf("a checkpoint litewitness cosigned, of the honest tree with another map: %v\nwant a *MapLeafError naming both map roots", err)
	}
}
