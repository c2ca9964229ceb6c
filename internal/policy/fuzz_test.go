package policy

import (
	"testing"

	"cairn.dev/cairn/internal/record"
)

// FuzzParse: any bytes give a compiled policy or an error, never a panic;
// a policy has rules, and evaluates without a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(basePolicy))
	f.Add([]byte("forbid:\n  - {name: x, expr: 'pkg.name == \"a\"'}\n"))
	f.Add([]byte("enforcement: warn\nissuers: {ci: [a, b]}\nrequire:\n  - {name: t, property: audited, by: ci, count: 2, max_age: 1d12h, enforcement: deny}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("policy.yaml", data)
		if err == nil && len(p.Rules) == 0 {
			t.Fatal("accepted a policy without rules")
		}
		if err == nil {
			v := newVersion("acme/a", "1.0.0")
			v.addBy(record.Audited, "SHA256:a", "a", "acme", certified(""))
			v.addBy(record.Audited, "SHA256:b", "", "acme", certified(""))
			p.Evaluate(v.subject(), judged)
		}
	})
}
