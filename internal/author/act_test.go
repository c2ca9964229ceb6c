package author

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

func newSigner(t *testing.T) keys.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewSigner(priv)
}

// twoRoots is an index whose root is r1 and r2, threshold 2, and a key
// to grant.
type twoRoots struct {
	ctx         context.Context
	repo        *index.Repo
	r1, r2, new keys.Signer
}

func newTwoRoots(t *testing.T) *twoRoots {
	t.Helper()
	f := &twoRoots{ctx: context.Background(), r1: newSigner(t), r2: newSigner(t), new: newSigner(t)}
	r, _, err := index.Init(f.ctx, filepath.Join(t.TempDir(), "repo"), []keys.Signer{f.r1, f.r2}, []string{"r1", "r2"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.repo = r
	return f
}

// at runs fn with the clock of authoring set to t.
func at(t time.Time, fn func()) {
	defer func(old func() time.Time) { now = old }(now)
	now = func() time.Time { return t.UTC().Truncate(time.Second) }
	fn()
}

// carry sends an act to a holder's machine and back, as its file.
func carry(t *testing.T, a *Act) *Act {
	t.Helper()
	data, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseAct(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *twoRoots) grantAct(t *testing.T) *Act {
	t.Helper()
	a, err := PrepareGrant(f.repo, KeyGrant{Key: f.new.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sign(t *testing.T, a *Act, s keys.Signer, source string) Detached {
	t.Helper()
	sig, err := carry(t, a).Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	return Detached{Source: source, Signature: sig}
}

// An act prepared at 09:00, signed by each holder apart and applied at
// 15:00 enters the index, as the record one process signs: the same
// envelope, the key granted.
func TestActAppliedHoursLater(t *testing.T) {
	f := newTwoRoots(t)
	var a *Act
	at(time.Now().Add(-6*time.Hour), func() { a = f.grantAct(t) })
	s1, s2 := sign(t, a, f.r1, "r1.sig"), sign(t, a, f.r2, "r2.sig")
	added, err := Apply(f.ctx, f.repo, carry(t, a), []Detached{s1, s2})
	if err != nil {
		t.Fatal(err)
	}
	if len(added.Records) != 1 || added.Records[0] != a.ID() {
		t.Fatalf("added %v, want the act %s", added.Records, a.ID())
	}
	// The same envelope as signing in one process makes.
	want, err := record.Sign(a.rec.Payload, f.r1, f.r2)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := f.repo.Record(f.ctx, a.ID())
	if err != nil {
		t.Fatalf("the act's record %s is not on main: %v", a.ID(), err)
	}
	if string(data) != string(want.Raw) {
		t.Fatalf("stored envelope\n%s\nwant the one-process envelope\n%s", data, want.Raw)
	}
	st, err := f.repo.State(f.ctx, added.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := st.Key(keys.ID(f.new.Public())); k == nil || k.Holder() != "alice" {
		t.Fatalf("key not granted to alice after apply: %+v", k)
	}
}

// A window that has passed: the act no longer enters the index, and a
// holder is not asked to sign it.
func TestActWindowPassed(t *testing.T) {
	f := newTwoRoots(t)
	var a *Act
	var s1, s2 Detached
	at(time.Now().Add(-3*time.Hour), func() {
		var err error
		if a, err = PrepareGrant(f.repo, KeyGrant{Key: f.new.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, time.Hour); err != nil {
			t.Fatal(err)
		}
		s1, s2 = sign(t, a, f.r1, "r1.sig"), sign(t, a, f.r2, "r2.sig")
	})
	_, err := Apply(f.ctx, f.repo, a, []Detached{s1, s2})
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleActWindow {
		t.Fatalf("applied after its window: got %v, want rule %s", err, index.RuleActWindow)
	}
	// The same rule, before anything is signed (exit 3, as root apply).
	if _, err := a.Sign(f.r1); !errors.As(err, &re) || re.Rule != index.RuleActWindow || !strings.Contains(err.Error(), "was to be applied by") {
		t.Fatalf("signed an act whose window passed: %v, want rule %s", err, index.RuleActWindow)
	}
}

// Each attack on the detached flow is refused with the evidence, and
// nothing enters the index.
func TestActAttacks(t *testing.T) {
	f := newTwoRoots(t)
	a := f.grantAct(t)
	other, err := PrepareGrant(f.repo, KeyGrant{Key: f.new.Public(), Holder: "alice", Scopes: []string{"publish:*"}}, DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	outsider := newSigner(t)
	// The act's file edited after signing: its scope widened.
	edited := func() *Act {
		c, err := record.ParseStatement([]byte(strings.Replace(string(a.rec.Payload), "publish:acme/*", "publish:*", 1)))
		if err != nil {
			t.Fatal(err)
		}
		return carry(t, &Act{rec: c})
	}()
	s1, s2 := sign(t, a, f.r1, "r1.sig"), sign(t, a, f.r2, "r2.sig")
	for _, tc := range []struct {
		name string
		act  *Act
		sigs []Detached
		want string // in the error
		sig  bool   // a SignatureError
	}{
		{"non-root key", a, []Detached{s1, sign(t, a, outsider, "outsider.sig")}, "is not a root key", true},
		{"same key twice", a, []Detached{s1, {Source: "r1-again.sig", Signature: s1.Signature}}, "the key signed already (r1.sig)", true},
		{"signature over another act", a, []Detached{s1, sign(t, other, f.r2, "r2-other.sig")}, "does not verify over this act", true},
		{"act edited after signing", edited, []Detached{s1, s2}, "does not verify over this act", true},
		{"below threshold", a, []Detached{s1}, "signed by 1 distinct root key(s) of root version 1; it needs 2", false},
		{"forged signature", a, []Detached{s1, {Source: "forged.sig", Signature: dsse.Signature{KeyID: s2.KeyID, Sig: s1.Sig}}}, "does not verify over this act", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.repo.Head(f.ctx, index.MainRef)
			_, err := Apply(f.ctx, f.repo, tc.act, tc.sigs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			var se *SignatureError
			if tc.sig != errors.As(err, &se) {
				t.Fatalf("SignatureError: got %v (%T), want %v", err, err, tc.sig)
			}
			if tc.sig && (se.Source == "" || se.KeyID == "" || se.Act == "") {
				t.Fatalf("a signature error without its evidence: %+v", se)
			}
			if !tc.sig {
				var re *index.RuleError
				if !errors.As(err, &re) || re.Rule != index.RuleThreshold {
					t.Fatalf("got %v, want rule %s", err, index.RuleThreshold)
				}
			}
			if head, _ := f.repo.Head(f.ctx, index.MainRef); head != before {
				t.Fatalf("main moved to %s on a refused act", head)
			}
		})
	}
	// And the honest signatures still apply.
	if _, err := Apply(f.ctx, f.repo, a, []Detached{s2, s1}); err != nil {
		t.Fatal(err)
	}
}

// A rotation signed apart by a threshold of the old root and of the new.
func TestActRotation(t *testing.T) {
	f := newTwoRoots(t)
	n1, n2 := newSigner(t), newSigner(t)
	a, err := PrepareRotateRoot(f.ctx, f.repo, []ed25519.PublicKey{n1.Public(), n2.Public()}, 1, DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(f.ctx, f.repo, a, []Detached{sign(t, a, f.r1, "r1.sig"), sign(t, a, f.r2, "r2.sig")}); err == nil || !strings.Contains(err.Error(), "of the new root") {
		t.Fatalf("rotation without a new key's signature: %v", err)
	}
	if _, err := Apply(f.ctx, f.repo, a, []Detached{sign(t, a, f.r1, "r1.sig"), sign(t, a, f.r2, "r2.sig"), sign(t, a, n2, "n2.sig")}); err != nil {
		t.Fatal(err)
	}
	st, _ := headState(f.ctx, f.repo)
	if root, _ := st.Root(); root.Version != 2 || root.Threshold != 1 {
		t.Fatalf("root after rotation: %+v", root)
	}
}

// An act's file carries no signature; a record's envelope is refused.
func TestParseActRefusesSigned(t *testing.T) {
	f := newTwoRoots(t)
	a := f.grantAct(t)
	rec, err := record.Sign(a.rec.Payload, f.r1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAct(rec.Raw); err == nil || !strings.Contains(err.Error(), "signatures travel apart") {
		t.Fatalf("a signed envelope taken for an act: %v", err)
	}
}
