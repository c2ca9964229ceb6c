package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/witness"
)

// UpstreamWitnesses are the witnesses a repository trusts to cosign a
// followed upstream's checkpoints, and how many of them (distinct keys)
// must have cosigned each checkpoint a sync accepts: what Remote's
// Witnesses and Quorum are for a remote. Like a remote's, they are this
// replica's own trust, kept in its state directory beside what it
// verified of the upstream, not declared in the index (the upstream's
// declaration names only its URL and introduction). With none, a sync
// cannot detect an upstream showing different followers different
// histories (a split view): Pulled.Unwitnessed says so.
type UpstreamWitnesses struct {
	Witnesses []string `json:"witnesses,omitempty"` // verifier keys, name+hash+base64
	Quorum    int      `json:"quorum"`
}

// Policy returns the witness policy, checked.
func (u UpstreamWitnesses) Policy() (witness.Policy, error) {
	return witness.NewPolicy(u.Witnesses, u.Quorum)
}

// upstreamWitnessesPath is where the witnesses of upstream name are
// kept: beside its verified marker and last checkpoint. No upstream
// name ending in ".witnesses" can make it another's marker: those end in
// ".verified.json" and ".incoming.json".
func upstreamWitnessesPath(r *index.Repo, name string) string {
	marker := r.UpstreamLine(&index.Upstream{Name: name}).Marker
	return strings.TrimSuffix(marker, ".verified.json") + ".witnesses.json"
}

// SetUpstreamWitnesses sets the witnesses repository r trusts for the
// checkpoints of upstream name, which main must follow (cairn upstream
// add); the next sync refuses a checkpoint below their quorum. No
// witnesses and quorum 0 trust none again.
func SetUpstreamWitnesses(ctx context.Context, r *index.Repo, name string, w UpstreamWitnesses) error {
	if err := record.CheckUpstreamName(name); err != nil {
		return err
	}
	if _, err := w.Policy(); err != nil {
		return fmt.Errorf("upstream %s: %w", name, err)
	}
	ups, err := r.Followed(ctx)
	if err != nil {
		return err
	}
	followed := false
	for _, u := range ups {
		followed = followed || u.Name == name
	}
	if !followed {
		return fmt.Errorf("%s follows no upstream %s (cairn upstream list; cairn upstream add declares one): %w", r.Dir, name, fs.ErrNotExist)
	}
	path := upstreamWitnessesPath(r, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(path, append(data, '\n'), safefile.Options{Perm: 0o644})
}

// GetUpstreamWitnesses returns the witnesses repository r trusts for the
// checkpoints of upstream name (none when none were set).
func GetUpstreamWitnesses(r *index.Repo, name string) (UpstreamWitnesses, error) {
	var w UpstreamWitnesses
	if err := record.CheckUpstreamName(name); err != nil {
		return w, err
	}
	path := upstreamWitnessesPath(r, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return w, nil
	}
	if err != nil {
		return w, fmt.Errorf("upstream %s's witnesses: %w", name, err)
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return w, fmt.Errorf("upstream %s's witnesses, %s: %w", name, path, err)
	}
	if _, err := w.Policy(); err != nil {
		return w, fmt.Errorf("upstream %s's witnesses, %s: %w", name, path, err)
	}
	return w, nil
}

// upstreamRemoteOf is the remote an upstream declaration describes, with
// the witnesses r trusts for it.
func upstreamRemoteOf(r *index.Repo, u *index.Upstream) (*Remote, error) {
	rm := upstreamRemote(u)
	w, err := GetUpstreamWitnesses(r, u.Name)
	if err != nil {
		return nil, err
	}
	rm.Witnesses, rm.Quorum = w.Witnesses, w.Quorum
	return rm, nil
}
