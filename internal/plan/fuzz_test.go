package plan

import (
	"bytes"
	"testing"
)

// FuzzParseProject: any bytes give a project or an error, never a panic;
// a project is never empty of repositories.
func FuzzParseProject(f *testing.F) {
	f.Add([]byte("repositories:\n  - {name: a, path: x, introduction: " + string(bytes.Repeat([]byte("a"), 64)) + "}\nsnapshot: lts-1.0\npackages:\n  acme/a: ^1.0\n"))
	f.Add([]byte("repositories: []\nsnapshot: {name: s, sha256: x, size: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProject(".", data)
		if err == nil && (len(p.Repositories) == 0 || len(p.Platforms) == 0) {
			t.Fatalf("accepted a project without repositories or platforms: %+v", p)
		}
	})
}

// FuzzParseLock: a lock that parses without ErrEdited marshals back to
// the same bytes.
func FuzzParseLock(f *testing.F) {
	l := &Lock{Version: LockVersion, Platforms: []string{"source"}}
	good, _ := l.Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock(data)
		if err != nil {
			return
		}
		again, err := l.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("a lock that parses does not round-trip: %v", err)
		}
	})
}
