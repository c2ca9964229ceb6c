package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
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
	// Artifacts are the files of the version judged: those a plan
	// installs (each platform's choice). None: no plan's (a server's
	// gate, which serves every platform), and every record is judged as
	// the version's, as it was before records were narrowed. A record narrowed
	// to some binaries (Record.Artifacts) counts for a require rule, and
	// a fixed record answers, only if it covers every file judged; one
	// forbids only if it names a file judged. A record about the source
	// is about the code every binary is built from: the whole version.
	Artifacts []string
}

// judgedFiles are the files of a version a verdict is about, and its
// source's.
type judgedFiles struct {
	files   []string
	sources []string
	// unknown says no plan's files are named (a server's gate, its
	// pages): every record is judged as the version's.
	unknown bool
}

// judged returns the files of the version the verdict is about.
func (s *Subject) judged() judgedFiles {
	var j judgedFiles
	for _, a := range s.Descriptor.Artifacts {
		if a.Kind == "source" {
			j.sources = append(j.sources, a.File)
		}
		if len(s.Artifacts) == 0 {
			j.files = append(j.files, a.File)
		}
	}
	if len(s.Artifacts) > 0 {
		j.files = s.Artifacts
	} else {
		j.unknown = true
	}
	return j
}

// whole says whether r speaks of the whole version: it narrows to no
// artifact, or to the source, the code every binary is built from (a
// policy that must know a binary is that code requires reproduced).
func (j judgedFiles) whole(r *Record) bool {
	return j.unknown || len(r.Artifacts) == 0 || slices.ContainsFunc(r.Artifacts, func(f string) bool { return slices.Contains(j.sources, f) })
}

// covers says whether r is about every file judged.
func (j judgedFiles) covers(r *Record) bool {
	if j.whole(r) {
		return true
	}
	for _, f := range j.files {
		if !slices.Contains(r.Artifacts, f) {
			return false
		}
	}
	return true
}

// touches says whether r is about a file judged.
func (j judgedFiles) touches(r *Record) bool {
	return j.whole(r) || slices.ContainsFunc(j.files, func(f string) bool { return slices.Contains(r.Artifacts, f) })
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

// Made is when a record was made, as max_age reads it: its predicate's
// issued time (a vulnerability scan's finish, a test result's run entry:
// record.TestRun). A record without a time (a test result signed before
// cairn named its runs) is never fresh.
func (r *Record) Made() time.Time { return issuedOf(r.Predicate) }

// MaxClockSkew is how far after the judgment time a record may say it
// was made and still count for max_age: a certifier's clock a little
// ahead of the judge's. A record made later than that is issued in the
// future and never fresh (it would otherwise stay fresh for as long as
// its future lasts).
const MaxClockSkew = 5 * time.Minute

// issuedOf is the time a predicate says it was issued; zero if none.
func issuedOf(pred any) time.Time {
	switch p := pred.(type) {
	case record.CertificationPredicate:
		return p.Issued
	case record.AuthoredPredicate:
		return p.Issued
	case record.FixedPredicate:
		return p.Issued
	case record.ImportedPredicate:
		return p.Issued
	case record.VulnsPredicate:
		return p.Metadata.ScanFinishedOn
	case record.TestResultPredicate:
		return p.Issued()
	}
	return time.Time{}
}

// Verdict is a policy's decision on one version, rule by rule.
type Verdict struct {
	Package    string        `json:"package"`
	Descriptor blob.Ref      `json:"descriptor"`
	Allowed    bool          `json:"allowed"`
	JudgedAt   time.Time     `json:"judged_at,omitzero"` // the judgment time max_age counts back from
	Rules      []RuleVerdict `json:"rules"`
}

// RuleVerdict is one rule's decision and why.
type RuleVerdict struct {
	Rule    string `json:"rule"`
	Mode    Mode   `json:"mode"`
	Line    int    `json:"line"`
	Applies bool   `json:"applies"`
	Pass    bool   `json:"pass"`
	// Warning reports a failing rule whose enforcement is warn: it is
	// reported, and the version is not refused for it.
	Warning bool     `json:"warning,omitempty"`
	Reason  string   `json:"reason"`
	Records []string `json:"records,omitempty"` // the records that decided it
}

// Mark is the rule's outcome in a word: "skip" (it does not apply),
// "warning" (a failing warn rule), "FAIL" (a failing rule that refuses
// the version) or "pass".
func (r RuleVerdict) Mark() string {
	switch {
	case !r.Applies:
		return "skip"
	case r.Warning:
		return "warning"
	case !r.Pass:
		return "FAIL"
	}
	return "pass"
}

// Failed returns the rules that failed and refuse the version (a
// failing warn rule is among Warnings, not here).
func (v *Verdict) Failed() []RuleVerdict {
	var out []RuleVerdict
	for _, r := range v.Rules {
		if !r.Pass && !r.Warning {
			out = append(out, r)
		}
	}
	return out
}

// Warnings returns the failing rules whose enforcement is warn.
func (v *Verdict) Warnings() []RuleVerdict {
	var out []RuleVerdict
	for _, r := range v.Rules {
		if r.Warning {
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
		Issued: r.Made(), Artifacts: nonNil(r.Artifacts), Fixes: nonNil(f.fixes), Vulnerabilities: []celVuln{}}
	switch p := r.Predicate.(type) {
	case record.CertificationPredicate:
		o.Note = p.Note
	case record.FixedPredicate:
		o.Note = p.Note
	case record.TestResultPredicate:
		o.Result, o.Note = p.Result, p.URL
	}
	top := record.SeverityNone
	for i, v := range f.vulns {
		o.Vulnerabilities = append(o.Vulnerabilities, celVuln{ID: v.id, Severity: v.rank.String(), Score: v.severity, Aliases: nonNil(v.result.Aliases())})
		if v.rank > top || i == 0 {
			o.Score, top = v.severity, v.rank
		}
	}
	if len(f.vulns) > 0 {
		// The word of cairn's scale, however the certifier wrote it (a
		// score "9.8", "Critical"): a where comparing words compares
		// bands, as severity: does.
		o.Severity = top.String()
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
	Issued          time.Time `cel:"issued"` // as max_age reads it: Record.Made
	Note            string    `cel:"note"`
	Result          string    `cel:"result"`
	Artifacts       []string  `cel:"artifacts"`
	Severity        string    `cel:"severity"`      // the highest of its vulnerabilities, a word of cairn's scale: none, low, medium, high, critical
	SeverityRank    int64     `cel:"severity_rank"` // its rank (record.Severity.Rank): 1 (low) … 4 (critical); 0: none
	Score           string    `cel:"score"`         // the highest's score as its record gives it ("9.8", "CVSS:3.1/…", "moderate")
	Vulnerabilities []celVuln `cel:"vulnerabilities"`
	Fixes           []string  `cel:"fixes"` // the vulnerability ids a fixed record answers
}

// celVuln is one vulnerability of a vulnerable record.
type celVuln struct {
	ID       string   `cel:"id"`
	Severity string   `cel:"severity"` // a word of cairn's scale
	Score    string   `cel:"score"`    // as the record gives it
	Aliases  []string `cel:"aliases"`  // its OSV record's other ids (CVE-…, GHSA-…); empty when it has none
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

// issuers expands a rule's by-list: group names become their members,
// as a set and in the order of the file.
func (p *Policy) issuers(by []string) (map[string]bool, []string) {
	if len(by) == 0 {
		return nil, nil
	}
	out := map[string]bool{}
	var list []string
	add := func(m string) {
		if !out[m] {
			out[m] = true
			list = append(list, m)
		}
	}
	for _, b := range by {
		if members, ok := p.Issuers[b]; ok {
			for _, m := range members {
				add(m)
			}
			continue
		}
		add(b)
	}
	return out, list
}

// certifier is who a record counts as for a count: its holder, in the
// repository whose root granted it (two keys of one holder are one
// certifier), else its key id.
func certifier(r *Record) string {
	if r.Holder != "" {
		return r.Holder + "@" + r.Repository
	}
	return r.Issuer
}

// names reports whether issuer m of a by-list names record r's issuer.
func names(m string, r *Record) bool {
	return m == r.Issuer || (r.Holder != "" && (m == r.Holder || m == r.Holder+"@"+r.Repository))
}

// issuedBy reports whether a record's issuer is in set: by key id, by
// HOLDER@REPOSITORY, or by a bare holder name (which Bind allows only
// when the project reads one repository).
func issuedBy(set map[string]bool, r *Record) bool {
	return set == nil || set[r.Issuer] || (r.Holder != "" && (set[r.Holder] || set[r.Holder+"@"+r.Repository]))
}

// Evaluate decides whether a version may be installed, judged at time at
// (max_age counts back from it; the verdict names it), rule by rule. A
// CEL expression that fails to evaluate (its cost limit) fails its rule
// and says so: never a silent pass. A failing rule whose enforcement is
// warn is reported (RuleVerdict.Warning) and refuses nothing. With a
// zero at, a rule with max_age fails: no record can be shown fresh.
func (p *Policy) Evaluate(s *Subject, at time.Time) *Verdict {
	d := s.Descriptor
	at = at.UTC()
	v := &Verdict{Package: d.ID(), Descriptor: s.Ref, Allowed: true, JudgedAt: at}
	var active []*facts
	// answered: the fixed records' ids, by repository. A fixed record
	// answers the vulnerabilities of its own repository only: an
	// upstream cannot answer what an organisation declared of its
	// package, nor the reverse.
	answered := answers{}
	judged := s.judged()
	for i := range s.Records {
		r := &s.Records[i]
		if !r.Active || !r.Kind.IsPackage() {
			continue
		}
		f := factsOf(r)
		active = append(active, f)
		if judged.covers(r) {
			// A fix of some artifacts answers nothing of the others.
			answered.add(r.Repository, f.fixes, r.ID)
		}
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
			if !record.MatchName(r.Packages, d.Name) {
				rv.Applies, rv.Reason = false, "applies to "+r.Packages+" only"
				v.Rules = append(v.Rules, rv)
				continue
			}
		}
		if r.expr != nil {
			p.evalExpr(r, &rv, pkgObj, active, at)
		} else {
			p.evalProperty(r, &rv, pkgObj, s, active, answered, at)
		}
		if !rv.Pass {
			if r.Enforcement == Warn {
				rv.Warning = true
			} else {
				v.Allowed = false
			}
		}
		// A reason is one line: the ids and words it quotes from
		// records are their signers', and may hold line breaks.
		rv.Reason = record.OneLine(rv.Reason)
		v.Rules = append(v.Rules, rv)
	}
	return v
}

func (p *Policy) evalExpr(r *Rule, rv *RuleVerdict, pkg func() *celPackage, active []*facts, at time.Time) {
	vars := map[string]any{}
	if r.uses["now"] {
		vars["now"] = at
	}
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

func (p *Policy) evalProperty(r *Rule, rv *RuleVerdict, pkg func() *celPackage, s *Subject, active []*facts, answered answers, at time.Time) {
	cond := r.property()
	if r.MaxAge > 0 && at.IsZero() {
		rv.Pass, rv.Reason = false, "no judgment time: max_age "+r.MaxAgeText+" cannot be judged"
		return
	}
	need := max(r.Count, 1)
	// The fixed records that answer this rule's vulnerabilities: any of
	// the repository's, or answered_by's alone.
	ruleAnswers := answered
	if r.answeredBy != nil {
		ruleAnswers = answersBy(active, r.answeredBy, s.judged())
	}
	var hits []string
	var answers []string
	var stale []string
	var by []*Record             // the certifiers counted, by their first record
	counted := map[string]bool{} // certifier → counted
	judged := s.judged()
	var narrowed []string // records of the property about other artifacts
	for _, f := range active {
		if f.r.Kind != r.Property || !issuedBy(r.by, f.r) {
			continue
		}
		if r.Mode == Require && !judged.covers(f.r) || r.Mode == Forbid && !judged.touches(f.r) {
			narrowed = append(narrowed, fmt.Sprintf("record %.16s by %s is about %s only, not %s", f.r.ID, who(f.r), strings.Join(f.r.Artifacts, ", "), strings.Join(judged.files, ", ")))
			continue
		}
		if r.MaxAge > 0 {
			made, oldest, newest := f.r.Made(), at.Add(-r.MaxAge), at.Add(MaxClockSkew)
			switch {
			case made.IsZero():
				stale = append(stale, fmt.Sprintf("record %.16s by %s has no time to judge max_age %s by", f.r.ID, who(f.r), r.MaxAgeText))
				continue
			case made.Before(oldest):
				stale = append(stale, fmt.Sprintf("record %.16s by %s is older than max_age %s (made %s, before %s)", f.r.ID, who(f.r), r.MaxAgeText, made.UTC().Format(time.RFC3339), oldest.Format(time.RFC3339)))
				continue
			case made.After(newest):
				stale = append(stale, fmt.Sprintf("record %.16s by %s is issued in the future (made %s, after the judgment time %s and its %s of clock skew)", f.r.ID, who(f.r), made.UTC().Format(time.RFC3339), at.Format(time.RFC3339), MaxClockSkew))
				continue
			}
		}
		if r.where != nil {
			vars := map[string]any{"record": f.cel()}
			if r.uses["pkg"] {
				vars["pkg"] = pkg()
			}
			if r.uses["now"] {
				vars["now"] = at
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
				if id, fix, ok := ruleAnswers.answer(f.r.Repository, v.result); ok {
					how := ""
					if id != v.id {
						how = " (its alias " + id + ")"
					}
					answers = append(answers, fmt.Sprintf("%s answered%s by fixed record %.16s", v.id, how, fix))
					rv.Records = append(rv.Records, fix)
					continue
				}
				if _, fix, ok := answered.answer(f.r.Repository, v.result); ok {
					open = append(open, fmt.Sprintf("%s (%s; fixed record %.16s does not count: not by %s, whom answered_by names)", v.id, v.severity, fix, strings.Join(r.AnsweredBy, ", ")))
					continue
				}
				if repo, fix, ok := answered.elsewhere(f.r.Repository, v.result); ok {
					// An organisation's fixed record of an upstream's
					// finding (or the reverse) answers nothing: say so.
					open = append(open, fmt.Sprintf("%s (%s; fixed record %.16s is %s's, and answers only %s's records)", v.id, v.severity, fix, repo, repo))
					continue
				}
				if id, fix, ok := answered.inAnotherCase(f.r.Repository, v.result); ok {
					// A fixed record of the id in another case (crit-1
					// for CRIT-1) answers nothing: ids are compared
					// exactly, and the verdict says why it did not count.
					open = append(open, fmt.Sprintf("%s (%s; fixed record %.16s answers %s, not %s: ids are compared exactly)", v.id, v.severity, fix, id, v.id))
					continue
				}
				open = append(open, fmt.Sprintf("%s (%s)", v.id, v.severity))
			}
			if len(open) == 0 {
				continue
			}
			what = "vulnerable " + strings.Join(open, ", ") + " by " + who(f.r) + fmt.Sprintf(" (record %.16s), not answered by a fixed record", f.r.ID)
		}
		if r.Mode == Require {
			c := certifier(f.r)
			if counted[c] {
				continue // one certifier counts once, however many keys it signs with
			}
			counted[c] = true
			by = append(by, f.r)
		}
		hits = append(hits, what)
		rv.Records = append(rv.Records, f.r.ID)
		if r.Mode == Require && len(hits) == need {
			break // the first records in index order that meet the requirement are named
		}
	}
	if r.Mode == Require {
		rv.Pass = len(hits) >= need
		switch {
		case r.Count > 1:
			rv.Reason = r.countReason(hits, by)
		case rv.Pass:
			rv.Reason = strings.Join(hits, "; ")
		default:
			rv.Reason = "no active " + cond
		}
		if !rv.Pass {
			for _, st := range append(stale, narrowed...) {
				rv.Reason += "; " + st
			}
			rv.Reason += ended(s, r.Property)
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
	for _, n := range narrowed {
		rv.Reason += "; " + n
	}
	rv.Reason += ended(s, r.Property)
}

// Condition says what a property rule looks for, as verdicts name it:
// "vulnerable at or above high", "tested by ci where record.result ==
// "PASSED"", "2 of tested by ci-a or ci-b or ci-c"; an expr rule's
// condition is its expression.
func (r *Rule) Condition() string {
	if r.Property == "" {
		return "expr " + r.Expr
	}
	if r.Count > 1 {
		return fmt.Sprintf("%d distinct certifiers of %s", r.Count, r.property())
	}
	return r.property()
}

// property is a property rule's condition, less its count.
func (r *Rule) property() string {
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
	if r.MaxAge > 0 {
		cond += " no older than " + r.MaxAgeText
	}
	return cond
}

// countReason says how a count: K rule stands: "2 of 3 required: have
// tested by ci-a (record …); missing from ci-b, ci-c". have are the
// records counted, certs their records, one per certifier.
func (r *Rule) countReason(have []string, certs []*Record) string {
	var b strings.Builder
	if r.by != nil {
		fmt.Fprintf(&b, "%d of %d required", r.Count, len(r.byList))
	} else {
		fmt.Fprintf(&b, "%d distinct certifiers required", r.Count)
	}
	b.WriteString(" (" + r.property() + "): have ")
	if len(have) == 0 {
		b.WriteString("none")
	} else {
		b.WriteString(strings.Join(have, "; "))
	}
	if len(have) >= r.Count {
		return b.String()
	}
	if r.by == nil {
		fmt.Fprintf(&b, "; missing %d more", r.Count-len(have))
		return b.String()
	}
	var missing []string
	for _, m := range r.byList {
		if !slices.ContainsFunc(certs, func(c *Record) bool { return names(m, c) }) {
			missing = append(missing, m)
		}
	}
	b.WriteString("; missing from " + strings.Join(missing, ", "))
	return b.String()
}

// answers are the active fixed records' ids, by repository: the ids in
// order, and the record that answers each.
type answers map[string]*struct {
	ids    []string
	record map[string]string
}

// answersBy are the answers of the fixed records among active whose
// issuers are in set, and that cover the files judged.
func answersBy(active []*facts, set map[string]bool, judged judgedFiles) answers {
	a := answers{}
	for _, f := range active {
		if len(f.fixes) > 0 && issuedBy(set, f.r) && judged.covers(f.r) {
			a.add(f.r.Repository, f.fixes, f.r.ID)
		}
	}
	return a
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

// elsewhere returns a repository other than repository whose fixed
// record would answer res, and that record: one that does not count.
func (a answers) elsewhere(repository string, res record.VulnResult) (repo, rec string, ok bool) {
	for _, r := range slices.Sorted(maps.Keys(a)) {
		if r == repository {
			continue
		}
		if _, rec, ok := a.answer(r, res); ok {
			return r, rec, true
		}
	}
	return "", "", false
}

// inAnotherCase returns an id a fixed record of repository answers that
// is res's id (or an alias of it) in another case, and that record.
func (a answers) inAnotherCase(repository string, res record.VulnResult) (id, rec string, ok bool) {
	x := a[repository]
	if x == nil {
		return "", "", false
	}
	for _, want := range append([]string{res.ID}, res.Aliases()...) {
		for _, got := range x.ids {
			if got != want && strings.EqualFold(got, want) {
				return got, x.record[got], true
			}
		}
	}
	return "", "", false
}

// describe says who made a record, and which.
func describe(f *facts) string {
	s := string(f.r.Kind) + " by " + who(f.r) + fmt.Sprintf(" (record %.16s", f.r.ID)
	if t, ok := f.r.Predicate.(record.TestResultPredicate); ok && t.Result != "" {
		s += ", " + t.Result
	}
	if f.r.Status != "" && f.r.Status != "active" {
		// It counts (signed before its key was revoked), and whoever
		// reads the verdict should know: where: 'record.status ==
		// "active"' leaves such records out.
		s += "; " + f.r.Status + " since"
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
