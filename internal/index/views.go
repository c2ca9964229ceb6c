package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// Status is a record's standing in the index: active, or ended (revoked
// or superseded by a later record), or active but signed by a key the
// root has since revoked. Its String is the display word ("issuer key
// revoked"); code asks Active, never compares the words.
type Status int

// The record statuses.
const (
	StatusActive        Status = iota // counts
	StatusRevoked                     // ended by a revoke record
	StatusSuperseded                  // ended by a supersede record
	StatusIssuerRevoked               // counts: signed before its key was revoked (the rules refuse what a key signs after)
)

var statusNames = [...]string{"active", "revoked", "superseded", "issuer key revoked"}

// String returns the status as people read it: active, revoked,
// superseded, issuer key revoked.
func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("Status(%d)", int(s))
	}
	return statusNames[s]
}

// Active reports whether a record with this status counts: not revoked,
// not superseded. A record whose key was revoked after it was signed
// still counts.
func (s Status) Active() bool { return s == StatusActive || s == StatusIssuerRevoked }

// Ended reports whether a later record ended the record (revoked or
// superseded it).
func (s Status) Ended() bool { return s == StatusRevoked || s == StatusSuperseded }

// MarshalText writes the display word, as --json always has.
func (s Status) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(statusNames) {
		return nil, fmt.Errorf("record status %d is not a status", int(s))
	}
	return []byte(statusNames[s]), nil
}

// UnmarshalText reads a display word back.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("record status %q: want active, revoked, superseded or issuer key revoked", b)
}

// RecordView is a record as people read it.
type RecordView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Issuer    string    `json:"issuer"`             // key id, or "root"
	Holder    string    `json:"holder,omitempty"`   // as granted by the root
	Time      time.Time `json:"time"`               // when it was appended to the index
	Status    Status    `json:"status"`             // typed: ask Status.Active(); JSON and %s give the display word
	EndedBy   string    `json:"ended_by,omitempty"` // the record that ended it, when Status.Ended()
	Ends      string    `json:"ends,omitempty"`     // revoke/supersede: the record it ends
	Artifacts []string  `json:"artifacts,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Path      string    `json:"path"`

	Record *record.Record `json:"-"` // the record itself
}

// VersionView is a published version and every record about it.
type VersionView struct {
	Name       string                 `json:"name"`
	Version    string                 `json:"version"`
	Ref        blob.Ref               `json:"descriptor"`
	Descriptor *descriptor.Descriptor `json:"manifest"`
	Records    []RecordView           `json:"records"`
}

// atHead returns what the views read: main's head, the batch reader, the
// state at head and its root.
func (r *Repo) atHead(ctx context.Context) (string, *gitx.Reader, *Overlay, *Root, error) {
	head, err := r.Head(ctx, MainRef)
	if err != nil {
		return "", nil, nil, nil, err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return "", nil, nil, nil, err
	}
	st, err := r.State(ctx, head)
	if err != nil {
		return "", nil, nil, nil, err
	}
	root, err := st.Root()
	return head, rd, st, root, err
}

// Show returns a package's versions (or one version) with their records,
// oldest first, at main's head.
func (r *Repo) Show(ctx context.Context, name, version string) ([]VersionView, error) {
	c, err := r.Catalog(ctx, MainRef)
	if err != nil {
		return nil, err
	}
	return c.Show(ctx, name, version)
}

// Show returns a package's versions (or one version) with their records,
// oldest first, at the catalog's commit; each record's Time is when it
// was appended.
func (c *Catalog) Show(ctx context.Context, name, version string) ([]VersionView, error) {
	if err := descriptor.CheckName(name); err != nil {
		return nil, err
	}
	entries, err := c.files.List(layout.PackageDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not published in %s at %.12s: %w", name, c.where, c.commit, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	entries = versionDirs(entries)
	dir := layout.PackageDir(name)
	if version != "" {
		dir = layout.VersionDir(name, version)
	}
	times, err := c.appendTimes(ctx, dir)
	if err != nil {
		return nil, err
	}
	var out []VersionView
	for _, e := range entries {
		if version != "" && e.Name != version {
			continue
		}
		v, err := c.versionView(name, e.Name, times)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s@%s is not published in %s: %w", name, version, c.where, fs.ErrNotExist)
	}
	sort.Slice(out, func(i, j int) bool { return semverLess(out[i].Version, out[j].Version) })
	return out, nil
}

// ShowUpstream returns this repository's own records about a version
// that upstream up publishes (UpstreamRecords), in the order they were
// appended, with their times.
func (c *Catalog) ShowUpstream(ctx context.Context, up, name, version string) ([]RecordView, error) {
	recs, err := c.UpstreamRecords(up, name, version)
	if err != nil || len(recs) == 0 {
		return recs, err
	}
	times, err := c.appendTimes(ctx, layout.UpstreamVersionDir(up, name, version))
	if err != nil {
		return nil, err
	}
	inOrder(recs, times)
	return recs, nil
}

// appendTimes says when each file under dir was appended.
func (c *Catalog) appendTimes(ctx context.Context, dir string) (map[string]appended, error) {
	added, err := c.files.Additions(ctx, dir)
	if err != nil {
		return nil, err
	}
	times := make(map[string]appended, len(added))
	for _, a := range added {
		times[a.Path] = appended{a.Time, a.Rank}
	}
	return times, nil
}

// inOrder sets each record's time and sorts them in the order they were
// appended.
func inOrder(recs []RecordView, times map[string]appended) {
	for i := range recs {
		recs[i].Time = times[recs[i].Path].time
	}
	sort.SliceStable(recs, func(i, j int) bool { return times[recs[i].Path].seq < times[recs[j].Path].seq })
}

// appended is when a file was added: its commit's time and its rank in
// commit order.
type appended struct {
	time time.Time
	seq  int64
}

func (c *Catalog) versionView(name, version string, times map[string]appended) (*VersionView, error) {
	dir := layout.VersionDir(name, version)
	files, err := c.files.List(dir)
	if err != nil {
		return nil, err
	}
	d, ref, recs, err := c.readVersion(dir, files)
	if err != nil {
		return nil, err
	}
	inOrder(recs, times)
	return &VersionView{Name: name, Version: version, Ref: ref, Descriptor: d, Records: recs}, nil
}

// detail summarises a record's predicate in one line.
func detail(rec *record.Record) string {
	switch p := rec.Predicate.(type) {
	case record.VulnsPredicate:
		var parts []string
		for _, res := range p.Scanner.Result {
			s := res.ID
			if len(res.Severity) > 0 {
				s += " severity " + res.Severity[0].Score
			}
			if a := res.Annotation("affects"); a != "" {
				s += " affects " + a
			}
			if a := res.Aliases(); len(a) > 0 {
				s += " (aliases " + strings.Join(a, ", ") + ")"
			}
			if n := res.Annotation("note"); n != "" {
				s += ": " + n
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "; ")
	case record.TestResultPredicate:
		s := p.Result
		if p.URL != "" {
			s += " " + p.URL
		}
		return s
	case record.CertificationPredicate:
		return withEvidence(p.Note, p.Evidence)
	case record.FixedPredicate:
		s := "answers " + strings.Join(p.Vulnerabilities, ", ")
		if p.Status != "" && p.Status != record.StatusFixed {
			// OpenVEX's not_affected: why, as the record says it.
			s += " (" + string(p.Status)
			if p.Justification != "" {
				s += ": " + p.Justification
			} else if p.ImpactStatement != "" {
				s += ": " + p.ImpactStatement
			}
			s += ")"
		}
		if p.Note != "" {
			s += ": " + p.Note
		}
		return withEvidence(s, p.Evidence)
	case record.EndPredicate:
		return fmt.Sprintf("%s record %.16s: %s", rec.Kind, rec.Statement.Subject[0].SHA256(), p.Reason)
	case record.AuthoredPredicate:
		return "descriptor sha256:" + p.Descriptor.SHA256
	case record.ImportedPredicate:
		s := "from " + p.Source
		if db := p.SumDB; db != nil {
			s += fmt.Sprintf(", vouched for by checksum database %s (record %d)", db.Name, db.Record)
		}
		if p.Released != nil {
			s += ", released " + p.Released.UTC().Format(time.RFC3339)
		}
		return s
	}
	return ""
}

// withEvidence appends a record's evidence to its summary.
func withEvidence(s string, evidence []record.Evidence) string {
	for _, e := range evidence {
		s += fmt.Sprintf(" [evidence %s sha256:%.12s]", e.Name, e.SHA256)
	}
	return strings.TrimSpace(s)
}

func semverLess(a, b string) bool {
	pa, pb := strings.SplitN(a, ".", 3), strings.SplitN(b, ".", 3)
	for i := 0; i < 3 && i < len(pa) && i < len(pb); i++ {
		if len(pa[i]) != len(pb[i]) {
			return len(pa[i]) < len(pb[i])
		}
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return a < b
}

// KeyView is a key as `cairn key list` shows it.
type KeyView struct {
	ID        string     `json:"id"`
	Holder    string     `json:"holder"`
	Scopes    []string   `json:"scopes"`
	Expires   *time.Time `json:"expires,omitempty"` // when the last of its live grants ends (none if one never does)
	Ended     []string   `json:"ended,omitempty"`   // the scopes of its grants that have ended, each "SCOPE (ended TIME)"
	Status    string     `json:"status"`            // active, revoked, expired
	RevokedBy string     `json:"revoked_by,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// Keys lists the root keys and every granted key.
func (r *Repo) Keys(ctx context.Context) ([]KeyView, error) {
	head, rd, st, root, err := r.atHead(ctx)
	if err != nil {
		return nil, err
	}
	var out []KeyView
	for id, h := range root.Holders {
		out = append(out, KeyView{ID: id, Holder: h, Scopes: []string{fmt.Sprintf("root (threshold %d of %d, version %d)", root.Threshold, len(root.Keys), root.Version)}, Status: "active"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	shards, err := rd.Tree(head + ":keys")
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	t := time.Now()
	var granted []KeyView
	for _, sh := range shards {
		ks, err := rd.Tree(sh.ID)
		if err != nil {
			return nil, err
		}
		for _, ke := range ks {
			id, err := keys.IDFromHex(ke.Name)
			if err != nil {
				continue
			}
			k, err := st.Key(id)
			if err != nil || k == nil {
				return nil, err
			}
			kv := KeyView{ID: id, Holder: k.Holder(), Status: "active", RevokedBy: k.RevokedBy, Reason: k.Reason}
			never := false // a live grant without an end
			for _, g := range k.Grants {
				if !g.live(t) {
					for _, sc := range g.Raw {
						kv.Ended = append(kv.Ended, fmt.Sprintf("%s (ended %s)", sc, g.Expires.UTC().Format(time.RFC3339)))
					}
					continue
				}
				kv.Scopes = append(kv.Scopes, g.Raw...)
				switch {
				case g.Expires == nil:
					never = true
				case kv.Expires == nil || g.Expires.After(*kv.Expires):
					kv.Expires = g.Expires
				}
			}
			if never {
				kv.Expires = nil
			}
			switch {
			case k.RevokedBy != "":
				kv.Status = "revoked"
			case len(k.Active(t)) == 0:
				kv.Status = "expired"
			}
			granted = append(granted, kv)
		}
	}
	sort.Slice(granted, func(i, j int) bool { return granted[i].Holder+granted[i].ID < granted[j].Holder+granted[j].ID })
	return append(out, granted...), nil
}

// LogEntry is one commit of the audit trail.
type LogEntry struct {
	Commit  string      `json:"commit"`
	Time    time.Time   `json:"time"`
	Author  string      `json:"author"`
	Message string      `json:"message"`
	Records []LogRecord `json:"records"`
}

// LogRecord is one file a commit added.
type LogRecord struct {
	ID      string `json:"id,omitempty"`
	Kind    string `json:"kind"`
	Subject string `json:"subject"`
	Issuer  string `json:"issuer,omitempty"`
	Path    string `json:"path"`
}

// Log streams the audit trail, newest first; limit 0 means all.
func (r *Repo) Log(ctx context.Context, limit int, fn func(LogEntry) error) error {
	head, err := r.Head(ctx, MainRef)
	if err != nil {
		return err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return err
	}
	n := 0
	errStop := errors.New("stop")
	err = r.git.Walk(ctx, gitx.WalkOptions{To: head, NewestFirst: true}, func(e *gitx.LogEntry) error {
		if limit > 0 && n >= limit {
			return errStop
		}
		n++
		c, err := rd.Commit(e.ID)
		if err != nil {
			return err
		}
		le := LogEntry{Commit: e.ID, Time: time.Unix(e.Time, 0).UTC(), Author: c.Committer, Message: strings.TrimSpace(c.Message)}
		for _, ch := range e.Changes {
			lr := LogRecord{Path: ch.Path, Kind: "descriptor"}
			if ch.Status != 'A' {
				lr.Kind = fmt.Sprintf("(%c: not an append)", ch.Status)
			} else if strings.HasSuffix(ch.Path, "/"+layout.SnapshotFile) {
				lr.Kind, lr.Subject = "snapshot file", "sha256:"+path.Base(path.Dir(ch.Path))
			} else if !strings.HasSuffix(ch.Path, "/"+layout.DescriptorFile) {
				o, err := rd.Read(ch.NewID)
				if err != nil {
					return err
				}
				rec, err := record.Parse(o.Data)
				if err != nil {
					lr.Kind = "(malformed)"
				} else {
					lr.ID, lr.Kind, lr.Issuer, lr.Subject = rec.ID, string(rec.Kind), rec.Issuer(), rec.Statement.Subject[0].Name
					if lr.Subject == "record" {
						lr.Subject = "record " + rec.Statement.Subject[0].SHA256()[:16]
					}
				}
			} else if loc, err := layout.ParsePath(ch.Path); err == nil {
				lr.Subject = loc.Name + "@" + loc.Version
			}
			le.Records = append(le.Records, lr)
		}
		return fn(le)
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}
