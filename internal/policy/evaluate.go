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
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
)

// Subject is what a verdict is about: a version, its descriptor and every
// record the index holds about it (ended ones included: they are only
// reported).
type Subject struct {
	Descriptor *descriptor.Descriptor
	Ref        blob.Ref
	Records    []index.RecordView
	// Repository names the repository whose root granted the records'
	// holders (as the project names it): an issuer HOLDER@REPOSITORY
	// matches only there.
	Repository string
	// Others are records about the same version that other repositories
	// keep, by the repository whose root granted their holders: an
	// organisation's certifications of an upstream version it serves.
	Others map[string][]index.RecordView
}

// each calls fn on every record of the subject with its repository:
// Records, then Others by repository name.
func (s *Subject) each(fn func(rv *index.RecordView, repo string)) {
	for i := range s.Records {
		fn(&s.Records[i], s.Repository)
	}
	repos := make([]string, 0, len(s.Others))
	for r := range s.Others {
		repos = append(repos, r)
	}
	sort.Strings(repos)
	for _, r := range repos {
		for i := range s.Others[r] {
			fn(&s.Others[r][i], r)
		}
	}
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

// IsActive reports whether a record counts: not revoked, not superseded.
// A record whose key was revoked after it was signed still counts (the
// index refuses what a key signs after its revocation).
func IsActive(rv *index.RecordView) bool {
	return rv.Status == index.StatusActive || rv.Status == index.StatusIssuerRevoked
}

// facts are what rules read of a record.
type facts struct {
	rv     *index.RecordView
	repo   string // the repository whose root named rv's holder
	issued time.Time
	note   string
	result string
	vulns  []vuln
	fixes  []string
	obj    map[string]any // the CEL view, built on first use
}

type vuln struct {
	id, severity string
	rank         int
}

func factsOf(rv *index.RecordView, repo string) *facts {
	f := &facts{rv: rv, repo: repo}
	switch p := rv.Record.Predicate.(type) {
	case record.CertificationPredicate:
		f.issued, f.note = p.Issued, p.Note
	case record.AuthoredPredicate:
		f.issued = p.Issued
	case record.FixedPredicate:
		f.issued, f.note, f.fixes = p.Issued, p.Note, p.Vulnerabilities
	case record.TestResultPredicate:
		f.result, f.note = p.Result, p.URL
	case record.VulnsPredicate:
		f.issued = p.Metadata.ScanFinishedOn
		for _, res := range p.Scanner.Result {
			v := vuln{id: res.ID}
			for _, s := range res.Severity {
				if r := SeverityRank(s.Score); r > v.rank {
					v.rank, v.severity = r, s.Score
				}
			}
			f.vulns = append(f.vulns, v)
		}
	}
	return f
}

func (f *facts) cel() map[string]any {
	if f.obj != nil {
		return f.obj
	}
	vulns := make([]any, 0, len(f.vulns))
	top, topRank := "", 0
	for _, v := range f.vulns {
		vulns = append(vulns, map[string]any{"id": v.id, "severity": v.severity})
		if v.rank > topRank {
			top, topRank = v.severity, v.rank
		}
	}
	arts := make([]any, 0, len(f.rv.Artifacts))
	for _, a := range f.rv.Artifacts {
		arts = append(arts, a)
	}
	fixes := make([]any, 0, len(f.fixes))
	for _, x := range f.fixes {
		fixes = append(fixes, x)
	}
	f.obj = map[string]any{
		"id": f.rv.ID, "kind": f.rv.Kind, "issuer": f.rv.Issuer, "holder": f.rv.Holder, "repository": f.repo, "status": f.rv.Status,
		"issued": f.issued, "note": f.note, "result": f.result, "artifacts": arts,
		"severity": top, "severity_rank": int64(topRank), "vulnerabilities": vulns, "fixes": fixes,
	}
	return f.obj
}

func packageObj(d *descriptor.Descriptor, ref blob.Ref) map[string]any {
	arts := make([]any, 0, len(d.Artifacts))
	for _, a := range d.Artifacts {
		arts = append(arts, map[string]any{"kind": a.Kind, "platform": a.Platform, "file": a.File, "sha256": a.SHA256, "size": a.Size})
	}
	deps := make([]any, 0, len(d.Dependencies))
	for _, dep := range d.Dependencies {
		deps = append(deps, map[string]any{"name": dep.Name, "version": dep.Version})
	}
	return map[string]any{"name": d.Name, "version": d.Version, "uuid": d.UUID, "license": d.License, "summary": d.Summary,
		"descriptor": ref.SHA256, "artifacts": arts, "dependencies": deps}
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
func issuedBy(set map[string]bool, f *facts) bool {
	rv := f.rv
	return set == nil || set[rv.Issuer] || (rv.Holder != "" && (set[rv.Holder] || set[rv.Holder+"@"+f.repo]))
}

// Evaluate decides whether a version may be installed, rule by rule. A
// CEL expression that fails to evaluate (its cost limit, a type error)
// fails its rule and says so: never a silent pass.
func (p *Policy) Evaluate(s *Subject) *Verdict {
	d := s.Descriptor
	v := &Verdict{Package: d.ID(), Descriptor: s.Ref, Allowed: true}
	var active []*facts
	// answered: the fixed record that answers a vulnerability id, by
	// repository and id. A fixed record answers the vulnerabilities of its
	// own repository only: an upstream cannot answer what an organisation
	// declared of its package, nor the reverse.
	answered := map[[2]string]string{}
	s.each(func(rv *index.RecordView, repo string) {
		if rv.Record == nil || !IsActive(rv) || !record.Kind(rv.Kind).IsPackage() {
			return
		}
		f := factsOf(rv, repo)
		active = append(active, f)
		for _, id := range f.fixes {
			answered[[2]string{repo, id}] = rv.ID
		}
	})
	var pkg map[string]any
	pkgObj := func() map[string]any {
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

// none is an unused variable's value.
var none = map[string]any{}

func (p *Policy) evalExpr(r *Rule, rv *RuleVerdict, pkg func() map[string]any, active []*facts) {
	vars := map[string]any{"pkg": none, "records": []any{}, "record": none}
	if r.uses["records"] {
		recs := make([]any, 0, len(active))
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

func (p *Policy) evalProperty(r *Rule, rv *RuleVerdict, pkg func() map[string]any, s *Subject, active []*facts, answered map[[2]string]string) {
	var hits []string
	var answers []string
	for _, f := range active {
		if record.Kind(f.rv.Kind) != r.Property || !issuedBy(r.by, f) {
			continue
		}
		if r.where != nil {
			vars := map[string]any{"pkg": none, "record": f.cel(), "records": []any{}}
			if r.uses["pkg"] {
				vars["pkg"] = pkg()
			}
			out, _, err := r.where.Eval(vars)
			if err != nil {
				rv.Pass, rv.Reason = false, fmt.Sprintf("%s:%d: where could not be evaluated on record %.16s: %v", p.File, r.whereLine, f.rv.ID, err)
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
				if v.rank < r.Severity {
					continue
				}
				if fix, ok := answered[[2]string{f.repo, v.id}]; ok {
					answers = append(answers, fmt.Sprintf("%s answered by fixed record %.16s", v.id, fix))
					rv.Records = append(rv.Records, fix)
					continue
				}
				open = append(open, fmt.Sprintf("%s (%s)", v.id, v.severity))
			}
			if len(open) == 0 {
				continue
			}
			what = "vulnerable " + strings.Join(open, ", ") + " by " + who(f.rv) + fmt.Sprintf(" (record %.16s), not answered by a fixed record", f.rv.ID)
		}
		hits = append(hits, what)
		rv.Records = append(rv.Records, f.rv.ID)
		if r.Mode == Require {
			break // one record meets a requirement: the first, in index order, is named
		}
	}
	cond := string(r.Property)
	if len(r.By) > 0 {
		cond += " by " + strings.Join(r.By, " or ")
	}
	if r.Severity > 0 {
		cond += " at or above " + severities[r.Severity-1]
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

// describe says who made a record, and which.
func describe(f *facts) string {
	s := f.rv.Kind + " by " + who(f.rv) + fmt.Sprintf(" (record %.16s", f.rv.ID)
	if f.result != "" {
		s += ", " + f.result
	}
	return s + ")"
}

func who(rv *index.RecordView) string {
	if rv.Holder != "" && rv.Holder != rv.Issuer {
		return rv.Holder + " [" + rv.Issuer + "]"
	}
	return rv.Issuer
}

// ended lists the records of a kind that no longer count, and why.
func ended(s *Subject, kind record.Kind) string {
	var out []string
	s.each(func(rv *index.RecordView, _ string) {
		if record.Kind(rv.Kind) == kind && !IsActive(rv) {
			out = append(out, fmt.Sprintf("record %.16s by %s is %s by %.16s", rv.ID, who(rv), rv.Status, rv.EndedBy))
		}
	})
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
