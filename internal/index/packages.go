package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index/layout"
)

// PackageEntry is one package of a listing: its name, where it comes
// from and its latest version.
type PackageEntry struct {
	Name     string `json:"name"`
	Latest   string `json:"latest"`   // the newest version, in semver order
	Versions int    `json:"versions"` // how many are published
	// Upstream is the upstream whose package this is (read at the head of
	// its copy this repository verified); "" for the repository's own.
	Upstream string `json:"upstream,omitempty"`
}

// Packages lists the packages published at commit (a head verified
// before: the caller's to choose), by name, each with its latest
// version, that match term (see MatchPackage; "" matches all). The
// packages of the upstreams main follows are listed beside them, each
// read at the head of the upstream's copy this repository verified, as
// servedBy serves them: never one whose name is internal to the
// repository (Names: internal names win), and never a name several
// upstreams publish (an *AmbiguousError to every other reader: nobody
// serves it).
func (r *Repo) Packages(ctx context.Context, commit, term string) ([]PackageEntry, error) {
	id, err := r.Head(ctx, commit)
	if err != nil {
		return nil, err
	}
	own, err := r.packageVersions(ctx, id)
	if err != nil {
		return nil, err
	}
	var out []PackageEntry
	for name, vs := range own {
		if MatchPackage(term, name) {
			out = append(out, entry(name, vs, ""))
		}
	}
	heads, err := r.verifiedUpstreams(ctx, id)
	if err != nil {
		return nil, err
	}
	pubs := map[string][]*Upstream{}
	versions := map[*Upstream]map[string][]string{}
	for _, h := range heads {
		theirs, err := r.packageVersions(ctx, h.head)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", h.u.Name, err)
		}
		versions[h.u] = theirs
		for name := range theirs {
			if own[name] == nil && MatchPackage(term, name) {
				pubs[name] = append(pubs[name], h.u)
			}
		}
	}
	var names *Names
	for name, us := range pubs {
		if names == nil {
			if names, err = r.Names(ctx, id); err != nil {
				return nil, err
			}
		}
		why, err := names.Why(name)
		if err != nil {
			return nil, err
		}
		u, err := servedBy(name, why, us)
		var amb *AmbiguousError
		if errors.Is(err, fs.ErrNotExist) || errors.As(err, &amb) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, entry(name, versions[u][name], u.Name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// upstreamHead is a followed upstream and the head of its copy this
// repository verified.
type upstreamHead struct {
	u    *Upstream
	head string
}

// verifiedUpstreams lists the upstreams followed at commit (declared,
// not revoked) that this repository verified a copy of, by name, each
// with the head it verified.
func (r *Repo) verifiedUpstreams(ctx context.Context, commit string) ([]upstreamHead, error) {
	ups, err := r.Upstreams(ctx, commit)
	if err != nil {
		return nil, err
	}
	var out []upstreamHead
	for _, u := range ups {
		if u.RevokedBy != "" {
			continue
		}
		head, _, err := r.UpstreamLine(u).VerifiedHead()
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		if head != "" { // never synced: nothing of it is verified here
			out = append(out, upstreamHead{u, head})
		}
	}
	return out, nil
}

// PackagesKey names what Packages(commit, …) reads: commit's id and the
// verified head of each upstream followed there. A listing kept by it is
// current for as long as the key is the same.
func (r *Repo) PackagesKey(ctx context.Context, commit string) (string, error) {
	id, err := r.Head(ctx, commit)
	if err != nil {
		return "", err
	}
	heads, err := r.verifiedUpstreams(ctx, id)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(id)
	for _, h := range heads {
		b.WriteString(";" + h.u.Name + "=" + h.head)
	}
	return b.String(), nil
}

// MatchPackage reports whether a package name matches a search term: a
// glob (path.Match, '*' stopping at '/') when the term has one of *?[,
// else a substring, both ignoring case; "" matches every name.
func MatchPackage(term, name string) bool {
	term, name = strings.ToLower(term), strings.ToLower(name)
	if strings.ContainsAny(term, "*?[") {
		ok, err := path.Match(term, name)
		return ok && err == nil
	}
	return strings.Contains(name, term)
}

func entry(name string, versions []string, upstream string) PackageEntry {
	latest := versions[0]
	for _, v := range versions[1:] {
		if semverLess(latest, v) {
			latest = v
		}
	}
	return PackageEntry{Name: name, Latest: latest, Versions: len(versions), Upstream: upstream}
}

// packageVersions reads every package's versions at commit in one
// listing of the packages tree.
func (r *Repo) packageVersions(ctx context.Context, commit string) (map[string][]string, error) {
	dirs, err := r.dirPaths(ctx, commit, "packages")
	if err != nil {
		return nil, err
	}
	byName := map[string][]string{}
	for _, p := range dirs {
		// packages/H/H/H/H/NAME…/VERSION
		if name, version, ok := layout.ParseVersionDir(p); ok {
			byName[name] = append(byName[name], version)
		}
	}
	return byName, nil
}

// UpstreamVersionView is a version that an upstream publishes, as this
// repository shows it: the upstream's descriptor and records, their
// statuses judged by the upstream's own root, read at the head of the
// upstream's copy this repository verified; and this repository's own
// records about it (its security team's audit, say), judged by its root.
type UpstreamVersionView struct {
	VersionView
	Upstream string       `json:"upstream"`
	Head     string       `json:"upstream_head"` // the upstream's verified head read
	Local    []RecordView `json:"local_records"`
}

// ShowUpstreamPackage returns a package's versions (or one version) that
// an upstream main follows publishes, oldest first, as UpstreamVersionView
// shows them. The upstream is the one servedBy picks among those whose
// verified copies publish the name, as the server's light reads and
// Packages pick it: it fails with fs.ErrNotExist when the name is
// internal to this repository (Names: internal names win, its upstream
// namesakes are never shown) or when no upstream this repository
// verified publishes it, and with an *AmbiguousError when several do.
func (r *Repo) ShowUpstreamPackage(ctx context.Context, name, version string) ([]UpstreamVersionView, error) {
	if err := descriptor.CheckName(name); err != nil {
		return nil, err
	}
	own, err := r.Catalog(ctx, MainRef)
	if err != nil {
		return nil, err
	}
	names, err := r.Names(ctx, own.Commit())
	if err != nil {
		return nil, err
	}
	why, err := names.Why(name)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return nil, fmt.Errorf("%s is not published in %s, and is an internal name: its upstream namesakes are never shown (%s): %w", name, r.Dir, why, fs.ErrNotExist)
	}
	heads, err := r.verifiedUpstreams(ctx, own.Commit())
	if err != nil {
		return nil, err
	}
	var pubs []*Upstream
	catalogs := map[*Upstream]*Catalog{}
	published := map[*Upstream][]string{}
	for _, h := range heads {
		theirs, err := r.Catalog(ctx, h.head)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", h.u.Name, err)
		}
		vs, err := theirs.Versions(name)
		if err != nil {
			return nil, err
		}
		if len(vs) > 0 {
			pubs = append(pubs, h.u)
			catalogs[h.u], published[h.u] = theirs, vs
		}
	}
	u, err := servedBy(name, why, pubs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is published neither in %s nor in an upstream it verified (cairn sync fetches and verifies them): %w", name, r.Dir, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	theirs := catalogs[u]
	views, err := theirs.Show(ctx, name, version)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s@%s is published neither in %s nor by upstream %s, which publishes %s %s: %w", name, version, r.Dir, u.Name, name, strings.Join(published[u], ", "), fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	out := make([]UpstreamVersionView, 0, len(views))
	for _, v := range views {
		local, err := own.ShowUpstream(ctx, u.Name, name, v.Version)
		if err != nil {
			return nil, err
		}
		out = append(out, UpstreamVersionView{VersionView: v, Upstream: u.Name, Head: theirs.Commit(), Local: append([]RecordView{}, local...)})
	}
	return out, nil
}
