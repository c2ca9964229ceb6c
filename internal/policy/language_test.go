package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/record"
)

// TestCount: count: K asks for K distinct certifiers, each with an
// active matching record; K-1 refuses, K allows; two keys of one holder
// count once; the verdict names the records that met it, or what it has
// and whom it misses.
func TestCount(t *testing.T) {
	p := mustParse(t, `
issuers:
  ci: [ci-a, ci-b, ci-c]
require:
  - name: tested-twice
    property: tested
    by: ci
    count: 2
    where: record.result == "PASSED"
`)
	v := newVersion("acme/fastjson", "1.2.3")
	a1 := v.addBy(record.Tested, "SHA256:a1", "ci-a", "acme", tested("PASSED"))
	got := p.Evaluate(v.subject(), judged)
	wantRule(t, got, "tested-twice", false, "2 of 3 required (tested by ci where record.result == \"PASSED\"): have tested by ci-a [SHA256:a1] (record "+a1[:16]+", PASSED); missing from ci-b, ci-c")
	if got.Allowed {
		t.Fatal("one certifier of two allowed")
	}

	// A second key of the same holder is the same certifier.
	v.addBy(record.Tested, "SHA256:a2", "ci-a", "acme", tested("PASSED"))
	wantRule(t, p.Evaluate(v.subject(), judged), "tested-twice", false, "missing from ci-b, ci-c")

	// A record the where refuses does not count; one by an issuer by
	// does not allow does not either.
	v.addBy(record.Tested, "SHA256:b", "ci-b", "acme", tested("FAILED"))
	v.addBy(record.Tested, "SHA256:x", "ci-x", "acme", tested("PASSED"))
	wantRule(t, p.Evaluate(v.subject(), judged), "tested-twice", false, "missing from ci-b, ci-c")

	b := v.addBy(record.Tested, "SHA256:b", "ci-b", "acme", tested("PASSED"))
	got = p.Evaluate(v.subject(), judged)
	wantRule(t, got, "tested-twice", true, "2 of 3 required")
	if r := rule(t, got, "tested-twice"); !got.Allowed || !slices.Equal(r.Records, []string{a1, b}) || strings.Contains(r.Reason, "missing") {
		t.Fatalf("two certifiers: allowed %v, rule %+v; want the records %.16s and %.16s named", got.Allowed, r, a1, b)
	}

	// K-1 certifiers refuse, K allow, for every K by allows.
	for k := 1; k <= 3; k++ {
		t.Run(fmt.Sprintf("count-%d", k), func(t *testing.T) {
			p := mustParse(t, fmt.Sprintf("issuers: {ci: [ci-a, ci-b, ci-c]}\nrequire:\n  - {name: r, property: tested, by: ci, count: %d}\n", k))
			v := newVersion("acme/a", "1.0.0")
			for i := range k - 1 {
				ci := string(rune('a' + i))
				v.addBy(record.Tested, "SHA256:"+ci, "ci-"+ci, "acme", tested("PASSED"))
				v.addBy(record.Tested, "SHA256:"+ci+"2", "ci-"+ci, "acme", tested("PASSED")) // its second key
			}
			if got := p.Evaluate(v.subject(), judged); got.Allowed {
				t.Fatalf("%d certifiers of %d allowed: %+v", k-1, k, got.Rules)
			}
			ci := string(rune('a' + k - 1))
			v.addBy(record.Tested, "SHA256:"+ci, "ci-"+ci, "acme", tested("PASSED"))
			if got := p.Evaluate(v.subject(), judged); !got.Allowed {
				t.Fatalf("%d certifiers of %d refused: %+v", k, k, got.Failed())
			}
		})
	}

	// With no by, anyone counts: keys without a holder by their key id,
	// holders by HOLDER@REPOSITORY (one name in two repositories is two
	// holders: each root granted its own).
	anyone := mustParse(t, "require:\n  - {name: r, property: audited, count: 3}\n")
	w := newVersion("acme/b", "1.0.0")
	w.addBy(record.Audited, "SHA256:k1", "", "acme", certified(""))
	w.addBy(record.Audited, "SHA256:k1", "", "acme", certified("again"))
	w.addBy(record.Audited, "SHA256:s1", "sec", "acme", certified(""))
	wantRule(t, anyone.Evaluate(w.subject(), judged), "r", false, "3 distinct certifiers required (audited): have audited by SHA256:k1")
	wantRule(t, anyone.Evaluate(w.subject(), judged), "r", false, "; missing 1 more")
	w.addBy(record.Audited, "SHA256:s2", "sec", "acme", certified(""))
	wantRule(t, anyone.Evaluate(w.subject(), judged), "r", false, "missing 1 more")
	w.addBy(record.Audited, "SHA256:s3", "sec", "corp", certified(""))
	if got := anyone.Evaluate(w.subject(), judged); !got.Allowed {
		t.Fatalf("three certifiers refused: %+v", got.Failed())
	}

	// A revoked record's certifier does not count.
	u := newVersion("acme/c", "1.0.0")
	u.addBy(record.Audited, "SHA256:s1", "sec", "acme", certified(""))
	u.end(u.addBy(record.Audited, "SHA256:k1", "", "acme", certified("")), "revoked")
	wantRule(t, anyone.Evaluate(u.subject(), judged), "r", false, "is revoked by")
}

// TestMaxAge: only records made no earlier than the judgment time minus
// max_age count; one second older refuses.
func TestMaxAge(t *testing.T) {
	p := mustParse(t, "require:\n  - {name: fresh-scan, property: scanned, max_age: 7d}\n")
	scan := func(at time.Time) record.CertificationPredicate {
		return record.CertificationPredicate{Issued: at, Note: "scanner ran"}
	}
	edge := judged.Add(-7 * 24 * time.Hour)

	v := newVersion("acme/a", "1.0.0")
	old := v.add(record.Scanned, scan(edge.Add(-time.Second)))
	got := p.Evaluate(v.subject(), judged)
	wantRule(t, got, "fresh-scan", false, "no active scanned no older than 7d; record "+old[:16]+" by acme-security ["+securityKey+"] is older than max_age 7d (made "+edge.Add(-time.Second).Format(time.RFC3339)+", before "+edge.Format(time.RFC3339)+")")
	if got.Allowed || !got.JudgedAt.Equal(judged) {
		t.Fatalf("verdict %+v; want refused, judged at %s", got, judged)
	}
	fresh := v.add(record.Scanned, scan(edge))
	got = p.Evaluate(v.subject(), judged)
	wantRule(t, got, "fresh-scan", true, "record "+fresh[:16])
	// The same records judged a second later: the fresh one is stale.
	wantRule(t, p.Evaluate(v.subject(), judged.Add(time.Second)), "fresh-scan", false, "is older than max_age 7d")

	// Units: 36h and 1d12h are the same window.
	for _, age := range []string{"36h", "1d12h", "129600s", "2160m"} {
		p := mustParse(t, "require:\n  - {name: r, property: scanned, max_age: "+age+"}\n")
		v := newVersion("acme/a", "1.0.0")
		v.add(record.Scanned, scan(judged.Add(-36*time.Hour-time.Second)))
		wantRule(t, p.Evaluate(v.subject(), judged), "r", false, "older than max_age "+age)
		v.add(record.Scanned, scan(judged.Add(-36*time.Hour)))
		wantRule(t, p.Evaluate(v.subject(), judged), "r", true, "scanned by")
	}

	// An import's time is its predicate's too.
	imp := mustParse(t, "require:\n  - {name: r, property: imported, max_age: 7d}\n")
	iv := newVersion("example.com/greet", "1.0.0")
	iv.add(record.Imported, record.ImportedPredicate{Source: "https://proxy.golang.org", Issued: edge.Add(-time.Second)})
	wantRule(t, imp.Evaluate(iv.subject(), judged), "r", false, "is older than max_age 7d")
	iv.add(record.Imported, record.ImportedPredicate{Source: "https://proxy.golang.org", Issued: edge})
	wantRule(t, imp.Evaluate(iv.subject(), judged), "r", true, "imported by")

	// A record whose predicate carries no time is never fresh.
	untimed := newVersion("acme/c", "1.0.0")
	untimed.add(record.Scanned, record.CertificationPredicate{Note: "no time"})
	wantRule(t, p.Evaluate(untimed.subject(), judged), "fresh-scan", false, "has no time to judge max_age 7d by")

	// No judgment time: max_age cannot be judged, and refuses.
	v = newVersion("acme/c", "1.0.0")
	v.add(record.Scanned, scan(judged))
	wantRule(t, p.Evaluate(v.subject(), time.Time{}), "fresh-scan", false, "no judgment time: max_age 7d cannot be judged")

	// With count: a stale record's certifier does not count.
	both := mustParse(t, "require:\n  - {name: r, property: scanned, count: 2, max_age: 7d}\n")
	w := newVersion("acme/d", "1.0.0")
	w.addBy(record.Scanned, "SHA256:s1", "scan-a", "acme", scan(judged))
	w.addBy(record.Scanned, "SHA256:s2", "scan-b", "acme", scan(edge.Add(-time.Second)))
	wantRule(t, both.Evaluate(w.subject(), judged), "r", false, "2 distinct certifiers required (scanned no older than 7d): have scanned by scan-a [SHA256:s1]")
	wantRule(t, both.Evaluate(w.subject(), judged), "r", false, "by scan-b [SHA256:s2] is older than max_age 7d")
	w.addBy(record.Scanned, "SHA256:s2", "scan-b", "acme", scan(judged.Add(-time.Hour)))
	wantRule(t, both.Evaluate(w.subject(), judged), "r", true, "have scanned by scan-a")
}

// TestEnforcement: a failing warn rule is reported and refuses nothing;
// the same rule with deny refuses; a rule's own enforcement overrides the
// file's.
func TestEnforcement(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		allowed   bool
	}{
		{"rule warn", "require:\n  - {name: r, property: audited, enforcement: warn}\n", true},
		{"rule deny", "require:\n  - {name: r, property: audited, enforcement: deny}\n", false},
		{"default deny", "require:\n  - {name: r, property: audited}\n", false},
		{"file warn", "enforcement: warn\nrequire:\n  - {name: r, property: audited}\n", true},
		{"file warn, rule deny", "enforcement: warn\nrequire:\n  - {name: r, property: audited, enforcement: deny}\n", false},
		{"file deny, rule warn", "enforcement: deny\nrequire:\n  - {name: r, property: audited, enforcement: warn}\n", true},
		{"forbid warn", "forbid:\n  - {name: r, property: deprecated, enforcement: warn}\n", true},
		{"expr warn", "forbid:\n  - {name: r, expr: 'pkg.license == \"MIT\"', enforcement: warn}\n", true},
		{"expr deny", "forbid:\n  - {name: r, expr: 'pkg.license == \"MIT\"'}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVersion("acme/a", "1.0.0")
			v.add(record.Deprecated, certified("use acme/b"))
			got := mustParse(t, tc.src).Evaluate(v.subject(), judged)
			r := rule(t, got, "r")
			if r.Pass || got.Allowed != tc.allowed || r.Warning != tc.allowed {
				t.Fatalf("verdict allowed %v, rule %+v; want allowed %v with warning %v", got.Allowed, r, tc.allowed, tc.allowed)
			}
			if w, f := got.Warnings(), got.Failed(); tc.allowed && (len(w) != 1 || len(f) != 0) || !tc.allowed && (len(w) != 0 || len(f) != 1) {
				t.Fatalf("warnings %+v, failed %+v", w, f)
			}
		})
	}

	// A warn rule that passes warns of nothing; a warning is in the JSON
	// beside the judgment time, and not in the refusal's error.
	p := mustParse(t, "require:\n  - {name: audit, property: audited, enforcement: warn}\n  - {name: author, property: authored}\n")
	v := newVersion("acme/a", "1.0.0")
	got := p.Evaluate(v.subject(), judged)
	data, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"judged_at":"2026-01-09T03:04:05Z"`, `"rule":"audit","mode":"require","line":2,"applies":true,"pass":false,"warning":true`, `"rule":"author","mode":"require","line":3,"applies":true,"pass":false,"reason"`} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("verdict JSON %s; want it to say %s", data, want)
		}
	}
	msg := (&RefusedError{Verdicts: []*Verdict{got}}).Error()
	if !strings.Contains(msg, "require author") || strings.Contains(msg, "require audit") {
		t.Fatalf("refusal %q names a warning as a refusal", msg)
	}
	v.add(record.Audited, certified(""))
	if r := rule(t, p.Evaluate(v.subject(), judged), "audit"); !r.Pass || r.Warning {
		t.Fatalf("a passing warn rule: %+v", r)
	}
}

// TestNow: CEL reads the judgment time as now.
func TestNow(t *testing.T) {
	p := mustParse(t, `
require:
  - name: where-now
    property: scanned
    where: now - record.issued <= duration("24h")
  - name: expr-now
    expr: records.exists(r, r.kind == "scanned" && now - r.issued <= duration("24h"))
`)
	v := newVersion("acme/a", "1.0.0")
	v.add(record.Scanned, certified(""))
	got := p.Evaluate(v.subject(), issued.Add(24*time.Hour+time.Second))
	wantRule(t, got, "where-now", false, "no active scanned where")
	wantRule(t, got, "expr-now", false, "expr is false")
	got = p.Evaluate(v.subject(), issued.Add(24*time.Hour))
	wantRule(t, got, "where-now", true, "scanned by")
	wantRule(t, got, "expr-now", true, "expr is true")
}

// TestLanguageErrors: count, max_age and enforcement are checked when the
// policy loads, each error at its line.
func TestLanguageErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"count zero", "require:\n  - name: r\n    property: tested\n    count: 0\n", `policy.yaml:4: rule "r": count 0: a require rule asks for at least 1 certifier`},
		{"count negative", "require:\n  - name: r\n    property: tested\n    count: -2\n", `policy.yaml:4: rule "r": count -2`},
		{"count not a number", "require:\n  - name: r\n    property: tested\n    count: two\n", `policy.yaml:2:`},
		{"count on forbid", "forbid:\n  - name: r\n    property: vulnerable\n    count: 2\n", `policy.yaml:4: rule "r": count goes with require`},
		{"count above by", "issuers: {ci: [ci-a, ci-b]}\nrequire:\n  - name: r\n    property: tested\n    by: ci\n    count: 3\n", `policy.yaml:6: rule "r": count 3: by allows 2 issuer(s) (ci-a, ci-b), so the rule could never pass`},
		{"count above by, one issuer twice", "issuers: {ci: [ci-a, ci-b]}\nrequire:\n  - name: r\n    property: tested\n    by: [ci, ci-a]\n    count: 3\n", `count 3: by allows 2 issuer(s)`},
		{"count on expr", "require:\n  - name: r\n    expr: 'true'\n    count: 2\n", `policy.yaml:2: rule "r": by, where, severity, count and max_age go with property`},
		{"max_age unit", "require:\n  - name: r\n    property: scanned\n    max_age: 2w\n", `policy.yaml:4: rule "r": max_age "2w": unknown unit "w"`},
		{"max_age no unit", "require:\n  - name: r\n    property: scanned\n    max_age: 7\n", `max_age "7": not a duration`},
		{"max_age zero", "require:\n  - name: r\n    property: scanned\n    max_age: 0d\n", `max_age "0d": zero`},
		{"max_age huge", "require:\n  - name: r\n    property: scanned\n    max_age: 99999999999999999999d\n", `longer than 100 years`},
		{"max_age sign", "require:\n  - name: r\n    property: scanned\n    max_age: -7d\n", `max_age "-7d": not a duration`},
		{"max_age on forbid", "forbid:\n  - name: r\n    property: vulnerable\n    max_age: 7d\n", `policy.yaml:4: rule "r": max_age goes with require`},
		{"max_age on expr", "forbid:\n  - name: r\n    expr: 'true'\n    max_age: 7d\n", `go with property`},
		{"rule enforcement", "require:\n  - name: r\n    property: scanned\n    enforcement: block\n", `policy.yaml:4: rule "r": enforcement "block": it is deny`},
		{"file enforcement", "enforcement: Warn\nrequire:\n  - name: r\n    property: scanned\n", `policy.yaml:1: enforcement "Warn"`},
		{"file enforcement a list", "enforcement: [warn]\nrequire:\n  - name: r\n    property: scanned\n", `policy.yaml:1: enforcement is deny or warn`},
		{"unknown field names the new ones", "require:\n  - name: r\n    property: scanned\n    maxage: 7d\n", `want name, property, by, answered_by, packages, severity, where, expr, count, max_age, enforcement`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("policy.yaml", []byte(tc.src))
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, %v; want an error saying %q", p, err, tc.want)
			}
		})
	}

	// What parses reads as written.
	p := mustParse(t, "enforcement: warn\nissuers: {ci: [a, b, c]}\nrequire:\n  - {name: r, property: audited, by: ci, count: 3, max_age: 1d12h, enforcement: deny}\n  - {name: s, property: scanned}\n")
	if r := p.Rule("r"); r.Count != 3 || r.MaxAge != 36*time.Hour || r.Enforcement != Deny || p.Rule("s").Enforcement != Warn || p.Enforcement != Warn {
		t.Fatalf("parsed %+v %+v", r, p.Rule("s"))
	}
	if c := p.Rule("r").Condition(); c != "3 distinct certifiers of audited by ci no older than 1d12h" {
		t.Fatalf("condition %q", c)
	}
}

// TestMaxAgeTested: a test result's time is its run entry's
// (record.TestRun), so max_age judges tested records; one signed before
// cairn named its runs has no time and is never fresh.
func TestMaxAgeTested(t *testing.T) {
	p := mustParse(t, "require:\n  - {name: fresh-ci, property: tested, max_age: 7d}\n")
	run := func(at time.Time) record.TestResultPredicate {
		return record.TestResultPredicate{Result: "PASSED", Configuration: []record.ResourceDescriptor{record.TestRun(securityKey, at)}}
	}
	v := newVersion("acme/a", "1.0.0")
	old := v.add(record.Tested, run(judged.Add(-7*24*time.Hour-time.Second)))
	wantRule(t, p.Evaluate(v.subject(), judged), "fresh-ci", false, "record "+old[:16]+" by acme-security ["+securityKey+"] is older than max_age 7d")
	v.add(record.Tested, run(judged.Add(-7*24*time.Hour)))
	wantRule(t, p.Evaluate(v.subject(), judged), "fresh-ci", true, "tested by acme-security")

	untimed := newVersion("acme/a", "1.0.0")
	untimed.add(record.Tested, tested("PASSED"))
	wantRule(t, p.Evaluate(untimed.subject(), judged), "fresh-ci", false, "has no time to judge max_age 7d by")
}

// TestBindCountOneCertifierTwice: with one repository, a bare holder
// name and HOLDER@REPOSITORY name one certifier, so `by: [ci1@local,
// ci1], count: 2` could never pass: Bind refuses it at the count's line.
// (A key id beside a holder name may be that holder's key: the policy
// cannot tell without the index, and Bind leaves it.)
func TestBindCountOneCertifierTwice(t *testing.T) {
	src := "issuers: {ci: [ci1, ci2]}\nrequire:\n  - name: r\n    property: tested\n    by: [ci1@local, ci1]\n    count: 2\n"
	p := mustParse(t, src)
	err := p.Bind([]string{"local"})
	want := `policy.yaml:6: rule "r": count 2: by names 1 distinct certifier(s) in the one repository the project reads (ci1@local; ci1@local and ci1 are one certifier), so the rule could never pass`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Bind = %v; want %q", err, want)
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != 6 || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Bind = %#v; want a FileError at line 6", err)
	}
	// Two holders, one through a group: they can pass.
	for _, by := range []string{"[ci1@local, ci2]", "[ci, ci1@local]", "[ci1, SHA256:other]"} {
		p := mustParse(t, "issuers: {ci: [ci1, ci2]}\nrequire:\n  - name: r\n    property: tested\n    by: "+by+"\n    count: 2\n")
		if err := p.Bind([]string{"local"}); err != nil {
			t.Errorf("by %s, count 2: %v", by, err)
		}
	}
	// count 3 over [ci, ci1@local]: two certifiers.
	p = mustParse(t, "issuers: {ci: [ci1, ci2]}\nrequire:\n  - name: r\n    property: tested\n    by: [ci, ci1@local]\n    count: 3\n")
	if err := p.Bind([]string{"local"}); err == nil || !strings.Contains(err.Error(), "count 3: by names 2 distinct certifier(s)") {
		t.Fatalf("by [ci, ci1@local], count 3: %v", err)
	}
}

// TestMisspeltWords: a field that holds one of a few words (a record's
// kind, status, result and severity, a vulnerability's severity, an
// artifact's kind) compared with any other word is refused when the
// policy loads, naming the word and the words it could be: the
// comparison was false of every record, so a forbid rule with it forbade
// nothing.
func TestMisspeltWords(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"result", "require:\n  - {name: ci, property: tested, where: 'record.result == \"PASS\"'}\n",
			`policy.yaml:2: rule "ci": where: record.result is never "PASS": it is one of "PASSED", "WARNED", "FAILED", ""`},
		{"severity in another case", "forbid:\n  - {name: hi, property: vulnerable, where: 'record.severity == \"Critical\"'}\n",
			`record.severity is never "Critical": it is one of "none", "low", "medium", "high", "critical", "" (cairn's bands, lower case`},
		{"a word on the left", "forbid:\n  - {name: hi, property: vulnerable, where: '\"hgh\" != record.severity'}\n", `record.severity is never "hgh"`},
		{"in a list", "require:\n  - {name: r, property: audited, where: 'record.kind in [\"audited\", \"audted\"]'}\n", `record.kind is never "audted": it is one of "authored", "audited"`},
		{"a vulnerability in a comprehension", "forbid:\n  - {name: v, property: vulnerable, where: 'record.vulnerabilities.exists(v, v.severity == \"crit\")'}\n", `v.severity is never "crit"`},
		{"an artifact", "forbid:\n  - {name: src, expr: 'pkg.artifacts.exists(a, a.kind == \"src\")'}\n", `a.kind is never "src": it is one of "source", "binary", "go-mod"`},
		{"a status in an expr", "forbid:\n  - {name: s, expr: 'records.exists(r, r.status == \"activ\")'}\n", `policy.yaml:2: rule "s": expr: r.status is never "activ"`},
		{"two at once", "forbid:\n  - {name: s, expr: 'records.exists(r, r.kind == \"vulnrable\" && r.severity == \"HIGH\")'}\n", `r.kind is never "vulnrable"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("policy.yaml", []byte(tc.src))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, %v; want an error saying %q", p, err, tc.want)
			}
		})
	}
	// Every word a field holds parses, and fields of free text take any.
	mustParse(t, "forbid:\n  - {name: a, expr: 'records.exists(r, r.kind == \"vulnerable\" && r.severity in [\"high\", \"critical\", \"\"] && r.status != \"issuer key revoked\" && r.result != \"FAILED\" && r.score == \"9.8\" && r.note == \"anything\" && r.issuer == \"acme-security\")'}\n"+
		"  - {name: b, expr: 'pkg.artifacts.exists(a, a.kind == \"binary\" && a.platform == \"linux-arm64\") && pkg.artifacts.exists(a, a.kind == \"go-mod\") && pkg.license == \"MIT\"'}\n")
}
