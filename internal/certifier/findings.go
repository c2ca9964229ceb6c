package certifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"cairn.dev/cairn/internal/osv"
	"cairn.dev/cairn/internal/record"
)

// Findings are what a scanner reported, as vulnerable records carry them.
type Findings struct {
	Scanner string // the scanner's URI, when its report names it
	Results []record.VulnResult
}

// IDs lists the findings' ids.
func (f *Findings) IDs() []string {
	var out []string
	for _, r := range f.Results {
		out = append(out, r.ID)
	}
	return out
}

// finding is one finding in the plain format.
type finding struct {
	ID       string          `json:"id"`
	Severity json.RawMessage `json:"severity"`
	Affects  string          `json:"affects"`
	Note     string          `json:"note"`
}

// ParseFindings reads a scanner's standard output, a scan of the package
// named pkg. These shapes are read:
//
//   - osv-scanner's JSON report (osv-scanner --format json:
//     {"results": [{"packages": [{"package", "vulnerabilities": [OSV…]}]}]}),
//     each vulnerability of each package found a finding that keeps its
//     OSV data (osv.ParseReport);
//   - an OSV record (https://ossf.github.io/osv-schema/), or a list of
//     them, each a finding about pkg that keeps its OSV data (osv.Parse);
//   - an in-toto statement whose predicate is a vulns v0.2 predicate, or
//     that predicate alone ({"scanner": {"uri", "result": [...]}}), as
//     scanners emit for attestations;
//   - a list of findings, [{"id", "severity", "affects", "note"}], or an
//     object {"findings": [...]} holding one.
//
// A severity is what record.ParseSeverity reads: none, low, medium (or
// GHSA's moderate), high or critical, or a CVSS base score ("7.5") from
// 0.0 to 10.0, mapped by CVSS's bands; an OSV finding's is its highest
// CVSS v3 or v4 vector's score (record.CVSS). Empty output, an empty
// list, or a report that found nothing, is no findings.
func ParseFindings(out []byte, pkg string) (*Findings, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return &Findings{}, nil
	}
	if osv.IsReport(out) {
		res, err := osv.ParseReport(out, "the scanner's output")
		if err != nil {
			return nil, err
		}
		return &Findings{Scanner: osv.ScannerURI, Results: res}, nil
	}
	if entries, ok := osvEntries(out); ok {
		f := &Findings{}
		for i, raw := range entries {
			where := "the scanner's output"
			if out[0] == '[' {
				where = fmt.Sprintf("the scanner's output[%d]", i)
			}
			e, err := osv.Parse(raw, where)
			if err != nil {
				return nil, err
			}
			if e.Withdrawn != "" {
				continue
			}
			r, err := e.Result(osv.Target{Name: pkg})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			f.Results = append(f.Results, r)
		}
		return f, nil
	}
	var probe struct {
		Predicate *record.VulnsPredicate `json:"predicate"`
		Scanner   *record.VulnScanner    `json:"scanner"`
		Findings  []finding              `json:"findings"`
	}
	var list []finding
	if out[0] == '[' {
		if err := json.Unmarshal(out, &list); err != nil {
			return nil, fmt.Errorf("the scanner's output is not a list of findings: %v", err)
		}
	} else {
		if err := json.Unmarshal(out, &probe); err != nil {
			return nil, fmt.Errorf("the scanner's output is not JSON findings: %v", err)
		}
		switch {
		case probe.Predicate != nil:
			return fromVulns(&probe.Predicate.Scanner)
		case probe.Scanner != nil:
			return fromVulns(probe.Scanner)
		case probe.Findings != nil:
			list = probe.Findings
		default:
			return nil, fmt.Errorf(`the scanner's output holds no findings: want [{"id", "severity"}], {"findings": [...]} or an in-toto vulns predicate`)
		}
	}
	f := &Findings{}
	for i, x := range list {
		var sev string
		if err := json.Unmarshal(x.Severity, &sev); err != nil {
			var n float64
			if json.Unmarshal(x.Severity, &n) != nil {
				return nil, fmt.Errorf("finding %d (%s): severity %s: want a name or a CVSS score", i+1, x.ID, x.Severity)
			}
			sev = strconv.FormatFloat(n, 'f', -1, 64)
		}
		r, err := result(x.ID, []record.VulnSeverity{{Method: "scanner", Score: sev}})
		if err != nil {
			return nil, fmt.Errorf("finding %d: %w", i+1, err)
		}
		if x.Affects != "" {
			r.Annotations = append(r.Annotations, map[string]string{"affects": x.Affects})
		}
		if x.Note != "" {
			r.Annotations = append(r.Annotations, map[string]string{"note": x.Note})
		}
		f.Results = append(f.Results, r)
	}
	return f, nil
}

// osvEntries returns the OSV records out holds, when it is one or a list
// of them (each element shaped as one: an id and a modified time).
func osvEntries(out []byte) ([]json.RawMessage, bool) {
	if out[0] != '[' {
		return []json.RawMessage{out}, osv.IsEntry(out)
	}
	var list []json.RawMessage
	if json.Unmarshal(out, &list) != nil || len(list) == 0 {
		return nil, false
	}
	for _, raw := range list {
		if !osv.IsEntry(raw) {
			return nil, false
		}
	}
	return list, true
}

func fromVulns(s *record.VulnScanner) (*Findings, error) {
	f := &Findings{Scanner: s.URI}
	for i, x := range s.Result {
		r, err := result(x.ID, x.Severity)
		if err != nil {
			return nil, fmt.Errorf("result %d: %w", i+1, err)
		}
		r.Annotations = x.Annotations
		f.Results = append(f.Results, r)
	}
	return f, nil
}

// result is one finding with its severities kept and cairn's own (the
// highest cairn reads, record.ParseSeverity) added first, so that
// policies rank it. A score outside CVSS's 0.0–10.0 is refused, as the
// vulnerable record would be.
func result(id string, sevs []record.VulnSeverity) (record.VulnResult, error) {
	if strings.TrimSpace(id) == "" || len(id) > 128 {
		return record.VulnResult{}, fmt.Errorf("id %q: want a non-empty advisory id (GHSA-…, CVE-…) of at most 128 characters", id)
	}
	var kept []record.VulnSeverity
	for _, s := range sevs {
		if s.Method != "cairn" {
			kept = append(kept, s)
		}
	}
	in := record.VulnResult{ID: id, Severity: sevs}
	best, _, ok := in.Worst()
	if !ok {
		why := fmt.Errorf("want %s", record.SeverityWords)
		for _, s := range sevs {
			if _, err := record.ParseSeverity(s.Score); err != nil {
				why = err
				break
			}
		}
		return record.VulnResult{}, fmt.Errorf("%s: no severity cairn can rank: %w", id, why)
	}
	out := record.VulnResult{ID: id, Severity: append([]record.VulnSeverity{{Method: "cairn", Score: best.String()}}, kept...)}
	if err := out.CheckSeverity(); err != nil {
		return record.VulnResult{}, err
	}
	return out, nil
}
