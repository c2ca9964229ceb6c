package index_test

import (
	"context"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// Two indexes made with the same root keys, holders and threshold within
// one second are two indexes: each has its own introduction, so an act
// prepared for one (bound to its introduction) never applies to the
// other, and their logs' origins differ. Before the introduction carried
// a nonce, both got the same id whenever the clock's second was the same.
func TestInitIntroductionsAreUnique(t *testing.T) {
	ctx := context.Background()
	a, b := newSigner(), newSigner()
	seen := map[string]string{}
	for i := 0; i < 4; i++ {
		dir := filepath.Join(t.TempDir(), "repo")
		r, intro, err := index.Init(ctx, dir, []keys.Signer{a, b}, []string{"r1", "r2"}, 2)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		if other, ok := seen[intro.ID]; ok {
			t.Fatalf("%s and %s, made with the same root keys, share the introduction %s: they are one index to every client", other, dir, intro.ID)
		}
		seen[intro.ID] = dir
	}
}
