package light_test

import (
	"context"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/server/servertest"
)

// Internal names win case-folded for a light client too: a name whose
// lowercase form is published is internal, though no live grant covers
// it, as a full replica judges (the light client cannot list a shard, so
// it asks for the name and its lowercase form: subjects it can prove);
// a live grant covers every case variant of the names it matches.
func TestLightInternalFolded(t *testing.T) {
	w := indextest.New(t)
	w.Grant(w.Publisher, "alice", "publish:corp.example/*")
	w.Grant(indextest.NewSigner(), "gophers", "publish:Other.example/*")
	w.Publish(indextest.Package{Name: "corp.example/greet", Version: "1.0.0"})
	if _, err := author.RevokeKey(context.Background(), w.Repo, keys.ID(w.Publisher.Public()), "left", w.Root); err != nil {
		t.Fatal(err)
	}
	url := servertest.Serve(w)
	lc, err := open(t, newClient(w, url, t.TempDir())).Catalog()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"corp.example/greet":  true,
		"corp.example/Greet":  true,
		"corp.example/GREET":  true,
		"corp.example/other":  false, // alice's key is revoked
		"other.example/Tools": true,  // the gophers' live grant, case-folded
		"other.example/x/v2":  true,
		"example.com/x":       false,
	} {
		if in, err := lc.Internal(name); err != nil || in != want {
			t.Errorf("light Internal(%s) = %v, %v; want %v", name, in, err, want)
		}
	}
}
