package osv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"cairn.dev/cairn/internal/record"
)

// ScannerURI names osv-scanner as a vulnerable record's scanner.
const ScannerURI = "https://github.com/google/osv-scanner"

// Report is osv-scanner's JSON report (osv-scanner --format json): for
// each source scanned (a lockfile, an SBOM, a directory), the packages
// found with a known vulnerability, each vulnerability a whole OSV
// record, and groups of the ids that name one vulnerability.
type Report struct {
	Results []struct {
		Source struct {
			Path string `json:"path"`
			Type string `json:"type"`
		} `json:"source"`
		Packages []ReportPackage `json:"packages"`
	} `json:"results"`
}

// ReportPackage is one package of an osv-scanner report.
type ReportPackage struct {
	Package struct {
		Name      string `json:"name"`
		Version   string `json:"version"`
		Ecosystem string `json:"ecosystem"`
	} `json:"package"`
	Vulnerabilities []json.RawMessage `json:"vulnerabilities"`
	Groups          []struct {
		IDs         []string `json:"ids"`
		MaxSeverity string   `json:"max_severity"`
	} `json:"groups"`
}

// IsReport reports whether data is shaped as osv-scanner's JSON report:
// an object with a "results" member (an OSV record has none).
func IsReport(data []byte) bool {
	var probe struct {
		Results json.RawMessage `json:"results"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Results != nil
}

// IsEntry reports whether data is shaped as one OSV record: an object
// with "id" and "modified" members.
func IsEntry(data []byte) bool {
	var probe struct {
		ID       json.RawMessage `json:"id"`
		Modified json.RawMessage `json:"modified"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.ID != nil && probe.Modified != nil
}

// ParseReport reads osv-scanner's JSON report into vulnerable results:
// every vulnerability of every package found, each an OSV record read as
// Parse reads one, keeping the affected entries of the package it was
// found in, its severity the highest CVSS score or its group's
// max_severity, and a note saying which package, version and source it
// was found in. A vulnerability found in several packages or sources is
// one result that keeps each package's affected entries. A withdrawn
// record is left out. where names the input for errors.
func ParseReport(data []byte, where string) ([]record.VulnResult, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, over %d", ErrMalformed, where, len(data), MaxSize)
	}
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w: %s is not osv-scanner's JSON report ({\"results\": [{\"packages\": [...]}]}): %v", ErrMalformed, where, err)
	}
	var out []record.VulnResult
	at := map[string]int{}
	for i, r := range rep.Results {
		for j, p := range r.Packages {
			if p.Package.Name == "" {
				return nil, fmt.Errorf("%w: %s: results[%d].packages[%d] names no package", ErrMalformed, where, i, j)
			}
			found := fmt.Sprintf("%s@%s (%s)", p.Package.Name, p.Package.Version, p.Package.Ecosystem)
			if r.Source.Path != "" {
				found += " in " + r.Source.Path
			}
			for k, raw := range p.Vulnerabilities {
				here := fmt.Sprintf("%s: results[%d].packages[%d].vulnerabilities[%d]", where, i, j, k)
				e, err := Parse(raw, here)
				if err != nil {
					return nil, err
				}
				if e.Withdrawn != "" {
					continue
				}
				max := ""
				for _, g := range p.Groups {
					for _, id := range g.IDs {
						if id == e.ID {
							max = g.MaxSeverity
						}
					}
				}
				res, err := e.Result(Target{Name: p.Package.Name, Ecosystem: p.Package.Ecosystem, Fallback: max, Note: "found in " + found})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", here, err)
				}
				if n, ok := at[e.ID]; ok {
					merge(&out[n], res)
					continue
				}
				at[e.ID] = len(out)
				out = append(out, res)
			}
		}
	}
	return out, nil
}

// merge adds to res what another package's finding of the same
// vulnerability adds: its affected entries and where it was found.
func merge(res *record.VulnResult, other record.VulnResult) {
	for _, a := range other.OSV.Affected {
		if len(res.OSV.Affected) < record.MaxOSVAffected {
			res.OSV.Affected = append(res.OSV.Affected, a)
		}
	}
	for i, a := range res.Annotations {
		if n, ok := a["note"]; ok {
			if m := other.Annotation("note"); m != "" && len(n) < 1024 {
				res.Annotations[i] = map[string]string{"note": n + "; " + strings.TrimPrefix(m, "found in ")}
			}
		}
	}
}
