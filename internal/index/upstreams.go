package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

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
	st := &treeState{rd: rd, commit: commit}
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
// the head of the upstream's copy that this repository verified. It fails if the name is
// internal to main (Names: internal names win) or if no upstream, or more than one,
// publishes the version and none was named.
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
		return nil, nil, blob.Ref{}, fmt.Errorf("%s@%s is not published in %s, and %s is an internal package: its upstream namesakes are never used (%s)", name, version, r.Dir, name, why)
	}
	ups, err := r.Followed(ctx)
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	type hit struct {
		u    *Upstream
		data []byte
	}
	var hits []hit
	var names []string
	for _, u := range ups {
		if only != "" && u.Name != only {
			continue
		}
		verified, _, err := r.UpstreamLine(u).VerifiedHead()
		if err != nil {
			return nil, nil, blob.Ref{}, err
		}
		if verified == "" {
			continue
		}
		o, err := rd.Read(verified + ":" + layout.VersionDir(name, version) + "/" + layout.DescriptorFile)
		if err == nil {
			hits = append(hits, hit{u, o.Data})
			names = append(names, u.Name)
		}
	}
	switch len(hits) {
	case 0:
		return nil, nil, blob.Ref{}, fmt.Errorf("%s@%s is published neither in %s nor in an upstream it verified (cairn sync fetches and verifies them)", name, version, r.Dir)
	case 1:
		d, err := descriptor.Parse(hits[0].data)
		return hits[0].u, d, blob.DigestBytes(hits[0].data), err
	}
	return nil, nil, blob.Ref{}, fmt.Errorf("%s@%s is published by upstreams %s: name one (--upstream)", name, version, strings.Join(names, ", "))
}

// PackageNames returns the names of the packages published at commit.
func (r *Repo) PackageNames(ctx context.Context, commit string) (map[string]bool, error) {
	dirs, err := r.dirPaths(ctx, commit, "packages")
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, p := range dirs {
		if parts := strings.Split(p, "/"); len(parts) == 7 && parts[0] == "packages" {
			names[parts[5]+"/"+parts[6]] = true
		}
	}
	return names, nil
}
