package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/witness"
)

// keyNote is a cairn key file as a note signer named origin, its key
// hash the one of the vkey 'cairn key vkey' printed.
type keyNote struct {
	keys.Signer
	name string
	hash uint32
}

func (k keyNote) Name() string    { return k.name }
func (k keyNote) KeyHash() uint32 { return k.hash }

// TestWitnessCommands: a witness run with cairn's commands (vkey,
// add-log with a log key's vkey from 'cairn key vkey', serve, list)
// cosigns a log's checkpoint submitted over HTTP; the cosignature meets a
// policy made of the vkey 'cairn witness vkey' printed; an inconsistent
// checkpoint is refused, and the state says what was cosigned.
func TestWitnessCommands(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	origin := "cairn.dev/index/" + strings.Repeat("ab", 32)
	cairn := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != want {
			t.Fatalf("cairn %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	cairn(exitOK, "key", "new", filepath.Join(dir, "witness.key"))
	cairn(exitOK, "key", "new", filepath.Join(dir, "log.key"))
	wvkey := strings.TrimSpace(cairn(exitOK, "witness", "vkey", "--key", filepath.Join(dir, "witness.key.pub"), "--name", "witness.example.com/w1"))
	lvkey := strings.TrimSpace(cairn(exitOK, "key", "vkey", filepath.Join(dir, "log.key.pub"), "--origin", origin))
	var js struct{ Vkey string }
	if err := json.Unmarshal([]byte(cairn(exitOK, "key", "vkey", filepath.Join(dir, "log.key"), "--origin", origin, "--json")), &js); err != nil || js.Vkey != lvkey {
		t.Errorf("key vkey --json of the private key: %+v, %v; want vkey %s", js, err, lvkey)
	}
	cairn(exitOK, "witness", "add-log", "--state", state, "--origin", origin, "--key", lvkey)

	// The log's key signs checkpoints under the vkey printed.
	lv, err := note.NewVerifier(lvkey)
	if err != nil {
		t.Fatalf("cairn key vkey printed %q: %v", lvkey, err)
	}
	ls, err := keys.LoadPrivate(filepath.Join(dir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer := keyNote{ls, origin, lv.KeyHash()}
	checkpoint := func(n int64, tag string) []byte {
		// A tree of n leaves "tag-i".
		var hashes []tlog.Hash
		reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = hashes[x]
			}
			return out, nil
		})
		for i := int64(0); i < n; i++ {
			hs, err := tlog.StoredHashes(i, fmt.Appendf(nil, "%s-%d", tag, i), reader)
			if err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, hs...)
		}
		root, err := tlog.TreeHash(n, reader)
		if err != nil {
			t.Fatal(err)
		}
		// A cairn index's checkpoint is dated (its witness refuses one
		// that is not).
		signed, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\ncairn-time %d\n", origin, n, root, time.Now().Unix())}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(signed, note.VerifierList(lv)); err != nil {
			t.Fatalf("the log key's vkey does not verify its signature: %v", err)
		}
		return signed
	}

	ctx, stop := context.WithCancel(context.Background())
	ready := filepath.Join(dir, "url.txt")
	served := make(chan int, 1)
	var sout, serr bytes.Buffer
	go func() {
		served <- run(ctx, []string{"witness", "serve", "--key", filepath.Join(dir, "witness.key"), "--name", "witness.example.com/w1",
			"--state", state, "--addr", "127.0.0.1:0", "--ready-file", ready}, &sout, &serr)
	}()
	var url string
	for i := 0; url == "" && i < 500; i++ {
		if b, err := os.ReadFile(ready); err == nil {
			url = strings.TrimSpace(string(b))
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if url == "" {
		stop()
		t.Fatalf("witness serve wrote no ready file (exit %d?)\n%s", <-served, serr.String())
	}

	signed := checkpoint(7, "leaf")
	cosigs, err := witness.Submit(ctx, nil, url, 0, nil, signed)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := witness.AppendCosignatures(signed, cosigs)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := witness.NewPolicy([]string{wvkey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := policy.Check(cosigned, origin); n != 1 || err != nil {
		t.Errorf("the witness's cosignature under the vkey cairn witness vkey printed: %d, %v", n, err)
	}
	// Below quorum is a security refusal: exit 3, with what to do.
	_, err = witness.Policy{Witnesses: policy.Witnesses, Quorum: 1}.Check(signed, origin)
	if code, hint := classify(fmt.Errorf("pull: %w", err)); code != exitRefused || !strings.Contains(hint, "witnesses you trust") {
		t.Errorf("a checkpoint below quorum (%v): exit %d, hint %q", err, code, hint)
	}
	// Another tree of the same size is refused: the split view.
	if _, err := witness.Submit(ctx, nil, url, 7, nil, checkpoint(7, "other")); err == nil {
		t.Error("the witness cosigned another tree of size 7")
	}

	var logs []struct {
		Origin string
		Size   int64
		Hash   string
	}
	if err := json.Unmarshal([]byte(cairn(exitOK, "witness", "list", "--state", state, "--json")), &logs); err != nil || len(logs) != 1 || logs[0].Size != 7 || logs[0].Origin != origin {
		t.Errorf("witness list --json: %+v, %v", logs, err)
	}
	if out := cairn(exitOK, "witness", "list", "--state", state); !strings.Contains(out, origin+"  7  ") {
		t.Errorf("witness list:\n%s", out)
	}
	stop()
	if code := <-served; code != exitOK {
		t.Errorf("witness serve: exit %d after an interrupt\n%s", code, serr.String())
	}
	if !strings.Contains(sout.String(), "vkey "+wvkey) {
		t.Errorf("witness serve does not print the vkey %s:\n%s", wvkey, sout.String())
	}

	// Usage errors say what is missing.
	for _, c := range [][]string{
		{"witness", "list"},
		{"witness", "add-log", "--state", state, "--origin", origin},
		{"witness", "add-log", "--state", state, "--origin", origin, "--key", "not-a-vkey"},
		{"witness", "serve", "--key", filepath.Join(dir, "witness.key"), "--state", state},
		{"witness", "serve", "--name", "witness.example.com/w1", "--state", state},
		{"witness", "vkey", "--key", filepath.Join(dir, "witness.key.pub"), "--name", "has space"},
		{"key", "vkey", filepath.Join(dir, "log.key.pub")},
		{"key", "vkey", filepath.Join(dir, "log.key.pub"), "--origin", "a+b"},
	} {
		cairn(exitUsage, c...)
	}
}
