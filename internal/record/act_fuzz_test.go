package record

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/keys"
)

// actSamples are root acts prepared to be signed apart: with a window and
// the index they are for.
func actSamples(t testing.TB) map[Kind]any {
	issued := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	by := issued.Add(7 * 24 * time.Hour)
	idx := strings.Repeat("cd", 32)
	key := keys.FormatPublic(signer(t).Public())
	return map[Kind]any{
		Grant:     GrantPredicate{Key: key, Holder: "alice", Scopes: []string{"publish:acme/*"}, Issued: issued, ApplyBy: &by, Index: idx},
		RevokeKey: RevokeKeyPredicate{Reason: "lost", Issued: issued, ApplyBy: &by, Index: idx},
		Root:      RootPredicate{Version: 2, Keys: []RootKey{{Key: key}}, Threshold: 1, Previous: idx, Issued: issued, ApplyBy: &by, Index: idx},
		Upstream:  UpstreamPredicate{Name: "up", URL: "https://up.example", Introduction: strings.Repeat("ef", 32), Issued: issued, ApplyBy: &by, Index: idx},
	}
}

// ParseStatement reads a root act's payload from a file someone sent: it
// never panics, refuses only with ErrMalformed, and what it accepts is a
// whole record whose act fields are consistent and which, once signed,
// parses back to the same record.
func FuzzParseStatement(f *testing.F) {
	s := signer(f)
	for _, set := range []map[Kind]any{samples(f), actSamples(f)} {
		for kind, pred := range set {
			payload, err := Build(kind, []Subject{desc}, pred)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(payload)
		}
	}
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := ParseStatement(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside ErrMalformed: %v", err)
			}
			return
		}
		if r.ID != ID(payload) || r.Predicate == nil || len(r.Signatures) != 0 {
			t.Fatalf("accepted statement is incomplete or signed: %+v", r)
		}
		if by := r.ApplyBy(); by != nil && r.Window() <= 0 {
			t.Fatalf("accepted an act whose apply_by %s is not after its issued time (window %s)", by, r.Window())
		}
		if idx := r.ActIndex(); idx != "" && (r.ApplyBy() == nil || !IsDigest(idx)) {
			t.Fatalf("accepted index %q on an act with apply_by %v", idx, r.ApplyBy())
		}
		signed, err := Sign(payload, s)
		if err != nil {
			t.Fatalf("an accepted statement does not sign into a record: %v", err)
		}
		if signed.ID != r.ID || signed.Kind != r.Kind || !reflect.DeepEqual(signed.Predicate, r.Predicate) {
			t.Fatalf("signed record %s (%s) differs from the statement %s (%s)", signed.ID, signed.Kind, r.ID, r.Kind)
		}
	})
}

// An act names its index only with a window, and by an introduction's id.
func TestActIndexNeedsWindowAndDigest(t *testing.T) {
	acts := actSamples(t)
	grant := acts[Grant].(GrantPredicate)
	noWindow := grant
	noWindow.ApplyBy = nil
	notDigest := grant
	notDigest.Index = "production"
	for name, tc := range map[string]struct {
		pred GrantPredicate
		want string
	}{
		"index without apply_by": {noWindow, "has none"},
		"index not a record id":  {notDigest, "is not an introduction's record id"},
	} {
		payload, err := Build(Grant, []Subject{desc}, tc.pred)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseStatement(payload); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a malformed record saying %q", name, err, tc.want)
		}
	}
	payload, err := Build(Grant, []Subject{desc}, grant)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseStatement(payload)
	if err != nil {
		t.Fatal(err)
	}
	if r.ActIndex() != grant.Index || r.Window() != 7*24*time.Hour {
		t.Fatalf("act index %q window %s, want %q and 168h", r.ActIndex(), r.Window(), grant.Index)
	}
}
