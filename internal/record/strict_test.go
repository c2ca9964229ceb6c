package record

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
)

// allSamples is a well-formed predicate of every kind.
func allSamples(t testing.TB) map[Kind]any {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	digest := strings.Repeat("cd", 32)
	m := samples(t)
	cert := CertificationPredicate{Issued: now, Note: "ok"}
	for _, k := range []Kind{Reviewed, Reproduced, ProofChecked, Scanned, Deprecated, Withdrawn} {
		m[k] = cert
	}
	m[Fixed] = FixedPredicate{Vulnerabilities: []string{"GHSA-1"}, Issued: now}
	m[Supersede] = EndPredicate{Reason: "newer", Replacement: digest, Issued: now}
	m[RevokeKey] = RevokeKeyPredicate{Reason: "lost", Issued: now}
	m[Upstream] = UpstreamPredicate{Name: "public", URL: "https://example.com", Introduction: digest, Issued: now}
	m[Snapshot] = SnapshotPredicate{Snapshot: blob.Ref{SHA256: digest, Size: 5}, Name: "s", Issued: now}
	m[Label] = LabelPredicate{Label: "lts", Snapshot: blob.Ref{SHA256: digest, Size: 5}, Issued: now}
	m[Imported] = importedSample(now)
	m[Policy] = PolicyPredicate{Name: "org", Policy: "forbid:\n  - {property: withdrawn}\n", Issued: now}
	return m
}

// jsonMap decodes a JSON object for a test to edit.
func jsonMap(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantUnknownMember(t *testing.T, what string, err error, member string) {
	t.Helper()
	var ue *UnknownMemberError
	if err == nil || !errors.Is(err, ErrMalformed) || !errors.As(err, &ue) || ue.Member != member ||
		!strings.Contains(err.Error(), `unknown member "`+member+`"`) {
		t.Errorf("%s: err = %v; want ErrMalformed naming unknown member %q", what, err, member)
	}
}

// Attack: a predicate that carries members its kind does not have (an
// audited record smuggling a whole vulnerability body, which a reader
// decoding loosely might take for a vulnerable one) is refused, naming the
// member, for every kind.
func TestParseRejectsUnknownMembers(t *testing.T) {
	all := allSamples(t)
	for _, kind := range Kinds {
		pred, ok := all[kind]
		if !ok {
			t.Fatalf("no sample predicate for %s", kind)
		}
		payload, err := Build(kind, []Subject{desc}, pred)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(envelope(PayloadType, payload, 1)); err != nil {
			t.Fatalf("%s: the well-formed sample is refused: %v", kind, err)
		}
		st := jsonMap(t, payload)
		st["predicate"].(map[string]any)["smuggled"] = "x"
		_, err = Parse(envelope(PayloadType, mustJSON(t, st), 1))
		wantUnknownMember(t, string(kind), err, "smuggled")
	}

	vuln, _ := Build(Vulnerable, []Subject{desc}, all[Vulnerable])
	vulnPred := jsonMap(t, vuln)["predicate"].(map[string]any)
	audited, _ := Build(Audited, []Subject{desc}, all[Audited])
	tested, _ := Build(Tested, []Subject{desc}, all[Tested])
	edit := func(payload []byte, f func(st map[string]any)) []byte {
		st := jsonMap(t, payload)
		f(st)
		return envelope(PayloadType, mustJSON(t, st), 1)
	}
	pred := func(st map[string]any) map[string]any { return st["predicate"].(map[string]any) }
	cases := []struct {
		name   string
		data   []byte
		member string
		at     string
	}{
		{"audited carrying a vulnerability body", edit(audited, func(st map[string]any) {
			pred(st)["scanner"], pred(st)["metadata"] = vulnPred["scanner"], vulnPred["metadata"]
		}), "metadata", ""},
		{"vulns: a result's extra member", edit(vuln, func(st map[string]any) {
			pred(st)["scanner"].(map[string]any)["result"].([]any)[0].(map[string]any)["withdrawn"] = true
		}), "withdrawn", "/scanner/result/0"},
		{"vulns: a severity's extra member", edit(vuln, func(st map[string]any) {
			r := pred(st)["scanner"].(map[string]any)["result"].([]any)[0].(map[string]any)
			r["severity"].([]any)[0].(map[string]any)["override"] = "low"
		}), "override", "/scanner/result/0/severity/0"},
		{"vulns: metadata's extra member", edit(vuln, func(st map[string]any) {
			pred(st)["metadata"].(map[string]any)["ignore"] = true
		}), "ignore", "/metadata"},
		{"test-result: a configuration's extra member", edit(tested, func(st map[string]any) {
			pred(st)["configuration"].([]any)[0].(map[string]any)["verdict"] = "skip"
		}), "verdict", "/configuration/0"},
		{"statement: an extra member", edit(audited, func(st map[string]any) { st["predicates"] = []any{} }), "predicates", ""},
		{"statement: a subject's extra member", edit(audited, func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["annotations"] = map[string]any{"x": "y"}
		}), "annotations", "/subject/0"},
	}
	env := jsonMap(t, envelope(PayloadType, audited, 1))
	env["payloadTypes"] = []any{"x"}
	cases = append(cases, struct {
		name   string
		data   []byte
		member string
		at     string
	}{"envelope: an extra member", mustJSON(t, env), "payloadTypes", ""})
	env = jsonMap(t, envelope(PayloadType, audited, 1))
	env["signatures"].([]any)[0].(map[string]any)["cert"] = "x"
	cases = append(cases, struct {
		name   string
		data   []byte
		member string
		at     string
	}{"envelope: a signature's extra member", mustJSON(t, env), "cert", "/signatures/0"})

	for _, c := range cases {
		_, err := Parse(c.data)
		wantUnknownMember(t, c.name, err, c.member)
		var ue *UnknownMemberError
		if errors.As(err, &ue) && ue.At != c.at {
			t.Errorf("%s: unknown member at %q, want %q", c.name, ue.At, c.at)
		}
	}
}

// The members the in-toto specifications define are accepted, though cairn
// reads few of them: vulns v0.2's scanner.db, and a test-result
// configuration's full ResourceDescriptor.
func TestParseAcceptsSpecMembers(t *testing.T) {
	vuln, _ := Build(Vulnerable, []Subject{desc}, allSamples(t)[Vulnerable])
	st := jsonMap(t, vuln)
	st["predicate"].(map[string]any)["scanner"].(map[string]any)["db"] = map[string]any{
		"uri": "pkg:github/aquasecurity/trivy-db", "version": "v2", "lastUpdate": "2026-11-01T00:00:00Z"}
	r, err := Parse(envelope(PayloadType, mustJSON(t, st), 1))
	if err != nil {
		t.Fatalf("vulns with scanner.db: %v", err)
	}
	if db := r.Predicate.(VulnsPredicate).Scanner.DB; db == nil || db.Version != "v2" {
		t.Fatalf("scanner.db not decoded: %+v", db)
	}
	tested, _ := Build(Tested, []Subject{desc}, allSamples(t)[Tested])
	st = jsonMap(t, tested)
	st["predicate"].(map[string]any)["configuration"] = []any{map[string]any{
		"name": "ci.sh", "uri": "https://ci.example/ci.sh", "digest": map[string]any{"sha256": strings.Repeat("ab", 32)},
		"content": "aGk=", "downloadLocation": "https://ci.example/dl", "mediaType": "text/x-shellscript",
		"annotations": map[string]any{"size": 2}}}
	r, err = Parse(envelope(PayloadType, mustJSON(t, st), 1))
	if err != nil {
		t.Fatalf("test-result with a full ResourceDescriptor: %v", err)
	}
	if c := r.Predicate.(TestResultPredicate).Configuration[0]; c.MediaType != "text/x-shellscript" || string(c.Content) != "hi" {
		t.Fatalf("configuration not decoded: %+v", c)
	}
}
