package index

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/record"
)

// files calls fn with the path and content of every file of the tree at
// commit, in one `ls-tree` and one streamed `cat-file`.
func (r *Repo) files(ctx context.Context, commit string, fn func(path string, data []byte) error) error {
	type entry struct{ path, id string }
	var entries []entry
	err := r.git.LsTree(ctx, commit, false, nil, func(t gitx.TreeItem) error {
		if t.Type == "blob" {
			entries = append(entries, entry{t.Path, t.ID})
		}
		return nil
	})
	if err != nil {
		return err
	}
	stream, err := r.git.NewStream(ctx)
	if err != nil {
		return err
	}
	defer stream.Wait()
	go func() {
		defer stream.CloseRequests()
		for _, e := range entries {
			if stream.Request(e.id) != nil {
				return
			}
		}
	}()
	for _, e := range entries {
		o, err := stream.Next()
		if err != nil {
			return err
		}
		if err := fn(e.path, o.Data); err != nil {
			return err
		}
	}
	return nil
}

// fileBlobs calls want with each blob an index file refers to: a
// descriptor file itself and its artifacts; a record's descriptor,
// evidence and source (Size -1 where the record gives no size). Files
// that do not parse refer to nothing: the rules judge files, this only
// spares blobs.
func fileBlobs(path string, data []byte, want func(blob.Ref)) {
	if strings.HasSuffix(path, "/"+layout.DescriptorFile) {
		want(blob.DigestBytes(data))
		if d, err := descriptor.Parse(data); err == nil {
			for _, a := range d.Artifacts {
				want(a.Ref)
			}
		}
		return
	}
	if rec, err := record.Parse(data); err == nil {
		for _, ref := range rec.Blobs() {
			want(ref)
		}
	}
}

// ReferencedBlobs returns every blob the index refers to at commit, by
// sha256 (hex), with its size (-1 when no file gives it).
func (r *Repo) ReferencedBlobs(ctx context.Context, commit string) (map[string]int64, error) {
	refs := map[string]int64{}
	err := r.files(ctx, commit, func(path string, data []byte) error {
		fileBlobs(path, data, func(ref blob.Ref) {
			if old, ok := refs[ref.SHA256]; !ok || old < 0 {
				refs[ref.SHA256] = ref.Size
			}
		})
		return nil
	})
	return refs, err
}

// LocalDir is the directory of the repository's local state: its
// configuration, verified heads and blob store.
func (r *Repo) LocalDir() string { return r.local }

// idPath returns the path of the record with the given id at main's
// head. The first call lists the tree; later calls only read the commits
// added since.
func (r *Repo) idPath(ctx context.Context, id string) (string, error) {
	if !blob.IsDigest(id) {
		return "", fmt.Errorf("record id %q: want 64 lowercase hex digits", id)
	}
	head, err := r.Head(ctx, MainRef)
	if err != nil {
		return "", err
	}
	r.pathsMu.Lock()
	defer r.pathsMu.Unlock()
	if head != r.pathsHead {
		if err := r.updatePaths(ctx, head); err != nil {
			return "", err
		}
	}
	p, ok := r.paths[id]
	if !ok {
		return "", fmt.Errorf("no record %s: %w", id, fs.ErrNotExist)
	}
	return p, nil
}

func (r *Repo) updatePaths(ctx context.Context, head string) error {
	add := func(p string) {
		base := p[strings.LastIndexByte(p, '/')+1:]
		if id, ok := strings.CutSuffix(base, ".json"); ok && blob.IsDigest(id) {
			r.paths[id] = p
		}
	}
	if r.paths != nil {
		if ok, _ := r.git.IsAncestor(ctx, r.pathsHead, head); ok {
			err := r.git.Walk(ctx, gitx.WalkOptions{From: r.pathsHead, To: head}, func(e *gitx.LogEntry) error {
				for _, c := range e.Changes {
					if c.Status == 'A' {
						add(c.Path)
					}
				}
				return nil
			})
			if err == nil {
				r.pathsHead = head
				return nil
			}
		}
	}
	paths, err := r.filePaths(ctx, head)
	if err != nil {
		return err
	}
	r.paths = map[string]string{}
	for _, p := range paths {
		add(p)
	}
	r.pathsHead = head
	return nil
}

// BlobsAddedBetween returns the blobs that the files added after old
// ("" for the whole history) up to new refer to, by sha256 (hex), with
// their size (-1 when no file gives it): what a replica that pulled from
// old to new may lack.
func (r *Repo) BlobsAddedBetween(ctx context.Context, old, new string) (map[string]int64, error) {
	refs := map[string]int64{}
	err := r.AddedBetween(ctx, old, new, func(_ string, added []Entry) error {
		for _, e := range added {
			fileBlobs(e.path, e.Data, func(ref blob.Ref) {
				if old, ok := refs[ref.SHA256]; !ok || old < 0 {
					refs[ref.SHA256] = ref.Size
				}
			})
		}
		return nil
	})
	return refs, err
}
