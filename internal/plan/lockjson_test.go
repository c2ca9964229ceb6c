package plan

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
)

// A lock is written as encoding/json's MarshalIndent writes it, byte for
// byte, whatever its strings hold (HTML's characters, line and paragraph
// separators, control characters, bytes that are not UTF-8) and whichever
// members are empty, nil or left out: every lock written before reads
// back with the same digest.
func TestLockBodyIsMarshalIndent(t *testing.T) {
	odd := []string{"", "plain", `<a href="x">&amp;</a>`, "line\nbreak\ttab\r\x00\x1f\x7f", "sep\u2028para\u2029", "bad\xff\xfeutf8", "é — ✓ 𝄞", `back\slash "quoted"`}
	ref := blob.Ref{SHA256: "e94231b9e814878f56887eab54768fc46f132d45a6143f32736cb15e53140575", Size: 356}
	locks := []*Lock{
		{},
		{Version: LockVersion, Platforms: []string{}, Repositories: []LockedRepo{}, Packages: []Locked{}},
	}
	for _, s := range odd {
		locks = append(locks, &Lock{
			Version: LockVersion, Project: s,
			Policy:       &PolicyPin{File: s, SHA256: s, Record: s},
			Snapshot:     &SnapshotPin{Name: s, Label: s, Repository: s, Ref: ref},
			Platforms:    []string{s, "linux/amd64"},
			Repositories: []LockedRepo{{Name: s, Location: s, Introduction: s, Head: s, Records: -3, Checkpoint: s}, {Name: "bare"}},
			Packages: []Locked{
				{Name: s, Version: s, Repository: s, Descriptor: ref, ChosenBy: []string{s}, Artifacts: []LockedArtifact{{Platform: s, Kind: s, File: s, Ref: blob.Ref{SHA256: s, Size: 1 << 40}}}, Withheld: []string{s}},
				{Name: "nil slices"},
				{Name: "empty slices", ChosenBy: []string{}, Artifacts: []LockedArtifact{}, Withheld: []string{}},
			},
			Digest: s,
		})
	}
	for i, l := range locks {
		want, err := json.MarshalIndent(l, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.body(0)
		if err != nil {
			t.Fatal(err)
		}
		if want = append(want, '\n'); !bytes.Equal(got, want) {
			t.Errorf("lock %d: body(0)\n%s\nencoding/json:\n%s", i, got, want)
		}
	}
}

// WriteLock writes cairn.lock when it would change, and leaves a lock
// that holds exactly its bytes as it is (no write, no sync), as cargo
// leaves a Cargo.lock; a lock edited by hand is written over.
func TestWriteLockOnlyWhenChanged(t *testing.T) {
	dir := t.TempDir()
	l := &Lock{Version: 1, Project: strings.Repeat("ab", 32), Platforms: []string{"linux-amd64"}}
	path := filepath.Join(dir, LockFile)
	stat := func() os.FileInfo {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if written, err := WriteLock(dir, l); err != nil || !written {
		t.Fatalf("first write: written %v, %v", written, err)
	}
	first := stat()
	if written, err := WriteLock(dir, l); err != nil || written {
		t.Fatalf("the same lock again: written %v, %v; want left as it is", written, err)
	}
	if !os.SameFile(first, stat()) {
		t.Errorf("the same lock again: the file was replaced")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	if written, err := WriteLock(dir, l); err != nil || !written {
		t.Fatalf("over a lock edited by hand: written %v, %v", written, err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(data) {
		t.Errorf("over a lock edited by hand: %d bytes, want the lock's %d", len(got), len(data))
	}
	l.Platforms = append(l.Platforms, "source")
	if written, err := WriteLock(dir, l); err != nil || !written {
		t.Fatalf("a changed lock: written %v, %v", written, err)
	}
	if got, err := ReadLock(dir); err != nil || len(got.Platforms) != 2 {
		t.Errorf("a changed lock read back: %+v, %v", got, err)
	}
}
