package install

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server/servertest"
)

// cachedFile returns the cached file of the named package's artifact, as
// the install into dir recorded it.
func cachedFile(t *testing.T, w *world, dir, name string) (string, blob.Ref) {
	t.Helper()
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Packages {
		if p.Name == name {
			path, err := w.blobs.Path(p.Artifact.Ref)
			if err != nil {
				t.Fatal(err)
			}
			return path, p.Artifact.Ref
		}
	}
	t.Fatalf("the manifest has no package %s", name)
	return "", blob.Ref{}
}

// Attack: a file artifact (not an archive) is copied by the kernel from
// the cache, not read through a verifying reader; a cached file poisoned
// with other bytes (of the same size, fewer, or more) must still never be
// installed. The copy is verified, the cached file repaired, and the
// install holds the published bytes, with their digest in the manifest.
func TestPoisonedCacheFileArtifact(t *testing.T) {
	tool := bytes.Repeat([]byte("cairn tool\n"), 50000)
	for _, how := range []string{"same size", "shorter", "longer"} {
		t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
			w := newWorld(t)
			w.Publish(indextest.Package{Name: "acme/tool", Version: "1.0.0", Binary: tool, BinaryFile: "tool.bin"})
			w.served(servertest.Serve(w.World), nil, "packages:\n  acme/tool: ^1.0\n")
			first := filepath.Join(t.TempDir(), "a")
			if _, err := w.install(first, false); err != nil {
				t.Fatal(err)
			}
			if got := read(t, filepath.Join(first, "acme/tool/linux-amd64-tool.bin")); got != string(tool) {
				t.Fatalf("installed %d bytes, want the %d published", len(got), len(tool))
			}
			path, ref := cachedFile(t, w, first, "acme/tool")
			bad := bytes.Clone(tool)
			switch how {
			case "same size":
				bad[len(bad)/2] ^= 1
			case "shorter":
				bad = bad[:len(bad)/2]
			case "longer":
				bad = append(bad, "and more"...)
			}
			os.Chmod(path, 0o644)
			if err := os.WriteFile(path, bad, 0o444); err != nil {
				t.Fatal(err)
			}
			into := filepath.Join(t.TempDir(), "b")
			res, err := w.install(into, false)
			if err != nil {
				t.Fatalf("install over a poisoned cache: %v", err)
			}
			if got := read(t, filepath.Join(into, "acme/tool/linux-amd64-tool.bin")); got != string(tool) {
				t.Fatalf("installed %d bytes that are not the published ones", len(got))
			}
			if len(res.Repaired) != 1 || res.Repaired[0].Path != path || res.Fetched != 1 {
				t.Fatalf("result %+v, want the poisoned file named and fetched again", res)
			}
			m, err := ReadManifest(into)
			if err != nil {
				t.Fatal(err)
			}
			if f := m.Packages[0].Files; len(f) != 1 || f[0].SHA256 != ref.SHA256 || f[0].Size != ref.Size || f[0].Path != "acme/tool/linux-amd64-tool.bin" {
				t.Fatalf("manifest files %+v, want tool.bin with the blob's digest", f)
			}
		})
	}
}

// Packages unpack in parallel, but a package's directory holds those
// beneath it (example.com/greet holds example.com/greet/v2): when the one
// above is repaired (its directory removed and unpacked afresh), those
// beneath must not be lost. Many packages, several levels deep, with the
// top one's cached archive poisoned.
func TestParallelNestedRepair(t *testing.T) {
	w := newWorld(t)
	w.Grant(w.Publisher, "alice", "publish:example.com/*")
	var pkgs strings.Builder
	names := []string{"example.com/greet"}
	for v := 2; v <= 6; v++ {
		names = append(names, fmt.Sprintf("example.com/greet/v%d", v))
	}
	for i := 0; i < 12; i++ {
		names = append(names, fmt.Sprintf("example.com/other%d", i), fmt.Sprintf("example.com/greet/v2/sub%d", i))
	}
	for _, n := range names {
		w.Publish(indextest.Package{Name: n, Version: "1.0.0", Files: map[string]string{"README": n + "\n"}})
		fmt.Fprintf(&pkgs, "  %s: ^1.0\n", n)
	}
	w.onDisk("packages:\n" + pkgs.String())
	first := filepath.Join(t.TempDir(), "a")
	if _, err := w.install(first, false); err != nil {
		t.Fatal(err)
	}
	path, _ := cachedFile(t, w, first, "example.com/greet")
	data := []byte(read(t, path))
	data[len(data)/2] ^= 1
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(t.TempDir(), "b")
	res, err := w.install(into, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Repaired) != 1 || res.Packages != len(names) {
		t.Fatalf("result %+v, want %d packages and one repair", res, len(names))
	}
	for _, n := range names {
		if got, err := os.ReadFile(filepath.Join(into, n, "README")); err != nil || string(got) != n+"\n" {
			t.Errorf("%s/README = %q, %v", n, got, err)
		}
	}
	m, err := ReadManifest(into)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Packages {
		if len(p.Files) == 0 || !strings.HasPrefix(p.Files[0].Path, p.Name+"/") {
			t.Errorf("manifest: package %s lists %+v", p.Name, p.Files)
		}
	}
}
