package index_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/policy"
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
	// A policy refuses a comparison of record.status with any other word.
	var words []string
	for _, c := range cases {
		words = append(words, c.word)
	}
	if !slices.Equal(words, policy.StatusWords) {
		t.Errorf("the policy's status words %q; the index's are %q", policy.StatusWords, words)
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

// A key's grant that has ended is listed as ended, with its end, apart
// from the scopes its live grants hold: a key that also holds a live
// grant is active, and its end is the live grants' (none here).
func TestKeysEndedGrants(t *testing.T) {
	w := indextest.New(t)
	k := indextest.NewSigner()
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	if _, err := author.Grant(w.Ctx, w.Repo, author.KeyGrant{Key: k.Public(), Holder: "carol", Scopes: []string{"checkpoint"}, Expires: &past}, w.Root); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	if _, err := author.Grant(w.Ctx, w.Repo, author.KeyGrant{Key: k.Public(), Holder: "carol", Scopes: []string{"publish:c/*"}, Expires: &later}, w.Root); err != nil {
		t.Fatal(err)
	}
	ks, err := w.Repo.Keys(w.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range ks {
		if kv.Holder != "carol" {
			continue
		}
		if kv.Status != "active" || strings.Join(kv.Scopes, " ") != "publish:c/*" || kv.Expires == nil || !kv.Expires.Equal(later) ||
			len(kv.Ended) != 1 || !strings.HasPrefix(kv.Ended[0], "checkpoint (ended "+past.UTC().Format(time.RFC3339)) {
			t.Fatalf("carol: %+v; want active with publish:c/* until %s, checkpoint ended %s", kv, later, past)
		}
		return
	}
	t.Fatal("carol's key is not listed")
}
