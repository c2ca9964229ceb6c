// Package author builds and signs records — publish, certify, revoke,
// snapshot, label, and the root's acts (grant, revoke a key, rotate the
// root, declare an upstream) — and appends them through the index's one
// door (index.Repo.Append). The index places what it is given; nothing
// here knows where a file lives. A root act can also be prepared unsigned, signed
// by each root key holder apart (a detached signature each) and applied
// once a threshold has signed: see Act.
package author

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
	"github.com/google/uuid"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/osv"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/snapshot"
)

// Added reports what an operation added to the index.
type Added struct {
	Commit  string   `json:"commit"`
	Records []string `json:"records"`
	Paths   []string `json:"paths"`
	// Existing: the records were in the index already, byte for byte
	// (index.AlreadyAppendedError): nothing was added, and Commit is
	// main's head, which holds them.
	Existing bool `json:"existing,omitempty"`
}

// now is the time records are issued at (a variable for the tests).
var now = func() time.Time { return time.Now().UTC().Truncate(time.Second) }

// ident is the commit author for a key: its holder (as the state st
// names it; nil: main's head) and key id.
func ident(ctx context.Context, r *index.Repo, st *index.Overlay, id string) string {
	name := "cairn"
	if st == nil {
		st, _ = headState(ctx, r)
	}
	if st != nil {
		if k, _ := st.Key(id); k != nil && k.Holder() != "" {
			name = k.Holder()
		} else if root, _ := st.Root(); root != nil && root.Holders[id] != "" {
			name = root.Holders[id]
		}
	}
	name = strings.Map(func(c rune) rune {
		if c == '<' || c == '>' || c == '\n' {
			return '_'
		}
		return c
	}, name)
	return name + " <" + id + ">"
}

func headState(ctx context.Context, r *index.Repo) (*index.Overlay, error) {
	head, err := r.Head(ctx, index.MainRef)
	if err != nil {
		return nil, err
	}
	return r.State(ctx, head)
}

// add appends ch, authored by s, through the index's door.
func add(ctx context.Context, r *index.Repo, s keys.Signer, message string, ch index.Change) (*Added, error) {
	return addAs(ctx, r, nil, keys.ID(s.Public()), message, ch)
}

// addAs appends ch, authored by the key id (its holder as st names it,
// or main's head if st is nil), through the index's door.
func addAs(ctx context.Context, r *index.Repo, st *index.Overlay, id, message string, ch index.Change) (*Added, error) {
	out := &Added{}
	for _, rec := range ch.Records {
		out.Records = append(out.Records, rec.ID)
	}
	a, err := r.Append(ctx, ch, ident(ctx, r, st, id), message)
	if a != nil {
		out.Commit, out.Paths = a.Commit, a.Paths
	}
	// The same records signed in the same second (a command run twice,
	// or retried at once): they stand, which is what was asked.
	var ae *index.AlreadyAppendedError
	if errors.As(err, &ae) {
		out.Commit, out.Paths, out.Existing = ae.Commit, ae.Paths, true
		return out, nil
	}
	return out, err
}

// Published reports a publish.
type Published struct {
	Added
	Descriptor *descriptor.Descriptor `json:"descriptor"`
	Ref        blob.Ref               `json:"descriptor_ref"`
}

// Publish publishes the package in dir (a cairn-package.yaml and its
// artifact files): artifacts and descriptor go to the blob store, then
// the descriptor and the signer's authored record to the index in one
// commit. Each artifact is hashed as it is written; the blobs' syncs run
// while the record is signed and the commit built, and main moves only
// once every blob is durably stored (index.Change.Blobs). A package's
// uuid comes from the index when the manifest has none.
func Publish(ctx context.Context, r *index.Repo, dir string, s keys.Signer) (*Published, error) {
	st, err := headState(ctx, r)
	if err != nil {
		return nil, err
	}
	store := &stager{Store: r.Blobs}
	defer store.abort()
	d, err := descriptor.FromDir(ctx, dir, store.forArtifacts(), func(name string) (string, error) {
		u, err := st.UUID(name)
		if u == "" && err == nil {
			u = uuid.NewString()
		}
		return u, err
	})
	if err != nil {
		return nil, err
	}
	data, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	ref := blob.DigestBytes(data)
	stored := store.commit(ctx, ref, data)
	defer stored() // never return while the blobs are being written
	return appendVersion(ctx, r, st, d, data, stored, s, nil)
}

// appendVersion signs the authored record of d (data, its bytes) and,
// when imported is set, the imported record, and appends them with the
// descriptor in one commit once stored has stored the blobs. The
// author's name is read from st, the state the publish read (its trees
// are cached there), not from a new one.
func appendVersion(ctx context.Context, r *index.Repo, st *index.Overlay, d *descriptor.Descriptor, data []byte, stored func() error, s keys.Signer, imported *record.ImportedPredicate) (*Published, error) {
	ref := blob.DigestBytes(data)
	subject := []record.Subject{{Name: d.ID(), Digest: map[string]string{"sha256": ref.SHA256}}}
	sign := func(kind record.Kind, pred any) (*record.Record, error) {
		payload, err := record.Build(kind, subject, pred)
		if err != nil {
			return nil, err
		}
		return record.Sign(payload, s)
	}
	rec, err := sign(record.Authored, record.AuthoredPredicate{Descriptor: ref, Issued: now()})
	if err != nil {
		return nil, err
	}
	recs, message := []*record.Record{rec}, "publish "+d.ID()
	if imported != nil {
		p := *imported
		if p.Issued.IsZero() {
			p.Issued = now()
		}
		rec, err := sign(record.Imported, p)
		if err != nil {
			return nil, err
		}
		recs, message = append(recs, rec), "import "+d.ID()+" from "+p.Source
	}
	added, err := addAs(ctx, r, st, keys.ID(s.Public()), message, index.Change{Records: recs, Descriptor: data, Blobs: stored})
	if err != nil {
		return nil, err
	}
	if err := stored(); err != nil { // (an append cannot succeed without them)
		return nil, err
	}
	return &Published{Added: *added, Descriptor: d, Ref: ref}, nil
}

// Built is a version made otherwise than from a cairn-package.yaml
// directory — a Go module built or imported by package gomod: its
// descriptor, whose uuid the index gives when it has none (the one of
// earlier versions, or a new one), and the path of each artifact's file
// by the artifact's file name.
type Built struct {
	Descriptor *descriptor.Descriptor
	Files      map[string]string
	// Imported, when set, is signed too and lands in the same commit:
	// where the version came from and who vouched for it. Its issued
	// time is now when zero.
	Imported *record.ImportedPredicate
}

// PublishBuilt publishes a built version: each artifact's file is
// stored as a blob only if it is the bytes its descriptor pins, then the
// descriptor, the signer's authored record (and imported record) go to
// the index in one commit, as Publish does.
func PublishBuilt(ctx context.Context, r *index.Repo, b Built, s keys.Signer) (*Published, error) {
	st, err := headState(ctx, r)
	if err != nil {
		return nil, err
	}
	d := *b.Descriptor
	if d.UUID == "" {
		if d.UUID, err = st.UUID(d.Name); err != nil {
			return nil, err
		}
		if d.UUID == "" {
			d.UUID = uuid.NewString()
		}
	}
	data, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	for _, a := range d.Artifacts {
		p, ok := b.Files[a.File]
		if !ok {
			return nil, fmt.Errorf("%s: no file for artifact %s", d.ID(), a.File)
		}
		if err := putFile(ctx, r.Blobs, a.Ref, p); err != nil {
			return nil, fmt.Errorf("%s: artifact %s (%s): %w", d.ID(), a.File, p, err)
		}
	}
	ref := blob.DigestBytes(data)
	if err := r.Blobs.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return appendVersion(ctx, r, st, &d, data, func() error { return nil }, s, b.Imported)
}

// putFile stores the file at path as the blob ref, which it must be.
func putFile(ctx context.Context, store blob.Store, ref blob.Ref, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return store.Put(ctx, ref, f)
}

// stager is the blob store a publish reads its artifacts into: on a
// filesystem store each artifact is written and hashed in one pass and
// staged (blob.Staged), so that its sync runs while the commit is built
// rather than before.
type stager struct {
	blob.Store
	staged []*blob.Staged
}

// forArtifacts is the store to read the artifacts into: the stager on a
// filesystem store; any other store takes them at once.
func (s *stager) forArtifacts() blob.Store {
	if _, ok := s.Store.(*blob.FS); ok {
		return s
	}
	return s.Store
}

// Add implements blob.Adder.
func (s *stager) Add(ctx context.Context, r io.Reader) (blob.Ref, error) {
	st, err := s.Store.(*blob.FS).Stage(ctx, r)
	if err != nil {
		return blob.Ref{}, err
	}
	s.staged = append(s.staged, st)
	return st.Ref, nil
}

// commit stores the staged blobs and the descriptor (data, whose ref is
// given) in the background, their syncs issued together, and returns the
// wait for them: the first failure, or nil once all are stored.
func (s *stager) commit(ctx context.Context, ref blob.Ref, data []byte) func() error {
	staged := s.staged
	s.staged = nil
	done := make(chan error, 1)
	go func() {
		errs := make([]error, len(staged)+1)
		var wg sync.WaitGroup
		for i, st := range staged {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = st.Commit()
			}()
		}
		errs[len(staged)] = s.Store.Put(ctx, ref, bytes.NewReader(data))
		wg.Wait()
		done <- errors.Join(errs...)
	}()
	return sync.OnceValue(func() error { return <-done })
}

// abort drops what was staged and not committed.
func (s *stager) abort() {
	for _, st := range s.staged {
		st.Abort()
	}
	s.staged = nil
}

// Certification asks for a certification of a version.
type Certification struct {
	Name, Version string
	Kind          record.Kind
	Artifacts     []string // labels (platform or "source") or file names; none = the whole version
	Evidence      []string // files to store as evidence blobs
	Note          string
	VulnID        string // vulnerable
	Severity      string // vulnerable: what record.ParseSeverity reads (low … critical, or a CVSS score)
	Affects       string // vulnerable: a semver range
	// OSV is an OSV record (vulnerable; https://ossf.github.io/osv-schema/),
	// read by osv.Parse: the result keeps its id, aliases, summary, the
	// affected entries of this package (OSVPackage, when the record
	// names it otherwise than Name), CVSS vectors and references. Its
	// severity is the CVSS score's unless Severity is given; VulnID, if
	// given, must be its id; Affects, if given, replaces its ranges' text.
	// OSVFile names it in errors.
	OSV        []byte
	OSVFile    string
	OSVPackage string
	Result     string // tested: PASSED (default), WARNED, FAILED
	// Configuration describes a test run (tested): the command, its
	// duration, what it ran on; the evidence files are added after it.
	Configuration []record.ResourceDescriptor
	// Findings are a scanner's vulnerabilities (vulnerable), all in one
	// record, instead of VulnID, Severity and Affects; Scanner names the
	// scanner (default https://cairn.dev/certify).
	Findings   []record.VulnResult
	Scanner    string
	Supersedes string // a record id (or prefix) this one replaces
	// Source is the source archive the certifier checked the binary
	// against (audited, reproduced), named by its digest and size only:
	// a public index proves which hidden source a binary came from
	// without ever holding it.
	Source *blob.Ref
	// Upstream names the upstream whose version is certified, when more
	// than one publishes it. A version main does not publish is looked
	// for in the followed upstreams; the record then goes under
	// upstreams/UP/ (see UpstreamVersionDir).
	Upstream string
	// VEX is how a fixed or vulnerable record speaks in OpenVEX's terms
	// (vex.go); the zero value writes what cairn always wrote.
	VEX VEXTerms
}

// Certify adds a certification record (and, with Supersedes, the
// supersede record that ends the one it replaces).
func Certify(ctx context.Context, r *index.Repo, c Certification, s keys.Signer) (*Added, error) {
	return CertifyAll(ctx, r, []Certification{c}, s)
}

// CertifyAll adds certification records, all signed by s, in one commit:
// a scanner's scan and its findings land together or not at all.
func CertifyAll(ctx context.Context, r *index.Repo, cs []Certification, s keys.Signer) (*Added, error) {
	var (
		ch    = index.Change{Upstream: map[string]string{}}
		about []string
	)
	for _, c := range cs {
		rs, upstream, id, err := certification(ctx, r, c, s)
		if err != nil {
			return nil, err
		}
		for _, rec := range rs {
			if upstream != "" {
				ch.Upstream[rec.ID] = upstream
			}
		}
		ch.Records = append(ch.Records, rs...)
		about = append(about, id+" "+string(c.Kind))
	}
	if len(ch.Records) == 0 {
		return nil, errors.New("nothing to certify")
	}
	return add(ctx, r, s, "certify "+strings.Join(about, ", "), ch)
}

// certification builds c's record (and the supersede record it needs),
// the upstream whose version it is about ("" for this index's own) and
// the version's id.
func certification(ctx context.Context, r *index.Repo, c Certification, s keys.Signer) ([]*record.Record, string, string, error) {
	if c.Kind == record.Imported {
		return nil, "", "", fmt.Errorf("an imported record is signed with the version it imports, by cairn import go")
	}
	if !c.Kind.IsCertification() {
		return nil, "", "", fmt.Errorf("%q is not a certification property (want one of audited, tested, reviewed, reproduced, proof-checked, scanned, vulnerable, fixed, deprecated, withdrawn)", c.Kind)
	}
	if c.Source != nil {
		if c.Kind != record.Audited && c.Kind != record.Reproduced {
			return nil, "", "", fmt.Errorf("a source digest names the source an audit or a reproduction checked a binary against: %s records take none", c.Kind)
		}
		if err := c.Source.Check(); err != nil {
			return nil, "", "", fmt.Errorf("the source digest: %w", err)
		}
	}
	d, ref, err := r.Descriptor(ctx, c.Name, c.Version)
	upstream := ""
	if err != nil || c.Upstream != "" {
		u, ud, uref, uerr := r.UpstreamVersion(ctx, c.Name, c.Version, c.Upstream)
		if uerr != nil {
			return nil, "", "", uerr
		}
		d, ref, upstream = ud, uref, u.Name
	}
	subjects := []record.Subject{{Name: d.ID(), Digest: map[string]string{"sha256": ref.SHA256}}}
	for _, sel := range c.Artifacts {
		a, ok := d.Artifact(sel)
		if !ok {
			var have []string
			for _, a := range d.Artifacts {
				have = append(have, a.Label())
			}
			return nil, "", "", fmt.Errorf("%s has no artifact %q (it has: %s)", d.ID(), sel, strings.Join(have, ", "))
		}
		subjects = append(subjects, record.Subject{Name: a.File, Digest: map[string]string{"sha256": a.SHA256}})
	}
	var evidence []record.Evidence
	for _, p := range c.Evidence {
		ref, err := blob.PutFile(ctx, r.Blobs, p)
		if err != nil {
			return nil, "", "", fmt.Errorf("evidence %s: %w", p, err)
		}
		evidence = append(evidence, record.Evidence{Name: filepath.Base(p), Ref: ref})
	}
	pred, err := c.predicate(evidence, keys.ID(s.Public()))
	if err != nil {
		return nil, "", "", err
	}
	payload, err := record.Build(c.Kind, subjects, pred)
	if err != nil {
		return nil, "", "", err
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		return nil, "", "", err
	}
	recs := []*record.Record{rec}
	if c.Supersedes != "" {
		old, err := r.FindRecord(ctx, c.Supersedes)
		if err != nil {
			return nil, "", "", err
		}
		if old.Name != d.Name || old.Version != d.Version || old.Upstream != upstream {
			return nil, "", "", fmt.Errorf("record %.16s is about another version (%s)", old.ID, old.About())
		}
		end, err := endRecord(record.Supersede, old.ID, "superseded by "+rec.ID, rec.ID, s)
		if err != nil {
			return nil, "", "", err
		}
		recs = append(recs, end)
	}
	return recs, upstream, d.ID(), nil
}

// predicate is the certification's predicate, by kind; issuer is the
// signing key's id, which a test result names in its run entry
// (record.TestRun) and cairn's own predicates in their issuer, so that
// two certifiers saying the same thing in the same second make two
// records. A vulnerable record (in-toto vulns) does not name it: a forbid
// rule fails at one record, so a second identical finding adds nothing.
func (c *Certification) predicate(evidence []record.Evidence, issuer string) (any, error) {
	if err := c.VEX.none(c.Kind); err != nil {
		return nil, err
	}
	switch c.Kind {
	case record.Tested:
		result := c.Result
		if result == "" {
			result = "PASSED"
		}
		conf := append([]record.ResourceDescriptor{}, c.Configuration...)
		for _, e := range evidence {
			conf = append(conf, record.ResourceDescriptor{Name: e.Name, Digest: map[string]string{"sha256": e.SHA256}, Annotations: map[string]any{"size": e.Size}})
		}
		conf = append(conf, record.TestRun(issuer, now()))
		return record.TestResultPredicate{Result: result, Configuration: conf, URL: c.Note}, nil
	case record.Vulnerable:
		results := c.Findings
		if len(results) == 0 && c.OSV != nil {
			res, err := c.osvResult()
			if err != nil {
				return nil, err
			}
			results = []record.VulnResult{res}
		}
		if len(results) == 0 {
			if c.VulnID == "" {
				return nil, fmt.Errorf("a vulnerable certification needs --id (an OSV, GHSA or CVE id) and --severity, or --osv FILE (an OSV record)")
			}
			if _, err := record.ParseSeverity(c.Severity); err != nil {
				return nil, err
			}
			res := record.VulnResult{ID: c.VulnID, Severity: []record.VulnSeverity{{Method: "cairn", Score: c.Severity}}}
			if c.Affects != "" {
				res.Annotations = append(res.Annotations, map[string]string{"affects": c.Affects})
			}
			if c.Note != "" {
				res.Annotations = append(res.Annotations, map[string]string{"note": c.Note})
			}
			results = []record.VulnResult{res}
		}
		if len(c.Findings) == 0 && (c.OSVPackage == "" || c.Affects != "") {
			// Ranges of this package's versions (--osv-package names
			// another's: a dependency it holds).
			if err := c.inRange(results); err != nil {
				return nil, err
			}
		}
		results, err := c.VEX.vulnerable(results)
		if err != nil {
			return nil, err
		}
		scanner := c.Scanner
		if scanner == "" {
			scanner = "https://cairn.dev/certify"
		}
		t := now()
		return record.VulnsPredicate{Scanner: record.VulnScanner{URI: scanner, Result: results}, Metadata: record.VulnMetadata{ScanStartedOn: t, ScanFinishedOn: t}}, nil
	case record.Fixed:
		if c.VulnID == "" {
			return nil, fmt.Errorf("a fixed certification needs --id: the vulnerability it answers")
		}
		return c.VEX.fixed(record.FixedPredicate{Vulnerabilities: strings.Split(c.VulnID, ","), Note: c.Note, Evidence: evidence, Issued: now(), Issuer: issuer})
	}
	return record.CertificationPredicate{Issued: now(), Issuer: issuer, Note: c.Note, Evidence: evidence, Source: c.Source}, nil
}

// inRange refuses a vulnerable result whose own affected range (its
// "affects", as --affects or the OSV record's ranges write it) leaves
// out the version certified: the record would say the version is
// vulnerable and, in the same words, that it is not. A range that is no
// semver range (an ecosystem's own versions) is not judged.
func (c *Certification) inRange(results []record.VulnResult) error {
	v, err := semver.StrictNewVersion(c.Version)
	if err != nil {
		return nil
	}
	for _, res := range results {
		affects := res.Annotation("affects")
		if affects == "" {
			continue
		}
		con, err := semver.NewConstraint(affects)
		if err != nil {
			continue
		}
		if !con.Check(v) {
			return fmt.Errorf("%s: its affected versions, %q, leave out %s@%s, the version certified: certify a version in the range, or give --affects naming the versions it affects", res.ID, affects, c.Name, c.Version)
		}
	}
	return nil
}

// AlsoAffected lists the other published versions of name that the
// vulnerable record among recIDs (on name@version) says are affected (its
// results' affected ranges) and that no vulnerable record naming the
// same vulnerability is about yet. A policy judges each version by its
// own records, so those would pass a forbid rule the record meant to
// reach: the certifier is told to certify them too.
func AlsoAffected(ctx context.Context, r *index.Repo, name, version string, recIDs []string) ([]string, error) {
	cat, err := r.Catalog(ctx, index.MainRef)
	if err != nil {
		return nil, err
	}
	_, _, recs, err := cat.Version(name, version)
	if err != nil {
		return nil, err
	}
	var results []record.VulnResult
	for _, rv := range recs {
		if slices.Contains(recIDs, rv.ID) && rv.Record != nil {
			if p, ok := rv.Record.Predicate.(record.VulnsPredicate); ok {
				results = p.Scanner.Result
			}
		}
	}
	versions, err := cat.Versions(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range versions {
		sv, err := semver.StrictNewVersion(v)
		if v == version || err != nil {
			continue
		}
		_, _, vrecs, err := cat.Version(name, v)
		if err != nil {
			return nil, err
		}
		for _, res := range results {
			con, err := semver.NewConstraint(res.Annotation("affects"))
			if res.Annotation("affects") == "" || err != nil || !con.Check(sv) || namesVuln(vrecs, res.ID) {
				continue
			}
			out = append(out, name+"@"+v)
			break
		}
	}
	return out, nil
}

// UnmatchedFixes lists the ids the fixed records recIDs of name@version
// answer that no active vulnerable record of that version names (by its
// id or an alias: a policy compares them exactly), and the ids and
// aliases those records name, for a hint. A fixed record that answers a misspelt id
// (CRIT-l for CRIT-1, crit-1) was signed without a word and counted for
// nothing.
func UnmatchedFixes(ctx context.Context, r *index.Repo, name, version string, recIDs []string) (unmatched, known []string, err error) {
	cat, err := r.Catalog(ctx, index.MainRef)
	if err != nil {
		return nil, nil, err
	}
	_, _, recs, err := cat.Version(name, version)
	if err != nil {
		return nil, nil, err
	}
	var active []index.RecordView
	var answers []string
	for _, rv := range recs {
		if rv.Record == nil {
			continue
		}
		if p, ok := rv.Record.Predicate.(record.FixedPredicate); ok && slices.Contains(recIDs, rv.ID) {
			answers = append(answers, p.Vulnerabilities...)
		}
		if p, ok := rv.Record.Predicate.(record.VulnsPredicate); ok && rv.Status.Active() {
			active = append(active, rv)
			for _, res := range p.Scanner.Result {
				known = append(known, res.ID)
				known = append(known, res.Aliases()...) // each answers it too
			}
		}
	}
	for _, id := range answers {
		if !namesVuln(active, id) {
			unmatched = append(unmatched, id)
		}
	}
	slices.Sort(known)
	return unmatched, slices.Compact(known), nil
}

// namesVuln says whether one of recs is a vulnerable record naming id.
func namesVuln(recs []index.RecordView, id string) bool {
	for _, rv := range recs {
		if rv.Record == nil {
			continue
		}
		if p, ok := rv.Record.Predicate.(record.VulnsPredicate); ok {
			for _, res := range p.Scanner.Result {
				if res.ID == id || slices.Contains(res.Aliases(), id) {
					return true
				}
			}
		}
	}
	return false
}

// osvResult is the vulnerable result c's OSV record makes.
func (c *Certification) osvResult() (record.VulnResult, error) {
	where := c.OSVFile
	if where == "" {
		where = "the OSV record"
	}
	e, err := osv.Parse(c.OSV, where)
	if err != nil {
		return record.VulnResult{}, err
	}
	if c.VulnID != "" && c.VulnID != e.ID {
		return record.VulnResult{}, fmt.Errorf("--id %s, but %s is the OSV record of %s: give one or the other", c.VulnID, where, e.ID)
	}
	name := c.Name
	if c.OSVPackage != "" {
		name = c.OSVPackage
	} else if !e.Concerns(c.Name) && len(e.Affected) > 0 {
		// An advisory of one other package, picked by mistake, would
		// record that package's ranges against this one (one of
		// several packages, none this one, Result refuses itself).
		a, one := e.Affected[0].Package, true
		for _, b := range e.Affected[1:] {
			one = one && b.Package == a
		}
		if one {
			return record.VulnResult{}, fmt.Errorf("%s: %s is about %s (%s), not %s: if that is this package under another name, or a package it holds, say which with --osv-package NAME", where, e.ID, a.Name, a.Ecosystem, c.Name)
		}
	}
	res, err := e.Result(osv.Target{Name: name, Severity: c.Severity, Affects: c.Affects, Note: c.Note})
	if err != nil {
		return record.VulnResult{}, fmt.Errorf("%s: %w", where, err)
	}
	return res, nil
}

func endRecord(kind record.Kind, target, reason, replacement string, signers ...keys.Signer) (*record.Record, error) {
	payload, err := record.Build(kind, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": target}}},
		record.EndPredicate{Reason: reason, Replacement: replacement, Issued: now()})
	if err != nil {
		return nil, err
	}
	return record.Sign(payload, signers...)
}

// Revoke ends a record. signers is its issuer, or a threshold of root keys.
func Revoke(ctx context.Context, r *index.Repo, idOrPrefix, reason string, signers ...keys.Signer) (*Added, error) {
	f, err := r.FindRecord(ctx, idOrPrefix)
	if err != nil {
		return nil, err
	}
	rec, err := endRecord(record.Revoke, f.ID, reason, "", signers...)
	if err != nil {
		return nil, err
	}
	return add(ctx, r, signers[0], "revoke "+f.ID, index.Change{Records: []*record.Record{rec}})
}

// CreateSnapshot stores a snapshot as a blob and appends it to the index
// with the curator's snapshot record, in one commit. Every entry must be
// a published version with exactly its descriptor (the rules check).
func CreateSnapshot(ctx context.Context, r *index.Repo, snap *snapshot.Snapshot, s keys.Signer) (*Added, blob.Ref, error) {
	snap.Sort()
	data, err := snap.Marshal()
	if err != nil {
		return nil, blob.Ref{}, err
	}
	ref := blob.DigestBytes(data)
	if err := r.Blobs.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		return nil, ref, err
	}
	payload, err := record.Build(record.Snapshot, []record.Subject{{Name: snap.Name, Digest: map[string]string{"sha256": ref.SHA256}}},
		record.SnapshotPredicate{Snapshot: ref, Name: snap.Name, Issued: now()})
	if err != nil {
		return nil, ref, err
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		return nil, ref, err
	}
	added, err := add(ctx, r, s, fmt.Sprintf("snapshot %s (%d packages)", snap.Name, len(snap.Packages)),
		index.Change{Records: []*record.Record{rec}, Snapshot: data})
	return added, ref, err
}

// SetLabel moves a label to a snapshot of the index, named by its sha256
// (or a unique prefix of at least 8 hex digits): a signed move that names
// the label's latest move.
func SetLabel(ctx context.Context, r *index.Repo, label, digest string, s keys.Signer) (*Added, blob.Ref, error) {
	if err := record.CheckLabel(label); err != nil {
		return nil, blob.Ref{}, err
	}
	c, err := r.Catalog(ctx, index.MainRef)
	if err != nil {
		return nil, blob.Ref{}, err
	}
	ref, err := c.FindSnapshot(strings.TrimPrefix(digest, "sha256:"))
	if err != nil {
		return nil, blob.Ref{}, err
	}
	p := record.LabelPredicate{Label: label, Snapshot: ref, Issued: now()}
	if cur, err := c.Label(label); err == nil {
		p.Previous = cur.RecordID
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, ref, err
	}
	payload, err := record.Build(record.Label, []record.Subject{{Name: label, Digest: map[string]string{"sha256": ref.SHA256}}}, p)
	if err != nil {
		return nil, ref, err
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		return nil, ref, err
	}
	added, err := add(ctx, r, s, fmt.Sprintf("label %s → sha256:%.16s", label, ref.SHA256), index.Change{Records: []*record.Record{rec}})
	return added, ref, err
}

// PublishedPolicy reports a new version of a policy.
type PublishedPolicy struct {
	Added
	Name     string `json:"name"`
	SHA256   string `json:"sha256"`             // of the policy's text
	Record   string `json:"record"`             // the version's record id
	Previous string `json:"previous,omitempty"` // the version it follows
}

// PublishPolicy appends a new version of the named policy: text signed by
// signers (one key granted policy:PATTERN for the name, or a threshold of
// root keys), naming the policy's latest version as the one it follows.
// The index's rules refuse a text that does not compile as a policy.
func PublishPolicy(ctx context.Context, r *index.Repo, name string, text []byte, signers ...keys.Signer) (*PublishedPolicy, error) {
	if err := record.CheckPolicyName(name); err != nil {
		return nil, err
	}
	if len(signers) == 0 {
		return nil, errors.New("publishing a policy needs a key")
	}
	if !utf8.Valid(text) {
		return nil, fmt.Errorf("policy %s: the text is not UTF-8, and a record holds text as JSON does: save the file as UTF-8", name)
	}
	c, err := r.Catalog(ctx, index.MainRef)
	if err != nil {
		return nil, err
	}
	p := record.PolicyPredicate{Name: name, Policy: string(text), Issued: now()}
	if cur, err := c.Policy(name); err == nil {
		p.Previous = cur.RecordID
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	digest := record.PolicyDigest(p.Policy)
	payload, err := record.Build(record.Policy, []record.Subject{{Name: name, Digest: map[string]string{"sha256": digest}}}, p)
	if err != nil {
		return nil, err
	}
	rec, err := record.Sign(payload, signers...)
	if err != nil {
		return nil, err
	}
	added, err := add(ctx, r, signers[0], fmt.Sprintf("policy %s → sha256:%.16s", name, digest), index.Change{Records: []*record.Record{rec}})
	out := &PublishedPolicy{Name: name, SHA256: digest, Record: rec.ID, Previous: p.Previous}
	if added != nil {
		out.Added = *added
	}
	return out, err
}
