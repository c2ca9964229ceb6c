package policy

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/record"
)

// Subject is what a verdict is about: a version, its descriptor and every
// record about it (ended ones included: they are only reported).
type Subject struct {
	Descriptor *descriptor.Descriptor
	Ref        blob.Ref // the descriptor's digest
	// Records are every record about the version, in the order the caller
	// wants them named (a requirement names the first that meets it):
	// the version's own repository's in index order, then those other
	// repositories keep about it (an organisation's certifications of an
	// upstream version it serves).
	Records []Record
}

// Record is one record about a version, as a policy reads it.
type Record struct {
	ID     string
	Kind   record.Kind
	Issuer string // the signing key's id, or "root" for an act of the root
	Holder string // the issuer's holder name as the repository's root granted it; "" if none
	// Repository is the repository whose root granted Holder, as the
	// project names it: an issuer HOLDER@REPOSITORY matches only there,
	// and a fixed record answers vulnerabilities of its own repository only.
	Repository string
	// Active reports whether the record counts: not revoked, not
	// superseded. A record whose key was revoked after it was signed
	// still counts (the index refuses what a key signs after its
	// revocation).
	Active bool
	// Status says, for people, how the record stands (active, revoked,
	// superseded, issuer key revoked); EndedBy names the record that
	// ended it. Neither decides anything: Active does.
	Status    string
	EndedBy   string
	Artifacts []string // the artifacts a record narrowed to; none: the whole version
	// Predicate is the record's predicate, as record.Parse decodes it
	// (record.CertificationPredicate, record.VulnsPredicate, …); rules
	// read its issue time, note, test result, vulnerabilities and fixes.
	Predicate any
}

// Verdict is a policy's decision on one version, rule by rule.
type Verdict struct {
	Package    string        `json:"package"`
	Descriptor blob.Ref      `json:"descriptor"`
	Allowed    bool          `json:"allowed"`
	Rules      []RuleVerdict `json:"rules"`
}

// RuleVerdict is one rule's decision and why.
type RuleVerdict struct {
	Rule    string   `json:"rule"`
	Mode    Mode     `json:"mode"`
	Line    int      `json:"line"`
	Applies bool     `json:"applies"`
	Pass    bool     `json:"pass"`
	Reason  string   `json:"reason"`
	Records []string `json:"records,omitempty"` // the records that decided it
}

// Failed returns the rules that failed.
func (v *Verdict) Failed() []RuleVerdict {
	var out []RuleVerdict
	for _, r := range v.Rules {
		if !r.Pass {
			out = append(out, r)
		}
	}
	return out
}

// facts are what rules read of a record.
type facts struct {
	r     *Record
	vulns []vuln
	fixes []string
	obj   *celRecord // the CEL view, built on first use
}

type vuln struct {
	id       string
	severity string          // the score its rank was read from (the worst), else its first
	rank     record.Severity // none for a vulnerability no score of which cairn ranks
	result   record.VulnResult
}

func factsOf(r *Record) *facts {
	f := &facts{r: r}
	switch p := r.Predicate.(type) {
	case record.FixedPredicate:
		f.fixes = p.Vulnerabilities
	case record.VulnsPredicate:
		for _, res := range p.Scanner.Result {
			sev, score, ok := res.Worst()
			if !ok && len(res.Severity) > 0 {
				score = res.Severity[0].Score // shown as given, ranked none
			}
			f.vulns = append(f.vulns, vuln{id: res.ID, severity: score, rank: sev, result: res})
		}
	}
	return f
}

// cel is the record as CEL expressions read it.
func (f *facts) cel() *celRecord {
	if f.obj != nil {
		return f.obj
	}
	r := f.r
	o := &celRecord{ID: r.ID, Kind: string(r.Kind), Issuer: r.Issuer, Holder: r.Holder, Repository: r.Repository, Status: r.Status,
		Artifacts: nonNil(r.Artifacts), Fixes: nonNil(f.fixes), Vulnerabilities: []celVuln{}}
	switch p := r.Predicate.(type) {
	case record.CertificationPredicate:
		o.Issued, o.Note = p.Issued, p.Note
	case record.AuthoredPredicate:
		o.Issued = p.Issued
	case record.FixedPredicate:
		o.Issued, o.Note = p.Issued, p.Note
	case record.TestResultPredicate:
		o.Result, o.Note = p.Result, p.URL
	case record.VulnsPredicate:
		o.Issued = p.Metadata.ScanFinishedOn
	}
	top := record.SeverityNone
	for _, v := range f.vulns {
		o.Vulnerabilities = append(o.Vulnerabilities, celVuln{ID: v.id, Severity: v.severity, Aliases: nonNil(v.result.Aliases())})
		if v.rank > top {
			o.Severity, top = v.severity, v.rank
		}
	}
	o.SeverityRank = int64(top.Rank())
	f.obj = o
	return o
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// celRecord is a record as CEL expressions read it: the variable
// `record` of a where condition, an element of `records` in an expr.
type celRecord struct {
	ID              string    `cel:"id"`
	Kind            string    `cel:"kind"`
	Issuer          string    `cel:"issuer"`
	Holder          string    `cel:"holder"`
	Repository      string    `cel:"repository"`
	Status          string    `cel:"status"`
	Issued          time.Time `cel:"issued"`
	Note            string    `cel:"note"`
	Result          string    `cel:"result"`
	Artifacts       []string  `cel:"artifacts"`
	Severity        string    `cel:"severity"`      // the highest of its vulnerabilities
	SeverityRank    int64     `cel:"severity_rank"` // its rank (record.Severity.Rank): 1 (low) … 4 (critical); 0: none
	Vulnerabilities []celVuln `cel:"vulnerabilities"`
	Fixes           []string  `cel:"fixes"` // the vulnerability ids a fixed record answers
}

// celVuln is one vulnerability of a vulnerable record.
type celVuln struct {
	ID       string   `cel:"id"`
	Severity string   `cel:"severity"`
	Aliases  []string `cel:"aliases"` // its OSV record's other ids (CVE-…, GHSA-…); empty when it has none
}

// celPackage is the version as CEL expressions read it: the variable `pkg`.
type celPackage struct {
	Name         string          `cel:"name"`
	Version      string          `cel:"version"`
	UUID         string          `cel:"uuid"`
	License      string          `cel:"license"`
	Summary      string          `cel:"summary"`
	Descriptor   string          `cel:"descriptor"` // its sha256
	Artifacts    []celArtifact   `cel:"artifacts"`
	Dependencies []celDependency `cel:"dependencies"`
}

// celArtifact is one artifact of the version.
type celArtifact struct {
	Kind     string `cel:"kind"`
	Platform string `cel:"platform"`
	File     string `cel:"file"`
	SHA256   string `cel:"sha256"`
	Size     int64  `cel:"size"`
}

// celDependency is one dependency of the version.
type celDependency struct {
	Name    string `cel:"name"`
	Version string `cel:"version"`
}

func packageObj(d *descriptor.Descriptor, ref blob.Ref) *celPackage {
	p := &celPackage{Name: d.Name, Version: d.Version, UUID: d.UUID, License: d.License, Summary: d.Summary, Descriptor: ref.SHA256,
		Artifacts: make([]celArtifact, 0, len(d.Artifacts)), Dependencies: make([]celDependency, 0, len(d.Dependencies))}
	for _, a := range d.Artifacts {
		p.Artifacts = append(p.Artifacts, celArtifact{Kind: a.Kind, Platform: a.Platform, File: a.File, SHA256: a.SHA256, Size: a.Size})
	}
	for _, dep := range d.Dependencies {
		p.Dependencies = append(p.Dependencies, celDependency{Name: dep.Name, Version: dep.Version})
	}
	return p
}

// issuers expands a rule's by-list: group names become their members.
func (p *Policy) issuers(by []string) map[string]bool {
	if len(by) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, b := range by {
		if members, ok := p.Issuers[b]; ok {
			for _, m := range members {
				out[m] = true
			}
			continue
		}
		out[b] = true
	}
	return out
}

// issuedBy reports whether a record's issuer is in set: by key id, by
// HOLDER@REPOSITORY, or by a bare holder name (which Bind allows only
// when the project reads one repository).
func issuedBy(set map[string]bool, r *Record) bool {
	return set == nil || set[r.Issuer] || (r.Holder != "" && (set[r.Holder] || set[r.Holder+"@"+r.Repository]))
}

// Evaluate decides whether a version may be installed, rule by rule. A
// CEL expression that fails to evaluate (its cost limit) fails its rule
// and says so: never a silent pass.
func (p *Policy) Evaluate(s *Subject) *Verdict {
	d := s.Descriptor
	v := &Verdict{Package: d.ID(), Descriptor: s.Ref, Allowed: true}
	var active []*facts
	// answered: the fixed records' ids, by repository. A fixed record
	// answers the vulnerabilities of its own repository only: an
	// upstream cannot answer what an organisation declared of its
	// package, nor the reverse.
	answered := answers{}
	for i := range s.Records {
		r := &s.Records[i]
		if !r.Active || !r.Kind.IsPackage() {
			continue
		}
		f := factsOf(r)
		active = append(active, f)
		answered.add(r.Repository, f.fixes, r.ID)
	}
	var pkg *celPackage
	pkgObj := func() *celPackage {
		if pkg == nil {
			pkg = packageObj(d, s.Ref)
		}
		return pkg
	}
	for _, r := range p.Rules {
		rv := RuleVerdict{Rule: r.Name, Mode: r.Mode, Line: r.Line, Applies: true, Pass: true}
		if r.Packages != "" {
			if ok, _ := path.Match(r.Packages, d.Name); !ok {
				rv.Applies, rv.Reason = false, "applies to "+r.Packages+" only"
				v.Rules = append(v.Rules, rv)
				continue
			}
		}
		if r.expr != nil {
			p.evalExpr(r, &rv, pkgObj, active)
		} else {
			p.evalProperty(r, &rv, pkgObj, s, active, answered)
		}
		if !rv.Pass {
			v.Allowed = false
		}
		v.Rules = append(v.Rules, rv)
	}
	return v
}

func (p *Policy) evalExpr(r *Rule, rv *RuleVerdict, pkg func() *celPackage, active []*facts) {
	vars := map[string]any{}
	if r.uses["records"] {
		recs := make([]*celRecord, 0, len(active))
		for _, f := range active {
			recs = append(recs, f.cel())
		}
		vars["records"] = recs
	}
	if r.uses["pkg"] {
		vars["pkg"] = pkg()
	}
	out, _, err := r.expr.Eval(vars)
	if err != nil {
		rv.Pass, rv.Reason = false, fmt.Sprintf("%s:%d: expr could not be evaluated: %v", p.File, r.exprLine, err)
		return
	}
	b, _ := out.Value().(bool)
	if r.Mode == Require {
		rv.Pass = b
	} else {
		rv.Pass = !b
	}
	rv.Reason = fmt.Sprintf("expr is %v: %s", b, r.Expr)
}

func (p *Policy) evalProperty(r *Rule, rv *RuleVerdict, pkg func() *celPackage, s *Subject, active []*facts, answered answers) {
	var hits []string
	var answers []string
	for _, f := range active {
		if f.r.Kind != r.Property || !issuedBy(r.by, f.r) {
			continue
		}
		if r.where != nil {
			vars := map[string]any{"record": f.cel()}
			if r.uses["pkg"] {
				vars["pkg"] = pkg()
			}
			out, _, err := r.where.Eval(vars)
			if err != nil {
				rv.Pass, rv.Reason = false, fmt.Sprintf("%s:%d: where could not be evaluated on record %.16s: %v", p.File, r.whereLine, f.r.ID, err)
				return
			}
			if b, _ := out.Value().(bool); !b {
				continue
			}
		}
		what := describe(f)
		if r.Property == record.Vulnerable {
			var open []string
			for _, v := range f.vulns {
				if !v.rank.AtLeast(r.Severity) {
					continue
				}
				if id, fix, ok := answered.answer(f.r.Repository, v.result); ok {
					how := ""
					if id != v.id {
						how = " (its alias " + id + ")"
					}
					answers = append(answers, fmt.Sprintf("%s answered%s by fixed record %.16s", v.id, how, fix))
					rv.Records = append(rv.Records, fix)
					continue
				}
				open = append(open, fmt.Sprintf("%s (%s)", v.id, v.severity))
			}
			if len(open) == 0 {
				continue
			}
			what = "vulnerable " + strings.Join(open, ", ") + " by " + who(f.r) + fmt.Sprintf(" (record %.16s), not answered by a fixed record", f.r.ID)
		}
		hits = append(hits, what)
		rv.Records = append(rv.Records, f.r.ID)
		if r.Mode == Require {
			break // one record meets a requirement: the first, in index order, is named
		}
	}
	cond := string(r.Property)
	if len(r.By) > 0 {
		cond += " by " + strings.Join(r.By, " or ")
	}
	if r.Severity > record.SeverityNone {
		cond += " at or above " + r.Severity.String()
	}
	if r.Where != "" {
		cond += " where " + r.Where
	}
	if r.Mode == Require {
		rv.Pass = len(hits) > 0
		if rv.Pass {
			rv.Reason = strings.Join(hits, "; ")
		} else {
			rv.Reason = "no active " + cond + ended(s, r.Property)
		}
		return
	}
	rv.Pass = len(hits) == 0
	if !rv.Pass {
		rv.Reason = strings.Join(hits, "; ")
		return
	}
	rv.Reason = "no active " + cond
	if len(answers) > 0 {
		rv.Reason += " (" + strings.Join(answers, "; ") + ")"
	}
	rv.Reason += ended(s, r.Property)
}

// answers are the active fixed records' ids, by repository: the ids in
// order, and the record that answers each.
type answers map[string]*struct {
	ids    []string
	record map[string]string
}

func (a answers) add(repository string, ids []string, rec string) {
	x := a[repository]
	if x == nil {
		x = &struct {
			ids    []string
			record map[string]string
		}{record: map[string]string{}}
		a[repository] = x
	}
	for _, id := range ids {
		if _, ok := x.record[id]; !ok {
			x.ids = append(x.ids, id)
		}
		x.record[id] = rec // the last, as index order goes, is named
	}
}

// answer returns the id (the vulnerability's, or an alias of it) that a
// fixed record of repository answers res by, and that record, as
// record.VulnResult.AnsweredBy decides.
func (a answers) answer(repository string, res record.VulnResult) (id, rec string, ok bool) {
	x := a[repository]
	if x == nil {
		return "", "", false
	}
	if id, ok = res.AnsweredBy(x.ids); !ok {
		return "", "", false
	}
	return id, x.record[id], true
}

// describe says who made a record, and which.
func describe(f *facts) string {
	s := string(f.r.Kind) + " by " + who(f.r) + fmt.Sprintf(" (record %.16s", f.r.ID)
	if t, ok := f.r.Predicate.(record.TestResultPredicate); ok && t.Result != "" {
		s += ", " + t.Result
	}
	return s + ")"
}

func who(r *Record) string {
	if r.Holder != "" && r.Holder != r.Issuer {
		return r.Holder + " [" + r.Issuer + "]"
	}
	return r.Issuer
}

// ended lists the records of a kind that no longer count, and why.
func ended(s *Subject, kind record.Kind) string {
	var out []string
	for i := range s.Records {
		r := &s.Records[i]
		if r.Kind == kind && !r.Active {
			status := r.Status
			if status == "" {
				status = "ended"
			}
			out = append(out, fmt.Sprintf("record %.16s by %s is %s by %.16s", r.ID, who(r), status, r.EndedBy))
		}
	}
	if len(out) == 0 {
		return ""
	}
	sort.Strings(out)
	return "; " + strings.Join(out, "; ")
}

// ErrRefused is the parent of RefusedError.
var ErrRefused = errors.New("refused by policy")

// RefusedError lists the versions a policy refuses, each with the rules
// it fails.
type RefusedError struct{ Verdicts []*Verdict }

func (e *RefusedError) Error() string {
	var lines []string
	for _, v := range e.Verdicts {
		for _, r := range v.Failed() {
			lines = append(lines, fmt.Sprintf("%s: %s %s: %s", v.Package, r.Mode, r.Rule, r.Reason))
		}
	}
	return fmt.Sprintf("policy refuses %d package(s):\n  %s", len(e.Verdicts), strings.Join(lines, "\n  "))
}

func (e *RefusedError) Unwrap() error { return ErrRefused }
