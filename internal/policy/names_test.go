package policy

import "testing"

// A rule's packages: pattern covers the names a scope's would
// (record.MatchName): every name beneath one it matches, case-folded, so
// that a rule on example.com/* does not let example.com/greet/v2 or
// Example.com/Greet through unjudged.
func TestPackagesCoverNamesBeneath(t *testing.T) {
	p := mustParse(t, `
require:
  - name: audited
    property: audited
    packages: "example.com/*"
`)
	for name, applies := range map[string]bool{
		"example.com/greet":          true,
		"example.com/greet/v2":       true,
		"example.com/Greet/v2":       true,
		"example.org/greet":          false,
		"acme/greet":                 false,
		"example.com/greet/internal": true,
	} {
		v := newVersion(name, "2.0.0")
		if r := rule(t, p.Evaluate(v.subject(), judged), "audited"); r.Applies != applies {
			t.Errorf("%s: rule applies %v, want %v (%s)", name, r.Applies, applies, r.Reason)
		}
	}
}
