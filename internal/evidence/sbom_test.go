package evidence

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/sbom"
)

// A bundle carries the lock's SBOM (sbom.cdx.json), and verify derives it
// again from the lock: with the artifacts in the bundle, every SHA-512 is
// checked against their bytes; without them, the SHA-512s are the
// document's claims, reported as not checked, and everything else is
// still compared.
func TestSBOM(t *testing.T) {
	w := newWorld(t)
	withBlobs, _, err := w.bundle(Options{WithBlobs: true, MadeBy: "cairn test"})
	if err != nil {
		t.Fatal(err)
	}
	bare, _, err := w.bundle(Options{MadeBy: "cairn test"})
	if err != nil {
		t.Fatal(err)
	}
	w.stop()

	b := mustRead(t, withBlobs)
	doc := b.Files[SBOMName]
	if !bytes.Equal(doc, mustRead(t, bare).Files[SBOMName]) {
		t.Fatal("the SBOMs of one lock with and without blobs differ")
	}
	names := make([]string, len(b.Manifest.Members))
	for i, m := range b.Manifest.Members {
		names[i] = m.Path
	}
	if i := slices.Index(names, SBOMName); i < 0 || i < slices.Index(names, "project/"+plan.LockFile) {
		t.Errorf("members %q: want %s after the project's", names, SBOMName)
	}
	claims, err := sbom.Claims(doc)
	if err != nil {
		t.Fatal(err)
	}
	l, err := plan.ParseLock(b.Files["project/"+plan.LockFile])
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range l.Packages {
		if !bytes.Contains(doc, []byte(`"purl": "pkg:generic/`+pkg.Name+"@"+pkg.Version+"?repository_url="+w.url+`"`)) {
			t.Errorf("the SBOM has no purl of %s from %s", pkg.ID(), w.url)
		}
		for _, a := range pkg.Artifacts {
			sum := sha512.Sum512(b.Files["blobs/sha256/"+a.SHA256])
			if claims[a.SHA256] != hex.EncodeToString(sum[:]) {
				t.Errorf("%s's %s: SHA-512 %q, want that of its bytes", pkg.ID(), a.File, claims[a.SHA256])
			}
		}
	}
	rep, err := verify(withBlobs)
	if err != nil || !rep.SBOMSHA512 {
		t.Fatalf("the bundle with blobs: SHA-512 checked %v, %v", rep != nil && rep.SBOMSHA512, err)
	}
	rep, err = verify(bare)
	if err != nil || rep.SBOMSHA512 {
		t.Fatalf("the bundle without blobs: SHA-512 checked %v, %v", rep != nil && rep.SBOMSHA512, err)
	}

	// An artifact's SHA-512 forged: refused where the bytes are at hand,
	// reported as not checked where they are not.
	forge512 := func(data []byte) []byte {
		return rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
			for _, v := range claims {
				files[SBOMName] = bytes.Replace(files[SBOMName], []byte(v), []byte(strings.Repeat("0", len(v))), 1)
				break
			}
			return nil
		})
	}
	if _, err := verify(forge512(withBlobs)); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "sbom.cdx.json is not the lock's SBOM") || !strings.Contains(err.Error(), strings.Repeat("0", 128)) {
		t.Errorf("a forged SHA-512 in a bundle with blobs: %v", err)
	}
	if rep, err := verify(forge512(bare)); err != nil || rep.SBOMSHA512 {
		t.Errorf("a forged SHA-512 in a bundle without blobs: checked %v, %v (want: not checked, said so)", rep != nil && rep.SBOMSHA512, err)
	}

	// Anything else edited is refused, blobs or not: a dependency dropped,
	// a publisher named, an artifact left out, a space more.
	for _, c := range []struct{ what, old, new string }{
		{"a dependency dropped", `"dependsOn": [` + "\n        \"acme/log@1.1.0\"\n      ]", `"dependsOn": []`},
		{"another publisher", `"publisher": "alice"`, `"publisher": "mallory"`},
		{"another purl", `"purl": "pkg:generic/acme/log@1.1.0`, `"purl": "pkg:generic/acme/log@1.0.0`},
		// The same values, spaced otherwise: not the document's bytes.
		{"another indentation", "{\n  \"", "{\n   \""},
		{"a space after a comma", "\",\n", "\", \n"},
		{"a CR before a newline", "{\n", "{\r\n"},
	} {
		if !bytes.Contains(doc, []byte(c.old)) {
			t.Fatalf("%s: %s is not in the SBOM:\n%s", c.what, c.old, doc)
		}
		edited := rewrite(t, bare, func(m *Manifest, files map[string][]byte) []string {
			files[SBOMName] = bytes.Replace(files[SBOMName], []byte(c.old), []byte(c.new), 1)
			return nil
		})
		_, err := verify(edited)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "sbom.cdx.json is not the lock's SBOM: line ") {
			t.Errorf("%s: %v", c.what, err)
		}
		// The lines said differ as they are, whitespace and all.
		if _, said, _ := strings.Cut(fmt.Sprint(err), " says "); strings.HasPrefix(said, `"{\n" where the lock gives "{\n"`) || strings.Contains(said, `"" where the lock gives ""`) {
			t.Errorf("%s: the difference is not shown: %v", c.what, err)
		}
	}
	dropped := rewrite(t, bare, func(m *Manifest, files map[string][]byte) []string {
		var out []string
		for _, mem := range m.Members {
			if mem.Path != SBOMName {
				out = append(out, mem.Path)
			}
		}
		delete(files, SBOMName)
		return out
	})
	if _, err := verify(dropped); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "it holds no sbom.cdx.json") {
		t.Errorf("the SBOM dropped: %v", err)
	}
}
