package record

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func policyRecord(t *testing.T, p PolicyPredicate) ([]byte, error) {
	t.Helper()
	payload, err := Build(Policy, []Subject{{Name: p.Name, Digest: map[string]string{"sha256": PolicyDigest(p.Policy)}}}, p)
	if err != nil {
		return nil, err
	}
	r, err := Sign(payload, signer(t))
	if err != nil {
		return nil, err
	}
	return r.Raw, nil
}

// A policy record names its policy, carries a text of bounded size, and
// names the version before it by record id.
func TestPolicyPredicate(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	text := "forbid:\n  - {property: withdrawn}\n"
	good := PolicyPredicate{Name: "org-default", Policy: text, Issued: now}
	raw, err := policyRecord(t, good)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Predicate.(PolicyPredicate); r.Kind != Policy || p.Policy != text || r.Statement.Subject[0].SHA256() != PolicyDigest(text) {
		t.Errorf("parsed %s %+v", r.Kind, p)
	}
	for _, c := range []struct {
		why  string
		mut  func(p *PolicyPredicate)
		want string
	}{
		{"uppercase name", func(p *PolicyPredicate) { p.Name = "Org" }, "policy name"},
		{"a path in the name", func(p *PolicyPredicate) { p.Name = "org/x" }, "policy name"},
		{"empty text", func(p *PolicyPredicate) { p.Policy = " \n" }, "want 1 to"},
		{"text over the cap", func(p *PolicyPredicate) { p.Policy = strings.Repeat("#", MaxPolicyText+1) }, "want 1 to"},
		{"previous not a record id", func(p *PolicyPredicate) { p.Previous = "abc" }, "not a record id"},
	} {
		p := good
		c.mut(&p)
		raw, err := policyRecord(t, p)
		if err == nil {
			_, err = Parse(raw)
		}
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrMalformed saying %q", c.why, err, c.want)
		}
	}
}

// A text at the cap fits a record's envelope (MaxSize), even escaped.
func TestPolicyTextAtCapFits(t *testing.T) {
	text := strings.Repeat("# \"quoted\" line\n", MaxPolicyText/16)
	if _, err := policyRecord(t, PolicyPredicate{Name: "big", Policy: text[:MaxPolicyText], Issued: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyScope(t *testing.T) {
	s, err := ParseScope("policy:org-*")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind Kind
		name string
		want bool
	}{
		{Policy, "org-default", true},
		{Policy, "team-a", false},
		{Label, "org-default", false},
		{Authored, "org-default", false},
	} {
		if got := s.Allows(c.kind, c.name); got != c.want {
			t.Errorf("policy:org-* allows %s on %s = %v, want %v", c.kind, c.name, got, c.want)
		}
	}
	label, _ := ParseScope("label:*")
	if label.Allows(Policy, "org-default") {
		t.Error("a label scope allows a policy")
	}
	for _, bad := range []string{"policy", "policy:", "policy:Org", "policy:a/b", "policy:" + strings.Repeat("p", 64)} {
		if _, err := ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) accepted", bad)
		}
	}
	if got := Needed(Policy, "org-default"); got != "policy:org-default" {
		t.Errorf("Needed = %q", got)
	}
}
