package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
)

// Reads of the index's history by meaning: what was published, added or
// made between two heads. Nothing outside index walks history.

// PublishedVersion is a version published in an index's history.
type PublishedVersion struct {
	Name, Version string
	Commit        string // the commit that published it
}

// PublishedBetween lists the versions published after from (a head; ""
// for the whole history) up to to, in the order they were published.
// Only descriptors count: a record about an old version is not a new
// version.
func (r *Repo) PublishedBetween(ctx context.Context, from, to string) ([]PublishedVersion, error) {
	var out []PublishedVersion
	err := r.git.Walk(ctx, gitx.WalkOptions{From: from, To: to, Paths: []string{"packages"}}, func(e *gitx.LogEntry) error {
		for _, ch := range e.Changes {
			if ch.Status != 'A' {
				continue
			}
			loc, err := layout.ParsePath(ch.Path)
			if err != nil || loc.Place != layout.PlaceDescriptor {
				continue
			}
			out = append(out, PublishedVersion{Name: loc.Name, Version: loc.Version, Commit: e.ID})
		}
		return nil
	})
	return out, err
}

// AddedBetween calls fn, oldest commit first, with each commit after old
// ("" for the whole history) up to new and the files it added, with
// their content. Files a commit changed or deleted are not given (the
// rules refuse them on main). fn may stop the walk by returning an error.
func (r *Repo) AddedBetween(ctx context.Context, old, new string, fn func(commit string, added []Entry) error) error {
	rd, err := r.reader(ctx)
	if err != nil {
		return err
	}
	return r.git.Walk(ctx, gitx.WalkOptions{From: old, To: new}, func(e *gitx.LogEntry) error {
		var added []Entry
		for _, ch := range e.Changes {
			if ch.Status != 'A' {
				continue
			}
			o, err := rd.Read(ch.NewID)
			if err != nil {
				return err
			}
			added = append(added, entryOf(ch.Path, o.Data))
		}
		return fn(e.ID, added)
	})
}

// Replay is one commit of a line's own history, as it can be made again
// on another head: its committer, its message's first part and the files
// it added.
type Replay struct {
	ID     string
	Ident  string // "name <email>"
	Header string // the message, trimmed
	Files  []Content
}

// Replays returns the commits head has that onto does not, oldest first,
// each as a Replay. A commit that does more than add files cannot be
// replayed: that is an error.
func (r *Repo) Replays(ctx context.Context, onto, head string) ([]Replay, error) {
	ids, err := r.git.RevList(ctx, onto, head)
	if err != nil {
		return nil, err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, err
	}
	var out []Replay
	for _, id := range ids {
		c, err := rd.Commit(id)
		if err != nil {
			return nil, err
		}
		var files []Content
		err = r.git.Walk(ctx, gitx.WalkOptions{From: id + "^", To: id}, func(e *gitx.LogEntry) error {
			for _, ch := range e.Changes {
				if ch.Status != 'A' {
					return fmt.Errorf("commit %.12s changes %s: only added files can be replayed", id, ch.Path)
				}
				o, err := rd.Read(ch.NewID)
				if err != nil {
					return err
				}
				files = append(files, Content{Path: ch.Path, Data: o.Data})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, Replay{ID: id, Ident: c.Committer, Header: strings.TrimSpace(c.Message), Files: files})
	}
	return out, nil
}

// versionFiles returns the files of a version's directory at rev (a
// commit or ref): its descriptor and its records.
func (r *Repo) versionFiles(ctx context.Context, rev, name, version string) ([]Content, error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, err
	}
	dir := layout.VersionDir(name, version)
	entries, err := rd.Tree(rev + ":" + dir)
	if err != nil {
		return nil, err
	}
	var files []Content
	for _, e := range entries {
		o, err := rd.Read(e.ID)
		if err != nil {
			return nil, err
		}
		files = append(files, Content{Path: dir + "/" + e.Name, Data: o.Data})
	}
	return files, nil
}

// fileAt returns the content of the file at path (a path of the layout)
// in rev's tree; ok is false when there is no file there.
func (r *Repo) fileAt(ctx context.Context, rev, path string) (data []byte, ok bool, err error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, false, err
	}
	o, err := rd.Read(rev + ":" + path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && o.Type != "blob") {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return o.Data, true, nil
}
