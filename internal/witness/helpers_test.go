package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http/httptest"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/keys"
)

// tree is a real RFC 6962 tree, kept in memory with x/mod's tlog.
type tree struct {
	hashes []tlog.Hash // stored hashes, as tlog.StoredHashIndex lays them out
	n      int64
}

// newTree returns a tree of the leaves prefix-0, prefix-1, … and then
// other-K, … up to size n, where leaves from fork on are named by other.
func newTree(t testing.TB, n, fork int64, other string) *tree {
	t.Helper()
	tr := &tree{}
	for i := int64(0); i < n; i++ {
		leaf := fmt.Sprintf("leaf-%d", i)
		if i >= fork {
			leaf = fmt.Sprintf("%s-%d", other, i)
		}
		tr.add(t, leaf)
	}
	return tr
}

func (tr *tree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(tr.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = tr.hashes[x]
	}
	return out, nil
}

func (tr *tree) add(t testing.TB, leaf string) {
	hs, err := tlog.StoredHashes(tr.n, []byte(leaf), tr)
	if err != nil {
		t.Fatal(err)
	}
	tr.hashes = append(tr.hashes, hs...)
	tr.n++
}

// root returns the tree of the first n leaves.
func (tr *tree) root(t testing.TB, n int64) tlog.Tree {
	t.Helper()
	h, err := tlog.TreeHash(n, tr)
	if err != nil {
		t.Fatal(err)
	}
	return tlog.Tree{N: n, Hash: h}
}

// proof returns the consistency proof from size old to size n.
func (tr *tree) proof(t testing.TB, n, old int64) tlog.TreeProof {
	t.Helper()
	p, err := tlog.ProveTree(n, old, tr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// prover is tr's ProveFunc for its size n.
func (tr *tree) prover(n int64) ProveFunc {
	return func(old int64) (tlog.TreeProof, error) { return tlog.ProveTree(n, old, tr) }
}

// testLog is a log: an origin and the key that signs its checkpoints.
type testLog struct {
	origin string
	vkey   string
	signer note.Signer
}

func newTestLog(t testing.TB, origin string) testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return testLog{origin, vkey, s}
}

// checkpoint returns the log's signed checkpoint of tr, with an
// extension line as cairn's checkpoints have.
func (l testLog) checkpoint(t testing.TB, tr tlog.Tree) []byte {
	t.Helper()
	text := fmt.Sprintf("%s\n%d\n%s\ncairn-time 1700000000\n", l.origin, tr.N, tr.Hash)
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// testWitness is a cairn witness serving over httptest.
type testWitness struct {
	*Server
	state *State
	key   ed25519.PrivateKey
	name  string
	url   string
}

// newTestWitness starts a witness named name that witnesses logs, with
// its state in a new directory.
func newTestWitness(t testing.TB, name string, logs ...testLog) *testWitness {
	t.Helper()
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if _, err := st.AddLog(l.origin, l.vkey); err != nil {
			t.Fatal(err)
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(name, keys.NewSigner(priv), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &testWitness{Server: s, state: st, key: priv, name: name, url: hs.URL}
}

// witness is the trusted-witness entry of w.
func (w *testWitness) witness() Witness {
	return Witness{Name: w.name, Key: w.key.Public().(ed25519.PublicKey)}
}

// logState returns what w holds for origin.
func (w *testWitness) logState(t testing.TB, origin string) Log {
	t.Helper()
	l, err := w.state.Log(origin)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
