package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"cairn.dev/cairn/internal/gitx"
)

// InitReplica creates an empty repository at dir that will hold a copy
// of the index whose introduction is given: no main yet, which the first
// pull from a remote creates. Nothing is left at dir if it fails.
func InitReplica(ctx context.Context, dir, introduction string) (*Repo, error) {
	return InitReplicaWith(ctx, dir, introduction, InitOptions{})
}

// InitReplicaWith is InitReplica with options: a replica that serves its
// writer's index (cairn serve --follow) shares the writer's object store
// (o.Blobs), asked for a blob before anything is made.
func InitReplicaWith(ctx context.Context, dir, introduction string, o InitOptions) (*Repo, error) {
	if o.Blobs != "" {
		if err := checkBucket(ctx, o.Blobs); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%s exists", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, ".cairn-init-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	g, err := gitx.InitBare(filepath.Join(tmp, "index.git"))
	if err != nil {
		return nil, err
	}
	if err := g.SetAttributes("* -delta"); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(tmp, "cairn.json"), Config{Introduction: introduction, Blobs: o.Blobs}); err != nil {
		return nil, err
	}
	if o.Blobs == "" {
		if err := os.MkdirAll(filepath.Join(tmp, "blobs"), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return Open(ctx, dir)
}

// VerifiedHead returns the head the line was last verified at and how
// many record files it held ("" and 0 if never).
func (l Line) VerifiedHead() (string, int, error) {
	m, err := loadMarker(l.Marker)
	if err != nil || m == nil {
		return "", 0, err
	}
	return m.Head, m.Records, nil
}

// Adopt makes the line verified at the head and record count line from
// was verified at: both lines start from the same introduction and this
// one points at that head (a replica's main after a fast-forward to a
// verified remote), so replaying again would only check it twice.
func (l Line) Adopt(from Line) error {
	if from.Introduction != l.Introduction {
		return fmt.Errorf("%s and %s start from different introductions", from.Name, l.Name)
	}
	m, err := loadMarker(from.Marker)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("%s was never verified", from.Name)
	}
	return saveMarker(l.Marker, *m)
}

// MoveRef moves ref from old ("" = absent) to new ("" = delete it) with
// compare-and-swap, and brings a clone's work tree along when ref is main.
// The update is not cut short when ctx ends: git killed in it would leave
// the ref's lock file behind, refusing every later update of the ref.
func (r *Repo) MoveRef(ctx context.Context, ref, new, old string) error {
	if new == "" {
		new = r.git.ZeroID()
	}
	if err := r.git.UpdateRef(context.WithoutCancel(ctx), ref, new, old, "cairn: verified"); err != nil {
		return err
	}
	r.resetReader()
	if ref == MainRef {
		return r.git.CheckoutTree(ctx, old, new)
	}
	return nil
}
