package record

import (
	"fmt"
	"slices"
	"strings"
)

// FixedStatus says how a fixed record answers a vulnerability, in
// OpenVEX's words (https://openvex.dev, spec v0.2.0).
type FixedStatus string

// The statuses of a fixed record. A record without one (every record
// made before cairn said which) is StatusFixed.
const (
	StatusFixed       FixedStatus = "fixed"        // the version was affected and is no longer
	StatusNotAffected FixedStatus = "not_affected" // the version never was: a justification or an impact statement says why
)

// Justifications are OpenVEX's reasons why a version is not affected,
// the only values FixedPredicate.Justification takes.
var Justifications = []string{
	"component_not_present",
	"vulnerable_code_not_present",
	"vulnerable_code_not_in_execute_path",
	"vulnerable_code_cannot_be_controlled_by_adversary",
	"inline_mitigations_already_exist",
}

// Answer is the status of a fixed record: its Status, StatusFixed when
// it names none.
func (p FixedPredicate) Answer() FixedStatus {
	if p.Status == "" {
		return StatusFixed
	}
	return p.Status
}

// checkAnswer checks a fixed record's OpenVEX terms: a known status; a
// justification (one of Justifications) and an impact statement only
// for not_affected, which needs at least one of them.
func (p FixedPredicate) checkAnswer() error {
	switch p.Status {
	case "", StatusFixed:
		if p.Justification != "" || p.ImpactStatement != "" {
			return fmt.Errorf("a fixed record with status fixed takes no justification or impact statement: they say why a version is not_affected")
		}
		return nil
	case StatusNotAffected:
	default:
		return fmt.Errorf("fixed record status %q: want %s or %s", p.Status, StatusFixed, StatusNotAffected)
	}
	if p.Justification == "" && strings.TrimSpace(p.ImpactStatement) == "" {
		return fmt.Errorf("a not_affected record says why: a justification (%s) or an impact statement", strings.Join(Justifications, ", "))
	}
	if p.Justification != "" && !slices.Contains(Justifications, p.Justification) {
		return fmt.Errorf("justification %q: want one of %s", p.Justification, strings.Join(Justifications, ", "))
	}
	if len(p.ImpactStatement) > 4096 {
		return fmt.Errorf("impact statement is %d bytes, over 4096", len(p.ImpactStatement))
	}
	return nil
}

// The annotations of a vulnerable result that carry its OpenVEX terms
// (in-toto's vulns predicate keeps what it does not define in
// annotations, as cairn keeps "affects" and "note").
const (
	// AnnotationStatus, set to UnderInvestigation, declares that whether
	// the version is affected is being investigated. Any other value, or
	// none (every result made before cairn wrote it), is affected.
	AnnotationStatus = "status"
	// AnnotationAction says what to do about an affected version (an
	// OpenVEX action statement).
	AnnotationAction = "action"
)

// UnderInvestigation is the AnnotationStatus of a vulnerability whose
// effect on the version is being investigated.
const UnderInvestigation = "under_investigation"

// UnderInvestigation reports whether the result declares its
// vulnerability as being investigated rather than affecting the version.
func (v VulnResult) UnderInvestigation() bool {
	return v.Annotation(AnnotationStatus) == UnderInvestigation
}
