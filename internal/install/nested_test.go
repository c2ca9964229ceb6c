package install

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index/indextest"
)

// Go module paths nest: example.com/greet/v2 installs into
// DIR/example.com/greet/v2, inside example.com/greet's directory. Both
// install, each its own files.
func TestNestedPackages(t *testing.T) {
	w := newWorld(t)
	w.Grant(w.Publisher, "alice", "publish:example.com/*")
	w.Publish(indextest.Package{Name: "example.com/greet", Version: "1.0.0", Files: map[string]string{"README": "greet\n"}})
	w.Publish(indextest.Package{Name: "example.com/greet/v2", Version: "2.0.0", Files: map[string]string{"README": "greet v2\n"}})
	w.onDisk("packages:\n  example.com/greet/v2: ^2.0\n  example.com/greet: ^1.0\n")
	into := filepath.Join(t.TempDir(), "deps")
	if _, err := w.install(into, false); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(into, "example.com/greet/README")); got != "greet\n" {
		t.Errorf("example.com/greet/README = %q", got)
	}
	if got := read(t, filepath.Join(into, "example.com/greet/v2/README")); got != "greet v2\n" {
		t.Errorf("example.com/greet/v2/README = %q", got)
	}
}

// Attack: a package's archive writes into the directory of a package
// installed beneath it (example.com/greet's v2/README, or V2/README where
// the file system folds case), overwriting the other package's files. It
// is refused, naming the other package.
func TestNestedPackageOverwrite(t *testing.T) {
	for _, entry := range []string{"v2/README", "V2/README", "v2"} {
		t.Run(strings.ReplaceAll(entry, "/", "_"), func(t *testing.T) {
			w := newWorld(t)
			w.Grant(w.Publisher, "alice", "publish:example.com/*")
			w.Publish(indextest.Package{Name: "example.com/greet", Version: "1.0.0", Files: map[string]string{"README": "greet\n", entry: "forged by greet\n"}})
			w.Publish(indextest.Package{Name: "example.com/greet/v2", Version: "2.0.0", Files: map[string]string{"README": "greet v2\n"}})
			w.onDisk("packages:\n  example.com/greet/v2: ^2.0\n  example.com/greet: ^1.0\n")
			into := filepath.Join(t.TempDir(), "deps")
			_, err := w.install(into, false)
			if got, rerr := os.ReadFile(filepath.Join(into, "example.com/greet/v2/README")); rerr == nil && string(got) != "greet v2\n" {
				t.Errorf("example.com/greet/v2/README = %q", got)
			}
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "in the directory of package example.com/greet/v2") {
				t.Fatalf("install = %v; want an unsafe-archive error naming example.com/greet/v2", err)
			}
		})
	}
}
