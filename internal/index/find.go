package index

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index/layout"
)

// Descriptor reads a published version's descriptor from the index.
func (r *Repo) Descriptor(ctx context.Context, name, version string) (*descriptor.Descriptor, blob.Ref, error) {
	head, err := r.Head(ctx, MainRef)
	if err != nil {
		return nil, blob.Ref{}, err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, blob.Ref{}, err
	}
	o, err := rd.Read(head + ":" + layout.VersionDir(name, version) + "/" + layout.DescriptorFile)
	if err != nil {
		return nil, blob.Ref{}, fmt.Errorf("%s@%s is not published in %s", name, version, r.Dir)
	}
	d, err := descriptor.Parse(o.Data)
	return d, blob.DigestBytes(o.Data), err
}

// Found locates a record in the index: its id and what it is about (the
// version, for a record about one; the upstream it is kept for).
type Found struct {
	ID       string
	Name     string
	Version  string
	Upstream string

	dir string
}

// About names what the record is about: NAME@VERSION, or the place of
// the index it is in (a key, a label, a snapshot, an upstream, the root).
func (f *Found) About() string {
	if f.Name != "" && f.Version != "" {
		return f.Name + "@" + f.Version
	}
	return f.dir
}

// FindRecord finds a record by id or by a unique prefix of at least 8 hex
// digits.
func (r *Repo) FindRecord(ctx context.Context, idOrPrefix string) (*Found, error) {
	if len(idOrPrefix) < 8 || strings.Trim(idOrPrefix, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("record id %q: give the id, or at least its first 8 lowercase hex digits", idOrPrefix)
	}
	paths, err := r.filePaths(ctx, MainRef)
	if err != nil {
		return nil, err
	}
	var found []*Found
	for _, p := range paths {
		base := p[strings.LastIndexByte(p, '/')+1:]
		if strings.HasPrefix(base, idOrPrefix) && len(base) == 64+len(".json") {
			f := &Found{ID: strings.TrimSuffix(base, ".json"), dir: filepath.Dir(p)}
			if loc, err := layout.ParsePath(p); err == nil {
				f.Name, f.Version, f.Upstream = loc.Name, loc.Version, loc.Upstream
			}
			found = append(found, f)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no record %s in %s: %w", idOrPrefix, r.Dir, fs.ErrNotExist)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("record prefix %s is ambiguous (%d records): give more digits", idOrPrefix, len(found))
}
