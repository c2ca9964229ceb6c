package author

import (
	"fmt"
	"slices"

	"cairn.dev/cairn/internal/record"
)

// VEXTerms are what a certification says in OpenVEX's terms
// (https://openvex.dev): how a fixed record answers, why a version is
// not affected, that a vulnerability is under investigation, what to do
// about an affected version. The zero value says nothing more than
// cairn's records always said.
type VEXTerms struct {
	// Status is, on a fixed record, "fixed" (the default) or
	// "not_affected"; on a vulnerable record, "affected" (the default)
	// or "under_investigation".
	Status string
	// Justification (one of record.Justifications) and Impact say why a
	// not_affected version is not affected: at least one of them.
	Justification string
	Impact        string
	// Action says what to do about an affected version (vulnerable).
	Action string
}

func (v VEXTerms) zero() bool { return v == VEXTerms{} }

// fixed sets p's OpenVEX terms; the record's own rules
// (record.FixedPredicate) check them once it is built.
func (v VEXTerms) fixed(p record.FixedPredicate) (any, error) {
	if v.Action != "" {
		return nil, fmt.Errorf("--action says what to do about an affected version: it goes with --property vulnerable, not fixed")
	}
	switch v.Status {
	case "", string(record.StatusFixed):
		if v.Justification != "" || v.Impact != "" {
			return nil, fmt.Errorf("--justification and --impact say why a version is not affected: give --status not_affected")
		}
	case string(record.StatusNotAffected):
		if v.Justification == "" && v.Impact == "" {
			return nil, fmt.Errorf("--status not_affected says why: give --justification (%s) or --impact TEXT", justifications())
		}
		if v.Justification != "" && !slices.Contains(record.Justifications, v.Justification) {
			return nil, fmt.Errorf("--justification %q: want one of %s", v.Justification, justifications())
		}
		p.Status, p.Justification, p.ImpactStatement = record.StatusNotAffected, v.Justification, v.Impact
	default:
		return nil, fmt.Errorf("--status %q: a fixed record's status is fixed or not_affected", v.Status)
	}
	return p, nil
}

// vulnerable returns results with v's terms as annotations (the status
// under_investigation, an action), copied: the caller's are not changed.
func (v VEXTerms) vulnerable(results []record.VulnResult) ([]record.VulnResult, error) {
	if v.Justification != "" || v.Impact != "" {
		return nil, fmt.Errorf("--justification and --impact say why a version is not affected: they go with --property fixed --status not_affected")
	}
	var add []map[string]string
	switch v.Status {
	case "", "affected":
	case record.UnderInvestigation:
		if v.Action != "" {
			return nil, fmt.Errorf("--action says what to do about an affected version, not one under investigation")
		}
		add = append(add, map[string]string{record.AnnotationStatus: record.UnderInvestigation})
	default:
		return nil, fmt.Errorf("--status %q: a vulnerable record's status is affected (the default) or %s", v.Status, record.UnderInvestigation)
	}
	if v.Action != "" {
		add = append(add, map[string]string{record.AnnotationAction: v.Action})
	}
	if len(add) == 0 {
		return results, nil
	}
	out := make([]record.VulnResult, len(results))
	for i, r := range results {
		r.Annotations = append(slices.Clone(r.Annotations), add...)
		out[i] = r
	}
	return out, nil
}

// none refuses VEX terms on a kind that has none.
func (v VEXTerms) none(kind record.Kind) error {
	if v.zero() || kind == record.Fixed || kind == record.Vulnerable {
		return nil
	}
	return fmt.Errorf("--status, --justification, --impact and --action go with --property fixed or vulnerable, not %s", kind)
}

func justifications() string {
	s := ""
	for i, j := range record.Justifications {
		if i > 0 {
			s += ", "
		}
		s += j
	}
	return s
}
