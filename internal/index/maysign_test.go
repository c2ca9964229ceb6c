package index

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/record"
)

// The one key-may-sign check, as a table: the rules ask it of every
// signature and the certifier of every version it would sign.
func TestMaySign(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	grant := func(expires *time.Time, scopes ...string) Grant {
		g := Grant{Holder: "alice", Raw: scopes, Expires: expires, RecordID: strings.Repeat("a", 64)}
		for _, s := range scopes {
			sc, err := record.ParseScope(s)
			if err != nil {
				t.Fatal(err)
			}
			g.Scopes = append(g.Scopes, sc)
		}
		return g
	}
	key := func(gs ...Grant) *Key { return &Key{ID: "SHA256:k", Grants: gs} }
	revoked := key(grant(nil, "publish:acme/*"))
	revoked.RevokedBy, revoked.Reason = strings.Repeat("b", 64), "lost"

	cases := []struct {
		name        string
		k           *Key
		kind        record.Kind
		subject     string
		certifyOnly bool
		rule        string // "" when it may sign
		want        string
	}{
		{"publish scope, authored", key(grant(nil, "publish:acme/*")), record.Authored, "acme/log", false, "", ""},
		{"publish scope, deprecated", key(grant(nil, "publish:acme/*")), record.Deprecated, "acme/log", false, "", ""},
		{"publish scope, withdrawn", key(grant(nil, "publish:acme/*")), record.Withdrawn, "acme/log", false, "", ""},
		{"publish scope, another namespace", key(grant(nil, "publish:acme/*")), record.Authored, "evil/log", false, RuleScope, "need publish:evil/log"},
		{"publish scope, audited", key(grant(nil, "publish:acme/*")), record.Audited, "acme/log", false, RuleScope, "has scopes [publish:acme/*]; audited records on acme/log need certify:audited"},
		{"publish scope on an upstream's version", key(grant(nil, "publish:acme/*")), record.Deprecated, "acme/log", true, RuleScope, "need certify:deprecated"},
		{"certify scope on an upstream's version", key(grant(nil, "certify:audited")), record.Audited, "acme/log", true, "", ""},
		{"certify scope, other kind", key(grant(nil, "certify:audited")), record.Vulnerable, "acme/log", false, RuleScope, "need certify:vulnerable"},
		{"certify scope with a pattern", key(grant(nil, "certify:audited:acme/*")), record.Audited, "acme/log", false, "", ""},
		{"certify scope outside its pattern", key(grant(nil, "certify:audited:acme/*")), record.Audited, "bob/log", false, RuleScope, "need certify:audited"},
		{"snapshot scope", key(grant(nil, "snapshot")), record.Snapshot, "anything", false, "", ""},
		{"label scope", key(grant(nil, "label:lts-*")), record.Label, "lts-2026", false, "", ""},
		{"label scope, other label", key(grant(nil, "label:lts-*")), record.Label, "stable", false, RuleScope, "need label:stable"},
		{"checkpoint scope signs no record", key(grant(nil, "checkpoint")), record.Audited, "acme/log", false, RuleScope, "has scopes [checkpoint]"},
		{"revoke needs no scope", key(grant(nil, "checkpoint")), record.Revoke, "acme/log@1.0.0", false, "", ""},
		{"supersede needs no scope", key(grant(nil, "snapshot")), record.Supersede, "acme/log@1.0.0", false, "", ""},
		{"revoked key", revoked, record.Authored, "acme/log", false, RuleKeyRevoked, "(holder alice) was revoked by record bbbbbbbbbbbbbbbb (lost)"},
		{"revoked key ends nothing", revoked, record.Revoke, "acme/log@1.0.0", false, RuleKeyRevoked, "signs nothing after its revocation"},
		{"expired grant", key(grant(&past, "publish:acme/*")), record.Authored, "acme/log", false, RuleKeyExpired, "had expired at 2026-11-22T12:00:00Z"},
		{"expired grant ends nothing", key(grant(&past, "publish:acme/*")), record.Revoke, "acme/log@1.0.0", false, RuleKeyExpired, "had expired"},
		{"live grant", key(grant(&future, "publish:acme/*")), record.Authored, "acme/log", false, "", ""},
		{"expired grant's scope does not count", key(grant(&past, "certify:audited"), grant(&future, "publish:acme/*")), record.Audited, "acme/log", false, RuleScope, "has scopes [publish:acme/*]"},
		{"some name: certify scope with a pattern", key(grant(nil, "certify:audited:acme/*")), record.Audited, "", true, "", ""},
		{"some name: publish scope does not certify", key(grant(nil, "publish:*")), record.Deprecated, "", true, RuleScope, "has scopes [publish:*]"},
		{"some name: other certify kind", key(grant(nil, "certify:audited")), record.Vulnerable, "", true, RuleScope, "need certify:vulnerable"},
		{"some name: expired grant", key(grant(&past, "certify:audited")), record.Audited, "", true, RuleKeyExpired, "had expired"},
		{"second grant's scope counts", key(grant(nil, "publish:acme/*"), grant(nil, "certify:audited")), record.Audited, "acme/log", false, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.k.MaySign(now, c.kind, c.subject, c.certifyOnly)
			if c.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *SignError
			if !errors.As(err, &se) || se.Rule != c.rule || !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v; want a SignError of rule %s saying %q", err, c.rule, c.want)
			}
		})
	}
}
