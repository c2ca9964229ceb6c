package policy

import "testing"

// FuzzParse: any bytes give a compiled policy or an error, never a panic;
// a policy has rules.
func FuzzParse(f *testing.F) {
	f.Add([]byte(basePolicy))
	f.Add([]byte("forbid:\n  - {name: x, expr: 'pkg.name == \"a\"'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("policy.yaml", data)
		if err == nil && len(p.Rules) == 0 {
			t.Fatal("accepted a policy without rules")
		}
	})
}
