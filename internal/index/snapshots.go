package index

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/snapshot"
)

// SnapshotView is a snapshot of the index as people read it: what it is,
// who created it, and which labels point at it now.
type SnapshotView struct {
	Ref      blob.Ref  `json:"snapshot"`
	Name     string    `json:"name"` // for display only: a snapshot is its digest
	Packages int       `json:"packages"`
	Labels   []string  `json:"labels,omitempty"` // the labels whose latest move points at it
	Record   string    `json:"record"`           // the curator's record creating it
	Issuer   string    `json:"issuer"`
	Holder   string    `json:"holder,omitempty"`
	Issued   time.Time `json:"issued"` // the curator's own claim

	Snapshot *snapshot.Snapshot `json:"content,omitempty"` // the set itself (ShowSnapshot)
}

// LabelState is where a label points now: its latest move.
type LabelState struct {
	Label    string   `json:"label"`
	Snapshot blob.Ref `json:"snapshot"`
	Name     string   `json:"snapshot_name,omitempty"` // the snapshot's display name
	Record   string   `json:"record"`                  // the latest move
	Issuer   string   `json:"issuer"`
	Holder   string   `json:"holder,omitempty"`
}

// Snapshots lists the snapshots of the index at the catalog's commit, by
// name, then digest; the set itself (Snapshot) is left out.
func (c *Catalog) Snapshots() ([]SnapshotView, error) {
	labels, err := c.Labels()
	if err != nil {
		return nil, err
	}
	shards, err := c.files.List("snapshots")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SnapshotView
	for _, shard := range shards {
		dirs, err := c.files.List("snapshots/" + shard.Name)
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			v, err := c.snapshotView(d.Name, labels)
			if err != nil {
				return nil, err
			}
			v.Snapshot = nil
			out = append(out, *v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Ref.SHA256 < out[j].Ref.SHA256
	})
	return out, nil
}

// ShowSnapshot reads one snapshot, named by a label (where it points
// now), by its sha256 ("sha256:" optional) or by a unique prefix of at
// least 8 hex digits: fs.ErrNotExist if there is none.
func (c *Catalog) ShowSnapshot(name string) (*SnapshotView, error) {
	digest, byDigest := strings.CutPrefix(name, "sha256:")
	if !byDigest && record.CheckLabel(name) == nil {
		m, err := c.Label(name)
		switch {
		case err == nil:
			digest = m.Snapshot.SHA256
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		case !isHexPrefix(name):
			return nil, fmt.Errorf("no label %s and no snapshot of that name in the index at %.12s (cairn snapshot list shows them): %w", name, c.commit, fs.ErrNotExist)
		}
	}
	ref, err := c.FindSnapshot(digest)
	if err != nil {
		return nil, err
	}
	labels, err := c.Labels()
	if err != nil {
		return nil, err
	}
	return c.snapshotView(ref.SHA256, labels)
}

// isHexPrefix reports whether s could name a snapshot by its digest.
func isHexPrefix(s string) bool {
	return len(s) >= 8 && len(s) <= 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// snapshotView reads the snapshot directory of digest hex: the set and
// the record creating it.
func (c *Catalog) snapshotView(hex string, labels []LabelState) (*SnapshotView, error) {
	if !blob.IsDigest(hex) {
		return nil, fmt.Errorf("snapshots/%s: not a sha256 digest", hex)
	}
	dir := layout.SnapshotDir(hex)
	files, err := c.files.List(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	v := &SnapshotView{}
	for _, f := range files {
		data, err := c.files.Read(dir + "/" + f.Name)
		if err != nil {
			return nil, err
		}
		if f.Name == layout.SnapshotFile {
			v.Ref = blob.DigestBytes(data)
			if v.Snapshot, err = snapshot.Parse(data); err != nil {
				return nil, fmt.Errorf("%s/%s: %w", dir, f.Name, err)
			}
			continue
		}
		rec, err := record.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, f.Name, err)
		}
		p, ok := rec.Predicate.(record.SnapshotPredicate)
		if !ok {
			continue
		}
		v.Record, v.Issuer, v.Issued = rec.ID, rec.Issuer(), p.Issued
		if k, _ := c.Key(rec.Issuer()); k != nil {
			v.Holder = k.Holder()
		}
	}
	if v.Snapshot == nil {
		return nil, fmt.Errorf("%s: no %s in the snapshot's directory", dir, layout.SnapshotFile)
	}
	v.Name, v.Packages = v.Snapshot.Name, len(v.Snapshot.Packages)
	for _, l := range labels {
		if l.Snapshot == v.Ref {
			v.Labels = append(v.Labels, l.Label)
		}
	}
	return v, nil
}

// Labels lists the labels of the index at the catalog's commit, by name,
// each where its latest move points.
func (c *Catalog) Labels() ([]LabelState, error) {
	dirs, err := c.files.List("labels")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []LabelState
	for _, d := range dirs {
		m, err := c.Label(d.Name)
		if err != nil {
			return nil, err
		}
		l := LabelState{Label: m.Label, Snapshot: m.Snapshot, Record: m.RecordID, Issuer: m.Issuer}
		if k, _ := c.Key(m.Issuer); k != nil {
			l.Holder = k.Holder()
		}
		if s, err := c.Snapshot(m.Snapshot); err == nil {
			l.Name = s.Name
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}
