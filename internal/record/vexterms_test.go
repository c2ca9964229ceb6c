package record

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A fixed predicate as cairn wrote them before fixed records said how
// they answer: it reads as it did, and answers "fixed".
func TestFixedOldBytesReadAsBefore(t *testing.T) {
	old := `{"vulnerabilities":["GHSA-1","CVE-2026-1"],"note":"not reachable","issued":"2026-11-22T00:00:00Z"}`
	p, err := parsePredicate(Fixed, json.RawMessage(old))
	if err != nil {
		t.Fatal(err)
	}
	want := FixedPredicate{Vulnerabilities: []string{"GHSA-1", "CVE-2026-1"}, Note: "not reachable", Issued: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("old fixed predicate reads as %#v, want %#v", p, want)
	}
	if a := p.(FixedPredicate).Answer(); a != StatusFixed {
		t.Fatalf("an old fixed record answers %q, want fixed", a)
	}
	// And written again, it is the same bytes: no new member appears.
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != old {
		t.Fatalf("re-encoded:\n%s\nwant\n%s", data, old)
	}
}

// The OpenVEX terms of a fixed record: accepted when OpenVEX would take
// them, refused (saying what is wrong) otherwise.
func TestFixedAnswerTerms(t *testing.T) {
	base := `"vulnerabilities":["GHSA-1"],"issued":"2026-11-22T00:00:00Z"`
	for _, c := range []struct {
		extra, err string
		want       FixedStatus
	}{
		{`"status":"fixed"`, "", StatusFixed},
		{`"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"`, "", StatusNotAffected},
		{`"status":"not_affected","impact_statement":"the parser is never given user input"`, "", StatusNotAffected},
		{`"status":"not_affected","justification":"component_not_present","impact_statement":"no yaml"`, "", StatusNotAffected},
		{`"status":"not_affected"`, "a not_affected record says why", ""},
		{`"status":"not_affected","justification":"trust_me"`, `justification "trust_me": want one of component_not_present`, ""},
		{`"status":"affected"`, `fixed record status "affected": want fixed or not_affected`, ""},
		{`"status":"under_investigation"`, `fixed record status "under_investigation"`, ""},
		{`"justification":"component_not_present"`, "takes no justification", ""},
		{`"status":"fixed","impact_statement":"x"`, "takes no justification or impact statement", ""},
		{`"status":"not_affected","impact_statement":"` + strings.Repeat("x", 4097) + `"`, "impact statement is 4097 bytes", ""},
	} {
		p, err := parsePredicate(Fixed, json.RawMessage("{"+base+","+c.extra+"}"))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%.80s: err %v, want one saying %q", c.extra, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%.80s: %v", c.extra, err)
			continue
		}
		if a := p.(FixedPredicate).Answer(); a != c.want {
			t.Errorf("%.80s: answers %q, want %q", c.extra, a, c.want)
		}
	}
}

// A vulnerable result is under investigation only when its status
// annotation says exactly that; results without one are affected.
func TestVulnResultUnderInvestigation(t *testing.T) {
	for _, c := range []struct {
		ann  []map[string]string
		want bool
	}{
		{nil, false},
		{[]map[string]string{{"note": "under_investigation"}}, false},
		{[]map[string]string{{"status": "affected"}}, false},
		{[]map[string]string{{"affects": "<2"}, {"status": "under_investigation"}}, true},
	} {
		if got := (VulnResult{ID: "GHSA-1", Annotations: c.ann}).UnderInvestigation(); got != c.want {
			t.Errorf("%v: under investigation %v, want %v", c.ann, got, c.want)
		}
	}
}
