package index

// Hint says what to do about a broken rule, in a line a person can act
// on; "" when there is nothing better to say than the error itself. The
// CLI prints it after the error and the server's pre-receive hook sends
// it to the pushing client, so both say the same thing.
func (e *RuleError) Hint() string {
	if e.hint != "" {
		return e.hint
	}
	if e.Apart && (e.Rule == RuleThreshold || e.Rule == RuleRootRotation) {
		return ApartThresholdHint
	}
	return RuleHint(e.Rule)
}

// ApartThresholdHint is the hint for a root act signed apart that lacks
// signatures: its holders each sign it, on their own machine.
const ApartThresholdHint = "collect more signature files (cairn root sign) from other root key holders, then cairn root apply ACT-FILE SIG-FILE..."

// RuleHint is the hint for a broken rule named rule (see RuleError.Hint).
func RuleHint(rule string) string {
	switch rule {
	case RuleScope:
		return "ask the repository's root to grant the scope: cairn key grant --key ROOT.key KEY.pub --holder NAME --scope SCOPE"
	case RuleSignature:
		return "sign with a key the root has granted (cairn key list shows them)"
	case RuleKeyRevoked, RuleKeyExpired:
		return "this key may no longer sign: use another granted key, or ask the root for a new grant on a new key"
	case RulePublishOnce:
		return "published versions never change: bump the version in cairn-package.yaml and publish again"
	case RuleIssuerOnly:
		return "ask the record's issuer to revoke it, or a threshold of root keys"
	case RuleThreshold, RuleRootRotation:
		return "sign with more distinct root keys (--key once per key)"
	case RuleAppendOnly:
		return "the index only grows: end a record with 'cairn revoke' or a superseding certification instead of editing history"
	case RuleEndOnce:
		return "a record is ended once: leave the ended record be; to replace its replacement, supersede that one, and name only a live record as replacement"
	case RuleActWindow:
		return "an act signed apart applies only to the index it was prepared from, within its window: prepare it again here (--unsigned) and have the root key holders sign it anew (cairn root sign)"
	case RulePolicy:
		return "fix the policy's text (the error names its line and rule), and publish each version on top of the latest ('cairn policy log NAME' shows them)"
	case RuleFoldedName:
		return "names that differ only in case are one name: publish under the name already published (cairn search shows it), or choose another"
	case RuleTimeOrder:
		return "push with 'cairn push', which re-dates main's unpushed commits; if it is refused too, set this machine's clock right"
	}
	return ""
}
