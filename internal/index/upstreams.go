package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index/layout"
)

// An organisation's repository follows upstream indexes: the root
// declares each one (name, URL, introduction) in the index, `cairn sync`
// keeps a verified copy of its main under UpstreamRef, and the
// repository serves the upstream's packages beside its own — except
// those whose names are internal to it (internal names win: see Names).

// UpstreamRef is where the verified copy of an upstream's main lives.
func UpstreamRef(name string) string { return "refs/upstreams/" + name + "/main" }

// UpstreamLine is an upstream's line, verified against its own
// introduction.
func (r *Repo) UpstreamLine(u *Upstream) Line {
	return Line{Name: "upstream " + u.Name, Ref: UpstreamRef(u.Name), Introduction: u.Introduction,
		Marker: filepath.Join(r.local, "upstreams", u.Name+".verified.json")}
}

// Upstreams lists the upstreams declared at commit (or ref), by name, revoked
// ones included (RevokedBy set).
func (r *Repo) Upstreams(ctx context.Context, commit string) ([]*Upstream, error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := rd.Tree(commit + ":upstreams")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &treeState{files: newGitFiles(r.git, rd, commit)}
	var out []*Upstream
	for _, e := range entries {
		u, err := st.Upstream(e.Name)
		if err != nil {
			return nil, err
		}
		if u != nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// Followed returns the upstreams main follows now (declared, not
// revoked). It reads through the batch reader only: a server asks on
// requests.
func (r *Repo) Followed(ctx context.Context) ([]*Upstream, error) {
	all, err := r.Upstreams(ctx, MainRef)
	var out []*Upstream
	for _, u := range all {
		if u.RevokedBy == "" {
			out = append(out, u)
		}
	}
	return out, err
}

// UpstreamVersion finds a version that a followed upstream publishes, at
// the head of the upstream's copy that this repository verified, the
// upstream chosen as servedBy chooses it, judged at main's head: it fails
// if the name is internal to main (Names: internal names win), if no
// upstream publishes the package, or, unless only names one of them, if
// several do (an *AmbiguousError), and if the chosen one lacks the version.
func (r *Repo) UpstreamVersion(ctx context.Context, name, version, only string) (*Upstream, *descriptor.Descriptor, blob.Ref, error) {
	head, err := r.Head(ctx, MainRef)
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	own, err := r.Names(ctx, head)
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	if why, err := own.Why(name); err != nil {
		return nil, nil, blob.Ref{}, err
	} else if why != "" {
		if ups, err := r.Followed(ctx); err == nil && len(ups) == 0 {
			return nil, nil, blob.Ref{}, fmt.Errorf("%s@%s is not published in %s: %w", name, version, r.Dir, fs.ErrNotExist)
		}
		return nil, nil, blob.Ref{}, fmt.Errorf("%s@%s is not published in %s, and %s is an internal package: its upstream namesakes are never used (%s): %w", name, version, r.Dir, name, why, fs.ErrNotExist)
	}
	heads, err := r.verifiedUpstreams(ctx, head)
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	var pubs []*Upstream
	verified := map[*Upstream]string{}
	for _, h := range heads {
		if only != "" && h.u.Name != only {
			continue
		}
		id, _, err := treeAt(rd, h.head+":"+layout.PackageDir(name))
		if err != nil {
			return nil, nil, blob.Ref{}, err
		}
		if id != "" {
			pubs = append(pubs, h.u)
			verified[h.u] = h.head
		}
	}
	u, err := servedBy(name, "", pubs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, blob.Ref{}, fmt.Errorf("%s@%s is published neither in %s nor in an upstream it verified (cairn sync fetches and verifies them): %w", name, version, r.Dir, fs.ErrNotExist)
	}
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	o, err := rd.Read(verified[u] + ":" + layout.VersionDir(name, version) + "/" + layout.DescriptorFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, blob.Ref{}, fmt.Errorf("%s@%s: upstream %s publishes %s but not this version (as verified at %.12s): %w", name, version, u.Name, name, verified[u], fs.ErrNotExist)
	}
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	d, err := descriptor.Parse(o.Data)
	return u, d, blob.DigestBytes(o.Data), err
}

// PackageNames returns the names of the packages published at commit.
func (r *Repo) PackageNames(ctx context.Context, commit string) (map[string]bool, error) {
	dirs, err := r.dirPaths(ctx, commit, "packages")
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, p := range dirs {
		if name, _, ok := layout.ParseVersionDir(p); ok {
			names[name] = true
		}
	}
	return names, nil
}
