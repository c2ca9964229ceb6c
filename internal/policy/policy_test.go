package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/record"
)

const basePolicy = `
issuers:
  security: [acme-security]
require:
  - name: audited
    property: audited
    by: security
    packages: "acme/*"
  - name: ci-passed
    property: tested
    where: record.result == "PASSED"
    packages: "acme/tested"
  - name: mit
    expr: pkg.license == "MIT"
forbid:
  - name: high-vulnerabilities
    property: vulnerable
    severity: high
  - name: deprecated
    property: deprecated
`

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The keys of the tests: acme-security's, bob's, and the repositories
// whose roots granted them.
const (
	securityKey = "SHA256:security"
	bobKey      = "SHA256:bob"
)

var issued = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// judged is the time the tests judge at: a week after issued.
var judged = issued.Add(7 * 24 * time.Hour)

// version is one version and its records, as a caller hands them to a
// policy: no index, no git.
type version struct {
	d    *descriptor.Descriptor
	recs []Record
}

func newVersion(name, ver string) *version {
	return &version{d: &descriptor.Descriptor{Name: name, Version: ver, UUID: "7d444840-9dc0-11d1-b245-5ffdce74fad2", License: "MIT", Summary: "test package",
		Dependencies: []descriptor.Dependency{{Name: "acme/base", Version: "^1"}},
		Artifacts: []descriptor.Artifact{
			{Kind: "source", File: "src.tar.gz", Ref: blob.DigestBytes([]byte("src"))},
			{Kind: "binary", Platform: "linux-amd64", File: "linux-amd64.tar.gz", Ref: blob.DigestBytes([]byte("bin"))},
		}}}
}

func (v *version) subject() *Subject {
	return &Subject{Descriptor: v.d, Ref: blob.DigestBytes([]byte(v.d.ID())), Records: v.recs}
}

// add appends an active record of acme-security in repository acme and
// returns its id.
func (v *version) add(kind record.Kind, pred any) string {
	return v.addBy(kind, securityKey, "acme-security", "acme", pred)
}

func (v *version) addBy(kind record.Kind, key, holder, repo string, pred any) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %d %s", v.d.ID(), len(v.recs), kind))
	id := hex.EncodeToString(sum[:])
	v.recs = append(v.recs, Record{ID: id, Kind: kind, Issuer: key, Holder: holder, Repository: repo, Active: true, Status: "active", Predicate: pred})
	return id
}

// end ends a record as a revoke or supersede record would.
func (v *version) end(id, status string) {
	for i := range v.recs {
		if v.recs[i].ID == id {
			v.recs[i].Active, v.recs[i].Status, v.recs[i].EndedBy = false, status, strings.Repeat("e", 64)
			return
		}
	}
	panic("no record " + id)
}

func vulnerable(id, severity string) record.VulnsPredicate {
	return record.VulnsPredicate{
		Scanner:  record.VulnScanner{URI: "https://scanner.example", Result: []record.VulnResult{{ID: id, Severity: []record.VulnSeverity{{Method: "cairn", Score: severity}}}}},
		Metadata: record.VulnMetadata{ScanStartedOn: issued, ScanFinishedOn: issued},
	}
}

func fixed(ids ...string) record.FixedPredicate {
	return record.FixedPredicate{Vulnerabilities: ids, Note: "not reachable", Issued: issued}
}

func certified(note string) record.CertificationPredicate {
	return record.CertificationPredicate{Issued: issued, Note: note}
}

func tested(result string) record.TestResultPredicate {
	return record.TestResultPredicate{Result: result, URL: "https://ci.example/run/1"}
}

// rule returns one rule's verdict.
func rule(t testing.TB, v *Verdict, name string) RuleVerdict {
	t.Helper()
	for _, r := range v.Rules {
		if r.Rule == name {
			return r
		}
	}
	t.Fatalf("no rule %s in %+v", name, v)
	return RuleVerdict{}
}

func wantRule(t testing.TB, v *Verdict, name string, pass bool, reason string) {
	t.Helper()
	r := rule(t, v, name)
	if r.Pass != pass || !strings.Contains(r.Reason, reason) {
		t.Fatalf("rule %s: pass=%v reason %q; want pass=%v and a reason saying %q", name, r.Pass, r.Reason, pass, reason)
	}
}

func TestVerdicts(t *testing.T) {
	p := mustParse(t, basePolicy)
	fj := newVersion("acme/fastjson", "1.2.3")
	tv := newVersion("acme/tested", "1.0.0")
	fj.add(record.Authored, record.AuthoredPredicate{Issued: issued})

	v := p.Evaluate(fj.subject(), judged)
	if v.Allowed || v.Package != "acme/fastjson@1.2.3" {
		t.Fatalf("an unaudited version is allowed: %+v", v)
	}
	wantRule(t, v, "audited", false, "no active audited by security")
	wantRule(t, v, "mit", true, "expr is true")
	if r := rule(t, v, "ci-passed"); r.Applies || !r.Pass {
		t.Fatalf("a rule scoped to another package applied: %+v", r)
	}

	// An audit by someone else does not count; the security team's does.
	fj.addBy(record.Audited, bobKey, "bob", "acme", certified("bob looked"))
	wantRule(t, p.Evaluate(fj.subject(), judged), "audited", false, "no active audited by security")
	audit := fj.add(record.Audited, certified(""))
	v = p.Evaluate(fj.subject(), judged)
	if !v.Allowed {
		t.Fatalf("an audited version is refused: %+v", v.Failed())
	}
	wantRule(t, v, "audited", true, "audited by acme-security ["+securityKey+"]")
	if r := rule(t, v, "audited"); len(r.Records) != 1 || r.Records[0] != audit {
		t.Fatalf("the audit that decided is not named: %+v", r)
	}

	// A high vulnerability refuses; a low one does not; a fixed record
	// answering the high one lets it through again.
	fj.add(record.Vulnerable, vulnerable("GHSA-low", "low"))
	if v := p.Evaluate(fj.subject(), judged); !v.Allowed {
		t.Fatalf("a low vulnerability refused under a high threshold: %+v", v.Failed())
	}
	fj.add(record.Vulnerable, vulnerable("GHSA-high", "high"))
	v = p.Evaluate(fj.subject(), judged)
	wantRule(t, v, "high-vulnerabilities", false, "GHSA-high (high)")
	if v.Allowed {
		t.Fatal("a high vulnerability is allowed")
	}
	// A fixed record of the id in another case answers nothing, and the
	// verdict says why (it said "not answered by a fixed record" beside it).
	lower := fj.add(record.Fixed, fixed("ghsa-HIGH"))
	wantRule(t, p.Evaluate(fj.subject(), judged), "high-vulnerabilities", false, "GHSA-high (high; fixed record "+lower[:16]+" answers ghsa-HIGH, not GHSA-high: ids are compared exactly)")
	fj.end(lower, "revoked")
	fix := fj.add(record.Fixed, fixed("GHSA-high"))
	v = p.Evaluate(fj.subject(), judged)
	wantRule(t, v, "high-vulnerabilities", true, "GHSA-high answered by fixed record "+fix[:16])

	// A fixed record that is revoked answers nothing.
	fj.end(fix, "revoked")
	wantRule(t, p.Evaluate(fj.subject(), judged), "high-vulnerabilities", false, "GHSA-high (high)")
	fix = fj.add(record.Fixed, fixed("GHSA-high"))
	wantRule(t, p.Evaluate(fj.subject(), judged), "high-vulnerabilities", true, "answered by fixed record "+fix[:16])

	// Revoking the audit ends it: the rule fails and says which record ended.
	fj.end(audit, "revoked")
	wantRule(t, p.Evaluate(fj.subject(), judged), "audited", false, "record "+audit[:16]+" by acme-security ["+securityKey+"] is revoked by eeeeeeeeeeeeeeee")

	// A superseded audit no longer counts either; a record whose key was
	// revoked after it signed still does (Active decides, not Status).
	audit = fj.add(record.Audited, certified(""))
	fj.end(audit, "superseded")
	wantRule(t, p.Evaluate(fj.subject(), judged), "audited", false, "is superseded by")
	audit = fj.add(record.Audited, certified(""))
	fj.recs[len(fj.recs)-1].Status = "issuer key revoked"
	wantRule(t, p.Evaluate(fj.subject(), judged), "audited", true, "record "+audit[:16])

	// A where condition over the record.
	wantRule(t, p.Evaluate(tv.subject(), judged), "ci-passed", false, `no active tested where record.result == "PASSED"`)
	tv.add(record.Tested, tested("FAILED"))
	wantRule(t, p.Evaluate(tv.subject(), judged), "ci-passed", false, "no active tested")
	tv.add(record.Tested, tested("PASSED"))
	wantRule(t, p.Evaluate(tv.subject(), judged), "ci-passed", true, "PASSED")

	// A raw expression over every record.
	raw := mustParse(t, `
forbid:
  - name: two-vulns
    expr: records.filter(r, r.kind == "vulnerable").size() >= 2
`)
	wantRule(t, raw.Evaluate(fj.subject(), judged), "two-vulns", false, "expr is true")
	wantRule(t, raw.Evaluate(tv.subject(), judged), "two-vulns", true, "expr is false")

	// Records about other kinds of things than a package do not count.
	other := newVersion("acme/other", "1.0.0")
	other.add(record.Grant, record.GrantPredicate{Holder: "x"})
	other.add(record.Vulnerable, vulnerable("GHSA-x", "critical"))
	count := mustParse(t, "require: [{name: one, expr: 'records.size() == 1'}]")
	wantRule(t, count.Evaluate(other.subject(), judged), "one", true, "expr is true")
}

// TestIssuersAndRepositories: an issuer HOLDER@REPOSITORY matches in
// that repository only; a key id matches anywhere; a fixed record answers
// the vulnerabilities of its own repository only.
func TestIssuersAndRepositories(t *testing.T) {
	p := mustParse(t, `
require:
  - {name: corp-audit, property: audited, by: acme-security@corp}
  - {name: key-audit, property: audited, by: "`+securityKey+`"}
forbid:
  - {name: high, property: vulnerable, severity: high}
`)
	if err := p.Bind([]string{"acme", "corp"}); err != nil {
		t.Fatal(err)
	}
	v := newVersion("acme/log", "1.0.0")
	upstream := v.add(record.Audited, certified(""))
	got := p.Evaluate(v.subject(), judged)
	wantRule(t, got, "corp-audit", false, "no active audited by acme-security@corp")
	wantRule(t, got, "key-audit", true, "record "+upstream[:16])

	corp := v.addBy(record.Audited, "SHA256:corp", "acme-security", "corp", certified("the org's own"))
	wantRule(t, p.Evaluate(v.subject(), judged), "corp-audit", true, "record "+corp[:16])

	// The upstream declares a vulnerability; the organisation's fixed
	// record cannot answer it, the upstream's can.
	v.add(record.Vulnerable, vulnerable("GHSA-1", "critical"))
	corpFix := v.addBy(record.Fixed, "SHA256:corp", "acme-security", "corp", fixed("GHSA-1"))
	wantRule(t, p.Evaluate(v.subject(), judged), "high", false, "GHSA-1 (critical; fixed record "+corpFix[:16]+" is corp's, and answers only corp's records)")
	fix := v.add(record.Fixed, fixed("GHSA-1"))
	wantRule(t, p.Evaluate(v.subject(), judged), "high", true, "GHSA-1 answered by fixed record "+fix[:16])
}

// A package's owner granted certify:fixed answers a vulnerability the
// security team found, unless the rule names who may answer it
// (answered_by): then only those issuers' fixed records count, and the
// verdict says which did not.
func TestAnsweredBy(t *testing.T) {
	const rules = `
issuers:
  security: [acme-security]
forbid:
  - {name: any-answer, property: vulnerable, severity: high, by: security}
  - {name: team-answer, property: vulnerable, severity: high, by: security, answered_by: security}
`
	p := mustParse(t, rules)
	v := newVersion("acme/log", "1.0.0")
	v.add(record.Vulnerable, vulnerable("GHSA-1", "critical"))
	owners := v.addBy(record.Fixed, bobKey, "bob", "acme", fixed("GHSA-1"))
	got := p.Evaluate(v.subject(), judged)
	wantRule(t, got, "any-answer", true, "GHSA-1 answered by fixed record "+owners[:16])
	wantRule(t, got, "team-answer", false, "GHSA-1 (critical; fixed record "+owners[:16]+" does not count: not by security, whom answered_by names)")
	if got.Allowed {
		t.Fatal("the owner's fixed record answered a finding its rule lets the security team alone answer")
	}
	team := v.add(record.Fixed, fixed("GHSA-1"))
	got = p.Evaluate(v.subject(), judged)
	wantRule(t, got, "team-answer", true, "GHSA-1 answered by fixed record "+team[:16])
	if !got.Allowed {
		t.Fatalf("the security team's fixed record does not answer its finding: %+v", got.Failed())
	}

	for _, bad := range []struct{ rule, want string }{
		{"require:\n  - {name: r, property: audited, answered_by: security}\n", "answered_by goes with forbid and property: vulnerable"},
		{"forbid:\n  - {name: r, property: deprecated, answered_by: security}\n", "answered_by goes with forbid and property: vulnerable"},
		{"forbid:\n  - {name: r, property: vulnerable, answered_by: []}\n", "answered_by names no issuer"},
	} {
		if _, err := Parse("policy.yaml", []byte(bad.rule)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", bad.rule, err, bad.want)
		}
	}
}

// TestSeverities: a policy's severity is read as records' are
// (record.ParseSeverity): the same words, GHSA's moderate as medium, CVSS
// scores by their bands; a vulnerability at or above it refuses.
func TestSeverities(t *testing.T) {
	for _, tc := range []struct {
		threshold, score string
		refused          bool
	}{
		{"high", "high", true},
		{"high", "medium", false},
		{"high", "9.8", true},
		{"high", "6.9", false},
		{"7.0", "high", true},
		{"7.5", "7.0", true}, // a score threshold is its band: high
		{"moderate", "medium", true},
		{"medium", "MODERATE", true},
		{"Medium", "low", false},
		{"critical", "10.0", true},
		{"critical", "8.9", false},
		{"low", "0.1", true},
		{"low", "none", false},
		{"none", "none", true},
		{"", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", true}, // no threshold: any vulnerability
		{"low", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", false}, // a score cairn does not rank is below every threshold
	} {
		t.Run(tc.threshold+"/"+tc.score, func(t *testing.T) {
			src := "forbid:\n  - {name: v, property: vulnerable}\n"
			if tc.threshold != "" {
				src = fmt.Sprintf("forbid:\n  - {name: v, property: vulnerable, severity: %q}\n", tc.threshold)
			}
			v := newVersion("acme/a", "1.0.0")
			v.add(record.Vulnerable, vulnerable("GHSA-1", tc.score))
			got := mustParse(t, src).Evaluate(v.subject(), judged)
			if tc.refused {
				wantRule(t, got, "v", false, "vulnerable GHSA-1 ("+tc.score+")")
			} else {
				wantRule(t, got, "v", true, "no active vulnerable at or above")
			}
		})
	}
}

// TestCELFields: every field the help page names is declared with its
// type and evaluates to the record's or the package's value.
func TestCELFields(t *testing.T) {
	v := newVersion("acme/fastjson", "1.2.3")
	v.add(record.Vulnerable, vulnerable("GHSA-1", "high"))
	v.add(record.Fixed, fixed("GHSA-0"))
	v.add(record.Tested, tested("PASSED"))
	v.add(record.Audited, certified("looked closely"))
	v.recs[len(v.recs)-1].Artifacts = []string{"linux-amd64.tar.gz"}
	for _, where := range []string{
		`record.kind == "vulnerable" && record.severity == "high" && record.severity_rank == 3 && record.vulnerabilities.exists(x, x.id == "GHSA-1" && x.severity == "high")`,
		`record.kind == "fixed" && "GHSA-0" in record.fixes && record.note == "not reachable"`,
		`record.kind == "tested" && record.result == "PASSED" && record.note == "https://ci.example/run/1"`,
		`record.kind == "audited" && record.note == "looked closely" && record.artifacts == ["linux-amd64.tar.gz"]`,
		`record.issued == timestamp("2026-01-02T03:04:05Z") && record.issuer == "` + securityKey + `" && record.holder == "acme-security" && record.repository == "acme" && record.status == "active" && record.id.size() == 64`,
		`pkg.name == "acme/fastjson" && pkg.version == "1.2.3" && pkg.license == "MIT" && pkg.uuid != "" && pkg.summary == "test package" && pkg.descriptor.size() == 64`,
		`pkg.artifacts.exists(a, a.kind == "binary" && a.platform == "linux-amd64" && a.file == "linux-amd64.tar.gz" && a.sha256.size() == 64 && a.size == 3)`,
		`pkg.dependencies.exists(d, d.name == "acme/base" && d.version == "^1")`,
	} {
		p := mustParse(t, fmt.Sprintf("require:\n  - name: r\n    property: %s\n    where: '%s'\n", kindIn(where), where))
		sub := v.subject()
		sub.Artifacts = []string{"linux-amd64.tar.gz"} // the audit's artifact, as a plan for linux-amd64 judges it
		wantRule(t, p.Evaluate(sub, judged), "r", true, "by acme-security")
	}
	p := mustParse(t, `require: [{name: r, expr: 'records.size() == 4 && records.all(r, r.repository == "acme") && pkg.name == "acme/fastjson"'}]`)
	wantRule(t, p.Evaluate(v.subject(), judged), "r", true, "expr is true")
}

// kindIn is the record kind a where condition of TestCELFields names;
// audited for conditions on the package alone.
func kindIn(where string) string {
	for _, k := range []string{"vulnerable", "fixed", "tested"} {
		if strings.Contains(where, `"`+k+`"`) {
			return k
		}
	}
	return "audited"
}

func TestMalformedPolicies(t *testing.T) {
	big := "[" + strings.TrimSuffix(strings.Repeat("1,", 200), ",") + "]"
	heavy := "forbid:\n  - name: heavy\n    expr: '" + big + ".all(x, " + big + ".all(y, " + big + ".all(z, x + y + z > 0)))'\n"
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown top-level field", "requires: []\n", "field requires not found"},
		{"unknown rule field", "require:\n  - name: a\n    property: audited\n    bye: x\n", `line 4: unknown field "bye"`},
		{"no rules", "issuers: {a: [b]}\n", "no rules"},
		{"unknown property", "require:\n  - name: a\n    property: audit\n", `policy.yaml:3: rule "a": property "audit"`},
		{"property and expr", "require:\n  - name: a\n    property: audited\n    expr: \"true\"\n", "either property"},
		{"CEL that does not compile", "forbid:\n  - name: bad\n    expr: pkg.name ==\n", `policy.yaml:3: rule "bad": expr: ERROR: <input>:1:`},
		{"CEL with an unknown variable", "forbid:\n  - name: bad\n    property: vulnerable\n    where: vuln.severity == \"high\"\n", `policy.yaml:4: rule "bad": where: ERROR: <input>:1:1: undeclared reference to 'vuln'`},
		{"CEL that is not a condition", "require:\n  - name: s\n    expr: pkg.name\n", "the expression is a string; a condition must be a bool"},
		{"a misspelled record field", "require:\n  - name: ci\n    property: tested\n    where: record.reslt == \"PASSED\"\n", `policy.yaml:4: rule "ci": where: ERROR: <input>:1:7: undefined field 'reslt'`},
		{"a misspelled field in records", "forbid:\n  - name: v\n    expr: records.exists(r, r.knd == \"vulnerable\")\n", `policy.yaml:3: rule "v": expr: ERROR: <input>:1:20: undefined field 'knd'`},
		{"two misspelled fields in one expression", "forbid:\n  - name: v\n    property: vulnerable\n    where: record.a == record.b\n", `where: ERROR: <input>:1:7: undefined field 'a'; ERROR: <input>:1:19: undefined field 'b'`},
		{"a misspelled package field", "forbid:\n  - name: l\n    expr: pkg.licence == \"GPL\"\n", `undefined field 'licence'`},
		{"a field of the wrong type", "forbid:\n  - name: s\n    property: vulnerable\n    where: record.severity_rank == \"high\"\n", `found no matching overload for '_==_' applied to '(int, string)'`},
		{"record in an expr rule", "forbid:\n  - name: e\n    expr: record.kind == \"x\"\n", "undeclared reference to 'record'"},
		{"records in a where", "forbid:\n  - name: w\n    property: vulnerable\n    where: records.size() > 1\n", "undeclared reference to 'records'"},
		{"severity on another property", "forbid:\n  - name: s\n    property: deprecated\n    severity: high\n", "severity goes with property: vulnerable"},
		{"unknown severity", "forbid:\n  - name: s\n    property: vulnerable\n    severity: severe\n", `severity "severe"`},
		{"a CVSS score above 10", "forbid:\n  - name: s\n    property: vulnerable\n    severity: \"11\"\n", `policy.yaml:4: rule "s": severity "11": a CVSS score is from 0.0 to 10.0`},
		{"a negative CVSS score", "forbid:\n  - name: s\n    property: vulnerable\n    severity: -1\n", `severity "-1"`},
		{"two rules of one name", "require:\n  - {name: a, property: audited}\nforbid:\n  - {name: a, property: deprecated}\n", "two rules have this name"},
		{"an empty issuer group", "issuers: {a: []}\nrequire:\n  - {name: a, property: audited}\n", `issuer group "a" lists nobody`},
		// Errors of the file's shape name its parts, not Go's types.
		{"an empty file", "", "the file holds no policy: a policy has require and forbid lists"},
		{"comments only", "# nothing yet\n", "the file holds no policy"},
		{"an unknown top-level key", "requires:\n  - {name: a, property: audited}\n", "field requires not found in a policy (its keys: issuers, enforcement, require, forbid)"},
		{"require as a map", "require:\n  name: a\n  property: audited\n", "cannot unmarshal !!map into a list of rules"},
		{"issuers as a list", "issuers: [acme-security]\nrequire:\n  - {name: a, property: audited}\n", "into issuers (group names, each a holder or a list of holders)"},
		// Forms that read as "these issuers" and named nobody were "anyone".
		{"by an empty list", "require:\n  - {name: a, property: audited, by: []}\n", `policy.yaml:2: rule "a": by names no issuer`},
		{"by null", "forbid:\n  - {name: a, property: vulnerable, by: ~}\n", `policy.yaml:2: rule "a": by names no issuer`},
		// A group inside a group was a holder of that name: nobody.
		{"a group in a group", "issuers:\n  security: [acme-security]\n  trusted: [security]\nforbid:\n  - {name: a, property: vulnerable, by: trusted}\n", `issuer group "trusted" lists "security", another group: groups do not nest`},
		// Patterns no name can match made a rule that never applied.
		{"packages with a version", "forbid:\n  - {name: a, property: vulnerable, packages: acme/hello@1.1.0}\n", `packages: bad package pattern "acme/hello@1.1.0"`},
		{"packages with a space", "forbid:\n  - {name: a, property: vulnerable, packages: 'acme/hello '}\n", `packages: bad package pattern "acme/hello "`},
		{"packages with an empty element", "forbid:\n  - {name: a, property: vulnerable, packages: acme/}\n", `packages: bad package pattern "acme/"`},
		{"packages empty", "forbid:\n  - {name: a, property: vulnerable, packages: ''}\n", `packages: bad package pattern ""`},
		{"a heavy expression", heavy, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("policy.yaml", []byte(tc.src))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, %v; want an error saying %q", p, err, tc.want)
			}
		})
	}

	// The heavy expression compiles, but its evaluation is cut at the
	// cost limit: the rule fails and says so — never a silent pass.
	p := mustParse(t, heavy)
	v := p.Evaluate(newVersion("acme/a", "1.0.0").subject(), judged)
	wantRule(t, v, "heavy", false, "policy.yaml:3: expr could not be evaluated")
	if !strings.Contains(rule(t, v, "heavy").Reason, "cost limit") || v.Allowed {
		t.Fatalf("verdict %+v", v)
	}
}

// TestEveryErrorAtOnce: a policy with several bad rules reports each,
// with its rule's name and line, in one error.
func TestEveryErrorAtOnce(t *testing.T) {
	src := `require:
  - name: ci
    property: tested
    where: record.reslt == "PASSED"
  - name: fine
    property: audited
forbid:
  - name: vulns
    property: vulnerable
    severity: severe
  - name: gpl
    expr: pkg.licence.startsWith("GPL")
`
	_, err := Parse("policy.yaml", []byte(src))
	var list Errors
	if !errors.As(err, &list) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse = %v; want Errors", err)
	}
	want := []string{
		`policy.yaml:4: rule "ci": where: ERROR: <input>:1:7: undefined field 'reslt'`,
		`policy.yaml:10: rule "vulns": severity "severe"`,
		`policy.yaml:12: rule "gpl": expr: ERROR: <input>:1:4: undefined field 'licence'`,
	}
	if len(list) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(list), len(want), err)
	}
	msg := err.Error()
	if strings.Contains(msg, "| ") {
		t.Fatalf("error %q draws the expression", msg)
	}
	if !strings.HasPrefix(msg, "3 errors in the policy:\n  ") {
		t.Fatalf("error %q does not count its errors", msg)
	}
	for i, w := range want {
		if !strings.HasPrefix(list[i].Error(), w) || !strings.Contains(msg, w) {
			t.Fatalf("error %d is %q; want it to start %q", i, list[i], w)
		}
	}

	// Bind, too, names every issuer it refuses.
	p := mustParse(t, "require:\n  - {name: a, property: audited, by: acme-security}\n  - {name: b, property: audited, by: x@nowhere}\n")
	err = p.Bind([]string{"acme", "corp"})
	if !errors.As(err, &list) || len(list) != 2 || list[0].Rule != "a" || list[1].Rule != "b" {
		t.Fatalf("Bind = %v; want both rules refused", err)
	}

	// A group's name mistyped reads as a holder's: the refusal names the
	// policy's groups too.
	p = mustParse(t, "issuers:\n  security: [acme-security@acme]\nrequire:\n  - {name: a, property: audited, by: securty}\n")
	if err := p.Bind([]string{"acme", "corp"}); err == nil || !strings.Contains(err.Error(), `issuer "securty" is a holder name`) || !strings.Contains(err.Error(), "if it names a group, this policy's are security") {
		t.Fatalf("Bind of a mistyped group = %v", err)
	}
}

func BenchmarkDecision(b *testing.B) {
	v := newVersion("acme/fastjson", "1.2.3")
	v.addBy(record.Authored, "SHA256:alice", "alice", "acme", record.AuthoredPredicate{Issued: issued})
	for i := 0; i < 48; i++ {
		v.add(record.Tested, record.TestResultPredicate{Result: "PASSED", URL: fmt.Sprintf("https://ci.example/run/%d", i)})
	}
	v.add(record.Audited, certified(""))
	v.add(record.Vulnerable, vulnerable("GHSA-1", "medium"))
	p := mustParse(b, basePolicy)
	s := v.subject()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v := p.Evaluate(s, judged); !v.Allowed {
			b.Fatal(fmt.Sprint(v.Failed()))
		}
	}
}

// A vulnerable record made from an OSV record names the vulnerability by
// its GHSA id and keeps its aliases: a fixed record naming the CVE alias
// answers it (in the same repository only), and says it did through the
// alias; a fixed record naming another CVE does not.
func TestFixedAnswersAnAlias(t *testing.T) {
	p := mustParse(t, basePolicy)
	v := newVersion("acme/fastjson", "1.2.3")
	pred := vulnerable("GHSA-4v7x-pqxf-cx7m", "high")
	pred.Scanner.Result[0].OSV = &record.VulnOSV{Aliases: []string{"CVE-2026-41234"}}
	v.add(record.Vulnerable, pred)
	wantRule(t, p.Evaluate(v.subject(), judged), "high-vulnerabilities", false, "GHSA-4v7x-pqxf-cx7m (high)")
	v.add(record.Fixed, fixed("CVE-2026-99999"))
	wantRule(t, p.Evaluate(v.subject(), judged), "high-vulnerabilities", false, "GHSA-4v7x-pqxf-cx7m (high)")
	corp := v.addBy(record.Fixed, "SHA256:corp", "acme-security", "corp", fixed("CVE-2026-41234"))
	wantRule(t, p.Evaluate(v.subject(), judged), "high-vulnerabilities", false, "GHSA-4v7x-pqxf-cx7m (high; fixed record "+corp[:16]+" is corp's, and answers only corp's records)")
	fix := v.add(record.Fixed, fixed("CVE-2026-41234"))
	wantRule(t, p.Evaluate(v.subject(), judged), "high-vulnerabilities", true, "GHSA-4v7x-pqxf-cx7m answered (its alias CVE-2026-41234) by fixed record "+fix[:16])
}

// A where condition reads a vulnerability's aliases: a rule written
// against a CVE matches the record that names it by its GHSA.
func TestWhereReadsAliases(t *testing.T) {
	p := mustParse(t, `
forbid:
  - name: the-cve
    property: vulnerable
    where: record.vulnerabilities.exists(v, v.id == "CVE-2026-41234" || "CVE-2026-41234" in v.aliases)
`)
	v := newVersion("acme/fastjson", "1.2.3")
	v.add(record.Vulnerable, vulnerable("GHSA-other", "low"))
	wantRule(t, p.Evaluate(v.subject(), judged), "the-cve", true, "no active vulnerable where")
	pred := vulnerable("GHSA-4v7x-pqxf-cx7m", "low")
	pred.Scanner.Result[0].OSV = &record.VulnOSV{Aliases: []string{"CVE-2026-41234"}}
	id := v.add(record.Vulnerable, pred)
	wantRule(t, p.Evaluate(v.subject(), judged), "the-cve", false, "record "+id[:16])
}

// Mark names each outcome of a rule in one word, as `cairn why` and the
// version page print it; a rule that does not apply is skipped whatever
// else it says.
func TestRuleVerdictMark(t *testing.T) {
	for _, c := range []struct {
		rv   RuleVerdict
		want string
	}{
		{RuleVerdict{Applies: true, Pass: true}, "pass"},
		{RuleVerdict{Applies: true}, "FAIL"},
		{RuleVerdict{Applies: true, Warning: true}, "warning"},
		{RuleVerdict{Applies: false, Warning: true}, "skip"},
		{RuleVerdict{Applies: false, Pass: true}, "skip"},
	} {
		if got := c.rv.Mark(); got != c.want {
			t.Errorf("%+v.Mark() = %q, want %q", c.rv, got, c.want)
		}
	}
}

// A record narrowed to some artifacts (certify --artifact) speaks of
// those files only: an audit of the linux-amd64 binary does not pass
// require audited for a plan that installs the linux-arm64 one, a fix of
// one binary does not answer another's vulnerability, and a
// vulnerability of one binary does not refuse a plan that installs
// another.
func TestArtifactNarrowing(t *testing.T) {
	v := newVersion("acme/fastjson", "1.2.3")
	v.d.Artifacts = append(v.d.Artifacts, descriptor.Artifact{Kind: "binary", Platform: "linux-arm64", File: "linux-arm64.tar.gz", Ref: blob.DigestBytes([]byte("arm"))})
	v.add(record.Audited, certified("amd64 only"))
	v.recs[len(v.recs)-1].Artifacts = []string{"linux-amd64.tar.gz"}
	audit := mustParse(t, "require: [{name: audited, property: audited}]\n")
	for _, c := range []struct {
		installs []string
		pass     bool
		reason   string
	}{
		{[]string{"linux-amd64.tar.gz"}, true, "audited by acme-security"},
		{[]string{"linux-arm64.tar.gz"}, false, "is about linux-amd64.tar.gz only, not linux-arm64.tar.gz"},
		{[]string{"linux-amd64.tar.gz", "linux-arm64.tar.gz"}, false, "is about linux-amd64.tar.gz only, not linux-amd64.tar.gz, linux-arm64.tar.gz"},
		{nil, true, "audited by acme-security"}, // no plan's files: as the version's
	} {
		sub := v.subject()
		sub.Artifacts = c.installs
		wantRule(t, audit.Evaluate(sub, judged), "audited", c.pass, c.reason)
	}

	// A record of the source speaks of the code every binary is built
	// from: a CI run on the source counts for a binary's install.
	src := newVersion("acme/fastjson", "1.2.3")
	src.d.Artifacts = v.d.Artifacts
	src.add(record.Audited, certified("source reviewed"))
	src.recs[len(src.recs)-1].Artifacts = []string{"src.tar.gz"}
	sub := src.subject()
	sub.Artifacts = []string{"linux-arm64.tar.gz"}
	wantRule(t, audit.Evaluate(sub, judged), "audited", true, "audited by acme-security")

	w := newVersion("acme/fastjson", "1.2.3")
	w.d.Artifacts = v.d.Artifacts
	w.add(record.Vulnerable, vulnerable("GHSA-7", "high"))
	w.recs[len(w.recs)-1].Artifacts = []string{"linux-arm64.tar.gz"}
	w.add(record.Fixed, fixed("GHSA-7"))
	w.recs[len(w.recs)-1].Artifacts = []string{"linux-amd64.tar.gz"}
	vulns := mustParse(t, "forbid: [{name: v, property: vulnerable}]\n")
	// answered_by's fixes are held to the same: the amd64 fix answers
	// nothing of an arm64 install.
	vulnsBy := mustParse(t, "forbid: [{name: v, property: vulnerable, answered_by: acme-security}]\n")
	arm := w.subject()
	arm.Artifacts = []string{"linux-arm64.tar.gz"}
	wantRule(t, vulnsBy.Evaluate(arm, judged), "v", false, "vulnerable GHSA-7 (high)")
	for _, c := range []struct {
		installs []string
		pass     bool
		reason   string
	}{
		{[]string{"linux-arm64.tar.gz"}, false, "vulnerable GHSA-7 (high)"}, // the amd64 fix answers nothing here
		{[]string{"linux-amd64.tar.gz"}, true, "is about linux-arm64.tar.gz only"},
		{nil, true, "GHSA-7 answered by fixed record"}, // no plan's files: every record as the version's
	} {
		sub := w.subject()
		sub.Artifacts = c.installs
		wantRule(t, vulns.Evaluate(sub, judged), "v", c.pass, c.reason)
	}
}

// A where comparing record.severity with a word compares bands, as
// severity: does, however the certifier wrote it (a CVSS score, a
// capital): "9.8" and "Critical" are critical. The score as given is
// record.score.
func TestCELSeverityIsTheBand(t *testing.T) {
	for _, given := range []string{"9.8", "Critical", "critical"} {
		v := newVersion("acme/fastjson", "1.2.3")
		v.add(record.Vulnerable, vulnerable("CVE-1", given))
		p := mustParse(t, `forbid: [{name: crit, property: vulnerable, where: 'record.severity == "critical" && record.score == "`+given+`" && record.vulnerabilities.all(x, x.severity == "critical" && x.score == "`+given+`")'}]`)
		wantRule(t, p.Evaluate(v.subject(), judged), "crit", false, "CVE-1")
	}
}

// A record whose issuer's key was revoked after it signed still counts,
// and the verdict says so: its key may have been revoked as compromised.
func TestVerdictNamesRevokedIssuer(t *testing.T) {
	v := newVersion("acme/fastjson", "1.2.3")
	v.add(record.Audited, certified("ok"))
	v.recs[len(v.recs)-1].Status = "issuer key revoked"
	p := mustParse(t, "require: [{name: a, property: audited}]\n")
	wantRule(t, p.Evaluate(v.subject(), judged), "a", true, "; issuer key revoked since)")
}
