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

	Signed   []activityFile // what it signed in the commits scanned
	Skip     int            // commits skipped before the scan (newest first)
	Scanned  int            // commits scanned
	Next     int            // the skip= of the next page (0: none)
	ScanSize int
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
	d := keyData{ID: id, ScanSize: KeyScanCommits}
	if d.Skip, err = skipOf(r); err != nil {
		p.fail(w, r, http.StatusBadRequest, "%v", err)
		return
	}
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
	if err := p.signedBy(ctx, &d); err != nil {
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

// skipOf reads ?skip=N, commits of main to skip (newest first).
func skipOf(r *http.Request) (int, error) {
	s := r.URL.Query().Get("skip")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n%KeyScanCommits != 0 {
		return 0, fmt.Errorf("skip %q: want a multiple of %d (the next page's link gives one)", s, KeyScanCommits)
	}
	return n, nil
}

// signedBy scans KeyScanCommits commits of main after d.Skip, newest
// first, for the records d's key signed.
func (p *Pages) signedBy(ctx context.Context, d *keyData) error {
	n := 0
	err := p.src.Repo.Log(ctx, d.Skip+KeyScanCommits, func(e index.LogEntry) error {
		n++
		if n <= d.Skip {
			return nil
		}
		d.Scanned++
		for _, f := range e.Records {
			if f.Issuer == d.ID {
				af := activityFile{LogRecord: f}
				af.Package, af.Version = versionOf(f.Subject)
				d.Signed = append(d.Signed, af)
			}
		}
		return nil
	})
	if d.Scanned == KeyScanCommits {
		d.Next = d.Skip + KeyScanCommits
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
	p.render(w, r, http.StatusOK, "log", page{Title: "Transparency log", Nav: "log", Head: head, Data: d})
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
