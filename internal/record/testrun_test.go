package record

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	testresult "github.com/in-toto/attestation/go/predicates/test_result/v0"
	"google.golang.org/protobuf/encoding/protojson"

	"cairn.dev/cairn/internal/keys"
)

// TestTestRunSeparatesCertifiers: two certifiers that report the same
// result on the same version sign different payloads (so both records
// can be appended: "tested by 2 of our 3 CI services"), because each
// names its run (issuer and time) in the configuration; the run entry is
// a plain in-toto ResourceDescriptor that in-toto's own test-result type
// reads and validates, and its time is the test result's Issued.
func TestTestRunSeparatesCertifiers(t *testing.T) {
	at := time.Date(2026, 11, 30, 14, 40, 0, 0, time.UTC)
	subject := []Subject{{Name: "corp.example/greet@1.0.0", Digest: map[string]string{"sha256": strings.Repeat("a", 64)}}}
	a, b := signer(t), signer(t)
	build := func(s keys.Signer) *Record {
		t.Helper()
		p := TestResultPredicate{Result: "PASSED", Configuration: []ResourceDescriptor{TestRun(keys.ID(s.Public()), at)}}
		payload, err := Build(Tested, subject, p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Sign(payload, s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ra, rb := build(a), build(b)
	if ra.ID == rb.ID {
		t.Fatalf("two certifiers' test results have one id %s", ra.ID)
	}
	for _, r := range []*Record{ra, rb} {
		again, err := Parse(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := again.Predicate.(TestResultPredicate).Issued(); !got.Equal(at) {
			t.Fatalf("Issued = %v, want %v", got, at)
		}
		var tr testresult.TestResult
		if err := protojson.Unmarshal(again.Statement.Predicate, &tr); err != nil {
			t.Fatalf("in-toto's test-result type rejects the predicate: %v", err)
		}
		if len(tr.GetConfiguration()) != 1 || tr.GetConfiguration()[0].GetUri() != TestRunURI {
			t.Fatalf("in-toto reads the configuration as %v", tr.GetConfiguration())
		}
		if err := tr.GetConfiguration()[0].Validate(); err != nil {
			t.Fatalf("in-toto Validate of the run entry: %v", err)
		}
	}

	// A record names its own signer: one naming another key is malformed.
	for _, pred := range []any{
		TestResultPredicate{Result: "PASSED", Configuration: []ResourceDescriptor{TestRun(keys.ID(a.Public()), at)}},
		CertificationPredicate{Issued: at, Issuer: keys.ID(a.Public())},
	} {
		kind := Tested
		if _, ok := pred.(CertificationPredicate); ok {
			kind = Audited
		}
		payload, err := Build(kind, subject, pred)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Sign(payload, b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "names its issuer "+keys.ID(a.Public())+" but is signed by "+keys.ID(b.Public())) {
			t.Fatalf("%s naming a, signed by b: %v", kind, err)
		}
	}

	// A test result without a run entry (signed before cairn named
	// runs) still parses, and has no time; so does one whose producer
	// named an entry cairn-run without the run's URI.
	for _, conf := range [][]ResourceDescriptor{{{Name: "ci/test.sh"}}, {{Name: TestRunName, Digest: map[string]string{"sha256": strings.Repeat("b", 64)}}}} {
		payload, err := Build(Tested, subject, TestResultPredicate{Result: "PASSED", Configuration: conf})
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseStatement(payload)
		if err != nil {
			t.Fatalf("an older test result (%v) no longer parses: %v", conf, err)
		}
		if got := r.Predicate.(TestResultPredicate).Issued(); !got.IsZero() {
			t.Fatalf("a test result without a run entry has time %v", got)
		}
	}

	// A run entry is one, named, with an issuer and an RFC 3339 time.
	run := TestRun("SHA256:x", at)
	for _, tc := range []struct {
		name string
		conf []ResourceDescriptor
		want string
	}{
		{"two runs", []ResourceDescriptor{run, TestRun("SHA256:y", at)}, "want at most one"},
		{"misnamed", []ResourceDescriptor{{Name: "run", URI: TestRunURI, Annotations: run.Annotations}}, `is named "run": want "cairn-run"`},
		{"no issuer", []ResourceDescriptor{{Name: TestRunName, URI: TestRunURI, Annotations: map[string]any{"issued": "2026-11-30T14:40:00Z"}}}, "issuer annotation"},
		{"bad time", []ResourceDescriptor{{Name: TestRunName, URI: TestRunURI, Annotations: map[string]any{"issuer": "SHA256:x", "issued": "yesterday"}}}, `issued annotation "yesterday"`},
	} {
		raw, _ := json.Marshal(TestResultPredicate{Result: "PASSED", Configuration: tc.conf})
		if _, err := parsePredicate(Tested, raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
