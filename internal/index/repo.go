// Package index is cairn's git-backed index: a git repository of signed
// records in a fixed, sharded layout, and the rules every commit of it
// must keep (see Apply). A Repo is the index plus its blob store and local
// state (the pinned introduction, the last verified head).
//
// A repository made by Init is one directory: index.git (bare), blobs/,
// cairn.json; or, made with its blobs on an object store (InitOptions,
// cairn init --blobs URL), no blobs/ and the store's URL in cairn.json.
// A plain git clone of an index works too: cairn keeps its local state
// in the clone's git directory, under cairn/.
package index

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/translog"
)

// MainRef is the index's branch.
const MainRef = "refs/heads/main"

// Config is a repository's local configuration.
type Config struct {
	// Introduction is the id of the index's first root record. Every
	// verification starts from it: an index that starts elsewhere is
	// another repository.
	Introduction string `json:"introduction"`
	// Blobs, if set, is the URL of the object store that holds the
	// repository's blobs (s3://BUCKET?region=…, file:///DIR, …: see
	// blob.OpenBucket); empty, they are the files under blobs/ beside
	// it. Credentials come from the environment, as the store's SDK
	// reads them (AWS_ACCESS_KEY_ID, …), never from this file.
	Blobs string `json:"blobs,omitempty"`
}

// InitOptions are the choices Init leaves to its caller.
type InitOptions struct {
	// Blobs is the object store's URL (Config.Blobs); empty, the blobs
	// are the files under the repository's blobs/.
	Blobs string
}

// Repo is an opened repository.
type Repo struct {
	Dir    string
	Blobs  blob.Store
	Config Config

	git *gitx.Repo // the only door to git: see git.go and history.go

	local string // directory of cairn.json, verified.json, blobs/

	mu   sync.Mutex
	rd   *gitx.Reader
	refs *gitx.RefSession // moves main for Append (see commit)

	pathsMu   sync.Mutex
	pathsHead string
	paths     map[string]string // record id → path, as of pathsHead

	storesMu sync.Mutex
	stores   map[string]*translog.Store // open transparency logs, by directory
}

// Init creates a repository at dir whose root is the given keys with the
// given threshold, signed by all of them. It returns the repository and
// its introduction record. Nothing is left at dir if it fails.
func Init(ctx context.Context, dir string, signers []keys.Signer, holders []string, threshold int) (*Repo, *record.Record, error) {
	return InitWith(ctx, dir, signers, holders, threshold, InitOptions{})
}

// InitWith is Init with options. A blob store named by URL is opened and
// asked for a blob first, so that a URL it cannot use (no driver, no
// bucket, credentials refused) is said before anything is made.
func InitWith(ctx context.Context, dir string, signers []keys.Signer, holders []string, threshold int, o InitOptions) (*Repo, *record.Record, error) {
	if o.Blobs != "" {
		if err := checkBucket(ctx, o.Blobs); err != nil {
			return nil, nil, err
		}
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, nil, fmt.Errorf("%s exists and is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp(parent, ".cairn-init-*")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)

	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	p := record.RootPredicate{Version: 1, Threshold: threshold, Issued: time.Now().UTC().Truncate(time.Second), Nonce: hex.EncodeToString(nonce)}
	var subjects []record.Subject
	seen := map[string]bool{}
	for i, s := range signers {
		id := keys.ID(s.Public())
		if seen[id] {
			return nil, nil, fmt.Errorf("root key %s given twice: a threshold counts distinct keys", id)
		}
		seen[id] = true
		rk := record.RootKey{Key: keys.FormatPublic(s.Public())}
		if i < len(holders) {
			rk.Holder = holders[i]
		}
		p.Keys = append(p.Keys, rk)
		subjects = append(subjects, record.Subject{Name: id, Digest: map[string]string{"sha256": keys.IDHex(s.Public())}})
	}
	if threshold < 1 || threshold > len(signers) {
		return nil, nil, fmt.Errorf("threshold %d with %d root key(s): want 1 ≤ threshold ≤ keys", threshold, len(signers))
	}
	payload, err := record.Build(record.Root, subjects, p)
	if err != nil {
		return nil, nil, err
	}
	rec, err := record.Sign(payload, signers...)
	if err != nil {
		return nil, nil, err
	}
	g, err := gitx.InitBare(filepath.Join(tmp, "index.git"))
	if err != nil {
		return nil, nil, err
	}
	// Records are small, signed, high-entropy JSON: delta-compressing them
	// saves little space and costs every later read a delta chain.
	if err := g.SetAttributes("* -delta"); err != nil {
		return nil, nil, err
	}
	r := &Repo{Dir: dir, git: g, local: tmp, Config: Config{Introduction: rec.ID, Blobs: o.Blobs}}
	files := []gitx.File{{Path: layout.RootPath(1), Data: rec.Raw}}
	if _, err := r.commit(ctx, "", files, "cairn root <root>", "introduction: root version 1", nil); err != nil {
		return nil, nil, err
	}
	r.Close()
	if err := writeJSON(filepath.Join(tmp, "cairn.json"), r.Config); err != nil {
		return nil, nil, err
	}
	if o.Blobs == "" {
		if err := os.MkdirAll(filepath.Join(tmp, "blobs"), 0o755); err != nil {
			return nil, nil, err
		}
	}
	os.Remove(dir) // an empty directory may be replaced
	if err := os.Rename(tmp, dir); err != nil {
		return nil, nil, err
	}
	opened, err := Open(ctx, dir)
	return opened, rec, err
}

// IsRepository reports whether dir looks like a repository Open opens: a
// directory made by Init (or InitReplica): index.git and cairn.json; a git
// clone of an index: its work tree holds the first root record, or cairn
// keeps its state in its git directory; a bare clone cairn opened before.
// A git repository that is not an index is not one.
func IsRepository(dir string) bool {
	isDir := func(p string) bool { fi, err := os.Stat(p); return err == nil && fi.IsDir() }
	isFile := func(p string) bool { fi, err := os.Stat(p); return err == nil && fi.Mode().IsRegular() }
	switch {
	case isDir(filepath.Join(dir, "index.git")) && isFile(filepath.Join(dir, "cairn.json")):
		return true
	case isDir(filepath.Join(dir, ".git")):
		return isFile(filepath.Join(dir, filepath.FromSlash(layout.RootPath(1)))) || isFile(filepath.Join(dir, ".git", "cairn", "cairn.json"))
	case isFile(filepath.Join(dir, "HEAD")) && isDir(filepath.Join(dir, "objects")):
		return isFile(filepath.Join(dir, "cairn", "cairn.json"))
	}
	return false
}

// Open opens the repository at dir: a directory made by Init, or a git
// clone (bare or not) of an index.
func Open(ctx context.Context, dir string) (*Repo, error) {
	r := &Repo{Dir: dir}
	var err error
	if fi, serr := os.Stat(filepath.Join(dir, "index.git")); serr == nil && fi.IsDir() {
		r.local = dir
		if r.git, err = gitx.Open(filepath.Join(dir, "index.git")); err != nil {
			return nil, err
		}
	} else {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("no repository at %s: %w", dir, fs.ErrNotExist)
		}
		if r.git, err = gitx.Open(dir); errors.Is(err, gitx.ErrUnsafeDirectory) {
			return nil, err
		} else if err != nil {
			return nil, fmt.Errorf("no repository at %s (no index.git, and not a git clone of an index)", dir)
		}
		r.local = filepath.Join(r.git.GitDir, "cairn")
		if err := os.MkdirAll(r.local, 0o755); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(filepath.Join(r.local, "cairn.json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &r.Config); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(r.local, "cairn.json"), err)
		}
		// A clone's configuration written by hand to name its blob store
		// before its first use pins nothing yet: pin it now, as if absent.
		if r.Config.Introduction == "" && r.local != dir {
			if err := r.pinFirstRoot(ctx); err != nil {
				return nil, err
			}
		}
	case errors.Is(err, fs.ErrNotExist) && r.local != dir:
		// A clone: pin the introduction it starts with, on first use.
		if err := r.pinFirstRoot(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	if r.Blobs, err = r.openBlobs(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// openBlobs opens the blob store the configuration names: the object
// store at Config.Blobs, or the files under blobs/.
func (r *Repo) openBlobs(ctx context.Context) (blob.Store, error) {
	if r.Config.Blobs == "" {
		return blob.NewFS(filepath.Join(r.local, "blobs"))
	}
	b, err := blob.OpenBucket(ctx, r.Config.Blobs)
	if err != nil {
		return nil, fmt.Errorf("%s names the repository's blob store: %w", filepath.Join(r.local, "cairn.json"), err)
	}
	return b, nil
}

// checkBucket opens the object store at url and asks it for a blob, so
// that a store Init cannot use is said before the repository is made.
func checkBucket(ctx context.Context, url string) error {
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Stat(ctx, blob.DigestBytes(nil)); err != nil {
		return fmt.Errorf("the blob store %s cannot be read: %w", b, err)
	}
	return nil
}

func (r *Repo) pinFirstRoot(ctx context.Context) error {
	roots, err := r.git.RootCommits(ctx, MainRef)
	if err != nil || len(roots) == 0 {
		return fmt.Errorf("%s has no %s branch: is it a clone of a cairn index?", r.Dir, MainRef)
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return err
	}
	first := roots[0]
	o, err := rd.Read(first + ":" + layout.RootPath(1))
	if err != nil {
		return fmt.Errorf("%s: the first commit holds no %s: not a cairn index", r.Dir, layout.RootPath(1))
	}
	rec, err := record.Parse(o.Data)
	if err != nil {
		return err
	}
	r.Config.Introduction = rec.ID
	return writeJSON(filepath.Join(r.local, "cairn.json"), r.Config)
}

func (r *Repo) reader(ctx context.Context) (*gitx.Reader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rd == nil {
		rd, err := r.git.NewReader(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		r.rd = rd
	}
	return r.rd, nil
}

// Close releases the repository's git processes and open logs.
func (r *Repo) Close() error {
	r.closeStores()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refs != nil {
		r.refs.Close()
		r.refs = nil
	}
	if r.rd != nil {
		err := r.rd.Close()
		r.rd = nil
		return err
	}
	return nil
}

// Head returns the commit ref points at (MainRef: the index's main),
// asked of the running batch reader rather than of a new git process.
// An absent ref is an error wrapping fs.ErrNotExist.
func (r *Repo) Head(ctx context.Context, ref string) (string, error) {
	// The ref files first: a server reads its heads on every request,
	// and a round trip to the batch reader's process costs more than the
	// request's own work. Only cairn moves these refs, to commits.
	switch id, err := r.git.ReadRef(ref); {
	case err == nil:
		return id, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s: the index has no %s: %w", r.Dir, ref, fs.ErrNotExist)
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return "", err
	}
	o, err := rd.Read(ref)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: the index has no %s: %w", r.Dir, ref, fs.ErrNotExist)
	}
	if err != nil {
		return "", err
	}
	if o.Type != "commit" {
		return "", fmt.Errorf("%s: %s is a %s, not a commit", r.Dir, ref, o.Type)
	}
	return o.ID, nil
}

// resetReader restarts the batch reader's git process, so that the next
// read starts afresh. The reader itself stays open: states, names and
// catalogs taken before hold it and keep reading through it.
func (r *Repo) resetReader() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rd != nil {
		r.rd.Restart()
	}
}

// State returns the index's state at a commit.
func (r *Repo) State(ctx context.Context, commit string) (*Overlay, error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, err
	}
	return NewOverlay(&treeState{files: newGitFiles(r.git, rd, commit)}), nil
}

// Verified verifies what is new on main since its last verified head
// (Verify, not full), for a command about to read the index, so that
// nothing it reads, shows or serves breaks a rule: the check costs
// O(new commits), and nothing when main has not moved. A rewritten
// history is a *ForkError, a broken rule a *RuleError. An index with no
// main yet (a replica before its first pull) has nothing to verify: the
// result's Head is "". Remembering the new head is best effort (see
// VerifyResult.Unsaved): a read must not fail for want of disk space.
func (r *Repo) Verified(ctx context.Context) (*VerifyResult, error) {
	if _, err := r.Head(ctx, MainRef); errors.Is(err, fs.ErrNotExist) {
		return &VerifyResult{}, nil
	}
	return r.Verify(ctx, false)
}

// marker is the last verified head, kept in verified.json.
type marker struct {
	Head    string    `json:"head"`
	Records int       `json:"records"`
	Time    time.Time `json:"time"`
}

func (r *Repo) loadMarker() (*marker, error) { return loadMarker(r.Main().Marker) }

func loadMarker(path string) (*marker, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m marker
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// saveMarker records the verified head. It is not fsynced: a marker lost
// in a crash is an older verified head, which only means verifying again.
func (r *Repo) saveMarker(m marker) error { return saveMarker(r.Main().Marker, m) }

func saveMarker(path string, m marker) error {
	m.Time = time.Now().UTC()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeJSON(path, m, false)
}

// writeJSON writes v to path atomically, fsynced unless durable is false.
func writeJSON(path string, v any, durable ...bool) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(path, append(data, '\n'), safefile.Options{NoSync: len(durable) > 0 && !durable[0]})
}
