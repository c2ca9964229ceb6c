package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
)

// keyData is a key's page.
type keyData struct {
	ID      string
	Holder  string
	Root    string // "root (threshold …)" for a root key
	Status  string // active, revoked, expired
	Grants  []grantRow
	Revoked *grantBy // the revoke-key record, when revoked
	Reason  string

	Signed   []activityFile // what it signed in the leaves scanned, newest first
	From, To int64          // the leaves scanned: From to To-1
	Size     int64          // the log's size
	Older    int64          // the before= of the page of older leaves (0: none)
	Newer    int64          // the before= of the page of newer leaves (0: none)
	ScanSize int

	Git      bool // scanned git's history (no log): commits, not leaves
	Skip     int  // the commits skipped
	NextSkip int  // the skip= of the next page (0: none)
}

// grantRow is one grant of a key.
type grantRow struct {
	Holder  string
	Scopes  []string
	Expires *time.Time
	By      grantBy
}

// grantBy is a record that granted or revoked a key, and who signed it.
type grantBy struct {
	Record string
	Issuer string
	Time   time.Time
}

// key serves GET /keys/KEYID: the key's holder, grants and scopes, who
// granted and revoked it, and what it signed, KeyScanCommits commits of
// main at a time, newest first.
func (p *Pages) key(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	c, err := p.catalog(ctx)
	if err != nil {
		p.failErr(w, r, "key "+id, err)
		return
	}
	if p.cachedPage(w, r, c.Commit()) {
		return
	}
	d := keyData{ID: id, ScanSize: KeyScanCommits}
	k, err := c.Key(id)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.failErr(w, r, "key "+id, err)
		return
	}
	if k == nil || len(k.Grants) == 0 {
		root, err := p.rootKey(ctx, id)
		if err != nil {
			p.failErr(w, r, "key "+id, err)
			return
		}
		d.Holder, d.Root, d.Status = root.Holder, strings.Join(root.Scopes, ", "), root.Status
	} else {
		d.Holder, d.Status, d.Reason = k.Holder(), "active", k.Reason
		now := time.Now()
		switch {
		case k.RevokedBy != "":
			d.Status = "revoked"
		case len(k.Active(now)) == 0:
			d.Status = "expired"
		}
		for _, g := range k.Grants {
			d.Grants = append(d.Grants, grantRow{Holder: g.Holder, Scopes: g.Raw, Expires: g.Expires, By: p.recordBy(ctx, g.RecordID)})
		}
		if k.RevokedBy != "" {
			by := p.recordBy(ctx, k.RevokedBy)
			if by.Time.IsZero() {
				by.Time = k.RevokedTime
			}
			d.Revoked = &by
		}
	}
	if err := p.signedBy(ctx, r, c, &d); err != nil {
		if errors.Is(err, errBadQuery) {
			p.fail(w, r, http.StatusBadRequest, "%v", err)
			return
		}
		p.failErr(w, r, "what key "+id+" signed", err)
		return
	}
	p.render(w, r, http.StatusOK, "key", page{Title: "Key " + id, Head: c.Commit(), Data: d})
}

// rootKey returns the root key id names; fs.ErrNotExist if the index
// has no key id.
func (p *Pages) rootKey(ctx context.Context, id string) (*index.KeyView, error) {
	all, err := p.src.Repo.Keys(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].ID == id {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("the index has no key %s: %w", id, fs.ErrNotExist)
}

// recordBy says who signed the record id (its first signature's key).
func (p *Pages) recordBy(ctx context.Context, id string) grantBy {
	by := grantBy{Record: id}
	data, _, err := p.src.Repo.Record(ctx, id)
	if err != nil {
		return by
	}
	if rec, err := record.Parse(data); err == nil {
		by.Issuer = rec.Issuer()
	}
	return by
}

// signedBy lists what d's key signed, newest first: from the leaves of
// main's log before ?before=N (default: its end), KeyScanChunk at a time,
// until KeySignedRows records are found or KeyScanLeaves leaves are
// scanned; with no log, in KeyScanCommits commits of main after ?skip=N.
func (p *Pages) signedBy(ctx context.Context, r *http.Request, c *index.Catalog, d *keyData) error {
	if p.src.Leaves == nil {
		return p.signedByGit(ctx, r, d)
	}
	_, size, err := p.src.Leaves(ctx, 0, 0, false)
	if err != nil {
		return err
	}
	d.Size, d.To = size, size
	if s := r.URL.Query().Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: before %q: want a leaf index (the next page's link gives one)", errBadQuery, s)
		}
		d.To = min(n, size)
	}
	d.From = d.To
	for d.From > 0 && d.To-d.From < KeyScanLeaves && len(d.Signed) < KeySignedRows {
		leaves, _, err := p.src.Leaves(ctx, max(d.From-KeyScanChunk, 0), d.From, true)
		if err != nil {
			return err
		}
		if len(leaves) == 0 {
			break
		}
		for i := len(leaves) - 1; i >= 0 && len(d.Signed) < KeySignedRows; i-- {
			d.From = leaves[i].Index
			if leaves[i].Map {
				continue
			}
			if f := p.describeCached(c, leaves[i]); f.Issuer == d.ID {
				f.Time = leaves[i].Time
				d.Signed = append(d.Signed, f)
			}
		}
	}
	if d.From > 0 {
		d.Older = d.From
	}
	if d.To < size {
		d.Newer = min(d.To+KeyScanLeaves, size)
	}
	return nil
}

// describeCached is describe, kept by leaf: a leaf of the log never
// changes (its entry names its commit and path), nor what it is, nor the
// holder its signing key was granted under.
func (p *Pages) describeCached(c *index.Catalog, l Leaf) activityFile {
	key := leafKey{l.Index, l.Commit, l.Path}
	p.dmu.Lock()
	f, ok := p.described[key]
	p.dmu.Unlock()
	if ok {
		return f
	}
	f = p.describe(c, l)
	p.dmu.Lock()
	if len(p.described) >= maxDescribed {
		clear(p.described)
	}
	p.described[key] = f
	p.dmu.Unlock()
	return f
}

// leafKey names a leaf of the log for describeCached.
type leafKey struct {
	index        int64
	commit, path string
}

// maxDescribed bounds describeCached's memory: about 300 bytes a leaf.
const maxDescribed = 1 << 15

var errBadQuery = errors.New("bad query")

// signedByGit scans KeyScanCommits commits of main after ?skip=N,
// newest first, for the records d's key signed (a server with no log).
func (p *Pages) signedByGit(ctx context.Context, r *http.Request, d *keyData) error {
	skip := 0
	if s := r.URL.Query().Get("skip"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: skip %q: want a number of commits", errBadQuery, s)
		}
		skip = n
	}
	n, scanned := 0, 0
	err := p.src.Repo.Log(ctx, skip+KeyScanCommits, func(e index.LogEntry) error {
		n++
		if n <= skip {
			return nil
		}
		scanned++
		for _, f := range e.Records {
			if f.Issuer == d.ID {
				af := activityFile{LogRecord: f}
				af.Package, af.Version = versionOf(f.Subject)
				af.Time = e.Time
				d.Signed = append(d.Signed, af)
			}
		}
		return nil
	})
	d.Git, d.Skip = true, skip
	if scanned == KeyScanCommits {
		d.NextSkip = skip + KeyScanCommits
	}
	return err
}

// logData is the transparency log's page.
type logData struct {
	Signs      bool // the server signs checkpoints
	Checkpoint checkpoint.Checkpoint
	Note       string
	Key        string
	Signatures []signatureRow
	Witnesses  []witnessRow
	Error      string
}

// signatureRow is a signature line of the checkpoint's note.
type signatureRow struct {
	Name    string
	Witness bool // a witness's cosignature (a key name not the origin)
}

// witnessRow is a witness the server asks, and whether the latest
// checkpoint carries its cosignature.
type witnessRow struct {
	Name     string
	URL      string
	Cosigned bool
}

// log serves GET /log: the latest checkpoint, its signatures, the
// witnesses and links to the log's files.
func (p *Pages) log(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	head, err := p.src.Verified(ctx)
	if err != nil {
		p.failErr(w, r, "the index", fmt.Errorf("%w: %w", errUnverified, err))
		return
	}
	d := logData{Signs: p.src.Checkpoint != nil, Key: p.src.CheckpointKey}
	if d.Signs {
		note, err := p.src.Checkpoint(ctx)
		if err == nil {
			d.Checkpoint, err = checkpoint.Claimed(note)
		}
		if err != nil {
			d.Error = err.Error()
		} else {
			d.Note = string(note)
			d.Signatures = signatures(note, d.Checkpoint.Origin)
		}
	}
	for _, wt := range p.src.Witnesses {
		name, _, _ := strings.Cut(wt.VKey, "+")
		row := witnessRow{Name: name, URL: wt.URL}
		for _, s := range d.Signatures {
			row.Cosigned = row.Cosigned || s.Witness && s.Name == name
		}
		d.Witnesses = append(d.Witnesses, row)
	}
	p.render(w, r, http.StatusOK, "log", page{Title: "Transparency log", Nav: "log", Head: head, Fresh: true, Data: d})
}

// signatures lists a note's signature lines ("— NAME SIG") by key name.
func signatures(note []byte, origin string) []signatureRow {
	i := bytes.LastIndex(note, []byte("\n\n"))
	if i < 0 {
		return nil
	}
	var out []signatureRow
	for _, line := range strings.Split(string(note[i+2:]), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		out = append(out, signatureRow{Name: name, Witness: name != origin})
	}
	return out
}
