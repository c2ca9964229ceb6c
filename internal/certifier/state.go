package certifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"cairn.dev/cairn/internal/safefile"
)

// progress is what a certifier has done on one remote. Every version
// published up to Base is dealt with; Done lists those after it. It is
// written after a version's record has landed (or after deciding that
// nothing is to be signed), never before: a certifier that dies between
// the two runs the version again, finds its own record already there, and
// signs nothing.
type progress struct {
	Remote       string            `json:"remote"`
	Introduction string            `json:"introduction"`
	Key          string            `json:"key"`
	Property     string            `json:"property"`
	Base         string            `json:"base,omitempty"`
	Done         map[string]string `json:"done,omitempty"` // NAME@VERSION → what was done
}

// loadProgress reads the progress file at path, or starts one; a file
// of another certifier (another key, property or index) is refused.
func loadProgress(path string, want progress) (*progress, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		p := want
		p.Done = map[string]string{}
		return &p, nil
	}
	if err != nil {
		return nil, err
	}
	var p progress
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w (move it away to start over)", path, err)
	}
	if p.Introduction != want.Introduction || p.Key != want.Key || p.Property != want.Property {
		return nil, fmt.Errorf("%s is the state of another certifier (remote %s index %.16s, key %s, property %s): give this one its own --state directory",
			path, p.Remote, p.Introduction, p.Key, p.Property)
	}
	if p.Done == nil {
		p.Done = map[string]string{}
	}
	return &p, nil
}

// save writes the progress atomically.
func (p *progress) save(path string) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(path, append(data, '\n'), safefile.Options{Perm: 0o644})
}
