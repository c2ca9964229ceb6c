package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
)

// PackageTree is where one package's files are, named by their content:
// the git tree of the package's directory (its versions) and, for an
// upstream's package, the tree of this repository's own records about
// its versions and the upstream it comes from. A tree id names its
// content, so a PackageTree's Key changes exactly when something about
// the package does.
type PackageTree struct {
	Tree     string
	Local    string    // "" if none
	Upstream *Upstream // nil: the repository's own package

	// tree and local are Tree's and Local's bytes, if FindPackage read
	// them (git answers a tree's id with its bytes) and they are small
	// (keptTree): PackageVersions then does not ask for them again.
	tree, local []byte
}

// keptTree bounds the bytes of a tree a PackageTree keeps (a package of
// about 30 versions; a server keeps tens of thousands of PackageTrees).
const keptTree = 1 << 10

// kept returns data if it is small enough to keep with a PackageTree.
func kept(data []byte) []byte {
	if len(data) > keptTree {
		return nil
	}
	return data
}

// Key names the package's content (an ETag, a cache key): its trees
// and, for an upstream's package, the upstream's name and introduction
// (the same trees followed under another name are served as another's).
func (p PackageTree) Key() string {
	k := p.Tree
	if p.Local != "" {
		k += "+" + p.Local
	}
	if p.Upstream != nil {
		k += "@" + p.Upstream.Name + "=" + p.Upstream.Introduction
	}
	return k
}

// FindPackage finds a package's files at main's current head, read once
// and used for every judgement: in main first, then, for a name that is
// not internal (servedBy: internal names win), in the verified copy of
// the one upstream of those ups returns (asked only when main lacks the
// package) that publishes it. A package found nowhere, or internal and
// unpublished, is fs.ErrNotExist; one several upstreams publish is an
// *AmbiguousError.
func (r *Repo) FindPackage(ctx context.Context, name string, ups func() ([]*Upstream, error)) (PackageTree, error) {
	main, err := r.Head(ctx, MainRef)
	if err != nil {
		return PackageTree{}, err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return PackageTree{}, err
	}
	dir := layout.PackageDir(name)
	if id, data, err := treeAt(rd, main+":"+dir); id != "" || err != nil {
		return PackageTree{Tree: id, tree: kept(data)}, err
	}
	followed, err := ups()
	if err != nil {
		return PackageTree{}, err
	}
	if len(followed) == 0 {
		return PackageTree{}, fs.ErrNotExist
	}
	own, err := r.Names(ctx, main)
	if err != nil {
		return PackageTree{}, err
	}
	why, err := own.Why(name)
	if err != nil {
		return PackageTree{}, err
	}
	var pubs []*Upstream
	trees := map[*Upstream]PackageTree{}
	for _, u := range followed {
		if why != "" {
			break // never looked at
		}
		id, data, err := treeAt(rd, UpstreamRef(u.Name)+":"+dir)
		if err != nil {
			return PackageTree{}, err
		}
		if id != "" {
			pubs = append(pubs, u)
			trees[u] = PackageTree{Tree: id, tree: kept(data), Upstream: u}
		}
	}
	u, err := servedBy(name, why, pubs)
	if err != nil {
		return PackageTree{}, err
	}
	p := trees[u]
	var local []byte
	p.Local, local, err = treeAt(rd, main+":"+layout.UpstreamDir(u.Name)+"/"+dir)
	p.local = kept(local)
	return p, err
}

// UpstreamsKey returns the id of main's tree of upstream declarations, ""
// if there is none: it changes exactly when the upstreams main declares
// do, so a list of them can be kept by it.
func (r *Repo) UpstreamsKey(ctx context.Context) (string, error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return "", err
	}
	id, _, err := treeAt(rd, MainRef+":upstreams")
	return id, err
}

// treeAt returns the id and the bytes of the tree at rev:path, "" if
// there is none.
func treeAt(rd *gitx.Reader, spec string) (string, []byte, error) {
	o, err := rd.Read(spec)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && o.Type != "tree") {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	return o.ID, o.Data, nil
}

// entries returns the entries of the tree id, from data if it is the
// tree's bytes, else as read from git.
func (r *Repo) entries(rd *gitx.Reader, id string, data []byte) ([]gitx.TreeEntry, error) {
	if data != nil {
		return gitx.ParseTree(data, r.git.HexSize())
	}
	return rd.Tree(id)
}

// PackageVersion is one version of a PackageTree, as stored: its
// descriptor's bytes, its records (DSSE envelopes, in the tree's order)
// and this repository's own records about it (an upstream's version).
type PackageVersion struct {
	Version      string
	Descriptor   []byte
	Records      [][]byte
	LocalRecords [][]byte
}

// PackageVersions calls fn with each version of p, in the tree's order.
func (r *Repo) PackageVersions(ctx context.Context, p PackageTree, fn func(PackageVersion) error) error {
	rd, err := r.reader(ctx)
	if err != nil {
		return err
	}
	versions, err := r.entries(rd, p.Tree, p.tree)
	if err != nil {
		return err
	}
	local := map[string]string{} // version → tree of local records
	if p.Upstream != nil && p.Local != "" {
		lv, err := r.entries(rd, p.Local, p.local)
		if err != nil {
			return err
		}
		for _, v := range lv {
			local[v.Name] = v.ID
		}
	}
	// The versions' trees, then all their files, each asked for in one
	// round trip to git, not one an object.
	var trees []string
	for _, v := range versions {
		if v.IsTree() {
			trees = append(trees, v.ID)
			if t := local[v.Name]; t != "" {
				trees = append(trees, t)
			}
		}
	}
	objs, err := rd.ReadMany(trees)
	if err != nil {
		return err
	}
	listed := make([][]gitx.TreeEntry, len(objs))
	var ids []string
	for i, o := range objs {
		if o.Type != "tree" {
			return fmt.Errorf("%s is a %s, not a tree", o.ID, o.Type)
		}
		if listed[i], err = gitx.ParseTree(o.Data, r.git.HexSize()); err != nil {
			return err
		}
		for _, f := range listed[i] {
			ids = append(ids, f.ID)
		}
	}
	files, err := rd.ReadMany(ids)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if !v.IsTree() {
			continue
		}
		pv := PackageVersion{Version: v.Name}
		for _, f := range listed[0] {
			if f.Name == layout.DescriptorFile {
				pv.Descriptor = files[0].Data
			} else {
				pv.Records = append(pv.Records, files[0].Data)
			}
			files = files[1:]
		}
		listed = listed[1:]
		if local[v.Name] != "" {
			for range listed[0] {
				pv.LocalRecords = append(pv.LocalRecords, files[0].Data)
				files = files[1:]
			}
			listed = listed[1:]
		}
		if err := fn(pv); err != nil {
			return err
		}
	}
	return nil
}

// readFiles calls fn with each file of a tree.
func readFiles(rd *gitx.Reader, tree string, fn func(file string, data []byte)) error {
	files, err := rd.Tree(tree)
	if err != nil {
		return err
	}
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.ID
	}
	objs, err := rd.ReadMany(ids)
	if err != nil {
		return err
	}
	for i, f := range files {
		fn(f.Name, objs[i].Data)
	}
	return nil
}
