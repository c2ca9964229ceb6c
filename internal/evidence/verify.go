package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/proof"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/sbom"
	"cairn.dev/cairn/internal/witness"
)

// ErrRefused is the parent of Verify's errors about what a bundle proves:
// a lock the indexes do not bear out, a record without a proof or with
// one that does not prove, verdicts other than its contents give. (A
// bundle whose file is malformed is ErrMalformed; one whose repositories'
// reads do not prove is the light client's own security error.)
var ErrRefused = errors.New("evidence refused")

// ErrAtOutOfRange is the parent of the errors of a VerifyOptions.At the
// bundle cannot judge at: later than its newest checkpoint, or before an
// index began.
var ErrAtOutOfRange = errors.New("a time the bundle cannot judge at")

// ErrUntrusted is the parent of Verify's errors for a bundle of indexes
// the verifier did not say it trusts (VerifyOptions.Introductions).
var ErrUntrusted = errors.New("evidence of an index you do not trust")

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Policy, when set, is a policy file to judge the plan by instead of
	// the bundle's own; the bundle's verdicts are then not compared.
	Policy string
	// MaxSize bounds the bundle's members added up (0: DefaultMaxSize).
	MaxSize int64
	// Introductions are the indexes the verifier trusts, by introduction
	// (the id of an index's first root record, which names its root
	// keys): every repository of the bundle must be one of them. The
	// bundle's own cairn.yaml is the forger's to write: with no pins, a
	// bundle of an index made up for the purpose (its root naming anyone
	// "acme-security") verifies, and only TrustBundle says so.
	Introductions []string
	// Witnesses, when it has a quorum, are witnesses the verifier trusts:
	// every repository's checkpoint must be cosigned by that many of
	// them, besides what the bundle's cairn.yaml asks.
	Witnesses witness.Policy
	// TrustBundle takes the bundle's cairn.yaml for which indexes to
	// trust when Introductions is empty: the report then proves only
	// that the bundle is consistent with itself.
	TrustBundle bool
	// At, when set, judges the plan as the indexes stood at that time
	// (no later than the bundle's newest checkpoint): only the files
	// appended by then count. The bundle's verdicts are then not
	// compared.
	At time.Time
}

// Report is what a bundle proves (docs/evidence.md, Verifying).
type Report struct {
	JudgedAt time.Time `json:"judged_at"`
	// At is the time the verdicts were judged as of, when --at asked for
	// another than JudgedAt.
	At           time.Time      `json:"at,omitzero"`
	Policy       string         `json:"policy,omitempty"`
	Repositories []RepoReport   `json:"repositories"`
	Packages     []PackageProof `json:"packages"`
	// Allowed says the policy allowed every package (true with no
	// policy).
	Allowed bool `json:"allowed"`
	// Blobs says whether the bundle holds the artifacts themselves.
	Blobs bool `json:"blobs"`
	// Pinned says the verifier named the indexes it trusts; false: the
	// bundle's own cairn.yaml named them (VerifyOptions.TrustBundle).
	Pinned bool `json:"pinned"`
	// SBOMSHA512 says whether the SBOM's (sbom.cdx.json) SHA-512 values
	// were checked against the artifacts' bytes, which only a bundle with
	// blobs holds; without them they are the document's claims, while
	// everything else in it is derived again from the lock and compared.
	SBOMSHA512 bool `json:"sbom_sha512_checked"`
	// PolicySHA256 is the SHA-256 of the policy file judged by (the
	// bundle's), for a verifier to compare with the one it expects.
	PolicySHA256 string `json:"policy_sha256,omitempty"`
}

// RepoReport is a repository's checkpoint as the bundle proves it.
type RepoReport struct {
	Name         string   `json:"name"`
	URL          string   `json:"url"`
	Introduction string   `json:"introduction"`
	Origin       string   `json:"origin"`
	Size         int64    `json:"size"`
	Root         string   `json:"root"` // hex
	Head         string   `json:"head"`
	Time         string   `json:"time"`
	Key          string   `json:"key"`         // the log key that signed it
	Cosigners    []string `json:"cosigners"`   // the trusted witnesses that cosigned it
	Quorum       int      `json:"quorum"`      // how many were required
	Unwitnessed  bool     `json:"unwitnessed"` // no witness trusted: a split view could not be detected
	// WitnessesPinned says the cosigners are the verifier's witnesses,
	// not the bundle's cairn.yaml's.
	WitnessesPinned bool   `json:"witnesses_pinned"`
	LockedHead      string `json:"locked_head"`   // the head the lock pins
	LockedProved    bool   `json:"locked_proved"` // the lock's checkpoint was proved older than this one
	// Line names the repository whose upstream line this is (read
	// through it, its checkpoint signed by the upstream's key).
	Line string `json:"line,omitempty"`
}

// PackageProof is a locked package: what the lock pins, the policy's
// verdict, and the records with their proofs.
type PackageProof struct {
	ID         string                `json:"id"`
	Repository string                `json:"repository"`
	Descriptor blob.Ref              `json:"descriptor"`
	Artifacts  []plan.LockedArtifact `json:"artifacts"`
	Verdict    *policy.Verdict       `json:"verdict,omitempty"`
	Records    []RecordProof         `json:"records"`
}

// RecordProof is a record about a locked version, proved by its offline
// proof.
type RecordProof struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Issuer  string    `json:"issuer"`
	Holder  string    `json:"holder,omitempty"`
	Status  string    `json:"status"`
	EndedBy string    `json:"ended_by,omitempty"`
	Time    time.Time `json:"time"`
	Leaf    int64     `json:"leaf"`      // its leaf in the log
	Tree    int64     `json:"tree_size"` // of the checkpoint that proves it
	// Artifacts are the artifacts it is about (none: the whole version).
	Artifacts []string `json:"artifacts,omitempty"`
	// Key is the issuing key as the index granted it (nil for the
	// root's own records).
	Key *KeyProof `json:"key,omitempty"`
	// Source is, for an audit or a reproduction of a binary, the source
	// archive it was checked against, by digest: the binding of a binary
	// to a source the index need not hold.
	Source *blob.Ref `json:"source,omitempty"`
}

// proofMember returns the record id of a proof member's path,
// "proofs/<64 lowercase hex>.proof".
func proofMember(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, "proofs/")
	if id, ok = strings.CutSuffix(id, ".proof"); !ok || !isLowerHex(id, 64) {
		return "", false
	}
	return id, true
}

// isBlobMember reports whether a path is a blob member's,
// "blobs/sha256/<64 lowercase hex>".
func isBlobMember(name string) bool {
	hex, ok := strings.CutPrefix(name, "blobs/sha256/")
	return ok && isLowerHex(hex, 64)
}

// repoMember returns the repository number of a member under repos/N/
// (N in decimal, no leading zero).
func repoMember(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "repos/")
	i := strings.IndexByte(rest, '/')
	if !ok || i <= 0 || (rest[0] == '0' && i > 1) {
		return "", false
	}
	for _, c := range rest[:i] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return rest[:i], true
}

// isProofMember reports whether a path is a proof member's.
func isProofMember(name string) bool {
	_, ok := proofMember(name)
	return ok
}

// isRepoMember reports whether a path is a member under repos/N/.
func isRepoMember(name string) bool {
	_, ok := repoMember(name)
	return ok
}

// isLowerHex reports whether s is n lowercase hex digits.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Verify checks a bundle with no network (docs/evidence.md, Verifying)
// and returns what it proves. A plan the policy refuses in a sound bundle
// is a report with Allowed false and a *policy.RefusedError.
func Verify(ctx context.Context, r io.Reader, o VerifyOptions) (*Report, error) {
	// A replay: parsing allocates briskly, and what it allocates dies
	// young (a few MiB stay live); collect less often (index.ReplayGC).
	defer index.ReplayGC()()
	b, err := read(r, o.MaxSize)
	if err != nil {
		return nil, err
	}
	// The proofs' inclusion paths need no trust and no record: they are
	// parsed and checked on the cores the checks below leave idle, and
	// their verdicts read where the records' proofs are checked.
	ahead := startProofParses(b.Files)
	defer ahead.stop()
	m := &b.Manifest
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
	}

	// The members, by kind; the project parsed from its bytes.
	blobMembers := 0
	for name, data := range b.Files {
		switch {
		case strings.HasPrefix(name, "project/"), isProofMember(name), isRepoMember(name), name == SBOMName:
		case isBlobMember(name):
			blobMembers++
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != name[len("blobs/sha256/"):] {
				return nil, fmt.Errorf("%w: member %s holds bytes of sha256 %x", ErrMalformed, name, sum)
			}
		default:
			return nil, fmt.Errorf("%w: member %s is none of a bundle's (project/, %s, repos/N/, blobs/sha256/, proofs/)", ErrMalformed, name, SBOMName)
		}
	}
	for _, f := range []string{plan.ProjectFile, plan.LockFile} {
		if !b.Has("project/" + f) {
			return nil, fmt.Errorf("%w: it holds no project/%s", ErrMalformed, f)
		}
	}
	// The project lives in the bundle: no file of this machine is read
	// or written for it.
	p, err := plan.ParseProject("project", b.Files["project/"+plan.ProjectFile])
	if err != nil {
		// The bundle's file, not the user's to fix.
		return nil, fmt.Errorf("%w: the bundle's %s: %w", ErrMalformed, plan.ProjectFile, err)
	}
	if filepath.ToSlash(p.Policy) != m.Policy {
		return nil, refuse("the manifest names policy %q, the bundle's %s %q", m.Policy, plan.ProjectFile, p.Policy)
	}
	// The policy is the bundle's member, never a file of this machine.
	project := map[string]bool{"project/" + plan.ProjectFile: true, "project/" + plan.LockFile: true}
	// A policy of the index (index:NAME) is no member: the recorded reads
	// prove it, as they prove the records.
	if _, inIndex := plan.IndexPolicy(p.Policy); p.Policy != "" && !inIndex {
		rel := filepath.ToSlash(p.Policy)
		if filepath.IsAbs(p.Policy) || checkPath("project/"+rel) != nil || !b.Has("project/"+rel) {
			return nil, fmt.Errorf("%w: the bundle's %s names policy %q, which is not a member project/%s of the bundle", ErrMalformed, plan.ProjectFile, p.Policy, rel)
		}
		project["project/"+rel] = true
	}
	for name := range b.Files {
		if strings.HasPrefix(name, "project/") && !project[name] {
			return nil, fmt.Errorf("%w: member %s is not the project's %s, %s or policy", ErrMalformed, name, plan.ProjectFile, plan.LockFile)
		}
	}
	p.Files = map[string][]byte{}
	for name := range project {
		p.Files[strings.TrimPrefix(name, "project/")] = b.Files[name]
	}
	if len(m.Repositories) != len(p.Repositories) {
		return nil, refuse("the manifest lists %d repositories, %s %d", len(m.Repositories), plan.ProjectFile, len(p.Repositories))
	}
	if len(o.Introductions) == 0 && !o.TrustBundle {
		var intros []string
		for _, r := range p.Repositories {
			intros = append(intros, r.Name+"="+r.Introduction)
		}
		return nil, fmt.Errorf("%w: name the indexes you trust (--introduction ID for each; the bundle names %s), or take the bundle's word for them", ErrUntrusted, strings.Join(intros, ", "))
	}
	for _, r := range p.Repositories {
		if len(o.Introductions) > 0 && !slices.Contains(o.Introductions, r.Introduction) {
			return nil, fmt.Errorf("%w: repository %s of the bundle is the index introduced by %s, not one you trust (%s)", ErrUntrusted, r.Name, r.Introduction, strings.Join(o.Introductions, ", "))
		}
	}
	var urls []string
	keys := make([]map[string]string, len(p.Repositories))
	for i := range p.Repositories {
		r, mr := &p.Repositories[i], m.Repositories[i]
		if r.URL == "" || r.Name != mr.Name || r.URL != mr.URL || r.Introduction != mr.Introduction {
			return nil, refuse("repository %d: the manifest says %s at %s (introduction %s), %s %s at %q (introduction %s)", i, mr.Name, mr.URL, mr.Introduction, plan.ProjectFile, r.Name, r.URL, r.Introduction)
		}
		urls = append(urls, r.URL)
		keys[i] = mr.CheckpointKeys
		light := true
		r.Light = &light
	}
	repoNumbers := indexes(len(urls))
	for name := range b.Files {
		if n, ok := repoMember(name); ok {
			if !slices.Contains(repoNumbers, n) {
				return nil, fmt.Errorf("%w: member %s is of no repository the manifest lists", ErrMalformed, name)
			}
		}
	}
	lockData, _ := b.member("project/" + plan.LockFile)
	l, perr := plan.ParseLock(lockData)
	if l == nil {
		return nil, refuse("the bundle's %s: %v", plan.LockFile, perr)
	}

	// Every repository read by a light client whose network is the bundle,
	// at the time of the newest checkpoint it holds (what the verdicts
	// are judged at: the manifest must say so).
	var at time.Time
	for name, data := range b.Files {
		if isRepoMember(name) && strings.HasSuffix(name, "/log/checkpoint") {
			if c, err := checkpoint.Claimed(data); err == nil && c.Time.After(at) {
				at = c.Time.UTC()
			}
		}
	}
	if !at.Equal(m.JudgedAt) {
		return nil, refuse("the manifest says the verdicts were judged at %s; the newest checkpoint it holds is of %s", m.JudgedAt.Format(time.RFC3339), at.Format(time.RFC3339))
	}
	rp := &replay{rs: newResources(urls, m.Version), files: b.Files, keys: keys}
	client := &http.Client{Transport: rp}
	srcs, err := plan.Open(ctx, p, plan.Options{NoLightState: true, Remote: remote.Options{Client: client, Now: func() time.Time { return at }}})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	defer srcs.Close()
	// Each locked package's document, proved complete, first: a read
	// that does not prove is the light client's own security error.
	for _, pkg := range l.Packages {
		if s := srcs.Get(pkg.Repository); s != nil && s.View != nil {
			if _, err := s.View.Subject(ctx, "package "+pkg.Name); err != nil {
				return nil, fmt.Errorf("%w: package %s: %w", ErrRefused, pkg.ID(), err)
			}
		}
	}
	// The records' proofs, checked beside the checks below; their
	// verdict is read after theirs, so that a bundle is refused for the
	// first of its faults in the order of docs/evidence.md.
	var provenRecs map[string]*proof.Proven
	var proofsErr error
	proofsDone := make(chan struct{})
	go func() {
		defer close(proofsDone)
		provenRecs, proofsErr = checkProofs(ctx, b, l, srcs, ahead)
	}()
	defer func() { <-proofsDone }()
	// The SBOM, derived again from the lock, beside the checks below
	// (on the core they leave idle); its verdict is read after theirs.
	var sbomErr error
	var sbomWG sync.WaitGroup
	sbomWG.Go(func() { sbomErr = sameSBOM(ctx, b, l, srcs, holdsBlobs(b, l)) })
	defer sbomWG.Wait()
	if err := plan.Check(ctx, p, l, perr, srcs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// The time judged at is the newest checkpoint the light client
	// verified (a claimed one set the clock only).
	var newest time.Time
	for _, s := range srcs {
		if s.View != nil && s.View.Checkpoint.Time.After(newest) {
			newest = s.View.Checkpoint.Time.UTC()
		}
	}
	if !newest.Equal(at) {
		return nil, refuse("the verdicts are said to be judged at %s; the newest checkpoint verified is of %s", at.Format(time.RFC3339), newest.Format(time.RFC3339))
	}
	rep := &Report{JudgedAt: at, Policy: m.Policy, Allowed: true, Pinned: len(o.Introductions) > 0}
	if _, inIndex := plan.IndexPolicy(m.Policy); m.Policy != "" && !inIndex {
		sum := sha256.Sum256(b.Files["project/"+m.Policy])
		rep.PolicySHA256 = hex.EncodeToString(sum[:])
	}
	for _, s := range srcs {
		rr := repoReport(s, l)
		if s.Via != nil {
			// An upstream line: its checkpoint is signed by the
			// upstream's own key, and no witness is asked of it.
			rr.Line, rr.Unwitnessed, rr.Cosigners, rr.Quorum = s.Via.Name, true, nil, 0
			rep.Repositories = append(rep.Repositories, rr)
			continue
		}
		if o.Witnesses.Quorum > 0 {
			cs, err := o.Witnesses.Cosignatures(s.View.Note, s.View.Checkpoint.Origin)
			if err == nil {
				_, err = o.Witnesses.Check(s.View.Note, s.View.Checkpoint.Origin)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: repository %s, by the witnesses you trust: %w", ErrRefused, s.Name, err)
			}
			rr.Cosigners, rr.Quorum, rr.Unwitnessed = nil, o.Witnesses.Quorum, false
			for _, c := range cs {
				rr.Cosigners = append(rr.Cosigners, c.Witness.Name)
			}
			rr.WitnessesPinned = true
		}
		rep.Repositories = append(rep.Repositories, rr)
	}

	// The artifacts, when the bundle holds them (descriptors and snapshots
	// are files of the index, proved with their packages' documents).
	need := func(ref blob.Ref, what string) error {
		data, ok := b.blob(ref.SHA256)
		if !ok {
			return refuse("%s (sha256 %s): not in the bundle", what, ref.SHA256)
		}
		if int64(len(data)) != ref.Size {
			return refuse("%s (sha256 %s): %d bytes in the bundle, the lock says %d", what, ref.SHA256, len(data), ref.Size)
		}
		return nil
	}
	withBlobs, someBlobs := true, false
	for _, pkg := range l.Packages {
		for _, a := range pkg.Artifacts {
			if _, held := b.blob(a.SHA256); held {
				someBlobs = true
				if err := need(a.Ref, pkg.ID()+"'s "+a.File); err != nil {
					return nil, err
				}
			} else {
				withBlobs = false
			}
		}
	}
	if someBlobs && !withBlobs {
		return nil, refuse("the bundle holds some of the lock's artifacts and not others: made with --with-blobs, it holds them all")
	}
	rep.Blobs = someBlobs && withBlobs

	// The verdicts, judged again.
	pol, err := plan.LoadPolicy(p, o.Policy, srcs)
	if err != nil {
		return nil, err
	}
	judged, judgedAt := srcs, at
	if !o.At.IsZero() {
		if o.At.After(at) {
			return nil, fmt.Errorf("%w: --at %s: the bundle proves the indexes up to %s, the time of its newest checkpoint: it cannot judge a later time", ErrAtOutOfRange, o.At.UTC().Format(time.RFC3339Nano), at.Format(time.RFC3339))
		}
		if judged, err = asOf(ctx, srcs, o.At); err != nil {
			return nil, err
		}
		rep.At = o.At.UTC()
		judgedAt = rep.At
	}
	verdicts, refused := plan.Evaluate(l, judged, pol, judgedAt)
	var re *policy.RefusedError
	if refused != nil && !errors.As(refused, &re) {
		return nil, refused
	}
	if o.Policy == "" && o.At.IsZero() {
		if err := sameVerdicts(m.Verdicts, verdicts); err != nil {
			return nil, err
		}
	}
	if _, inIndex := plan.IndexPolicy(m.Policy); o.Policy != "" || inIndex {
		if o.Policy != "" {
			rep.Policy = o.Policy
		}
		rep.PolicySHA256 = pol.Ref.SHA256 // the bytes judged by
	}
	rep.Allowed = re == nil

	// The SBOM, derived again from the lock and compared.
	if sbomWG.Wait(); sbomErr != nil {
		return nil, sbomErr
	}
	rep.SBOMSHA512 = rep.Blobs

	// Every record's proof (checked beside the checks above), and
	// nothing else.
	<-proofsDone
	if proofsErr != nil {
		return nil, proofsErr
	}
	proven := provenRecs
	for id := range ahead.byID { // the proof members
		if proven[id] == nil {
			return nil, fmt.Errorf("%w: proofs/%s.proof proves a record about no locked version", ErrMalformed, id)
		}
	}
	// Nothing else: every read of a repository was asked for by the
	// checks above, and every blob is a locked artifact.
	var locked map[string]bool // by SHA-256, when the bundle holds blobs
	if blobMembers > 0 {
		locked = map[string]bool{}
		for _, pkg := range l.Packages {
			for _, a := range pkg.Artifacts {
				locked[a.SHA256] = true
			}
		}
	}
	rp.mu.Lock()
	served := rp.served
	rp.mu.Unlock()
	for name := range b.Files {
		switch {
		case isRepoMember(name) && !served[name]:
			return nil, fmt.Errorf("%w: member %s is nothing the verification reads", ErrMalformed, name)
		case isBlobMember(name) && !locked[name[len("blobs/sha256/"):]]:
			return nil, fmt.Errorf("%w: member %s is no artifact the lock names", ErrMalformed, name)
		}
	}

	byPkg := make(map[string]*policy.Verdict, len(verdicts))
	for _, v := range verdicts {
		byPkg[v.Package] = v
	}
	keysSeen := map[keyOf]*KeyProof{}
	rep.Packages = make([]PackageProof, 0, len(l.Packages))
	for _, pkg := range l.Packages {
		id := pkg.ID()
		pp := PackageProof{ID: id, Repository: pkg.Repository, Descriptor: pkg.Descriptor, Artifacts: pkg.Artifacts, Verdict: byPkg[id]}
		s := srcs.Get(pkg.Repository)
		_, _, recs, err := s.Catalog.VersionShared(pkg.Name, pkg.Version)
		if err != nil {
			return nil, err
		}
		of := make([]*plan.Source, len(recs)) // whose root granted each record's key
		for i := range of {
			of[i] = s
		}
		if s.Via != nil {
			own, err := s.Via.Catalog.UpstreamRecords(s.Upstream, pkg.Name, pkg.Version)
			if err != nil {
				return nil, err
			}
			recs = append(recs, own...)
			for range own {
				of = append(of, s.Via)
			}
		}
		pp.Records = make([]RecordProof, 0, len(recs))
		for i, r := range recs {
			pr := proven[r.ID]
			// When it was appended: its entry's time, which its proof proved.
			at := time.Unix(pr.Entry.Time, 0).UTC()
			rp := RecordProof{ID: r.ID, Kind: r.Kind, Issuer: r.Issuer, Holder: r.Holder, Status: r.Status.String(), EndedBy: r.EndedBy, Time: at, Leaf: pr.Index, Tree: pr.Checkpoint.Size, Artifacts: r.Artifacts}
			if r.Record != nil {
				if cp, ok := r.Record.Predicate.(record.CertificationPredicate); ok {
					rp.Source = cp.Source
				}
			}
			if rp.Key, err = keyReport(ctx, of[i], r.Issuer, keysSeen); err != nil {
				return nil, err
			}
			pp.Records = append(pp.Records, rp)
		}
		rep.Packages = append(rep.Packages, pp)
	}
	if re != nil {
		return rep, re
	}
	return rep, nil
}

// checkProofs checks the detached proof of every record about a locked
// version (recordsOf), each against its source's light view, on every
// core: the records proved, by id, or the first refusal in the records'
// order.
func checkProofs(ctx context.Context, b *Bundle, l *plan.Lock, srcs plan.Sources, ahead *proofParses) (map[string]*proof.Proven, error) {
	refusef := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
	}
	ids, err := recordsOf(l, srcs)
	if err != nil {
		return nil, err
	}
	verifiers := map[string]*proof.Verifier{}
	for _, id := range ids {
		if ahead.byID[id.id] == nil {
			return nil, refusef("record %s about a locked version has no proof in the bundle (proofs/%s.proof)", id.id, id.id)
		}
		if verifiers[id.repo] == nil {
			pv, err := proofVerifier(srcs.Get(id.repo))
			if err != nil {
				return nil, refusef("record %s: %v", id.id, err)
			}
			verifiers[id.repo] = pv
		}
	}
	// Checked on every core; the first refusal in the records' order is
	// the one reported.
	prs, errs := make([]*proof.Proven, len(ids)), make([]error, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(ids); i = int(next.Add(1)) - 1 {
				id := ids[i]
				pr, err := checkProof(ctx, srcs.Get(id.repo), verifiers[id.repo], ahead.get(id.id), id)
				if err == nil && (pr.Record == nil || pr.Record.ID != id.id) {
					err = fmt.Errorf("proofs/%s.proof proves %s, not that record", id.id, pr.Entry.Path)
				}
				prs[i], errs[i] = pr, err
			}
		}()
	}
	wg.Wait()
	proven := make(map[string]*proof.Proven, len(ids))
	for i, id := range ids {
		if errs[i] != nil {
			return nil, refusef("record %s: %v", id.id, errs[i])
		}
		proven[id.id] = prs[i]
	}
	return proven, nil
}

func indexes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i)
	}
	return out
}

// proofVerifier is the verifier of the offline proofs of a source's
// records: signed by the key that signed the checkpoint the light client
// verified (granted the checkpoint scope, as the view judged), with the
// repository's witness quorum.
func proofVerifier(s *plan.Source) (*proof.Verifier, error) {
	if s == nil || s.View == nil {
		return nil, errors.New("no light view of its repository")
	}
	k, err := s.Catalog.Key(s.View.Checkpoint.Key)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint key %s: %w", s.View.Checkpoint.Key, err)
	}
	trust := proof.TrustOfKeys(s.Introduction, []*index.Key{k}, nil, "the bundle's view of "+s.Name)
	if s.Via == nil {
		if trust.Witnesses, err = s.Repository.Policy(); err != nil {
			return nil, err
		}
	}
	return &proof.Verifier{Trust: trust}, nil
}

// checkProof checks a record's detached proof, parsed (startProofParses),
// by pv, with the record's bytes as the light client read them, and that
// it leads to the checkpoint the light client verified for its source.
func checkProof(ctx context.Context, s *plan.Source, pv *proof.Verifier, parsed *parsedProof, id recordOf) (*proof.Proven, error) {
	if parsed.err != nil {
		return nil, parsed.err
	}
	rec := id.rec
	if rec == nil {
		// A record that ended a locked version's record, about another
		// version: its bytes from the document of the subject its
		// proof's path names, as the light client proved it.
		var err error
		if rec, err = readRecord(ctx, s, parsed.pp.Path(), id.id); err != nil {
			return nil, err
		}
	}
	pr, err := pv.VerifyDetached(parsed.pp, rec)
	if err != nil {
		return nil, err
	}
	if v := s.View; pr.Checkpoint.Size != v.Checkpoint.Size || pr.Checkpoint.Root != v.Checkpoint.Root {
		return nil, fmt.Errorf("its proof leads to the tree of size %d, not the checkpoint of %s verified (size %d)", pr.Checkpoint.Size, s.Name, v.Checkpoint.Size)
	}
	return pr, nil
}

// readRecord returns the record at path (record id) as the light client
// proved it, in the document of path's subject.
func readRecord(ctx context.Context, s *plan.Source, path, id string) (*record.Record, error) {
	subject, ok := index.SubjectOf(path)
	if !ok || s.View == nil {
		return nil, fmt.Errorf("its proof names %s, a file of no subject a light client reads", path)
	}
	files, err := s.View.Subject(ctx, subject)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.Path == path {
			rec, err := record.Parse(f.Data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if rec.ID != id {
				return nil, fmt.Errorf("its proof names %s, record %s", path, rec.ID)
			}
			return rec, nil
		}
	}
	return nil, fmt.Errorf("its proof names %s, which %s's document of %s does not hold", path, s.Name, subject)
}

// sameVerdicts refuses verdicts claimed other than those judged.
func sameVerdicts(claimed, judged []*policy.Verdict) error {
	a, err := jsonv2.Marshal(claimed)
	if err != nil {
		return err
	}
	b, err := jsonv2.Marshal(judged)
	if err != nil {
		return err
	}
	if bytes.Equal(a, b) {
		return nil
	}
	byID := map[string]*policy.Verdict{}
	for _, v := range claimed {
		byID[v.Package] = v
	}
	for _, v := range judged {
		c := byID[v.Package]
		switch {
		case c == nil:
			return fmt.Errorf("%w: the bundle claims no verdict on %s; its contents give %s", ErrRefused, v.Package, word(v.Allowed))
		case c.Allowed != v.Allowed:
			return fmt.Errorf("%w: the bundle claims %s %s; its contents give %s", ErrRefused, v.Package, word(c.Allowed), word(v.Allowed))
		}
	}
	return fmt.Errorf("%w: the verdicts the bundle claims are not those its contents give (rule by rule)", ErrRefused)
}

func word(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "refused"
}

// repoReport is a source's checkpoint as the light client verified it.
func repoReport(s *plan.Source, l *plan.Lock) RepoReport {
	c := s.View.Checkpoint
	r := RepoReport{
		Name: s.Name, URL: s.URL, Introduction: s.Introduction,
		Origin: c.Origin, Size: c.Size, Root: hex.EncodeToString(c.Root[:]), Head: c.Head,
		Time: c.Time.UTC().Format(time.RFC3339), Key: c.Key, Unwitnessed: s.View.Unwitnessed,
	}
	if pol, err := s.Repository.Policy(); err == nil {
		r.Quorum = pol.Quorum
		if cs, err := pol.Cosignatures(s.View.Note, c.Origin); err == nil {
			for _, co := range cs {
				r.Cosigners = append(r.Cosigners, co.Witness.Name)
			}
		}
	}
	for _, lr := range l.Repositories {
		if lr.Name == s.Name {
			r.LockedHead = lr.Head
			r.LockedProved = lr.Head != c.Head
		}
	}
	return r
}

// asOf returns the sources as their indexes stood at time t: each read
// through its light view as before (every document proved at the
// checkpoint and judged by the rules), keeping of each subject the files
// appended by t. Commit times never go back along a line (rule
// time-order), so those are a prefix of the log: the index as it was at
// t, as a full replay to that commit judges it (a prefix of a history the
// rules accept, they accept).
func asOf(ctx context.Context, srcs plan.Sources, t time.Time) (plan.Sources, error) {
	out := make(plan.Sources, len(srcs))
	copies := map[*plan.Source]*plan.Source{}
	for i, s := range srcs {
		if s.View == nil {
			return nil, fmt.Errorf("repository %s: not read by a light client", s.Name)
		}
		v := s.View
		if roots, err := v.Subject(ctx, "root"); err == nil && len(roots) > 0 && t.Before(roots[0].Time) {
			return nil, fmt.Errorf("%w: repository %s: %s is before the index began: its first root record is of %s; judge at that time or later", ErrAtOutOfRange, s.Name, t.UTC().Format(time.RFC3339Nano), roots[0].Time.UTC().Format(time.RFC3339))
		}
		files := &index.MemFiles{Load: func(subject string) ([]index.MemFile, error) {
			fs, err := v.Subject(ctx, subject)
			if err != nil {
				return nil, err
			}
			n := 0
			for n < len(fs) && !fs[n].Time.After(t) {
				n++
			}
			return fs[:n:n], nil
		}}
		cat, err := index.NewCatalog(files, s.URL, "as of "+t.UTC().Format(time.RFC3339))
		if err != nil {
			return nil, fmt.Errorf("repository %s as of %s: %w", s.Name, t.UTC().Format(time.RFC3339), err)
		}
		c := *s
		c.Catalog = cat
		out[i] = &c
		copies[s] = &c
	}
	for _, c := range out {
		if c.Via != nil {
			c.Via = copies[c.Via]
		}
	}
	return out, nil
}

// holdsBlobs says whether the bundle holds every artifact the lock names
// (Report.Blobs, once Verify has checked them).
func holdsBlobs(b *Bundle, l *plan.Lock) bool {
	some, all := false, true
	for _, pkg := range l.Packages {
		for _, a := range pkg.Artifacts {
			_, held := b.blob(a.SHA256)
			some, all = some || held, all && held
		}
	}
	return some && all
}

// sameSBOM derives the lock's SBOM again and compares it with the
// bundle's, byte for byte: each artifact's SHA-512 from its bytes when
// the bundle holds them (blobs), else as the bundle's document claims it
// (Report.SBOMSHA512 false: not checked).
func sameSBOM(ctx context.Context, b *Bundle, l *plan.Lock, srcs plan.Sources, blobs bool) error {
	claimed, err := b.member(SBOMName)
	if err != nil {
		return err
	}
	// Derived compact, and compared with the bundle's as indented (the
	// same bytes, none written again).
	o := sbom.Options{Tool: b.Manifest.MadeBy, Compact: true}
	if blobs {
		o.Open = func(_ context.Context, _ *plan.Locked, ref blob.Ref) (io.ReadCloser, error) {
			data, _ := b.blob(ref.SHA256)
			return io.NopCloser(bytes.NewReader(data)), nil
		}
	} else {
		sums, err := sbom.Claims(claimed)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrRefused, SBOMName, err)
		}
		o.SHA512 = sums
	}
	derived, err := sbom.Make(ctx, l, srcs, o)
	if err != nil {
		return fmt.Errorf("%w: the lock's SBOM: %w", ErrRefused, err)
	}
	if !sbom.Indented(claimed, derived.JSON) {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, derived.JSON, "", "  "); err != nil {
			return fmt.Errorf("the lock's SBOM: %w", err)
		}
		line, got, want := firstDiff(claimed, pretty.Bytes())
		return fmt.Errorf("%w: %s is not the lock's SBOM: line %d says %s where the lock gives %s", ErrRefused, SBOMName, line, got, want)
	}
	return nil
}

// firstDiff returns the first line (from 1) where a and b differ, and
// that line of each, quoted whole ("the end of the file" past the last).
func firstDiff(a, b []byte) (int, string, string) {
	la, lb := bytes.SplitAfter(a, []byte("\n")), bytes.SplitAfter(b, []byte("\n"))
	quote := func(lines [][]byte, i int) string {
		if i >= len(lines) || len(lines[i]) == 0 {
			return "the end of the file"
		}
		return fmt.Sprintf("%q", lines[i])
	}
	for i := 0; i < len(la) || i < len(lb); i++ {
		if i >= len(la) || i >= len(lb) || !bytes.Equal(la[i], lb[i]) {
			return i + 1, quote(la, i), quote(lb, i)
		}
	}
	return 0, "", ""
}

// KeyProof is a record's signing key as its repository's root granted it:
// each grant with its record, scopes, expiry and where the log placed
// it, and its revocation if any, every one proved in the key's document.
type KeyProof struct {
	ID          string       `json:"id"`
	Holder      string       `json:"holder"`
	Grants      []GrantProof `json:"grants"`
	RevokedBy   string       `json:"revoked_by,omitempty"`
	Reason      string       `json:"reason,omitempty"`
	RevokedLeaf int64        `json:"revoked_leaf,omitempty"`
}

// GrantProof is one grant of a key.
type GrantProof struct {
	Record  string     `json:"record"`
	Scopes  []string   `json:"scopes"`
	Expires *time.Time `json:"expires,omitempty"`
	Time    time.Time  `json:"time"` // when it was appended
	Leaf    int64      `json:"leaf"`
}

// keyOf is a key of a source, by the source's name and the key's id.
type keyOf struct{ source, id string }

// keyReport is the key id as s's index granted it, read from its proved
// document ("key HEX"); nil for the root's records. seen caches keys by
// source and id.
func keyReport(ctx context.Context, s *plan.Source, id string, seen map[keyOf]*KeyProof) (*KeyProof, error) {
	if id == "" || id == "root" || s.View == nil {
		return nil, nil
	}
	if k, ok := seen[keyOf{s.Name, id}]; ok {
		return k, nil
	}
	k, err := s.Catalog.Key(id)
	if err != nil {
		return nil, fmt.Errorf("the key %s of %s: %w", id, s.Name, err)
	}
	files, err := s.View.Subject(ctx, "key "+keys.IDHex(k.Pub))
	if err != nil {
		return nil, fmt.Errorf("the key %s of %s: %w", id, s.Name, err)
	}
	at := func(recordID string) (time.Time, int64) {
		for _, f := range files {
			if strings.HasSuffix(f.Path, "/"+recordID+".json") {
				return f.Time.UTC(), f.Index
			}
		}
		return time.Time{}, 0
	}
	kp := &KeyProof{ID: k.ID, Holder: k.Holder(), RevokedBy: k.RevokedBy, Reason: k.Reason}
	for _, g := range k.Grants {
		gp := GrantProof{Record: g.RecordID, Scopes: g.Raw, Expires: g.Expires}
		gp.Time, gp.Leaf = at(g.RecordID)
		kp.Grants = append(kp.Grants, gp)
	}
	if k.RevokedBy != "" {
		_, kp.RevokedLeaf = at(k.RevokedBy)
	}
	seen[keyOf{s.Name, id}] = kp
	return kp, nil
}

// proofParses are the proof members of a bundle, parsed and their
// inclusion paths checked (proof.DetachedParser) by workers on every core,
// ahead of the checks that need them.
type proofParses struct {
	byID    map[string]*parsedProof // by record id, into parses
	parses  []parsedProof           // in the workers' order
	next    atomic.Int64            // the next parse a worker takes
	stopped atomic.Bool
	wg      sync.WaitGroup
	// parser parses them all: they are proofs to one checkpoint, whose
	// text is parsed once and whose paths share their nodes.
	parser proof.DetachedParser
}

// parsedProof is one proof member's parse (proof.DetachedParser), once
// done is.
type parsedProof struct {
	data []byte // the member's
	done sync.WaitGroup
	pp   *proof.Parsed
	err  error
}

// startProofParses starts the workers that parse the proof members of a
// bundle's files, and returns before they are done.
func startProofParses(files map[string][]byte) *proofParses {
	n := 0
	for name := range files {
		if isProofMember(name) {
			n++
		}
	}
	ps := &proofParses{byID: make(map[string]*parsedProof, n), parses: make([]parsedProof, n)}
	i := 0
	for name, data := range files {
		if id, ok := proofMember(name); ok {
			p := &ps.parses[i]
			p.data = data
			p.done.Add(1)
			ps.byID[id] = p
			i++
		}
	}
	for range runtime.GOMAXPROCS(0) {
		ps.wg.Go(func() {
			for i := int(ps.next.Add(1)) - 1; i < len(ps.parses); i = int(ps.next.Add(1)) - 1 {
				p := &ps.parses[i]
				if ps.stopped.Load() {
					p.err = errors.New("verification ended")
				} else {
					p.pp, p.err = ps.parser.Parse(p.data)
				}
				p.done.Done()
			}
		})
	}
	return ps
}

// get waits for the parse of the proof member of a record.
func (ps *proofParses) get(id string) *parsedProof {
	p := ps.byID[id]
	if p == nil {
		return &parsedProof{err: fmt.Errorf("proofs/%s.proof is not a member of the bundle", id)}
	}
	p.done.Wait()
	return p
}

// stop ends the parses not started yet and waits for the others.
func (ps *proofParses) stop() {
	ps.stopped.Store(true)
	ps.wg.Wait()
}
