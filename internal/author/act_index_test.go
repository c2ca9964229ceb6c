package author

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// Attack: staging and production share their root keys. An act prepared
// and signed for staging, applied unchanged to production, is refused:
// it names staging's introduction, not production's.
func TestActForAnotherIndexRefused(t *testing.T) {
	f := newTwoRoots(t) // staging
	prod, _, err := index.Init(f.ctx, filepath.Join(t.TempDir(), "production"), []keys.Signer{f.r1, f.r2}, []string{"r1 (production)", "r2 (production)"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	if prod.Config.Introduction == f.repo.Config.Introduction {
		t.Fatal("staging and production share their introduction: the test needs two indexes")
	}
	a := f.grantAct(t)
	if a.Index() != f.repo.Config.Introduction {
		t.Fatalf("the act names index %q, want staging's introduction %s", a.Index(), f.repo.Config.Introduction)
	}
	sigs := []Detached{sign(t, a, f.r1, "r1.sig"), sign(t, a, f.r2, "r2.sig")}
	_, err = Apply(f.ctx, prod, carry(t, a), sigs)
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleActWindow {
		t.Fatalf("staging's act applied to production: got %v, want rule %s", err, index.RuleActWindow)
	}
	if !strings.Contains(err.Error(), f.repo.Config.Introduction) || !strings.Contains(err.Error(), prod.Config.Introduction) {
		t.Fatalf("the refusal does not name both introductions as evidence: %v", err)
	}
	if !strings.Contains(re.Hint(), "prepared from") {
		t.Fatalf("hint %q does not say an act applies to the index it was prepared from", re.Hint())
	}
	st, err := prod.State(f.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := st.Key(keys.ID(f.new.Public())); k != nil {
		t.Fatal("the key is granted in production after the refusal")
	}
	// In staging, where it was prepared, it applies.
	if _, err := Apply(f.ctx, f.repo, carry(t, a), sigs); err != nil {
		t.Fatalf("the act does not apply to the index it was prepared for: %v", err)
	}
}

// signedApart builds an act's statement by hand (as a tampering or old
// preparer would) and signs it with both roots.
func (f *twoRoots) signedApart(t *testing.T, by time.Time, idx string) (*Act, []Detached) {
	t.Helper()
	payload, err := grantStatement(KeyGrant{Key: f.new.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, &by, idx)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := record.ParseStatement(payload)
	if err != nil {
		t.Fatal(err)
	}
	a := &Act{rec: rec}
	return a, []Detached{sign(t, a, f.r1, "r1.sig"), sign(t, a, f.r2, "r2.sig")}
}

// An act signed apart that names no index, or whose window is longer than
// record.MaxActWindow, is refused by the index's rules.
func TestActRuleRefusesNoIndexAndLongWindow(t *testing.T) {
	f := newTwoRoots(t)
	for _, tc := range []struct {
		name, idx string
		window    time.Duration
		want      string
	}{
		{"no index", "", time.Hour, "names no index"},
		{"window too long", f.repo.Config.Introduction, 100 * 365 * 24 * time.Hour, "at most " + record.MaxActWindow.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, sigs := f.signedApart(t, now().Add(tc.window), tc.idx)
			_, err := Apply(f.ctx, f.repo, a, sigs)
			var re *index.RuleError
			if !errors.As(err, &re) || re.Rule != index.RuleActWindow || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want rule %s saying %q", err, index.RuleActWindow, tc.want)
			}
		})
	}
	// The longest window allowed applies.
	a, sigs := f.signedApart(t, now().Add(record.MaxActWindow), f.repo.Config.Introduction)
	if _, err := Apply(f.ctx, f.repo, a, sigs); err != nil {
		t.Fatalf("an act with a window of %s is refused: %v", record.MaxActWindow, err)
	}
}

// Prepare refuses a window longer than record.MaxActWindow.
func TestPrepareWindowCapped(t *testing.T) {
	f := newTwoRoots(t)
	g := KeyGrant{Key: f.new.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}
	if _, err := PrepareGrant(f.repo, g, 876000*time.Hour); err == nil || !strings.Contains(err.Error(), "longer than the "+record.MaxActWindow.String()) {
		t.Fatalf("prepared an act with a 100-year window: %v", err)
	}
	if _, err := PrepareGrant(f.repo, g, record.MaxActWindow); err != nil {
		t.Fatalf("the longest window allowed is refused: %v", err)
	}
}

// Below the threshold, an act signed apart is told to collect more
// signature files, not to pass --key once per key.
func TestActBelowThresholdHint(t *testing.T) {
	f := newTwoRoots(t)
	a := f.grantAct(t)
	_, err := Apply(f.ctx, f.repo, a, []Detached{sign(t, a, f.r1, "r1.sig")})
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleThreshold {
		t.Fatalf("got %v, want rule %s", err, index.RuleThreshold)
	}
	if h := re.Hint(); !strings.Contains(h, "collect more signature files (cairn root sign)") || strings.Contains(h, "--key") {
		t.Fatalf("hint %q, want one that asks for more signature files", h)
	}
}
