package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
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

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// verdict evaluates p on name@version as the index holds it now.
func verdict(t *testing.T, w *indextest.World, p *Policy, name, version string) *Verdict {
	t.Helper()
	c, err := w.Repo.Catalog(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	d, ref, recs, err := c.Version(name, version)
	if err != nil {
		t.Fatal(err)
	}
	return p.Evaluate(&Subject{Descriptor: d, Ref: ref, Records: recs})
}

// rule returns one rule's verdict.
func rule(t *testing.T, v *Verdict, name string) RuleVerdict {
	t.Helper()
	for _, r := range v.Rules {
		if r.Rule == name {
			return r
		}
	}
	t.Fatalf("no rule %s in %+v", name, v)
	return RuleVerdict{}
}

func wantRule(t *testing.T, v *Verdict, name string, pass bool, reason string) {
	t.Helper()
	r := rule(t, v, name)
	if r.Pass != pass || !strings.Contains(r.Reason, reason) {
		t.Fatalf("rule %s: pass=%v reason %q; want pass=%v and a reason saying %q", name, r.Pass, r.Reason, pass, reason)
	}
}

func TestVerdicts(t *testing.T) {
	w := indextest.New(t)
	p := mustParse(t, basePolicy)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.2.3"})
	w.Publish(indextest.Package{Name: "acme/tested", Version: "1.0.0"})

	v := verdict(t, w, p, "acme/fastjson", "1.2.3")
	if v.Allowed {
		t.Fatalf("an unaudited version is allowed: %+v", v)
	}
	wantRule(t, v, "audited", false, "no active audited by security")
	wantRule(t, v, "mit", true, "expr is true")
	if r := rule(t, v, "ci-passed"); r.Applies || !r.Pass {
		t.Fatalf("a rule scoped to another package applied: %+v", r)
	}

	// An audit by someone else does not count; the security team's does.
	other := indextest.NewSigner()
	w.Grant(other, "bob", "certify:audited")
	if _, err := w.Repo.Certify(w.Ctx, index.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited, Note: "bob looked"}, other); err != nil {
		t.Fatal(err)
	}
	wantRule(t, verdict(t, w, p, "acme/fastjson", "1.2.3"), "audited", false, "no active audited by security")
	audit := w.Audit("acme/fastjson", "1.2.3")
	v = verdict(t, w, p, "acme/fastjson", "1.2.3")
	if !v.Allowed {
		t.Fatalf("an audited version is refused: %+v", v.Failed())
	}
	wantRule(t, v, "audited", true, "audited by acme-security")
	if r := rule(t, v, "audited"); len(r.Records) != 1 || r.Records[0] != audit {
		t.Fatalf("the audit that decided is not named: %+v", r)
	}

	// A high vulnerability refuses; a low one does not; a fixed record
	// answering the high one lets it through again.
	w.Certify(index.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Vulnerable, VulnID: "GHSA-low", Severity: "low"})
	if v := verdict(t, w, p, "acme/fastjson", "1.2.3"); !v.Allowed {
		t.Fatalf("a low vulnerability refused under a high threshold: %+v", v.Failed())
	}
	w.Certify(index.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Vulnerable, VulnID: "GHSA-high", Severity: "high"})
	v = verdict(t, w, p, "acme/fastjson", "1.2.3")
	wantRule(t, v, "high-vulnerabilities", false, "GHSA-high (high)")
	if v.Allowed {
		t.Fatal("a high vulnerability is allowed")
	}
	fix := w.Certify(index.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Fixed, VulnID: "GHSA-high", Note: "not reachable"}).Records[0]
	v = verdict(t, w, p, "acme/fastjson", "1.2.3")
	wantRule(t, v, "high-vulnerabilities", true, "GHSA-high answered by fixed record "+fix[:16])

	// Revoking the audit ends it: the rule fails and says which record ended.
	if _, err := w.Repo.Revoke(w.Ctx, audit, "audit withdrawn", w.Security); err != nil {
		t.Fatal(err)
	}
	wantRule(t, verdict(t, w, p, "acme/fastjson", "1.2.3"), "audited", false, "record "+audit[:16]+" by acme-security")

	// A where condition over the record.
	wantRule(t, verdict(t, w, p, "acme/tested", "1.0.0"), "ci-passed", false, `no active tested where record.result == "PASSED"`)
	w.Certify(index.Certification{Name: "acme/tested", Version: "1.0.0", Kind: record.Tested, Result: "FAILED"})
	wantRule(t, verdict(t, w, p, "acme/tested", "1.0.0"), "ci-passed", false, "no active tested")
	w.Certify(index.Certification{Name: "acme/tested", Version: "1.0.0", Kind: record.Tested, Result: "PASSED"})
	wantRule(t, verdict(t, w, p, "acme/tested", "1.0.0"), "ci-passed", true, "PASSED")

	// A raw expression over every record.
	raw := mustParse(t, `
forbid:
  - name: two-vulns
    expr: records.filter(r, r.kind == "vulnerable").size() >= 2
`)
	wantRule(t, verdict(t, w, raw, "acme/fastjson", "1.2.3"), "two-vulns", false, "expr is true")
	wantRule(t, verdict(t, w, raw, "acme/tested", "1.0.0"), "two-vulns", true, "expr is false")
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
		{"CEL that is not a condition", "require:\n  - name: s\n    expr: pkg.name\n", "must be a bool"},
		{"severity on another property", "forbid:\n  - name: s\n    property: deprecated\n    severity: high\n", "severity goes with property: vulnerable"},
		{"unknown severity", "forbid:\n  - name: s\n    property: vulnerable\n    severity: severe\n", `severity "severe"`},
		{"two rules of one name", "require:\n  - {name: a, property: audited}\nforbid:\n  - {name: a, property: deprecated}\n", "two rules have this name"},
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
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/a", Version: "1.0.0"})
	p := mustParse(t, heavy)
	v := verdict(t, w, p, "acme/a", "1.0.0")
	wantRule(t, v, "heavy", false, "policy.yaml:3: expr could not be evaluated")
	if !strings.Contains(rule(t, v, "heavy").Reason, "cost limit") || v.Allowed {
		t.Fatalf("verdict %+v", v)
	}
}

func BenchmarkDecision(b *testing.B) {
	w := indextest.New(b)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.2.3"})
	for i := 0; i < 48; i++ {
		w.Certify(index.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Tested, Result: "PASSED", Note: fmt.Sprintf("https://ci.example/run/%d", i)})
	}
	w.Audit("acme/fastjson", "1.2.3")
	w.Certify(index.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "medium"})
	c, _ := w.Repo.Catalog(w.Ctx, index.MainRef)
	d, ref, recs, _ := c.Version("acme/fastjson", "1.2.3")
	if len(recs) != 51 {
		b.Fatalf("%d records", len(recs))
	}
	p, err := Parse("policy.yaml", []byte(basePolicy))
	if err != nil {
		b.Fatal(err)
	}
	s := &Subject{Descriptor: d, Ref: ref, Records: recs}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v := p.Evaluate(s); !v.Allowed {
			b.Fatal(fmt.Sprint(v.Failed()))
		}
	}
}
