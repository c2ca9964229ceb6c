package plan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/safefile"
)

// LockVersion is the lock format's version.
const LockVersion = 1

// Lock is a build plan pinned by hash: cairn.lock.
type Lock struct {
	Version      int          `json:"version"`
	Project      string       `json:"project"` // sha256 of the cairn.yaml it was made from
	Policy       *PolicyPin   `json:"policy,omitempty"`
	Snapshot     *SnapshotPin `json:"snapshot,omitempty"`
	Platforms    []string     `json:"platforms"`
	Repositories []LockedRepo `json:"repositories"`
	Packages     []Locked     `json:"packages"`
	// Digest is the sha256 of the lock with Digest empty: a hand edit
	// that does not recompute it is caught, and one that does is caught
	// against the index.
	Digest string `json:"digest"`
}

// PolicyPin is the policy the lock was checked under: a file of the
// project, or a policy of the index (File index:NAME) at the version in
// force at the head of the project's first repository (Record).
type PolicyPin struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Record string `json:"record,omitempty"` // index:NAME: the version's record
}

// SnapshotPin is the snapshot the lock was resolved from.
type SnapshotPin struct {
	Name       string `json:"name,omitempty"`
	Label      string `json:"label,omitempty"` // the label that pointed at it, if the project named one
	Repository string `json:"repository"`
	blob.Ref
}

// LockedRepo is a repository and the verified head the lock was
// resolved against.
type LockedRepo struct {
	Name         string `json:"name"`
	Location     string `json:"location"` // its URL, or path:DIR
	Introduction string `json:"introduction"`
	Head         string `json:"head"`
	Records      int    `json:"records"` // record files in the index at head (0: not known, a light client's lock)
	// Checkpoint is the server's signed checkpoint (a signed note) that
	// the head was pulled under: the server's own statement, at a time,
	// of a head that Head contains. Empty for an index on disk.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// Locked is one package of the plan.
type Locked struct {
	Name       string           `json:"name"`
	Version    string           `json:"version"`
	Repository string           `json:"repository"`
	Descriptor blob.Ref         `json:"descriptor"`
	ChosenBy   []string         `json:"chosen_by"`
	Artifacts  []LockedArtifact `json:"artifacts"`
	// Withheld are the versions above Version that the ranges accept and
	// that the server of a light source refused by its policy when the
	// lock was resolved (its word, not proved: light.Refusals), highest
	// first: checking the lock re-derives it without them.
	Withheld []string `json:"withheld,omitempty"`
}

// ID is name@version.
func (l *Locked) ID() string { return l.Name + "@" + l.Version }

// Platforms are the platforms the package's artifacts were chosen for.
func (l *Locked) Platforms() []string {
	out := make([]string, 0, len(l.Artifacts))
	for _, a := range l.Artifacts {
		out = append(out, a.Platform)
	}
	return out
}

// LockedArtifact is the artifact chosen for one platform.
type LockedArtifact struct {
	Platform string `json:"platform"`
	Kind     string `json:"kind"`
	File     string `json:"file"`
	blob.Ref
}

// KeepCheckpoints keeps prev's checkpoint of every repository whose head
// has not moved since prev, so that locking again with nothing new gives
// the same bytes (a server dates each checkpoint it signs). A checkpoint
// is kept only if it still checks (remote.OpenCheckpoint) against the
// repository.
func (l *Lock) KeepCheckpoints(ctx context.Context, prev *Lock, srcs Sources) {
	for i := range l.Repositories {
		r := &l.Repositories[i]
		s := srcs.Get(r.Name)
		for _, p := range prev.Repositories {
			if s == nil || p.Name != r.Name || p.Introduction != r.Introduction || p.Head != r.Head || p.Checkpoint == "" {
				continue
			}
			if _, err := s.openCheckpoint(ctx, r.Head, []byte(p.Checkpoint)); err == nil {
				r.Checkpoint = p.Checkpoint
			}
		}
	}
}

// openCheckpoint checks a lock's checkpoint of head against the source: a
// replica's verified history (remote.OpenCheckpoint), or a light view's
// latest checkpoint, which its tree must extend (light.View.Older).
func (s *Source) openCheckpoint(ctx context.Context, head string, note []byte) (*checkpoint.Signed, error) {
	if s.View == nil {
		return remote.OpenCheckpoint(ctx, s.Repo, head, s.Introduction, note)
	}
	sc, err := s.View.Older(ctx, note)
	if err != nil {
		return nil, err
	}
	if sc.Head != head {
		return nil, fmt.Errorf("the checkpoint signs head %s, not %s", sc.Head, head)
	}
	return sc, nil
}

// Package returns the locked package named name.
func (l *Lock) Package(name string) *Locked {
	for i := range l.Packages {
		if l.Packages[i].Name == name {
			return &l.Packages[i]
		}
	}
	return nil
}

// Marshal encodes the lock, computing its digest.
func (l *Lock) Marshal() ([]byte, error) {
	return l.marshal(2048 + 1280*len(l.Packages))
}

// marshal is Marshal into a buffer of size bytes, grown if the lock
// needs more: a kilobyte or so a package, or room for the lock file
// that is encoded again to check it.
func (l *Lock) marshal(size int) ([]byte, error) {
	l.Digest = ""
	body, err := l.body(size)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	l.Digest = "sha256:" + hex.EncodeToString(sum[:])
	// Digest is the last member: the lock with it is the body with its
	// empty value filled in (encoded once, not twice).
	if rest, ok := bytes.CutSuffix(body, []byte(`"digest": ""`+"\n}\n")); ok {
		return append(rest, `"digest": "`+l.Digest+`"`+"\n}\n"...), nil
	}
	return l.body(size)
}

// body is the lock's JSON as encoding/json's MarshalIndent(l, "", "  ")
// writes it, byte for byte (the format of every lock written): by
// go-json-experiment/json with encoding/json's semantics, a third less
// time, in one pass, into a buffer of size bytes, about the lock's size
// and room for the digest, rather than one regrown; by encoding/json
// itself for a string that is not UTF-8, which it writes with \ufffd
// where the other writes U+FFFD.
func (l *Lock) body(size int) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if err := jsonv2.MarshalWrite(buf, l, jsonv1.DefaultOptionsV1(), jsontext.AllowInvalidUTF8(false), jsontext.WithIndent("  ")); err != nil {
		b, err := json.MarshalIndent(l, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// ErrEdited says a lock's content does not match its digest.
var ErrEdited = errors.New("cairn.lock was edited by hand: its digest does not match its content")

// ParseLock decodes a lock strictly. A lock whose digest does not match
// is returned with ErrEdited, so that Check can still name the entries.
func ParseLock(data []byte) (*Lock, error) {
	var l Lock
	if err := jsonv2.Unmarshal(data, &l, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, &LineError{File: LockFile, Msg: fmt.Sprintf("not a lock file: %v (run cairn lock to write it again)", err)}
	}
	if l.Version != LockVersion {
		return nil, &LineError{File: LockFile, Msg: fmt.Sprintf("lock format version %d; this cairn reads version %d", l.Version, LockVersion)}
	}
	want := l.Digest
	// Encoded again as it was written: as long as data, but for the
	// digest, which is appended in the room left. The encoder keeps a
	// quarter of what it wrote free in its buffer, else grows it.
	again, err := l.marshal(len(data) + len(data)/4 + 4096)
	if err != nil {
		return nil, err
	}
	if l.Digest != want || !bytes.Equal(again, data) {
		l.Digest = want
		return &l, ErrEdited
	}
	return &l, nil
}

// ReadLock reads DIR/cairn.lock.
func ReadLock(dir string) (*Lock, error) {
	data, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err != nil {
		return nil, fmt.Errorf("%w (cairn lock writes it)", err)
	}
	return ParseLock(data)
}

// WriteLock writes DIR/cairn.lock atomically (synced), unless it holds
// exactly these bytes already (as cargo leaves a Cargo.lock that would
// not change): written reports which.
func WriteLock(dir string, l *Lock) (written bool, err error) {
	data, err := l.Marshal()
	if err != nil {
		return false, err
	}
	path := filepath.Join(dir, LockFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	return true, safefile.Write(path, data, safefile.Options{Perm: 0o644})
}

// ErrLockMismatch is the parent of LockError.
var ErrLockMismatch = errors.New("cairn.lock does not match")

// LockError lists every way a lock is stale, edited, or not what the
// index says, entry by entry.
type LockError struct {
	Stale    bool     // the project or policy changed since: cairn lock again
	Problems []string // one per entry
	stale    int      // how many of Problems say only that (OnlyStale)
}

// OnlyStale says whether every problem is one of a lock gone stale (the
// project, its policy or its repositories changed since it was written),
// none of a lock edited or untrue: cairn lock writes it again.
func (e *LockError) OnlyStale() bool { return e.Stale && e.stale == len(e.Problems) }

func (e *LockError) Error() string {
	return "cairn.lock: " + strings.Join(e.Problems, "; ")
}

func (e *LockError) Unwrap() error { return ErrLockMismatch }

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Check checks a lock against the project it claims to come from and
// against the verified indexes. Every repository's head must be in the
// verified history of its index (and its checkpoint, if any, check);
// then the project is resolved again at exactly those heads, and the
// lock must say what that gives — every package, version, descriptor
// digest and size, artifact per platform, and the snapshot — so that an
// edit the lock's own digest was recomputed for (an entry dropped, a
// version moved inside its range, an artifact list emptied) is refused
// too. Resolution reads descriptors only, never archives. edited is
// ParseLock's ErrEdited, if it said so. It returns a *LockError naming
// every entry that differs.
func Check(ctx context.Context, p *Project, l *Lock, edited error, srcs Sources) error {
	e := &LockError{}
	add := func(format string, args ...any) { e.Problems = append(e.Problems, fmt.Sprintf(format, args...)) }
	stale := func(format string, args ...any) {
		e.Stale = true
		e.stale++
		add(format, args...)
	}
	if edited != nil {
		add("its digest does not match its content: it was edited by hand")
	}
	if l.Project != digestOf(p.Raw) {
		stale("%s changed since the lock was written: run cairn lock", ProjectFile)
	}
	if want, err := policyPin(p, srcs); err != nil {
		add("policy: %v", err)
	} else if (want == nil) != (l.Policy == nil) || (want != nil && *want != *l.Policy) {
		stale("the policy changed since the lock was written: run cairn lock")
	}
	if !slices.Equal(l.Platforms, p.Platforms) {
		stale("platforms %v are not %s's %v", l.Platforms, ProjectFile, p.Platforms)
	}
	// The upstream lines of a repository that no longer follows them
	// (VIA/UPSTREAM): the organisation changed, not the lock.
	gone := map[string]bool{}
	headsOK := true
	seen := map[string]bool{}
	for _, lr := range l.Repositories {
		s := srcs.Get(lr.Name)
		twice := seen[lr.Name]
		seen[lr.Name] = true
		switch {
		case twice:
			add("repository %s is listed twice", lr.Name)
		case s == nil && followedBefore(lr.Name, srcs):
			gone[lr.Name] = true
			via, up, _ := strings.Cut(lr.Name, "/")
			stale("repository %s: %s no longer follows the upstream %s (its operator stopped, or renamed it): run cairn lock", lr.Name, via, up)
		case s == nil:
			add("repository %s is not in %s", lr.Name, ProjectFile)
		case lr.Location != s.Where():
			add("repository %s: location %s is not %s's %s", lr.Name, lr.Location, ProjectFile, s.Where())
		case lr.Introduction != s.Introduction:
			add("repository %s: introduction %s is not %s's %s", lr.Name, lr.Introduction, ProjectFile, s.Introduction)
		case s.View != nil && lr.Records != 0:
			// A light client counts no records (0: not known); a count
			// it did not make is not the lock's.
			add("repository %s: %d records at head %s, but a light client's lock counts none (0: not known)", lr.Name, lr.Records, lr.Head)
		default:
			if s.View != nil && lr.Head != s.Head() {
				// A light view reads the server's latest head only: the
				// lock's checkpoint must prove its head is in that
				// history, and its entries are checked at the latest.
				headsOK = false
				if lr.Checkpoint == "" {
					add("repository %s: the lock pins head %s, the server is at %s, and the lock holds no checkpoint to prove its head is in that history", lr.Name, lr.Head, s.Head())
				} else if _, err := s.openCheckpoint(ctx, lr.Head, []byte(lr.Checkpoint)); err != nil {
					add("repository %s: checkpoint: %v", lr.Name, err)
				}
			} else if prob := checkHead(ctx, s, lr.Head); prob != "" {
				headsOK = false
				add("%s", prob)
			} else if lr.Head == s.Head() && lr.Records != 0 && s.Records != 0 && lr.Records != s.Records {
				add("repository %s: %d records at head %s, but the index holds %d there", lr.Name, lr.Records, lr.Head, s.Records)
			} else if lr.Checkpoint != "" {
				if _, err := s.openCheckpoint(ctx, lr.Head, []byte(lr.Checkpoint)); err != nil {
					add("repository %s: checkpoint: %v", lr.Name, err)
				}
			} else if s.Checkpoint != nil {
				add("repository %s: the lock holds no checkpoint, and its server signs them", lr.Name)
			}
			continue
		}
		headsOK = false
	}
	for _, s := range srcs {
		if !slices.ContainsFunc(l.Repositories, func(r LockedRepo) bool { return r.Name == s.Name }) {
			headsOK = false
			if s.Via != nil && slices.ContainsFunc(l.Repositories, func(r LockedRepo) bool { return r.Name == s.Via.Name }) {
				// The organisation changed, not the lock.
				stale("repository %s: %s follows the upstream %s since the lock was written (its operator added it): run cairn lock", s.Name, s.Via.Name, s.Upstream)
				continue
			}
			add("repository %s: missing from cairn.lock, which pins no head of it", s.Name)
		}
	}
	if headsOK && !slices.EqualFunc(l.Repositories, srcs, func(r LockedRepo, s *Source) bool { return r.Name == s.Name }) {
		add("repositories %v are not in %s's order %v", lockedNames(l), ProjectFile, srcs.Names())
	}
	// Resolve again at the pinned heads when the inputs are the lock's;
	// otherwise the lock is stale, or its heads are not usable, and each
	// entry is only checked against the index. An entry is checked against
	// the index as it is now too (checkLocked), whose word on it comes
	// first.
	var derived map[string][]string
	if !e.Stale && headsOK {
		var rest []string
		var err error
		if derived, rest, err = rederive(ctx, p, l, srcs); err != nil {
			return err
		}
		e.Problems = append(e.Problems, rest...)
	}
	reported := map[string]bool{}
	for i := range l.Packages {
		pkg := &l.Packages[i]
		if reported[pkg.Name] || gone[pkg.Repository] {
			continue // said with its repository
		}
		probs, err := checkLocked(pkg, l, srcs)
		if err != nil {
			return err
		}
		if len(probs) > 0 {
			reported[pkg.Name] = true
			for _, prob := range probs {
				add("package %s: %s", pkg.ID(), prob)
			}
		}
	}
	for _, name := range sortedNames(derived) {
		if !reported[name] {
			e.Problems = append(e.Problems, derived[name]...)
		}
	}
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// followedBefore says whether a repository the lock names is an upstream
// line (VIA/UPSTREAM) of a repository the project still names, which it
// no longer follows.
func followedBefore(name string, srcs Sources) bool {
	via, _, ok := strings.Cut(name, "/")
	s := srcs.Get(via)
	return ok && s != nil && s.Via == nil
}

func lockedNames(l *Lock) []string {
	out := make([]string, len(l.Repositories))
	for i, r := range l.Repositories {
		out[i] = r.Name
	}
	return out
}

// checkLocked checks one entry against the index. An entry a read
// offline cannot check (light.ErrNotKept: this machine never read it at
// the checkpoint it verified last) is an error, not a problem of the
// lock's.
func checkLocked(pkg *Locked, l *Lock, srcs Sources) ([]string, error) {
	s := srcs.Get(pkg.Repository)
	if s == nil || !slices.ContainsFunc(l.Repositories, func(r LockedRepo) bool { return r.Name == pkg.Repository }) {
		return []string{fmt.Sprintf("repository %q is not one the lock lists", pkg.Repository)}, nil
	}
	if in, err := s.Shadowed(pkg.Name); errors.Is(err, light.ErrNotKept) {
		return nil, fmt.Errorf("package %s: %w", pkg.ID(), err)
	} else if err != nil {
		return []string{err.Error()}, nil
	} else if in {
		return []string{fmt.Sprintf("%s is an internal name of %s: its upstream namesake in %s is never used: run cairn lock", pkg.Name, s.Via.Name, s.Name)}, nil
	}
	d, ref, err := s.Catalog.Descriptor(pkg.Name, pkg.Version)
	if errors.Is(err, light.ErrNotKept) {
		return nil, fmt.Errorf("package %s: %w", pkg.ID(), err)
	}
	if err != nil {
		return []string{fmt.Sprintf("repository %s has no such version: %v", pkg.Repository, err)}, nil
	}
	if ref != pkg.Descriptor {
		return []string{fmt.Sprintf("descriptor %s is not the index's %s", pkg.Descriptor, ref)}, nil
	}
	var out []string
	for _, a := range pkg.Artifacts {
		if !hasArtifact(d, a) {
			out = append(out, fmt.Sprintf("artifact %s for %s (%s) is not an artifact of %s", a.File, a.Platform, a.Ref, d.ID()))
		}
	}
	return out, nil
}

func hasArtifact(d *descriptor.Descriptor, a LockedArtifact) bool {
	for _, x := range d.Artifacts {
		if x.Kind == a.Kind && x.File == a.File && x.Ref == a.Ref {
			return true
		}
	}
	return false
}
