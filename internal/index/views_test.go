package index_test

import (
	"encoding/json"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
)

// A record's status is typed for code (Active, Ended) and reads as the
// display words it always had, in JSON and in text.
func TestRecordStatus(t *testing.T) {
	cases := []struct {
		s             index.Status
		word          string
		active, ended bool
	}{
		{index.StatusActive, "active", true, false},
		{index.StatusRevoked, "revoked", false, true},
		{index.StatusSuperseded, "superseded", false, true},
		{index.StatusIssuerRevoked, "issuer key revoked", true, false},
	}
	for _, c := range cases {
		if c.s.String() != c.word || c.s.Active() != c.active || c.s.Ended() != c.ended {
			t.Errorf("%d: %q active %v ended %v; want %q %v %v", int(c.s), c.s, c.s.Active(), c.s.Ended(), c.word, c.active, c.ended)
		}
		b, err := json.Marshal(index.RecordView{Status: c.s})
		if err != nil || !strings.Contains(string(b), `"status":"`+c.word+`"`) {
			t.Errorf("%s: JSON %s, %v", c.word, b, err)
		}
		var back index.RecordView
		if err := json.Unmarshal(b, &back); err != nil || back.Status != c.s {
			t.Errorf("%s: read back %v, %v", c.word, back.Status, err)
		}
	}
	if _, err := json.Marshal(index.RecordView{Status: index.Status(9)}); err == nil {
		t.Error("an unknown status marshalled")
	}
}

// A fixed record shows what it answers and why; it showed nothing.
func TestFixedDetail(t *testing.T) {
	rec := &record.Record{Kind: record.Fixed, Predicate: record.FixedPredicate{
		Vulnerabilities: []string{"GHSA-aaaa-bbbb", "CVE-2026-1"}, Note: "bounds check added in 1.2.4",
		Evidence: []record.Evidence{{Name: "patch.diff", Ref: blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 3}}},
	}}
	want := "answers GHSA-aaaa-bbbb, CVE-2026-1: bounds check added in 1.2.4 [evidence patch.diff sha256:abababababab]"
	if got := index.Detail(rec); got != want {
		t.Errorf("detail = %q\nwant     %q", got, want)
	}
	rec.Predicate = record.FixedPredicate{Vulnerabilities: []string{"GHSA-1"}}
	if got := index.Detail(rec); got != "answers GHSA-1" {
		t.Errorf("detail without a note = %q", got)
	}
}
