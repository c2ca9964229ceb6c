package index

import (
	"context"
	"fmt"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
)

// Entry is a file of the index read by meaning, so that no package
// outside index needs its layout: a version's descriptor or a record
// (with its id and what it is about), and its raw bytes. An entry read
// from a history whose path is not of the layout has only Data: the
// rules judge such files, readers of entries only spare blobs.
type Entry struct {
	Descriptor bool   // a version's descriptor
	ID         string // a record's id
	Name       string // the package of a version's descriptor or record
	Version    string // the version of a version's descriptor or record
	Upstream   string // the upstream a record about its versions is kept for
	Data       []byte

	path string
	dir  string
}

// DescriptorEntry is the entry of a version's descriptor, to ask a tree
// for with EntryAt.
func DescriptorEntry(name, version string) Entry {
	return Entry{Descriptor: true, Name: name, Version: version, path: layout.VersionDir(name, version) + "/" + layout.DescriptorFile}
}

func entryOf(path string, data []byte) Entry {
	e := Entry{Data: data, path: path}
	loc, err := layout.ParsePath(path)
	if err != nil {
		return e
	}
	e.Descriptor = loc.Place == layout.PlaceDescriptor
	e.ID, e.Name, e.Version, e.Upstream, e.dir = loc.RecordID, loc.Name, loc.Version, loc.Upstream, loc.Dir
	return e
}

// About names what the entry is about: NAME@VERSION for a version's
// descriptor and records, else the place of the index it is in (a key,
// a label, a snapshot, an upstream, the root); "" for a file not of the
// layout.
func (e Entry) About() string {
	if e.Name != "" && e.Version != "" {
		return e.Name + "@" + e.Version
	}
	return e.dir
}

// Blobs calls want with each blob the entry refers to: a descriptor
// itself and its artifacts; a record's descriptor, evidence and source
// (Size -1 where the record gives no size).
func (e Entry) Blobs(want func(blob.Ref)) { fileBlobs(e.path, e.Data, want) }

// Refused reports whether err is the rules refusing this entry.
func (e Entry) Refused(re *RuleError) bool { return re != nil && re.Path != "" && re.Path == e.path }

// Entries calls fn with every file of the tree at commit, as entries, in
// one `ls-tree` and one streamed `cat-file`.
func (r *Repo) Entries(ctx context.Context, commit string, fn func(Entry) error) error {
	return r.files(ctx, commit, func(path string, data []byte) error { return fn(entryOf(path, data)) })
}

// VersionEntries returns the descriptor and records of a version at rev
// (a commit or ref), as entries.
func (r *Repo) VersionEntries(ctx context.Context, rev, name, version string) ([]Entry, error) {
	files, err := r.versionFiles(ctx, rev, name, version)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(files))
	for i, f := range files {
		out[i] = entryOf(f.Path, f.Data)
	}
	return out, nil
}

// EntryAt returns the bytes rev's tree holds where e lives (an entry of
// VersionEntries, or DescriptorEntry); ok is false when there is none.
func (r *Repo) EntryAt(ctx context.Context, rev string, e Entry) (data []byte, ok bool, err error) {
	if e.path == "" {
		return nil, false, fmt.Errorf("entry %s has no place in the index", e.About())
	}
	return r.fileAt(ctx, rev, e.path)
}

// CommitOn checks entries (of VersionEntries) as one commit on parent, a
// verified head of line l, against every rule of l's index, and writes it
// — moving no ref. It is how a version is copied to another index (cairn
// promote): the commit is pushed there, and l's ref moves when the push
// lands.
func (r *Repo) CommitOn(ctx context.Context, l Line, parent string, entries []Entry, ident, message string) (string, error) {
	files := make([]gitx.File, len(entries))
	for i, e := range entries {
		files[i] = gitx.File{Path: e.path, Data: e.Data}
	}
	return r.commitOn(ctx, l, parent, files, ident, message)
}

// Record returns the bytes of the record with the given id at main's
// head, and where the index's tree holds it (what a server names in its
// answer); the error wraps fs.ErrNotExist when there is no such record.
func (r *Repo) Record(ctx context.Context, id string) (data []byte, where string, err error) {
	path, err := r.idPath(ctx, id)
	if err != nil {
		return nil, "", err
	}
	data, ok, err := r.fileAt(ctx, MainRef, path)
	if err == nil && !ok {
		err = fmt.Errorf("record %s: no file at %s on %s", id, path, MainRef)
	}
	return data, path, err
}
