// Package remote is cairn's client side of distribution: remotes pinned
// by their introduction, pulls that verify every new commit and the
// server's signed checkpoint before anything is trusted, and pushes that
// upload the blobs records refer to, then push the commits, rebasing
// onto whatever landed first.
//
// A remote's copy of the index lives in the repository's own git store
// under refs/remotes/NAME/main, verified as its own line (index.Line)
// against the remote's introduction; it moves only after verification.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/witness"
)

// DefaultMaxAge is how old a remote's checkpoint may be.
const DefaultMaxAge = checkpoint.DefaultMaxAge

// Remote is a repository elsewhere, pinned by its introduction.
type Remote struct {
	Name         string   `json:"name"`
	URL          string   `json:"url"`
	Introduction string   `json:"introduction"`
	Mirrors      []string `json:"mirrors,omitempty"` // extra blob mirrors, tried after URL
	// Log, if set, makes the remote a plain git host (see Plain): URL is
	// then the git URL of the index itself, served by git alone, and Log
	// the URL of the static log its signed checkpoint is published to
	// (cairn log publish); its blobs come from Mirrors only.
	Log    string        `json:"log,omitempty"`
	MaxAge time.Duration `json:"max_age"` // oldest acceptable checkpoint
	// InsecureNoCheckpoint accepts a server that signs no checkpoints: a
	// frozen mirror would then go unnoticed.
	InsecureNoCheckpoint bool `json:"insecure_no_checkpoint,omitempty"`
	// Witnesses are the note verifier keys (name+hash+base64) of the
	// witnesses trusted to cosign the remote's checkpoints, and Quorum how
	// many of them (distinct keys) must have cosigned each checkpoint a
	// pull accepts (witness.Policy). With none, a server that shows
	// different clients different histories (a split view) goes unnoticed.
	Witnesses []string `json:"witnesses,omitempty"`
	Quorum    int      `json:"quorum,omitempty"`

	// An upstream (see Sync) is not configured here but declared in the
	// index; its line lives under index.UpstreamRef.
	upstream bool
	// via fetches another ref than the server's main: an upstream's line
	// as an organisation's server holds it, with the upstream's own
	// checkpoint the server kept (/upstreams/UP/log/checkpoint).
	via string
}

// Policy returns the remote's witness policy.
func (rm *Remote) Policy() (witness.Policy, error) {
	p, err := witness.NewPolicy(rm.Witnesses, rm.Quorum)
	if err != nil {
		return p, fmt.Errorf("remote %s: %w", rm.Name, err)
	}
	return p, nil
}

// upstreamRemote is the remote an upstream declaration describes.
func upstreamRemote(u *index.Upstream) *Remote {
	return &Remote{Name: u.Name, URL: u.URL, Introduction: u.Introduction, MaxAge: DefaultMaxAge, upstream: true}
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`) }) // compiled when first used (not as every command starts); at most 63: checked apart, as a bounded repetition compiles into 62 copies

// CheckName checks a remote's name.
func CheckName(name string) error {
	if len(name) > 63 || !nameRE().MatchString(name) {
		return fmt.Errorf("remote name %q: use lowercase letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

func dir(r *index.Repo) string { return filepath.Join(r.LocalDir(), "remotes") }

func configPath(r *index.Repo, name string) string { return filepath.Join(dir(r), name+".json") }

// Ref is where a remote's verified copy of main lives.
func Ref(name string) string { return "refs/remotes/" + name + "/main" }

// Line is a remote's line, verified against its own introduction.
func (rm *Remote) Line(r *index.Repo) index.Line {
	if rm.upstream {
		return r.UpstreamLine(&index.Upstream{Name: rm.Name, Introduction: rm.Introduction})
	}
	return index.Line{Name: "remote " + rm.Name, Ref: Ref(rm.Name), Introduction: rm.Introduction, Marker: filepath.Join(dir(r), rm.Name+".verified.json")}
}

// title is how messages call the remote: "remote NAME" or "upstream NAME".
func (rm *Remote) title() string {
	if rm.upstream {
		return "upstream " + rm.Name
	}
	return "remote " + rm.Name
}

// incoming is where a fetch lands before it is verified.
func (rm *Remote) incoming(r *index.Repo) index.Line {
	l := rm.Line(r)
	l.Ref = "refs/cairn/incoming/" + rm.Name
	if rm.upstream {
		l.Ref = "refs/cairn/incoming/upstreams/" + rm.Name
	}
	l.Marker = strings.TrimSuffix(l.Marker, ".verified.json") + ".incoming.json"
	return l
}

func (rm *Remote) checkpointPath(r *index.Repo) string {
	return strings.TrimSuffix(rm.Line(r).Marker, ".verified.json") + ".checkpoint"
}

// LastCheckpoint returns the signed checkpoint kept by the last pull of
// the remote (fs.ErrNotExist if none: never pulled, or a server that signs
// none). Check it with OpenCheckpoint before trusting it.
func (rm *Remote) LastCheckpoint(r *index.Repo) ([]byte, error) {
	return os.ReadFile(rm.checkpointPath(r))
}

// Add records a remote in repository r.
func Add(r *index.Repo, rm Remote) error {
	if err := CheckName(rm.Name); err != nil {
		return err
	}
	if _, err := os.Stat(configPath(r, rm.Name)); err == nil {
		return fmt.Errorf("remote %s exists: %w", rm.Name, fs.ErrExist)
	}
	return save(r, rm, true)
}

// Set records a remote in repository r, or updates it (its URL, mirrors,
// checkpoint age); its introduction cannot change: that would be another
// index.
func Set(r *index.Repo, rm Remote) error {
	if old, err := Get(r, rm.Name); err == nil && old.Introduction != rm.Introduction {
		return fmt.Errorf("remote %s of %s follows the index introduced by %.16s, not %.16s", rm.Name, r.Dir, old.Introduction, rm.Introduction)
	}
	return save(r, rm, false)
}

func save(r *index.Repo, rm Remote, exclusive bool) error {
	if err := CheckName(rm.Name); err != nil {
		return err
	}
	if !blob.IsDigest(rm.Introduction) {
		return fmt.Errorf("introduction %q: want the 64-hex-digit id the repository's owner published (cairn init prints it)", rm.Introduction)
	}
	if rm.Plain() {
		if err := CheckGitURL(rm.URL); err != nil {
			return err
		}
		if err := checkLogURL(rm.Log); err != nil {
			return err
		}
		rm.Log = strings.TrimSuffix(rm.Log, "/")
	} else if !strings.HasPrefix(rm.URL, "http://") && !strings.HasPrefix(rm.URL, "https://") {
		return fmt.Errorf("remote URL %q: want http:// or https:// (a cairn server), or, for an index on a plain git host, its git URL with the URL of its published log (--log)", rm.URL)
	}
	rm.URL = strings.TrimSuffix(rm.URL, "/")
	for _, m := range rm.Mirrors {
		if err := blob.CheckMirror(m); err != nil {
			return err
		}
	}
	if rm.MaxAge == 0 {
		rm.MaxAge = DefaultMaxAge
	}
	if _, err := rm.Policy(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir(r), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rm, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(configPath(r, rm.Name), append(data, '\n'), safefile.Options{Perm: 0o644, Exclusive: exclusive})
}

// SetURL points remote name of repository r at another URL (a new
// address of the same index: a moved server, a mirror). The remote stays
// pinned to its introduction and to the head verified from it: the next
// pull verifies what the new URL serves against both, so a server of
// another index is refused there (the introduction, or a fork of the
// verified history, names it) and nothing it says is kept.
func SetURL(r *index.Repo, name, url string) (*Remote, error) {
	rm, err := Get(r, name)
	if err != nil {
		return nil, err
	}
	rm.URL = url
	if err := Set(r, *rm); err != nil {
		return nil, err
	}
	return Get(r, name)
}

// Remove forgets remote name of repository r: its verified copy of the
// remote's index (and any fetch not verified yet), what was verified of
// it, its last checkpoint, then its configuration. Main and what it
// holds are untouched. Removing a remote that was half removed finishes
// the job.
func Remove(ctx context.Context, r *index.Repo, name string) error {
	rm, err := Get(r, name)
	if err != nil {
		return err
	}
	for _, ref := range []string{rm.Line(r).Ref, rm.incoming(r).Ref, rm.fetched(r)} {
		cur, err := refAt(ctx, r, ref)
		if err != nil {
			return fmt.Errorf("removing remote %s: %w", name, err)
		}
		if cur == "" {
			continue
		}
		if err := r.MoveRef(ctx, ref, "", cur); err != nil {
			return fmt.Errorf("removing remote %s: deleting %s: %w", name, ref, err)
		}
	}
	for _, f := range []string{rm.Line(r).Marker, rm.incoming(r).Marker, rm.checkpointPath(r), configPath(r, name)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing remote %s: %w", name, err)
		}
	}
	return nil
}

// Get returns a remote of repository r.
func Get(r *index.Repo, name string) (*Remote, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(configPath(r, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no remote %s in %s (cairn remote add %s URL --introduction ID): %w", name, r.Dir, name, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	var rm Remote
	if err := json.Unmarshal(data, &rm); err != nil {
		return nil, fmt.Errorf("%s: %w", configPath(r, name), err)
	}
	return &rm, nil
}

// List returns the remotes of repository r, by name.
func List(r *index.Repo) ([]*Remote, error) {
	entries, err := os.ReadDir(dir(r))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Remote
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.Contains(name, ".") {
			continue
		}
		rm, err := Get(r, name)
		if err != nil {
			return nil, err
		}
		out = append(out, rm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Blobs returns the remote's blob store: the repository's own store in
// front of the remote and its mirrors (a plain git host's mirrors only),
// each verified on the way in.
func (rm *Remote) Blobs(r *index.Repo, client *http.Client) *blob.Chain {
	c := &blob.Chain{Local: r.Blobs}
	if !rm.Plain() {
		c.Mirrors = append(c.Mirrors, &blob.HTTP{URL: rm.URL, Client: client})
	}
	for _, u := range rm.Mirrors {
		c.Mirrors = append(c.Mirrors, blob.Mirror(u, client))
	}
	return c
}

// refAt returns the commit ref points at, or "" when the ref is absent:
// a remote's line or incoming ref that was never fetched, a main not yet
// made by a first pull.
func refAt(ctx context.Context, r *index.Repo, ref string) (string, error) {
	id, err := r.Head(ctx, ref)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return id, err
}
