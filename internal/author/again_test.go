package author

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// The same certification made twice in one second (a command retried at
// once) is the same record, byte for byte: the second finds it in the
// index and adds nothing, successfully. It failed as "rule append-only
// broken … file already exists", with a hint about editing history.
func TestCertifyTwiceInOneSecond(t *testing.T) {
	ctx := context.Background()
	root, alice := newSigner(t), newSigner(t)
	r, _, err := index.Init(ctx, filepath.Join(t.TempDir(), "repo"), []keys.Signer{root}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := Grant(ctx, r, KeyGrant{Key: alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*", "certify:tested"}}, root); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/log\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.txt\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.txt"), []byte("log 1.0.0\n"), 0o644)
	if _, err := Publish(ctx, r, dir, alice); err != nil {
		t.Fatal(err)
	}
	c := Certification{Name: "acme/log", Version: "1.0.0", Kind: record.Tested, Note: "run 1"}
	at(time.Now().Add(time.Second), func() {
		first, err := Certify(ctx, r, c, alice)
		if err != nil || first.Existing {
			t.Fatalf("the first: %+v, %v", first, err)
		}
		again, err := Certify(ctx, r, c, alice)
		if err != nil || !again.Existing || again.Commit != first.Commit || len(again.Records) != 1 || again.Records[0] != first.Records[0] {
			t.Fatalf("the same certification again: %+v, %v; want the first's record found at its commit %s", again, err, first.Commit)
		}
		if head, _ := r.Head(ctx, index.MainRef); head != first.Commit {
			t.Fatalf("main moved to %s", head)
		}
		// Another record in the same second is another record.
		c.Note = "run 2"
		other, err := Certify(ctx, r, c, alice)
		if err != nil || other.Existing || other.Commit == first.Commit {
			t.Fatalf("another certification: %+v, %v", other, err)
		}
	})
}
