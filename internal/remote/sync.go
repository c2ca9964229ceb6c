package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
)

// Synced reports one upstream's sync.
type Synced struct {
	Upstream string  `json:"upstream"`
	URL      string  `json:"url"`
	Pulled   *Pulled `json:"pulled,omitempty"`
	Error    string  `json:"error,omitempty"`
	// Collisions are package names the upstream publishes that are
	// internal here (index.Names: published here, or inside a publish
	// grant of this repository's keys): the upstream's are never served
	// (dependency confusion). A name whose every version the upstream
	// publishes is published here with the same descriptor (promoted
	// from here) is not one.
	Collisions []string `json:"collisions,omitempty"`
}

// SyncError collects the upstreams that could not be synced; the others
// were, and everything synced before is still served.
type SyncError struct{ Errors []error }

func (e *SyncError) Error() string {
	var parts []string
	for _, err := range e.Errors {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As find a security error among them.
func (e *SyncError) Unwrap() []error { return e.Errors }

// Sync follows every upstream main declares: fetches its index into
// index.UpstreamRef, verifies every new commit against the upstream's own
// root and checks its signed checkpoint, like a pull, with the witness
// quorum set for it (SetUpstreamWitnesses). An upstream that
// fails (unreachable, frozen, rewritten) is reported and keeps the head
// verified before; the others are synced regardless. The fetch tells the
// upstream only the commits of its own line, so that nothing of the
// repository's internal packages reaches it.
func Sync(ctx context.Context, r *index.Repo, o Options) ([]Synced, error) {
	ups, err := r.Followed(ctx)
	if err != nil {
		return nil, err
	}
	head, err := r.Head(ctx, index.MainRef)
	if err != nil {
		return nil, err
	}
	var out []Synced
	var failed []error
	for _, u := range ups {
		s := Synced{Upstream: u.Name, URL: u.URL}
		rm, err := upstreamRemoteOf(r, u)
		var p *Pulled
		if err == nil {
			p, err = fetch(ctx, r, rm, o)
		}
		if err != nil {
			// fetch's errors name the upstream (and a security error its
			// URL) already.
			s.Error = err.Error()
			failed = append(failed, err)
		}
		s.Pulled = p
		// What the fetch did is reported even if the names cannot be
		// checked (a cancelled context): the server's reads ask Names
		// themselves, so nothing internal is served from upstream either way.
		if s.Collisions, err = collisions(ctx, r, u, head); err != nil {
			failed = append(failed, fmt.Errorf("upstream %s: checking its names against this repository's: %w", u.Name, err))
		}
		out = append(out, s)
	}
	if len(failed) > 0 {
		return out, &SyncError{failed}
	}
	return out, nil
}

// collisions lists the names an upstream's verified copy publishes (at
// the head this repository verified, as every read judges it) that are
// internal to the repository at main's head.
func collisions(ctx context.Context, r *index.Repo, u *index.Upstream, main string) ([]string, error) {
	head, _, err := r.UpstreamLine(u).VerifiedHead()
	if err != nil || head == "" {
		return nil, err
	}
	theirs, err := r.PackageNames(ctx, head)
	if err != nil {
		return nil, err
	}
	own, err := r.Names(ctx, main)
	if err != nil {
		return nil, err
	}
	var theirCat, ownCat *index.Catalog
	var out []string
	for name := range theirs {
		if in, err := own.Internal(name); err != nil {
			return nil, err
		} else if !in {
			continue
		}
		if theirCat == nil {
			if theirCat, err = r.Catalog(ctx, head); err != nil {
				return nil, err
			}
			if ownCat, err = r.Catalog(ctx, main); err != nil {
				return nil, err
			}
		}
		if promoted, err := promotedHere(theirCat, ownCat, name); err != nil {
			return nil, err
		} else if !promoted {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// promotedHere says whether every version of name that theirs publishes
// is published in own with the same descriptor: copies of this
// repository's own versions (cairn promote), not a namesake.
func promotedHere(theirs, own *index.Catalog, name string) (bool, error) {
	versions, err := theirs.Versions(name)
	if err != nil || len(versions) == 0 {
		return false, err
	}
	for _, v := range versions {
		_, their, err := theirs.Descriptor(name, v)
		if err != nil {
			return false, err
		}
		_, mine, err := own.Descriptor(name, v)
		if errors.Is(err, fs.ErrNotExist) || err == nil && mine != their {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// pullUpstreams brings along, from a server of this repository's own
// index, the upstream lines it follows, each verified against the
// upstream's introduction as the (verified) index declares it and held to
// the upstream's own signed checkpoint the server kept (its tree, its
// freshness, the witnesses r trusts for the upstream), as a sync holds
// it: clients of an organisation's server see its upstreams through its
// one URL and trust it for none of them. A line that fails is reported
// and keeps the head verified before; the others are pulled regardless.
func pullUpstreams(ctx context.Context, r *index.Repo, rm *Remote, o Options) ([]*Pulled, error) {
	if rm.Plain() {
		// A plain git host keeps no upstream lines with their checkpoints.
		return nil, nil
	}
	head, err := refAt(ctx, r, Ref(rm.Name))
	if err != nil {
		return nil, err
	}
	ups, err := r.Upstreams(ctx, head)
	if err != nil {
		return nil, err
	}
	if len(ups) == 0 {
		return nil, nil
	}
	// Which lines the server holds: every declared one must be.
	served, err := r.RemoteRefs(ctx, rm.URL+"/index.git", "refs/upstreams/*")
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", rm.Name, err)
	}
	held := map[string]bool{}
	for _, ref := range served {
		held[ref.Name] = true
	}
	var out []*Pulled
	var errs []error
	for _, u := range ups {
		ref := index.UpstreamRef(u.Name)
		if u.RevokedBy != "" {
			continue
		}
		if !held[ref] {
			// Every declared, unrevoked line is required: left out, the
			// names it publishes would be chosen otherwise (another
			// upstream's of the same name, which is ambiguous with it),
			// for a replica that never verified it as for one that did.
			if h, _, err := r.UpstreamLine(u).VerifiedHead(); err != nil {
				errs = append(errs, fmt.Errorf("upstream %s: %w", u.Name, err))
			} else if h != "" {
				errs = append(errs, &CheckpointError{Remote: "upstream " + u.Name, Problem: fmt.Sprintf("the server at %s no longer serves the line, which this replica verified at %s from it before: a line that disappears changes which upstream a name is taken from; this copy stays at %s", rm.URL, h, h)})
			} else {
				errs = append(errs, &CheckpointError{Remote: "upstream " + u.Name, Problem: fmt.Sprintf("the server at %s does not serve the line (%s not advertised) of an upstream its root declares: left out, it would change which upstream a name is taken from; the organisation's server has not synced this upstream yet, or hides it: run `cairn sync` on the server", rm.URL, ref)})
			}
			continue
		}
		// The line is held to the upstream's checkpoint with the
		// witnesses this replica trusts for that upstream, as a sync.
		via, err := upstreamRemoteOf(r, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		via.URL, via.via = rm.URL, ref
		p, err := fetch(ctx, r, via, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// UpstreamBlobs fetches, on demand, blobs that a followed upstream's
// verified index refers to, from that upstream, verified and then kept.
// A digest no upstream refers to is never asked for: the repository's own
// blobs are not named to anyone.
type UpstreamBlobs struct {
	Repo    *index.Repo
	Options Options

	mu    sync.Mutex
	heads map[string]string           // upstream → head its refs were read at
	refs  map[string]map[string]int64 // upstream → referenced digest → size
}

// Fetch implements server.Options.Fallback.
func (b *UpstreamBlobs) Fetch(ctx context.Context, hex string, size int64) error {
	ups, err := b.Repo.Followed(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range ups {
		known, err := b.referenced(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n, ok := known[hex]
		if !ok {
			continue
		}
		if n < 0 {
			n = size
		}
		if n < 0 {
			return fmt.Errorf("blob sha256:%s: upstream %s gives no size for it; ask with ?size=N", hex, u.Name)
		}
		c := &blob.Chain{Local: b.Repo.Blobs, Mirrors: []blob.Store{&blob.HTTP{URL: u.URL, Client: b.Options.client()}}}
		if err := c.Fetch(ctx, blob.Ref{SHA256: hex, Size: n}); err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: %w", u.Name, err))
			continue
		}
		return nil
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return fmt.Errorf("blob sha256:%s: no followed upstream refers to it: %w", hex, fs.ErrNotExist)
}

// referenced returns the blobs an upstream's verified copy refers to,
// read again only when its head moved.
func (b *UpstreamBlobs) referenced(ctx context.Context, u *index.Upstream) (map[string]int64, error) {
	head, _, err := b.Repo.UpstreamLine(u).VerifiedHead()
	if err != nil || head == "" {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.heads[u.Name] == head {
		return b.refs[u.Name], nil
	}
	refs, err := b.Repo.ReferencedBlobs(ctx, head)
	if err != nil {
		return nil, err
	}
	if b.heads == nil {
		b.heads, b.refs = map[string]string{}, map[string]map[string]int64{}
	}
	b.heads[u.Name], b.refs[u.Name] = head, refs
	return refs, nil
}

// UpstreamCheckpoint returns the upstream's signed checkpoint that the
// last sync of u checked and kept (with the cosignatures it came with),
// checked again against the line's verified history, and the id of the
// key that signed it; fs.ErrNotExist if the line was never synced or the
// upstream signs no checkpoints. It implements
// server.Options.UpstreamCheckpoint: a server serves it as the upstream
// line's checkpoint.
func UpstreamCheckpoint(ctx context.Context, r *index.Repo, u *index.Upstream) ([]byte, string, error) {
	rm := upstreamRemote(u)
	head, _, err := rm.Line(r).VerifiedHead()
	if err != nil {
		return nil, "", err
	}
	if head == "" {
		return nil, "", fmt.Errorf("upstream %s was never synced: %w", u.Name, fs.ErrNotExist)
	}
	note, err := rm.LastCheckpoint(r)
	if err != nil {
		return nil, "", err
	}
	sc, err := OpenCheckpoint(ctx, r, head, u.Introduction, note)
	if err != nil {
		return nil, "", fmt.Errorf("upstream %s: the checkpoint kept: %w", u.Name, err)
	}
	return note, sc.Key, nil
}
