package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "gocloud.dev/blob/fileblob"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index/indextest"
)

// Attack: a project names a path: repository (shipped beside it) whose
// cairn.json names its blob store with ?create_dir=true: opening it for
// a lock would make any directory the URL names. The repository is
// refused before it is opened, naming its cairn.json.
func TestPathRepositoryBlobsWriteRefused(t *testing.T) {
	org := indextest.New(t)
	cfg := filepath.Join(org.Dir, "cairn.json")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Skipf("not an index made by init: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	made := filepath.Join(t.TempDir(), "made", "by", "the", "project")
	c["blobs"] = "file://" + made + "?create_dir=true"
	data, _ = json.Marshal(c)
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	w := &world{World: org, project: t.TempDir()}
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, path: %s, introduction: %s}\npackages:\n  acme/fastjson: '*'\nplatforms: [linux-amd64]\n", org.Dir, org.Intro))
	_, _, _, err = w.lock(Options{})
	if _, serr := os.Stat(made); serr == nil {
		t.Fatalf("locking the project created %s", made)
	}
	if !errors.Is(err, blob.ErrMirrorUnsafe) || !strings.Contains(err.Error(), cfg) {
		t.Fatalf("locking: %v; want ErrMirrorUnsafe naming %s", err, cfg)
	}
}
