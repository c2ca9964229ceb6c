package record

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Severity is how bad a vulnerability is, on the one scale cairn ranks
// by: none, low, medium, high, critical (CVSS v3's qualitative scale).
// Severities compare as their order: SeverityHigh > SeverityMedium.
//
// ParseSeverity reads the words the severity field uses and CVSS base
// scores. GHSA (and OSV's database_specific.severity for GHSA entries)
// says MODERATE where CVSS and NVD say medium: "moderate" is read as
// SeverityMedium, the same rank, and written back as "medium". There is
// no separate moderate severity: one rank, one value.
type Severity int

// The severities, lowest first. The zero value is SeverityNone (a CVSS
// score of 0.0), below every other: "at or above none" is any severity.
const (
	SeverityNone     Severity = iota // CVSS 0.0
	SeverityLow                      // CVSS 0.1–3.9
	SeverityMedium                   // CVSS 4.0–6.9; GHSA's "moderate"
	SeverityHigh                     // CVSS 7.0–8.9
	SeverityCritical                 // CVSS 9.0–10.0
)

// Severities lists the severities, lowest first.
var Severities = []Severity{SeverityNone, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

var severityNames = [...]string{"none", "low", "medium", "high", "critical"}

// String returns the severity's name: none, low, medium, high or critical.
func (s Severity) String() string {
	if s < SeverityNone || s > SeverityCritical {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// Rank returns the severity's place on the scale, 0 (none) to 4
// (critical).
func (s Severity) Rank() int { return int(s) }

// Compare returns -1, 0 or +1 as s is below, the same as, or above t.
func (s Severity) Compare(t Severity) int {
	switch {
	case s < t:
		return -1
	case s > t:
		return 1
	}
	return 0
}

// AtLeast reports whether s is t or above.
func (s Severity) AtLeast(t Severity) bool { return s >= t }

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) {
	if s < SeverityNone || s > SeverityCritical {
		return nil, fmt.Errorf("severity %d is not on the scale none … critical", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a severity as ParseSeverity does.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// decimalRE is a CVSS base score as written: digits, an optional
// fraction, an optional sign (so that a negative score is refused as
// out of range, not as unreadable). NaN, Inf, exponents and hex are not
// scores.
var decimalRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`) }) // compiled when first used (not as every command starts)

// SeverityWords is what ParseSeverity accepts, for hints.
const SeverityWords = "none, low, medium (or moderate), high, critical, or a CVSS score 0.0–10.0"

// ParseSeverity reads a severity: a name, in any case (none, low,
// medium, moderate, high, critical), or a CVSS base score from 0.0 to
// 10.0, mapped by CVSS v3's bands (0.0 none, 0.1–3.9 low, 4.0–6.9
// medium, 7.0–8.9 high, 9.0–10.0 critical). A score above 10, below 0,
// or NaN is refused, as is anything else.
func ParseSeverity(s string) (Severity, error) {
	w := strings.ToLower(strings.TrimSpace(s))
	switch w {
	case "none":
		return SeverityNone, nil
	case "low":
		return SeverityLow, nil
	case "medium", "moderate":
		return SeverityMedium, nil
	case "high":
		return SeverityHigh, nil
	case "critical":
		return SeverityCritical, nil
	}
	if !decimalRE().MatchString(w) {
		return 0, fmt.Errorf("severity %q: want %s", s, SeverityWords)
	}
	n, err := strconv.ParseFloat(w, 64)
	if err != nil || math.IsNaN(n) || n < 0 || n > 10 {
		return 0, fmt.Errorf("severity %q: a CVSS score is from 0.0 to 10.0", s)
	}
	return scoreSeverity(n), nil
}

// scoreSeverity maps a CVSS base score, 0.0 to 10.0, to its band: the
// one place the bands are written.
func scoreSeverity(n float64) Severity {
	switch {
	case n == 0:
		return SeverityNone
	case n < 4:
		return SeverityLow
	case n < 7:
		return SeverityMedium
	case n < 9:
		return SeverityHigh
	}
	return SeverityCritical
}

// The severity methods of CVSS vectors, as OSV names its severity types:
// a vulnerable result keeps an OSV record's vectors under these methods.
const (
	MethodCVSSv3 = "CVSS_V3" // CVSS:3.0/… or CVSS:3.1/…
	MethodCVSSv4 = "CVSS_V4" // CVSS:4.0/…
)

// CVSS reads a CVSS vector, v3.0, v3.1 or v4.0, with
// github.com/pandatix/go-cvss and returns its base score (v4.0: its
// CVSS-B score) and the severity that score has on cairn's scale, by the
// bands ParseSeverity maps scores with (v3's and v4's qualitative scales
// agree on them). A vector of another version, or one go-cvss refuses,
// is an error that says which metric is wrong.
func CVSS(vector string) (score float64, sev Severity, err error) {
	v := strings.TrimSpace(vector)
	switch {
	case strings.HasPrefix(v, "CVSS:3.0/"):
		c, perr := gocvss30.ParseVector(v)
		if perr != nil {
			return 0, 0, fmt.Errorf("CVSS vector %q: %w", vector, perr)
		}
		score = c.BaseScore()
	case strings.HasPrefix(v, "CVSS:3.1/"):
		c, perr := gocvss31.ParseVector(v)
		if perr != nil {
			return 0, 0, fmt.Errorf("CVSS vector %q: %w", vector, perr)
		}
		score = c.BaseScore()
	case strings.HasPrefix(v, "CVSS:4.0/"):
		c, perr := gocvss40.ParseVector(v)
		if perr != nil {
			return 0, 0, fmt.Errorf("CVSS vector %q: %w", vector, perr)
		}
		score = c.Score()
	default:
		return 0, 0, fmt.Errorf("CVSS vector %q: want CVSS:3.0/…, CVSS:3.1/… or CVSS:4.0/… (CVSS v2 vectors are kept, not scored)", vector)
	}
	if math.IsNaN(score) || score < 0 || score > 10 {
		return 0, 0, fmt.Errorf("CVSS vector %q: score %v is outside 0.0–10.0", vector, score)
	}
	return score, scoreSeverity(score), nil
}

// FormatScore writes a CVSS score as CVSS does, one decimal: "9.8".
func FormatScore(score float64) string { return strconv.FormatFloat(score, 'f', 1, 64) }

// CVSSScore returns the highest base score among the result's CVSS
// vectors (methods MethodCVSSv3 and MethodCVSSv4) and the vector it came
// from; ok is false when the result has none. A vector under those
// methods that CVSS cannot score is an error: a result that names a
// vector vouches for it.
func (v VulnResult) CVSSScore() (score float64, vector string, ok bool, err error) {
	for _, s := range v.Severity {
		if s.Method != MethodCVSSv3 && s.Method != MethodCVSSv4 {
			continue
		}
		n, _, err := CVSS(s.Score)
		if err != nil {
			return 0, "", false, fmt.Errorf("result %s: %w", v.ID, err)
		}
		if !ok || n > score {
			score, vector, ok = n, s.Score, true
		}
	}
	return score, vector, ok, nil
}

// isScoreLike reports whether a severity's score is written as a word
// or a number cairn's scale uses, so that ParseSeverity refusing it is
// an error (an out-of-range score) and not another vocabulary (a CVSS
// vector, a vendor's word) that cairn keeps without ranking.
func isScoreLike(score string) bool {
	w := strings.ToLower(strings.TrimSpace(score))
	return decimalRE().MatchString(w) || w == "nan" || strings.Contains(w, "inf")
}

// Worst returns the highest severity cairn reads among the result's
// scores, and the score it read it from; ok is false when it reads none
// (scores of other vocabularies, such as CVSS vectors, are not ranked).
func (v VulnResult) Worst() (sev Severity, score string, ok bool) {
	for _, s := range v.Severity {
		if x, err := ParseSeverity(s.Score); err == nil && (!ok || x > sev) {
			sev, score, ok = x, s.Score, true
		}
	}
	return sev, score, ok
}

// CheckSeverity is the rule for a vulnerable record's result: at least
// one score cairn ranks; cairn's own scores (method "cairn") all read by
// ParseSeverity; and no number outside CVSS's 0.0–10.0 under any method
// (a "99" would otherwise read as the worst of all to one reader and as
// nothing to another).
func (v VulnResult) CheckSeverity() error {
	for _, s := range v.Severity {
		if _, err := ParseSeverity(s.Score); err != nil && (s.Method == "cairn" || isScoreLike(s.Score)) {
			return fmt.Errorf("result %s: %w", v.ID, err)
		}
	}
	if _, _, ok := v.Worst(); !ok {
		return fmt.Errorf("result %s: no severity cairn can rank: want %s", v.ID, SeverityWords)
	}
	return nil
}
