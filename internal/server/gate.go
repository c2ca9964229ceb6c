package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/verdict"
)

// PolicyRepository is the name a server's policy gives the server's own
// repository in HOLDER@REPOSITORY issuers (index.LocalRepository).
const PolicyRepository = index.LocalRepository

// PolicyHeader is the response header with which a server that enforces
// a policy names it on its checkpoint (the file's name, or index:NAME): a
// light client then reads its refusals from the light package documents
// (light.PolicyHeader).
const PolicyHeader = "Cairn-Policy"

// label names the gate's policy: its file's name, or index:NAME.
func (g *gate) label() string {
	if g.pol != nil {
		return g.pol.File
	}
	return "index:" + g.name
}

// Refusal is a version the server's policy refuses, and why: the first
// rule it fails and the records that decided it. A light package
// document lists them (PackageDoc.Refusals), so that a client can say
// why a version it reads is not offered.
type Refusal struct {
	Version string   `json:"version"`
	Rule    string   `json:"rule"`
	Mode    string   `json:"mode"`
	Records []string `json:"records,omitempty"`
	Reason  string   `json:"reason"`

	pol *policy.Policy // the policy (the version of it) that refused
}

// gate is the server's policy (Options.Policy, or the version of
// Options.IndexPolicy in force at main's head: policyAt): it judges a version with
// policy.Evaluate — what every client runs — on the records
// verdict.Subject reads, once per index head (the refs' version, main's
// and the followed upstreams' heads) and descriptor digest, judged at
// the time it first judges at that head (at most judgmentLife ago). A gate with
// no policy allows everything at no cost.
type gate struct {
	pol      *policy.Policy // --policy FILE; nil with a policy of the index
	name     string         // --policy index:NAME: the index's policy judged by
	refusals *prometheus.CounterVec
	warnings *prometheus.CounterVec

	versions sync.Map // a policy of the index: record id → *policy.Policy, its versions parsed and bound

	mu     sync.Mutex
	key    string                    // the heads the judgments hold at
	since  time.Time                 // when they were first made (judgmentLife)
	judged map[string]*judgment      // by descriptor sha256
	blobs  map[string]*blobVerdict   // by blob sha256
	cats   map[string]*index.Catalog // by commit, at key

	heads freshHeads
}

// judgmentLife bounds how long a judgment is kept while the heads do not
// move: a policy's max_age makes a verdict change with time alone. (A
// variable for the tests.)
var judgmentLife = time.Minute

// judgment is a version's verdict, its refusal when refused, and the
// failing rules whose enforcement is warn when allowed.
type judgment struct {
	verdict  *policy.Verdict
	refusal  *Refusal
	warnings []Refusal // allowed, but failing these warn rules

	warned sync.Once // the warnings logged: once per version and heads
}

// newGate is the gate of a fixed policy (pol), or of the index's policy
// name; the index's must have a version at main's head now, whose
// issuers bind.
func newGate(ctx context.Context, repo *index.Repo, pol *policy.Policy, name string, reg *prometheus.Registry) (*gate, error) {
	g := &gate{pol: pol, name: name, refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_policy_refusals_total",
		Help: "Requests the server's policy refused, by the rule that refused them and how the client asked (go, blob, light).",
	}, []string{"rule", "via"}), warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_policy_warnings_total",
		Help: "Requests the server served although the version fails a rule of its policy whose enforcement is warn, by that rule and how the client asked (go, blob, light).",
	}, []string{"rule", "via"})}
	if pol != nil {
		// A forbid rule naming a holder nobody holds would forbid
		// nothing: said when the server starts, not found out later.
		if err := repo.BindPolicy(ctx, pol, nil); err != nil {
			return nil, err
		}
	} else {
		main, err := repo.Catalog(ctx, index.MainRef)
		if err != nil {
			return nil, err
		}
		if _, err := g.policyAt(ctx, repo, main); err != nil {
			return nil, err
		}
	}
	reg.MustRegister(g.refusals, g.warnings)
	return g, nil
}

// policyAt is the one place the server's --policy becomes the policy a
// judgment at main's catalog uses: the file's, or the version of the
// index's policy in force at that head (index:NAME, parsed and bound once
// per version). A head whose version does not load refuses nothing and
// allows nothing: the error reaches the request.
func (g *gate) policyAt(ctx context.Context, repo *index.Repo, main *index.Catalog) (*policy.Policy, error) {
	if g.pol != nil {
		return g.pol, nil
	}
	v, err := main.Policy(g.name)
	if err != nil {
		return nil, err
	}
	if pol, ok := g.versions.Load(v.RecordID); ok {
		return pol.(*policy.Policy), nil
	}
	pol, v, err := loadIndexPolicy(ctx, repo, main, g.name)
	if err != nil {
		if v == nil {
			return nil, err
		}
		return nil, fmt.Errorf("policy index:%s, version %.16s: %w", g.name, v.RecordID, err)
	}
	g.versions.Store(v.RecordID, pol)
	return pol, nil
}

// loadIndexPolicy is the version of the index's policy name in force at
// cat, parsed and bound as a server judges by it: its issuers as a
// file's are when the server starts (index.Repo.BindPolicyAt, the
// index's grants read at cat's commit), since a version whose forbid
// rule names a holder nobody holds would forbid nothing. The gate and
// the pre-receive hook (enforcedPolicyFails) both load it here. v is
// nil when the version could not be read.
func loadIndexPolicy(ctx context.Context, repo *index.Repo, cat *index.Catalog, name string) (pol *policy.Policy, v *index.PolicyVersion, err error) {
	text, v, err := cat.PolicyText(name)
	if err != nil {
		return nil, nil, err
	}
	if pol, err = policy.Parse("index:"+name, text); err == nil {
		err = repo.BindPolicyAt(ctx, pol, cat.Commit(), nil)
	}
	return pol, v, err
}

// policyAt is the server's policy while the refs are at key.
func (s *Server) policyAt(ctx context.Context, key string) (*policy.Policy, error) {
	main, err := s.gate.catalog(ctx, s.repo, key, index.MainRef)
	if err != nil {
		return nil, err
	}
	return s.gate.policyAt(ctx, s.repo, main)
}

// judge returns the server policy's judgment of name@version, found at
// src while the refs were at key (findPackage), whose descriptor is ref;
// nil when the server has no policy.
func (s *Server) judge(ctx context.Context, key string, src index.PackageTree, name, version string, ref blob.Ref) (*judgment, error) {
	g := s.gate
	if g == nil {
		return nil, nil
	}
	now := time.Now()
	g.mu.Lock()
	g.at(key, now)
	if j := g.judged[ref.SHA256]; j != nil {
		g.mu.Unlock()
		return j, nil
	}
	g.mu.Unlock()
	main, err := g.catalog(ctx, s.repo, key, index.MainRef)
	if err != nil {
		return nil, err
	}
	var sub *policy.Subject
	if src.Upstream == nil {
		sub, err = verdict.Subject(main, PolicyRepository, name, version, nil)
	} else {
		up, cerr := g.catalog(ctx, s.repo, key, index.UpstreamRef(src.Upstream.Name))
		if cerr != nil {
			return nil, cerr
		}
		sub, err = verdict.Subject(up, src.Upstream.Name, name, version,
			&verdict.Local{Catalog: main, Repository: PolicyRepository, Upstream: src.Upstream.Name})
	}
	if err != nil {
		return nil, fmt.Errorf("judging %s@%s by the server's policy: %w", name, version, err)
	}
	pol, err := g.policyAt(ctx, s.repo, main)
	if err != nil {
		return nil, fmt.Errorf("judging %s@%s by the server's policy: %w", name, version, err)
	}
	j := &judgment{verdict: pol.Evaluate(sub, now)}
	if !j.verdict.Allowed {
		for _, rv := range j.verdict.Failed() {
			j.refusal = &Refusal{Version: version, Rule: rv.Rule, Mode: string(rv.Mode), Records: rv.Records, Reason: rv.Reason, pol: pol}
			break
		}
	} else {
		for _, rv := range j.verdict.Warnings() {
			j.warnings = append(j.warnings, Refusal{Version: version, Rule: rv.Rule, Mode: string(rv.Mode), Records: rv.Records, Reason: rv.Reason, pol: pol})
		}
	}
	g.mu.Lock()
	if g.key == key {
		g.judged[ref.SHA256] = j
	}
	g.mu.Unlock()
	return j, nil
}

// period returns when the judgments at key now in use were first made
// (at): what they say holds for that period, and another period may
// judge otherwise with the heads unmoved (max_age).
func (g *gate) period(key string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.at(key, time.Now())
	return g.since
}

// at starts the judgments again when the heads have moved from key, or
// they were made over judgmentLife before now; g.mu is held.
func (g *gate) at(key string, now time.Time) {
	if g.key != key || now.Sub(g.since) > judgmentLife {
		g.key, g.since = key, now
		g.judged, g.blobs, g.cats = map[string]*judgment{}, map[string]*blobVerdict{}, map[string]*index.Catalog{}
	}
}

// blobVerdict is what the policy says of a blob: refused (ref not nil)
// as the artifact of what, a version of name; shadowed (versions name it,
// but the server serves none of them: an upstream's under an internal
// name), what being the first of them; or allowed.
type blobVerdict struct {
	what, name string
	ref        *Refusal
	shadowed   bool
	allowed    *judgment // the allowed version's, when it warns (what names it)
}

// catalog returns the catalog of ref's head, one per commit while the
// refs are at key; main's is read at the head key names first (the
// policy in force there, the records there).
func (g *gate) catalog(ctx context.Context, repo *index.Repo, key, ref string) (*index.Catalog, error) {
	head, _, _ := strings.Cut(key, ";")
	if ref != index.MainRef || !index.IsCommitID(head) {
		var err error
		if head, err = repo.Head(ctx, ref); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	c := g.cats[head]
	g.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := repo.Catalog(ctx, head)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if g.key == key {
		g.cats[head] = c
	}
	g.mu.Unlock()
	return c, nil
}

// refuse answers a request the policy refuses: 403 (not 404 or 410, on
// which a GOPROXY list such as "cairn,direct" falls through to its next
// entry, around the policy), a text/plain body the client shows (the go
// command prints up to 8 lines of it as "server response:"), one log
// line, one count.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, via, what, name string, ref *Refusal) {
	s.countRefusal(r, via, what, ref)
	w.Header().Set("Cache-Control", "no-store")
	httpError(w, http.StatusForbidden, "%s", s.refusalBody(what, name, ref))
}

// countRefusal logs and counts one refusal told to a client.
func (s *Server) countRefusal(r *http.Request, via, what string, ref *Refusal) {
	s.gate.refusals.WithLabelValues(ref.Rule, via).Inc()
	s.log.Info("refused by policy", "remote", r.RemoteAddr, "path", r.URL.Path, "version", what,
		"rule", ref.Rule, "record", strings.Join(ref.Records, ","), "via", via)
}

// countWarnings counts a request served although the version (what) fails
// warn rules of the policy (j.warnings), and logs them once per version
// while the heads do not move (a judgment's life), not per request.
func (s *Server) countWarnings(r *http.Request, via, what string, j *judgment) {
	if j == nil || len(j.warnings) == 0 {
		return
	}
	for _, w := range j.warnings {
		s.gate.warnings.WithLabelValues(w.Rule, via).Inc()
	}
	j.warned.Do(func() {
		for _, w := range j.warnings {
			s.log.Warn("served despite a warn rule of the policy", "remote", r.RemoteAddr, "path", r.URL.Path, "version", what,
				"rule", w.Rule, "record", strings.Join(w.Records, ","), "reason", w.Reason, "via", via)
		}
	})
}

// maxRefusalBody keeps a refusal within what the go command shows of a
// response: 8 lines, 648 bytes in all.
const maxRefusalBody = 640

// refusalBody says which policy refused what, by which rule and record,
// and what to do:
//
//	cairn: refused by policy FILE (sha256:abcd1234…): example.com/greet@v1.1.0
//	rule "no-high-vulnerabilities" (forbid vulnerable >= high): vulnerable CVE-… (high) by … (record 3f2a…)
//	hint: use an allowed version (cairn show example.com/greet), or ask the issuer to answer the record with fixed
func (s *Server) refusalBody(what, name string, ref *Refusal) string {
	pol := ref.pol
	first := fmt.Sprintf("cairn: refused by policy %s (sha256:%.8s…): %s", pol.File, pol.Ref.SHA256, what)
	hint := "hint: use an allowed version (cairn show " + name + ")"
	cond := ref.Mode
	for _, rule := range pol.Rules {
		if rule.Name != ref.Rule {
			continue
		}
		switch {
		case rule.Property == "":
			cond += " expr"
			hint += ", or ask the policy's owner"
		case rule.Mode == policy.Require:
			if rule.Count > 1 {
				cond += fmt.Sprintf(" %s by %d certifiers", rule.Property, rule.Count)
			} else {
				cond += " " + string(rule.Property)
			}
			if rule.MaxAgeText != "" {
				cond += " within " + rule.MaxAgeText
			}
			hint += ", or ask a certifier for a " + string(rule.Property) + " record"
		case rule.Property == record.Vulnerable:
			cond += " vulnerable"
			if rule.Severity > record.SeverityNone {
				cond += " >= " + rule.Severity.String()
			}
			hint += ", or ask the issuer to answer the record with fixed"
		default:
			cond += " " + string(rule.Property)
			hint += ", or ask the issuer to revoke the record"
		}
	}
	reason := strings.ReplaceAll(ref.Reason, "\n", " ")
	second := fmt.Sprintf("rule %q (%s): %s", ref.Rule, cond, reason)
	return fitRefusal(first, second, hint)
}

// fitRefusal joins a refusal's three lines within maxRefusalBody, so that
// the go command shows all three: the rule line is shortened first (to
// no less than the rule's name), then the first line; the hint is kept.
func fitRefusal(first, second, hint string) string {
	const ellipsis = "…"
	budget := maxRefusalBody - 2 // the two newlines
	room := budget - len(first) - len(hint)
	if len(second) > room {
		least := second
		if i := strings.Index(second, " ("); i > 0 {
			least = second[:i] // rule "NAME"
		}
		least = truncateUTF8(least, 80)
		if room >= len(least)+len(ellipsis) {
			second = truncateUTF8(second, room-len(ellipsis)) + ellipsis
		} else {
			second = least + ellipsis
			first = truncateUTF8(first, budget-len(hint)-len(second)-len(ellipsis)) + ellipsis
		}
	}
	if len(first)+len(second)+len(hint) > budget { // a hint too long to keep whole
		hint = truncateUTF8(hint, budget-len(first)-len(second)-len(ellipsis)) + ellipsis
	}
	return first + "\n" + second + "\n" + hint
}

// truncateUTF8 cuts s to at most n bytes, on a rune boundary.
func truncateUTF8(s string, n int) string {
	n = max(n, 0)
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// refusals judges every version of a light package document: the
// server's refusals, and the warn rules the versions it allows fail, in
// the document's order, with the judgments that warn.
func (s *Server) refusals(ctx context.Context, key string, src index.PackageTree, doc *PackageDoc) (out, warnings []Refusal, warned []*judgment, err error) {
	for _, v := range doc.Versions {
		d, err := descriptor.Parse(v.Descriptor.Content)
		if err != nil {
			return nil, nil, nil, err
		}
		j, err := s.judge(ctx, key, src, d.Name, d.Version, blob.Ref{SHA256: v.Descriptor.SHA256, Size: v.Descriptor.Size})
		if err != nil {
			return nil, nil, nil, err
		}
		if j != nil && j.refusal != nil {
			out = append(out, *j.refusal)
		}
		if j != nil && len(j.warnings) > 0 {
			warnings = append(warnings, j.warnings...)
			warned = append(warned, j)
		}
	}
	return out, warnings, warned, nil
}

// blobVerdict judges a blob by the server's policy: for a blob that is
// an artifact of versions the server serves, the refusal of the first of
// them when the policy refuses them all (ref not nil); shadowed when
// versions name it but the server serves none of them; allowed when one
// of them is allowed, or the blob is no version's artifact (a
// descriptor, evidence).
func (s *Server) blobVerdict(ctx context.Context, hex string) (*blobVerdict, error) {
	g := s.gate
	key, err := s.blobKey(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.at(key, time.Now())
	bv := g.blobs[hex]
	g.mu.Unlock()
	if bv == nil {
		if bv, err = s.judgeBlob(ctx, hex); err != nil {
			return nil, err
		}
		g.mu.Lock()
		if g.key == key {
			g.blobs[hex] = bv
		}
		g.mu.Unlock()
	}
	return bv, nil
}

// headsFresh is how long a blob request trusts the heads the last one
// read, unless a push landed since: a blob's verdict then costs no read
// of the refs. (A record appended on the server's own directory, not
// pushed, is seen this much later.)
const headsFresh = 250 * time.Millisecond

// freshHeads is the refs' version a blob request read last.
type freshHeads struct {
	mu    sync.Mutex
	key   string
	at    time.Time
	moved <-chan struct{} // closed when a push lands
}

// blobKey returns the refs' version (main's and the followed upstreams'
// heads), read again when headsFresh has passed or a push landed.
func (s *Server) blobKey(ctx context.Context) (string, error) {
	f := &s.gate.heads
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.key != "" && time.Since(f.at) < headsFresh {
		select {
		case <-f.moved:
		default:
			return f.key, nil
		}
	}
	moved := s.changes.wait() // before the read: a push after it closes it
	key, _, _, err := s.resolved.get(ctx, s.repo, "")
	if err != nil {
		return "", err
	}
	f.key, f.at, f.moved = key, time.Now(), moved
	return key, nil
}

// judgeBlob judges the versions that name a blob as their artifact.
func (s *Server) judgeBlob(ctx context.Context, hex string) (*blobVerdict, error) {
	served, named, err := s.servedArtifactOf(ctx, hex)
	if err != nil {
		return nil, err
	}
	if len(served) == 0 {
		if named != nil {
			return &blobVerdict{what: named.name + "@" + named.version, name: named.name, shadowed: true}, nil
		}
		return &blobVerdict{}, nil
	}
	var bv blobVerdict
	for _, v := range served {
		j, err := s.judge(ctx, v.key, v.src, v.name, v.version, v.desc)
		if err != nil {
			return nil, err
		}
		if j.refusal == nil {
			if len(j.warnings) > 0 {
				return &blobVerdict{what: v.name + "@" + v.version, name: v.name, allowed: j}, nil
			}
			return &blobVerdict{}, nil
		}
		if bv.ref == nil {
			bv = blobVerdict{what: v.name + "@" + v.version, name: v.name, ref: j.refusal}
		}
	}
	return &bv, nil
}

// servedVersion is a version naming an artifact that the server serves,
// where it serves it from, and the refs' version it found it at.
type servedVersion struct {
	artifactOf
	src index.PackageTree
	key string
}

// servedArtifactOf returns the versions naming the blob hex as their
// artifact that the server serves from the line they are on, and the
// first version naming it (nil when none does). A version it does not
// serve is an upstream's under an internal name (internal names win), or
// one served from another line.
func (s *Server) servedArtifactOf(ctx context.Context, hex string) (served []servedVersion, first *artifactOf, err error) {
	refs := []string{index.MainRef}
	ups, err := s.upstreams(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range ups {
		refs = append(refs, index.UpstreamRef(u.Name))
	}
	versions, err := s.artifacts.versions(ctx, s.repo, refs, hex)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range versions {
		if first == nil {
			f := v
			first = &f
		}
		src, key, err := s.findPackage(ctx, v.name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not served (an upstream's, under an internal name)
		}
		if err != nil {
			return nil, nil, err
		}
		if (src.Upstream == nil) != (v.ref == index.MainRef) || (src.Upstream != nil && index.UpstreamRef(src.Upstream.Name) != v.ref) {
			continue // not served from where this version is
		}
		served = append(served, servedVersion{artifactOf: v, src: src, key: key})
	}
	return served, first, nil
}

// warmGate reads which versions name each artifact (artifactIndex) once
// the server starts, so that the first blob request does not wait for a
// walk of the whole history.
func (s *Server) warmGate(ctx context.Context) {
	start := time.Now()
	refs := []string{index.MainRef}
	ups, err := s.upstreams(ctx)
	if err == nil {
		for _, u := range ups {
			refs = append(refs, index.UpstreamRef(u.Name))
		}
		_, err = s.artifacts.versions(ctx, s.repo, refs, "")
	}
	if err != nil && ctx.Err() == nil {
		s.log.Error("reading the index's artifacts for the policy", "err", err)
		return
	}
	s.log.Info("read the index's artifacts for the policy", "duration", time.Since(start))
}

// artifactIndex knows which versions name each artifact, by digest: the
// descriptors added on each line (main, each followed upstream) up to
// the head it read last, read again only from there (a descriptor is
// never removed).
type artifactIndex struct {
	mu    sync.Mutex
	heads map[string]string // ref → the commit read up to
	by    map[string][]artifactOf
}

// artifactOf is a version that names an artifact.
type artifactOf struct {
	ref           string // the line: main or an upstream's ref
	name, version string
	desc          blob.Ref
}

// versions returns the versions on refs whose descriptors name the blob hex.
func (a *artifactIndex) versions(ctx context.Context, repo *index.Repo, refs []string, hex string) ([]artifactOf, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.heads == nil {
		a.heads, a.by = map[string]string{}, map[string][]artifactOf{}
	}
	for _, ref := range refs {
		head, err := repo.Head(ctx, ref)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if head == a.heads[ref] {
			continue
		}
		err = repo.AddedBetween(ctx, a.heads[ref], head, func(_ string, added []index.Entry) error {
			for _, e := range added {
				if !e.Descriptor {
					continue
				}
				d, err := descriptor.Parse(e.Data)
				if err != nil {
					continue // the rules judged it
				}
				for _, art := range d.Artifacts {
					a.by[art.Ref.SHA256] = append(a.by[art.Ref.SHA256], artifactOf{ref: ref, name: d.Name, version: d.Version, desc: blob.DigestBytes(e.Data)})
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the artifacts of %s up to %.12s: %w", ref, head, err)
		}
		a.heads[ref] = head
	}
	return a.by[hex], nil
}
