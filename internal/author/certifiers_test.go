package author

import (
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/record"
)

// TestAttackTwoCertifiersOneRecord: two certifiers that say the same
// thing of one version in the same second (the clock of authoring has
// one-second steps) must sign two payloads, else the second record has
// the first one's id and the index refuses it as a rewrite: a count of
// 2 could not be met. Each kind a certifier signs names its issuer (a
// test result in its run entry, cairn's own predicates in issuer).
func TestAttackTwoCertifiersOneRecord(t *testing.T) {
	subjects := []record.Subject{{Name: "acme/log@1.0.0", Digest: map[string]string{"sha256": strings.Repeat("a", 64)}}}
	at(time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC), func() {
		for _, c := range []Certification{
			{Kind: record.Tested},
			{Kind: record.Audited},
			{Kind: record.Reviewed, Note: "read it"},
			{Kind: record.Scanned},
			{Kind: record.Fixed, VulnID: "GHSA-1"},
		} {
			var ids []string
			for _, issuer := range []string{"SHA256:a", "SHA256:b"} {
				pred, err := c.predicate(nil, issuer)
				if err != nil {
					t.Fatal(err)
				}
				payload, err := record.Build(c.Kind, subjects, pred)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := record.ParseStatement(payload); err != nil {
					t.Fatalf("%s: %v", c.Kind, err)
				}
				ids = append(ids, record.ID(payload))
			}
			if ids[0] == ids[1] {
				t.Errorf("%s: two issuers' records in one second have one id %.16s", c.Kind, ids[0])
			}
		}
	})
}
