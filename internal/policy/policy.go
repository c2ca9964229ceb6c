// Package policy holds what a consumer requires before a package version
// may be installed, and the verdicts it gives.
//
// A policy is a YAML file of rules. A require rule passes when an active
// record of a property exists (by the named issuers, on matching
// packages, where a CEL condition holds); a forbid rule fails when one
// exists — a vulnerable record at or above a severity that no active
// fixed record of its repository answers (by the vulnerability's id or
// one of its OSV aliases: record.VulnResult.AnsweredBy), a deprecated or
// withdrawn record. Raw CEL
// expressions over the package and its records cover the rest; they are
// type-checked when the policy loads, so a field a record does not have
// is an error of the file, not of an evaluation. Issuers are the holders
// and keys the repository's root granted; only active records count (not
// revoked, not superseded). Every verdict says, rule by rule, which
// records decided it.
//
// A require rule may ask for more than one certifier (count: K, K
// distinct holders or holderless keys), and for fresh evidence (max_age:
// 7d, records made no earlier than the judgment time minus it, and not
// after it beyond MaxClockSkew; the judgment time is an input of
// Evaluate, named by the verdict). A rule
// whose enforcement is warn reports its failure and refuses nothing.
//
// A policy reads no index: its caller hands it a Subject, the version's
// descriptor and its records as typed Records (internal/verdict converts
// the index's views in one function), so that it is tested without git.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"go.yaml.in/yaml/v3"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/record"
)

// DefaultCostLimit bounds the work of one CEL evaluation.
const DefaultCostLimit = 100_000

// ErrInvalid is the parent of every policy file error.
var ErrInvalid = errors.New("invalid policy")

// FileError is a policy file error: the file, the line, the rule.
type FileError struct {
	File string
	Line int
	Rule string
	Msg  string
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, ": rule %q", e.Rule)
	}
	return b.String() + ": " + e.Msg
}

func (e *FileError) Unwrap() error { return ErrInvalid }

// Mode says whether a rule requires or forbids.
type Mode string

// The modes.
const (
	Require Mode = "require"
	Forbid  Mode = "forbid"
)

// Enforcement says what a failing rule does.
type Enforcement string

// The enforcements.
const (
	Deny Enforcement = "deny" // a failing rule refuses the version (the default)
	Warn Enforcement = "warn" // a failing rule is reported, and refuses nothing
)

// Policy is a parsed policy whose CEL expressions are compiled.
type Policy struct {
	File    string
	Ref     blob.Ref // the file's digest, as a lock records it
	Issuers map[string][]string
	// Enforcement is the file's default (enforcement: at the top), which
	// a rule's own enforcement overrides; Deny when the file says none.
	Enforcement Enforcement
	Rules       []*Rule
}

// Rule returns the rule of that name, or nil.
func (p *Policy) Rule(name string) *Rule {
	for _, r := range p.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Rule is one rule of a policy.
type Rule struct {
	Name     string
	Mode     Mode
	Line     int
	Property record.Kind     // "" for a raw expression
	By       []string        // issuers: group names, key ids, HOLDER@REPOSITORY, holder names, "root"
	Packages string          // a pattern over names, matched as a scope's (record.MatchName); "" for every package
	Severity record.Severity // forbid vulnerable: at or above this (none, the zero value: any)
	Where    string          // CEL over `record` and `pkg`: which records count
	// AnsweredBy, on a forbid vulnerable rule, are the issuers whose
	// fixed records answer its vulnerabilities (as By names them); empty:
	// any fixed record of the vulnerable record's repository, whose root
	// granted its issuer a certify:fixed scope.
	AnsweredBy []string
	Expr       string // CEL over `pkg` and `records`: the rule's condition
	// Count is how many distinct certifiers a require rule asks for, each
	// with an active matching record (0 or 1: one). A certifier is a
	// holder (HOLDER@REPOSITORY: two keys of one holder are one
	// certifier), or a key id for a key without a holder.
	Count int
	// MaxAge, when set, counts only records made no earlier than the
	// judgment time minus MaxAge and no later than the judgment time
	// plus MaxClockSkew (see Record.Made); MaxAgeText is it as the file
	// wrote it (7d).
	MaxAge      time.Duration
	MaxAgeText  string
	Enforcement Enforcement // Deny or Warn: the rule's own, else the file's

	by          map[string]bool // By with groups expanded; nil: anyone
	byList      []string        // the same, in the order of the file
	answeredBy  map[string]bool // AnsweredBy with groups expanded; nil: anyone
	where, expr cel.Program
	whereLine   int
	exprLine    int
	countLine   int             // the line of count:, for Bind's errors
	uses        map[string]bool // the variables the expressions read
}

type ruleSpec struct {
	Name     string      `yaml:"name"`
	Property string      `yaml:"property"`
	By       stringOrSeq `yaml:"by"`
	Answered stringOrSeq `yaml:"answered_by"`
	Packages string      `yaml:"packages"`
	Severity string      `yaml:"severity"`
	Where    string      `yaml:"where"`
	Expr     string      `yaml:"expr"`
	Count    *int        `yaml:"count"`
	MaxAge   string      `yaml:"max_age"`
	Enforce  string      `yaml:"enforcement"`
}

type fileSpec struct {
	Issuers     map[string]stringOrSeq `yaml:"issuers"`
	Enforcement yaml.Node              `yaml:"enforcement"`
	Require     []yaml.Node            `yaml:"require"`
	Forbid      []yaml.Node            `yaml:"forbid"`
}

// specTypes names the Go types a decoding error names as the parts of
// a policy file they decode.
var specTypes = strings.NewReplacer(
	"type policy.fileSpec", "a policy (its keys: issuers, enforcement, require, forbid)",
	"map[string]policy.stringOrSeq", "issuers (group names, each a holder or a list of holders)",
	"policy.stringOrSeq", "a holder or a list of holders",
	"[]yaml.Node", "a list of rules",
)

// stringOrSeq is a YAML scalar or a sequence of them.
type stringOrSeq []string

func (s *stringOrSeq) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = []string{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*s = list
	return nil
}

// Errors is every error of one policy file, in the order of the file:
// Parse and Bind report them all at once, not the first alone. Each is a
// *FileError (errors.As finds the first), and each is an ErrInvalid.
type Errors []*FileError

func (e Errors) Error() string {
	if len(e) == 1 {
		return e[0].Error()
	}
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return fmt.Sprintf("%d errors in the policy:\n  %s", len(e), strings.Join(lines, "\n  "))
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

// errorsOf is nil for no errors, else the errors sorted by line.
func errorsOf(errs []*FileError) error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return Errors(errs)
}

// Parse reads and compiles a policy file; file names it in errors. Its
// CEL expressions are type-checked against what a policy reads (a
// field a record does not have is refused here, not when evaluated), and
// every error of the file is reported, as Errors.
func Parse(file string, data []byte) (*Policy, error) {
	var errs []*FileError
	fail := func(line int, rule, format string, args ...any) {
		errs = append(errs, &FileError{File: file, Line: line, Rule: rule, Msg: fmt.Sprintf(format, args...)})
	}
	var spec fileSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			fail(0, "", "the file holds no policy: a policy has require and forbid lists of rules (see cairn policy check --help)")
		} else {
			fail(0, "", "%s", specTypes.Replace(err.Error()))
		}
		return nil, errorsOf(errs)
	}
	p := &Policy{File: file, Ref: blob.DigestBytes(data), Issuers: map[string][]string{}, Enforcement: Deny}
	for name, list := range spec.Issuers {
		if len(list) == 0 {
			fail(0, "", "issuer group %q lists nobody", name)
		}
		for _, m := range list {
			if _, group := spec.Issuers[m]; group {
				fail(0, "", "issuer group %q lists %q, another group: groups do not nest; list %s's members instead", name, m, m)
			}
		}
		p.Issuers[name] = list
	}
	if n := &spec.Enforcement; n.Kind != 0 {
		e, err := parseEnforcement(n.Value)
		if n.Kind != yaml.ScalarNode {
			err = errors.New("enforcement is deny or warn")
		}
		if err != nil {
			fail(n.Line, "", "%v", err)
		}
		p.Enforcement = e
	}
	seen := map[string]bool{}
	for _, group := range []struct {
		mode  Mode
		nodes []yaml.Node
	}{{Require, spec.Require}, {Forbid, spec.Forbid}} {
		for i := range group.nodes {
			n := &group.nodes[i]
			var rs ruleSpec
			if err := decodeStrict(n, &rs); err != nil {
				fail(n.Line, "", "%v", err)
				continue
			}
			r := &Rule{Name: rs.Name, Mode: group.mode, Line: n.Line, By: rs.By, AnsweredBy: rs.Answered, Packages: rs.Packages, Where: rs.Where, Expr: rs.Expr, Enforcement: p.Enforcement}
			if r.Name == "" {
				r.Name = fmt.Sprintf("%s-%d", group.mode, i+1)
			}
			if seen[r.Name] {
				fail(n.Line, r.Name, "two rules have this name")
				continue
			}
			seen[r.Name] = true
			if rerrs := p.checkRule(r, rs, n); len(rerrs) > 0 {
				for _, e := range rerrs {
					fail(e.line, r.Name, "%s", e.msg)
				}
				continue
			}
			p.Rules = append(p.Rules, r)
		}
	}
	if len(spec.Require)+len(spec.Forbid) == 0 {
		fail(0, "", "no rules: a policy has require and forbid lists")
	}
	if err := errorsOf(errs); err != nil {
		return nil, err
	}
	return p, nil
}

// Bind checks the policy's issuers against the repositories a project
// reads (by the names the project gives them). A holder name is given by
// a repository's root, so two repositories can each have an
// "acme-security": with more than one repository, an issuer must be a
// key id (SHA256:…) or HOLDER@REPOSITORY, and a bare holder name is
// refused; REPOSITORY must be one of repositories. With one repository,
// a count its by cannot meet once a bare holder name and HOLDER@REPOSITORY
// are seen as one certifier is refused at the count's line. Every error
// is reported, as Errors.
func (p *Policy) Bind(repositories []string) error {
	var errs []*FileError
	for _, r := range p.Rules {
		issuers := make([]string, 0, len(r.by)+len(r.answeredBy))
		for m := range r.by {
			issuers = append(issuers, m)
		}
		for m := range r.answeredBy {
			if !r.by[m] {
				issuers = append(issuers, m)
			}
		}
		sort.Strings(issuers)
		for _, m := range issuers {
			if strings.HasPrefix(m, "SHA256:") {
				continue
			}
			holder, repo, qualified := strings.Cut(m, "@")
			switch {
			case qualified && !slices.Contains(repositories, repo):
				errs = append(errs, &FileError{File: p.File, Line: r.Line, Rule: r.Name, Msg: fmt.Sprintf("issuer %q: the project reads no repository %q (it reads %s)", m, repo, strings.Join(repositories, ", "))})
			case !qualified && len(repositories) > 1:
				msg := fmt.Sprintf("issuer %q is a holder name, and the project reads %d repositories (%s) whose roots each name their own holders: write %s@REPOSITORY, or the key id",
					m, len(repositories), strings.Join(repositories, ", "), holder)
				if groups := p.groupNames(); len(groups) > 0 && !p.isMember(m) {
					msg += fmt.Sprintf("; or, if it names a group, this policy's are %s", strings.Join(groups, ", "))
				}
				errs = append(errs, &FileError{File: p.File, Line: r.Line, Rule: r.Name, Msg: msg})
			}
		}
		if len(repositories) == 1 {
			if e := r.countBound(repositories[0]); e != "" {
				errs = append(errs, &FileError{File: p.File, Line: r.countLine, Rule: r.Name, Msg: e})
			}
		}
	}
	return errorsOf(errs)
}

// Named is an issuer a rule names, a group's members one by one: a
// holder name, HOLDER@REPOSITORY, a key id, or "root".
type Named struct {
	Rule   string
	Line   int
	Issuer string
	// Forbids says a forbid rule's by names it: a misspelt name there
	// forbids nothing (elsewhere it counts nothing, and the rule fails).
	Forbids bool
}

// Named lists the issuers the rules name (by and answered_by), in the
// file's order, each once a rule.
func (p *Policy) Named() []Named {
	var out []Named
	for _, r := range p.Rules {
		answered := make([]string, 0, len(r.answeredBy))
		for m := range r.answeredBy {
			if !r.by[m] {
				answered = append(answered, m)
			}
		}
		sort.Strings(answered)
		for i, m := range append(slices.Clone(r.byList), answered...) {
			out = append(out, Named{Rule: r.Name, Line: r.Line, Issuer: m, Forbids: r.Mode == Forbid && i < len(r.byList)})
		}
	}
	return out
}

// CheckIssuers checks the issuers the policy names against what the
// repositories it binds to (Bind's, by name) have granted: granted
// returns a repository's holder names and key ids. An issuer no root
// granted — a holder's name misspelt, a key id of no granted key — is
// an error in a forbid rule's by (the rule would forbid nothing,
// silently), reported with every other as Errors; elsewhere (a require
// rule's by, answered_by) what it names counts nothing and the rule
// fails, and warn hears of it (a service not granted yet, say).
func (p *Policy) CheckIssuers(repositories []string, granted func(repo string) (names, ids map[string]bool, err error), warn func(string)) error {
	type holders struct{ names, ids map[string]bool }
	known := map[string]*holders{}
	of := func(repo string) (*holders, error) {
		if h, ok := known[repo]; ok {
			return h, nil
		}
		names, ids, err := granted(repo)
		if err != nil {
			return nil, fmt.Errorf("reading the keys of repository %s, whose holders the policy names: %w", repo, err)
		}
		known[repo] = &holders{names, ids}
		return known[repo], nil
	}
	var errs []*FileError
	refuse := func(n Named, format string, args ...any) {
		e := &FileError{File: p.File, Line: n.Line, Rule: n.Rule, Msg: fmt.Sprintf(format, args...)}
		if n.Forbids {
			errs = append(errs, e)
		} else if warn != nil {
			warn(e.Error())
		}
	}
	for _, n := range p.Named() {
		switch holder, repo, qualified := strings.Cut(n.Issuer, "@"); {
		case n.Issuer == "root":
		case strings.HasPrefix(n.Issuer, "SHA256:"):
			found := false
			for _, r := range repositories {
				h, err := of(r)
				if err != nil {
					return err
				}
				if found = h.ids[n.Issuer]; found {
					break
				}
			}
			if !found {
				refuse(n, "issuer %s: no repository the policy is read with (%s) has granted this key (cairn key list shows theirs): the rule counts no record of it", n.Issuer, strings.Join(repositories, ", "))
			}
		case qualified && slices.Contains(repositories, repo) || !qualified && len(repositories) == 1:
			if !qualified {
				repo = repositories[0]
			}
			h, err := of(repo)
			if err != nil {
				return err
			}
			if !h.names[holder] {
				list := slices.Sorted(maps.Keys(h.names))
				if len(list) > 20 {
					list = append(list[:20], "…")
				}
				refuse(n, "issuer %q: repository %s's root has granted no key to a holder of that name (its holders: %s): the rule counts no record of it", n.Issuer, repo, strings.Join(list, ", "))
			}
		}
	}
	return errorsOf(errs)
}

// groupNames are the names of the policy's issuer groups, sorted.
func (p *Policy) groupNames() []string {
	var out []string
	for g := range p.Issuers {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// isMember says whether m is a member of one of the policy's groups.
func (p *Policy) isMember(m string) bool {
	for _, members := range p.Issuers {
		if slices.Contains(members, m) {
			return true
		}
	}
	return false
}

// countBound checks a require rule's count against the certifiers its
// by can name when the project reads one repository, repo: there a bare
// holder name and HOLDER@repo are one certifier (issuedBy matches both
// on the same records), so `by: [ci1@local, ci1], count: 2` could never
// pass. It returns why, or "". A key id beside a holder name may be one
// of that holder's keys; only the index can tell, so they count apart.
func (r *Rule) countBound(repo string) string {
	if r.by == nil || r.Count < 2 {
		return ""
	}
	var distinct, folded []string
	first := map[string]string{} // certifier → the by entry that named it first
	for _, m := range r.byList {
		c := m
		if !strings.HasPrefix(m, "SHA256:") && m != "root" && !strings.Contains(m, "@") {
			c = m + "@" + repo
		}
		if f, ok := first[c]; ok {
			folded = append(folded, f+" and "+m+" are one certifier")
			continue
		}
		first[c] = m
		distinct = append(distinct, c)
	}
	if len(distinct) >= r.Count {
		return ""
	}
	return fmt.Sprintf("count %d: by names %d distinct certifier(s) in the one repository the project reads (%s; %s), so the rule could never pass",
		r.Count, len(distinct), strings.Join(distinct, ", "), strings.Join(folded, ", "))
}

type ruleErr struct {
	line int
	msg  string
}

// checkRule checks one rule and compiles its expressions: every error
// it finds, each at its line.
func (p *Policy) checkRule(r *Rule, rs ruleSpec, n *yaml.Node) []ruleErr {
	var errs []ruleErr
	var err error
	if (rs.Property == "") == (rs.Expr == "") {
		errs = append(errs, ruleErr{n.Line, "give either property (a record kind) or expr (a CEL condition), not both"})
	}
	if rs.Property != "" {
		k, err := record.ParseKind(rs.Property)
		if err != nil || !k.IsPackage() {
			errs = append(errs, ruleErr{lineOf(n, "property"), fmt.Sprintf("property %q is not a kind of record about packages (authored, audited, tested, reviewed, reproduced, proof-checked, scanned, vulnerable, fixed, deprecated, withdrawn, imported)", rs.Property)})
		} else {
			r.Property = k
		}
	} else if len(rs.By) > 0 || rs.Where != "" || rs.Severity != "" || rs.Count != nil || rs.MaxAge != "" {
		errs = append(errs, ruleErr{n.Line, "by, where, severity, count and max_age go with property; an expr rule says everything in its expression (now is the judgment time)"})
	}
	r.by, r.byList = p.issuers(r.By)
	if len(rs.By) == 0 && hasKey(n, "by") {
		errs = append(errs, ruleErr{lineOf(n, "by"), "by names no issuer: name whose records count (a group, a holder or a key id), or leave it out for any the repository granted"})
	}
	if len(rs.Answered) == 0 && hasKey(n, "answered_by") {
		errs = append(errs, ruleErr{lineOf(n, "answered_by"), "answered_by names no issuer: name whose fixed records answer the vulnerabilities (a group, a holder or a key id), or leave it out for any the repository granted certify:fixed"})
	}
	if len(rs.Answered) > 0 {
		if r.Mode != Forbid || r.Property != record.Vulnerable {
			errs = append(errs, ruleErr{lineOf(n, "answered_by"), "answered_by goes with forbid and property: vulnerable: it names whose fixed records answer the vulnerabilities"})
		}
		for _, a := range rs.Answered {
			if a == "" {
				errs = append(errs, ruleErr{lineOf(n, "answered_by"), "an empty issuer"})
				break
			}
		}
		r.answeredBy, _ = p.issuers(r.AnsweredBy)
	}
	if rs.Count != nil && rs.Property != "" {
		k := *rs.Count
		switch {
		case r.Mode != Require:
			errs = append(errs, ruleErr{lineOf(n, "count"), "count goes with require: a forbid rule fails at one record"})
		case k < 1:
			errs = append(errs, ruleErr{lineOf(n, "count"), fmt.Sprintf("count %d: a require rule asks for at least 1 certifier", k)})
		case r.by != nil && k > len(r.byList):
			errs = append(errs, ruleErr{lineOf(n, "count"), fmt.Sprintf("count %d: by allows %d issuer(s) (%s), so the rule could never pass", k, len(r.byList), strings.Join(r.byList, ", "))})
		default:
			r.Count, r.countLine = k, lineOf(n, "count")
		}
	}
	if rs.MaxAge != "" && rs.Property != "" {
		if r.Mode != Require {
			errs = append(errs, ruleErr{lineOf(n, "max_age"), "max_age goes with require: what a forbid rule forbids does not expire"})
		} else if r.MaxAge, err = parseAge(rs.MaxAge); err != nil {
			errs = append(errs, ruleErr{lineOf(n, "max_age"), err.Error()})
		} else {
			r.MaxAgeText = rs.MaxAge
		}
	}
	if rs.Enforce != "" {
		if r.Enforcement, err = parseEnforcement(rs.Enforce); err != nil {
			errs = append(errs, ruleErr{lineOf(n, "enforcement"), err.Error()})
		}
	}
	if rs.Severity != "" && rs.Property != "" {
		if r.Property != record.Vulnerable {
			errs = append(errs, ruleErr{lineOf(n, "severity"), "severity goes with property: vulnerable"})
		} else if r.Severity, err = record.ParseSeverity(rs.Severity); err != nil {
			errs = append(errs, ruleErr{lineOf(n, "severity"), err.Error()})
		}
	}
	if r.Packages != "" || hasKey(n, "packages") {
		if err := record.CheckPattern(r.Packages); err != nil {
			errs = append(errs, ruleErr{lineOf(n, "packages"), fmt.Sprintf("packages: %v", err)})
		}
	}
	for _, by := range r.By {
		if by == "" {
			errs = append(errs, ruleErr{lineOf(n, "by"), "an empty issuer"})
			break
		}
	}
	r.uses = map[string]bool{}
	if rs.Where != "" && rs.Property != "" {
		r.whereLine = lineOf(n, "where")
		if r.where, err = compile(whereEnv(), rs.Where, r.uses); err != nil {
			errs = append(errs, ruleErr{r.whereLine, "where: " + err.Error()})
		}
	}
	if rs.Expr != "" {
		r.exprLine = lineOf(n, "expr")
		if r.expr, err = compile(exprEnv(), rs.Expr, r.uses); err != nil {
			errs = append(errs, ruleErr{r.exprLine, "expr: " + err.Error()})
		}
	}
	return errs
}

// decodeStrict decodes a mapping node, refusing unknown keys.
func decodeStrict(n *yaml.Node, v any) error {
	const fields = "name, property, by, answered_by, packages, severity, where, expr, count, max_age, enforcement"
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("a rule is a mapping (%s)", fields)
	}
	known := map[string]bool{"name": true, "property": true, "by": true, "answered_by": true, "packages": true, "severity": true, "where": true, "expr": true, "count": true, "max_age": true, "enforcement": true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !known[k] {
			return fmt.Errorf("line %d: unknown field %q (want %s)", n.Content[i].Line, k, fields)
		}
	}
	return n.Decode(v)
}

// parseEnforcement reads deny or warn.
func parseEnforcement(s string) (Enforcement, error) {
	switch e := Enforcement(s); e {
	case Deny, Warn:
		return e, nil
	}
	return Deny, fmt.Errorf("enforcement %q: it is deny (a failing rule refuses) or warn (a failing rule is reported)", s)
}

// ageUnits are the units of a max_age.
var ageUnits = map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}

// parseAge reads a max_age: numbers each with a unit (s, m, h, d), as
// 7d, 36h or 1d12h; more than zero.
func parseAge(s string) (time.Duration, error) {
	bad := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("max_age %q: %s; write a number and a unit (s, m, h, d), as 7d or 36h", s, why)
	}
	var total time.Duration
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return bad("not a duration")
		}
		unit, ok := ageUnits[rest[i]]
		if !ok {
			return bad(fmt.Sprintf("unknown unit %q", rest[i:i+1]))
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > int64(100*365*24*time.Hour/unit) {
			return bad("longer than 100 years")
		}
		total += time.Duration(n) * unit
		if total > 100*365*24*time.Hour {
			return bad("longer than 100 years")
		}
		rest = rest[i+1:]
	}
	if total <= 0 {
		return bad("zero: no record could count")
	}
	return total, nil
}

// lineOf is the line of a mapping's key, or of the mapping.
// hasKey says whether the mapping n has key.
func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func lineOf(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Line
		}
	}
	return n.Line
}

// The CEL environments, declared once: a where condition reads `record`
// (the record it filters), `pkg` and `now` (the judgment time); an expr
// reads `records` (every active record), `pkg` and `now`. Their types are declared field by field, so
// that a field a record does not have is refused when a policy loads.
// They are made at the first policy that needs one, not when cairn starts.
var (
	whereEnv = sync.OnceValue(func() *cel.Env { return mustEnv("record") })
	exprEnv  = sync.OnceValue(func() *cel.Env { return mustEnv("records") })
)

func mustEnv(recordVar string) *cel.Env {
	rec := cel.ObjectType("policy.celRecord")
	vars := []cel.EnvOption{
		cel.Types(types.NativeTypeFor[celRecord](types.ParseStructTags(true)), types.NativeTypeFor[celPackage](types.ParseStructTags(true))),
		cel.Variable("pkg", cel.ObjectType("policy.celPackage")),
		cel.Variable("now", cel.TimestampType), // the judgment time
	}
	if recordVar == "record" {
		vars = append(vars, cel.Variable("record", rec))
	} else {
		vars = append(vars, cel.Variable("records", cel.ListType(rec)))
	}
	env, err := cel.NewEnv(vars...)
	if err != nil {
		panic("policy: the CEL environment: " + err.Error())
	}
	return env
}

// compile compiles a condition, adding the variables it reads to uses.
func compile(env *cel.Env, expr string, uses map[string]bool) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		// CEL's lines "ERROR: <input>:LINE:COLUMN: what", without the
		// drawing of the expression under each.
		var msgs []string
		for _, l := range strings.Split(iss.Err().Error(), "\n") {
			if strings.HasPrefix(l, "ERROR: ") {
				msgs = append(msgs, l)
			}
		}
		if len(msgs) == 0 {
			msgs = append(msgs, strings.ReplaceAll(iss.Err().Error(), "\n", " "))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression is a %s; a condition must be a bool", ast.OutputType())
	}
	if err := checkWords(ast.NativeRep()); err != nil {
		return nil, err
	}
	for _, ref := range ast.NativeRep().ReferenceMap() {
		uses[ref.Name] = true
	}
	return env.Program(ast, cel.CostLimit(DefaultCostLimit), cel.EvalOptions(cel.OptOptimize))
}
