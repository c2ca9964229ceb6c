package plan

import (
	"bytes"
	"encoding/json"
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
