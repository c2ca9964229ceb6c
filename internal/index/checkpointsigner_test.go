package index

import (
	"crypto/ed25519"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// The one check of a past checkpoint's signer, as a table: a key revoked
// since signed a tree that ends before its revocation's leaf, when the
// verifier's log or its witnesses vouch for the tree; a live checkpoint's
// check (MayCheckpoint) still refuses every revoked key.
func TestMayHaveCheckpointed(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	past := now.Add(-time.Hour)
	grant := func(expires *time.Time, scopes ...string) Grant {
		g := Grant{Holder: "server", Raw: scopes, Expires: expires, RecordID: strings.Repeat("a", 64)}
		for _, s := range scopes {
			sc, err := record.ParseScope(s)
			if err != nil {
				t.Fatal(err)
			}
			g.Scopes = append(g.Scopes, sc)
		}
		return g
	}
	revoked := func(leaf int64, gs ...Grant) *Key {
		return &Key{ID: "SHA256:k", Grants: gs, RevokedBy: strings.Repeat("b", 64), Reason: "rotated", RevokedLeaf: leaf, RevokedTime: now}
	}
	live := grant(nil, "checkpoint")
	cases := []struct {
		name            string
		k               *Key
		size            int64
		held, witnessed bool
		rule, want      string // rule "" when it may have signed
	}{
		{"not revoked", &Key{ID: "SHA256:k", Grants: []Grant{live}}, 100, false, false, "", ""},
		{"not revoked, expired", &Key{ID: "SHA256:k", Grants: []Grant{grant(&past, "checkpoint")}}, 100, true, true, RuleKeyExpired, "had expired"},
		{"before the revocation, log holds it", revoked(50, live), 50, true, false, "", ""},
		{"before the revocation, witnessed", revoked(50, live), 10, false, true, "", ""},
		{"before the revocation, nothing vouches", revoked(50, live), 10, false, false, RuleKeyRevoked,
			"was revoked by record bbbbbbbbbbbbbbbb (rotated) at leaf 50 (2026-11-22T12:00:00Z); the checkpoint of 10 leaves signed at 2026-11-22T12:00:00Z is of a tree that ends before the revocation, but the verifier's log does not hold that tree and no witness quorum cosigned it"},
		{"after the revocation", revoked(50, live), 51, true, true, RuleKeyRevoked, "is of a tree that holds the revocation (leaf 50 < 51)"},
		{"revocation not placed", revoked(0, live), 10, true, true, RuleKeyRevoked, "where the log holds it is not known"},
		{"before the revocation, grant expired", revoked(50, grant(&past, "checkpoint")), 10, true, true, RuleKeyExpired, "had expired"},
		{"before the revocation, no checkpoint scope", revoked(50, grant(nil, "snapshot")), 10, true, true, RuleScope, "signing a checkpoint needs checkpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.k.MayHaveCheckpointed(now, c.size, c.held, c.witnessed)
			if c.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *SignError
			if !errors.As(err, &se) || se.Rule != c.rule || !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("MayHaveCheckpointed = %v\nwant rule %s saying %q", err, c.rule, c.want)
			}
		})
	}
	// A live checkpoint's signer: never a revoked key.
	if err := revoked(50, live).MayCheckpoint(now); err == nil {
		t.Fatal("MayCheckpoint accepted a revoked key")
	}
}

// A revocation is placed by its file among the files of its key's
// subject, as a light client proves them; one not among them is not
// found.
func TestPlaceRevocation(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &Key{ID: keys.ID(pub), Pub: pub, RevokedBy: strings.Repeat("c", 64)}
	dir := layout.KeyDir(keys.IDHex(pub))
	at := time.Unix(1700000000, 0).UTC()
	files := []MemFile{
		{Path: layout.RecordPath(dir, strings.Repeat("a", 64)), Index: 3, Time: at.Add(-time.Hour)},
		{Path: layout.RecordPath(dir, strings.Repeat("c", 64)), Index: 9, Time: at},
	}
	if err := k.PlaceRevocation(files); err != nil || k.RevokedLeaf != 9 || !k.RevokedTime.Equal(at) {
		t.Fatalf("PlaceRevocation = %v: leaf %d at %s", err, k.RevokedLeaf, k.RevokedTime)
	}
	k = &Key{ID: keys.ID(pub), Pub: pub, RevokedBy: strings.Repeat("d", 64)}
	if err := k.PlaceRevocation(files); !errors.Is(err, fs.ErrNotExist) || k.RevokedLeaf != 0 {
		t.Fatalf("PlaceRevocation of a revocation not among the files = %v, leaf %d", err, k.RevokedLeaf)
	}
}
