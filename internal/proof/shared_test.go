package proof

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// hashes is a tlog.HashReader of stored hashes.
type hashes []tlog.Hash

func (h hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = h[x]
	}
	return out, nil
}

// The memo of a tree accepts exactly the inclusion paths
// tlog.CheckRecord accepts, whatever paths it checked before: every
// valid path of trees of 1 to 70 leaves, each checked after paths that
// share its nodes; and every path with one hash changed, one too many or
// too few, or of another leaf, checked after the valid ones (when the
// memo knows most nodes) — refused, as CheckRecord refuses them.
func TestInclusionMemo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := int64(1); n <= 70; n++ {
		var stored hashes
		leaves := make([]tlog.Hash, n)
		for i := range n {
			leaves[i] = tlog.RecordHash(fmt.Appendf(nil, "leaf %d of %d", i, n))
			hs, err := tlog.StoredHashes(i, []byte(fmt.Sprintf("leaf %d of %d", i, n)), stored)
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, hs...)
		}
		root, err := tlog.TreeHash(n, stored)
		if err != nil {
			t.Fatal(err)
		}
		paths := make([]tlog.RecordProof, n)
		for i := range n {
			if paths[i], err = tlog.ProveRecord(n, i, stored); err != nil {
				t.Fatal(err)
			}
		}
		m := (&DetachedParser{}).memo(tlog.Tree{N: n, Hash: root})
		for _, i := range rng.Perm(int(n)) {
			if err := m.check(paths[i], int64(i), leaves[i]); err != nil {
				t.Fatalf("tree %d, leaf %d: %v", n, i, err)
			}
		}
		same := func(what string, path tlog.RecordProof, i int64, leaf tlog.Hash) {
			t.Helper()
			want := tlog.CheckRecord(path, n, root, i, leaf) == nil
			if got := m.check(path, i, leaf) == nil; got != want {
				t.Fatalf("tree %d, leaf %d, %s: the memo says %v, CheckRecord %v", n, i, what, got, want)
			}
			if want {
				t.Fatalf("tree %d, leaf %d, %s: accepted", n, i, what)
			}
		}
		for i := range n {
			p := paths[i]
			for k := range p {
				bad := append(tlog.RecordProof(nil), p...)
				bad[k][rng.IntN(32)] ^= 1
				same(fmt.Sprintf("hash %d changed", k), bad, i, leaves[i])
			}
			same("a hash more", append(append(tlog.RecordProof(nil), p...), sha256.Sum256(nil)), i, leaves[i])
			if len(p) > 0 {
				same("a hash less", p[:len(p)-1], i, leaves[i])
				same("the first hash left out", p[1:], i, leaves[i])
			}
			if n > 1 {
				j := (i + 1) % n
				same("another leaf's path", paths[j], i, leaves[i])
				same("another leaf's hash", p, i, leaves[j])
			}
			same("an index past the tree", p, n, leaves[i])
		}
	}
}

// The hand reading of a detached proof's extra data accepts nothing the
// JSON decoder refuses, and reads what it accepts as the decoder does:
// checked on the spellings around the one cairn writes (escapes, a
// number or base64 not as cairn writes them, members out of order,
// space) and on whatever the fuzzer makes of them.
func FuzzDetachedExtraByHand(f *testing.F) {
	entry := "3c6253f3818b0625e4c93f377d234f41a764f8fa 1796078820 3c5c728c20801c36c8f2015af56af82c0aab34c18f70d5768e8432259960a3d7 683 packages/4/0/e/5/acme/p171/1.0.0/0030f5bcc530f8d13c43348b5f1209b723607220ea7cd57611599cb72d299626.json\n"
	good, err := marshalDetached(detachedExtra{Entry: entry, MapTime: 1796078820, MapPath: make([]byte, 64)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, s := range []string{
		`{"entry":"a\n","map_time":1,"map_path":""}`,
		`{"entry":"a\u000a","map_time":1,"map_path":""}`,
		`{"entry":"a\\n","map_time":1,"map_path":""}`,
		`{"entry":"a\"\n","map_time":1,"map_path":""}`,
		`{"entry":"é\n","map_time":1,"map_path":""}`,
		`{"entry":"a\n","map_time":01,"map_path":""}`,
		`{"entry":"a\n","map_time":-0,"map_path":""}`,
		`{"entry":"a\n","map_time":1.0,"map_path":""}`,
		`{"entry":"a\n","map_time":1e0,"map_path":""}`,
		`{"entry":"a\n","map_time":+1,"map_path":""}`,
		`{"entry":"a\n","map_time":1,"map_path":"AA=="}`,
		`{"entry":"a\n","map_time":1,"map_path":"AB=="}`,
		`{"entry":"a\n","map_time":1,"map_path":"AA"}`,
		`{"entry":"a\n","map_time":1,"map_path":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"entry":"a\n", "map_time":1,"map_path":""}`,
		`{"map_time":1,"entry":"a\n","map_path":""}`,
		`{"entry":"a\n","map_time":1,"map_path":"","x":1}`,
		`{"entry":"a\n","map_time":1,"map_path":""}` + "\n",
		`{"entry":"a\n","map_time":1,"map_path":"","map_path":""}`,
		`{"entry":"a\n","entry":"b\n","map_time":1,"map_path":""}`,
		"{\"entry\":\"<a>&\x7f\\n\",\"map_time\":1,\"map_path\":\"\"}",
		`{"entry":"a\n","map_time":1,"map_path":"AAAA\nAAAA"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, extra []byte) {
		d, ok := parseDetachedCanonical(extra)
		if !ok {
			return
		}
		// What the hand reading takes is written so, byte for byte.
		if again, err := marshalDetached(d); err != nil || string(again) != string(extra) {
			t.Fatalf("%q: read by hand as %+v, which is written %q (%v)", extra, d, again, err)
		}
		if checkMapPath(d.MapPath) != nil {
			return
		}
		want, err := parseDetachedJSON(extra)
		if err != nil {
			t.Fatalf("%q: read by hand as %+v, refused by the decoder: %v", extra, d, err)
		}
		if d.Entry != want.Entry || d.MapTime != want.MapTime || string(d.MapPath) != string(want.MapPath) {
			t.Fatalf("%q: read by hand as %+v, by the decoder as %+v", extra, d, want)
		}
	})
}
