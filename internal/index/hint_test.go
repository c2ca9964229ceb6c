package index_test

import (
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index"
)

// Each broken rule that a person can act on says what to do, and a root
// act signed apart is told to collect signature files, not to pass --key.
func TestRuleHints(t *testing.T) {
	for _, tc := range []struct {
		err  *index.RuleError
		want string
		not  string
	}{
		{&index.RuleError{Rule: index.RuleThreshold}, "--key once per key", ""},
		{&index.RuleError{Rule: index.RuleThreshold, Apart: true}, "collect more signature files (cairn root sign) from other root key holders", "--key"},
		{&index.RuleError{Rule: index.RuleRootRotation, Apart: true}, "collect more signature files", "--key"},
		{&index.RuleError{Rule: index.RuleEndOnce}, "a record is ended once", ""},
		{&index.RuleError{Rule: index.RulePolicy}, "cairn policy log NAME", ""},
		{&index.RuleError{Rule: index.RuleActWindow}, "prepare it again here (--unsigned)", ""},
		{&index.RuleError{Rule: index.RuleActWindow, Apart: true}, "cairn root sign", ""},
	} {
		h := tc.err.Hint()
		if !strings.Contains(h, tc.want) || (tc.not != "" && strings.Contains(h, tc.not)) {
			t.Errorf("rule %s (apart %v): hint %q, want %q and not %q", tc.err.Rule, tc.err.Apart, h, tc.want, tc.not)
		}
	}
}
