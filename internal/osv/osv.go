// Package osv reads vulnerability data in the formats the field writes
// it in — OSV records (https://ossf.github.io/osv-schema/) and
// osv-scanner's JSON report — into cairn's vulnerable results, and writes
// a result back as an OSV record.
//
// A result keeps what a policy and a person need of an OSV record: its
// id and aliases (so that a fixed record naming the CVE answers a result
// naming the GHSA), its summary and times, the affected entries of the
// package it is about, its CVSS vectors, scored by record.CVSS, and its
// references. Its severity on cairn's scale comes from the highest CVSS
// score unless the caller gives one. Malformed input is refused, saying
// what is wrong and where.
package osv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	gocvss20 "github.com/pandatix/go-cvss/20"

	"cairn.dev/cairn/internal/record"
)

// MaxSize caps an OSV record or report read whole.
const MaxSize = 16 << 20

// ErrMalformed is the parent of every error about malformed OSV input.
var ErrMalformed = errors.New("malformed OSV")

// Entry is an OSV record as published: the fields cairn reads (others,
// such as details, credits and database_specific, are read where they are
// published).
type Entry struct {
	SchemaVersion    string                `json:"schema_version,omitempty"`
	ID               string                `json:"id"`
	Modified         string                `json:"modified"`
	Published        string                `json:"published,omitempty"`
	Withdrawn        string                `json:"withdrawn,omitempty"`
	Aliases          []string              `json:"aliases,omitempty"`
	Summary          string                `json:"summary,omitempty"`
	Severity         []Severity            `json:"severity,omitempty"`
	Affected         []Affected            `json:"affected,omitempty"`
	References       []record.OSVReference `json:"references,omitempty"`
	DatabaseSpecific *DatabaseSpecific     `json:"database_specific,omitempty"`
}

// Severity is one of an OSV record's severities: a type (CVSS_V2,
// CVSS_V3, CVSS_V4, Ubuntu) and its score, a vector for CVSS.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is an affected entry of an OSV record.
type Affected struct {
	Package  record.OSVPackage `json:"package"`
	Severity []Severity        `json:"severity,omitempty"`
	Ranges   []record.OSVRange `json:"ranges,omitempty"`
	Versions []string          `json:"versions,omitempty"`
}

// DatabaseSpecific is the part of an OSV record's database_specific
// cairn reads: the word GHSA gives its severity in (LOW, MODERATE,
// HIGH, CRITICAL), used only when the record has no CVSS vector.
type DatabaseSpecific struct {
	Severity string `json:"severity,omitempty"`
	// Cairn, in what cairn exports, names the version and the record the
	// OSV record was written from.
	Cairn *Source `json:"cairn,omitempty"`
}

// Source names what an exported OSV record was written from: a package
// version of a cairn index and the vulnerable record about it.
type Source struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Record  string `json:"record"`
}

// UnmarshalJSON reads database_specific, which holds anything: a
// severity that is not a string is not one cairn reads.
func (d *DatabaseSpecific) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if raw, ok := m["severity"]; ok {
		json.Unmarshal(raw, &d.Severity)
	}
	return nil
}

// Parse reads one OSV record and checks what cairn keeps of it: an id,
// a modified time, aliases, ranges whose events OSV's schema allows,
// typed references, CVSS vectors that score. where names the input (a
// file) for errors.
func Parse(data []byte, where string) (*Entry, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, over %d", ErrMalformed, where, len(data), MaxSize)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %s is not an OSV record (JSON with id, modified, affected…): %v", ErrMalformed, where, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s holds more than one JSON value: want one OSV record", ErrMalformed, where)
	}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, where, err)
	}
	return &e, nil
}

// check is what Parse asks of an entry.
func (e *Entry) check() error {
	if strings.TrimSpace(e.ID) == "" || len(e.ID) > 128 {
		return fmt.Errorf("id %q: want the record's id (GHSA-…, CVE-…, GO-…) of at most 128 characters", e.ID)
	}
	if e.Modified == "" {
		return fmt.Errorf("%s: no modified time: every OSV record has one", e.ID)
	}
	kept := e.kept(nil)
	if err := kept.Check(); err != nil {
		return fmt.Errorf("%s: %w", e.ID, err)
	}
	for i, a := range e.Affected {
		if err := (&record.VulnOSV{Affected: []record.OSVAffected{keptAffected(a)}}).Check(); err != nil {
			return fmt.Errorf("%s: affected[%d] (%s): %w", e.ID, i, a.Package.Name, err)
		}
	}
	for _, s := range e.severities(e.Affected) {
		if err := checkVector(s.Method, s.Score); err != nil {
			return fmt.Errorf("%s: severity %s: %w", e.ID, s.Method, err)
		}
	}
	return nil
}

// checkVector checks a CVSS vector of an OSV severity type: a v3 or v4
// one scores (record.CVSS) and is of its type's version, a v2 one parses
// (go-cvss), so that what cairn keeps it writes back as valid OSV.
func checkVector(typ, vector string) error {
	switch typ {
	case "CVSS_V2":
		if _, err := gocvss20.ParseVector(vector); err != nil {
			return fmt.Errorf("CVSS v2 vector %q: %w", vector, err)
		}
		return nil
	case record.MethodCVSSv3, record.MethodCVSSv4:
		prefix := map[string]string{record.MethodCVSSv3: "CVSS:3.", record.MethodCVSSv4: "CVSS:4.0/"}[typ]
		if !strings.HasPrefix(vector, prefix) {
			return fmt.Errorf("vector %q is not a %s… vector, as %s says", vector, prefix, typ)
		}
		_, _, err := record.CVSS(vector)
		return err
	}
	return nil
}

// Target says which package a result is about and how severe it is.
type Target struct {
	// Name (and Ecosystem, unless empty) choose the affected entries a
	// result keeps: those of that package. When none is named so and the
	// record affects one package only, that one is kept (an advisory
	// names the package by its ecosystem's name, which may not be
	// cairn's); when it affects several, Result refuses, unless
	// Ecosystem is set (a scanner named the package as it found it): then
	// none is kept.
	Name, Ecosystem string
	// Severity, if set, is the result's severity on cairn's scale (what
	// record.ParseSeverity reads); otherwise it is the highest CVSS
	// score, then Fallback (osv-scanner's max_severity), then GHSA's
	// database_specific word.
	Severity, Fallback string
	// Affects, if set, is the "affects" annotation; otherwise it is
	// written from the kept entries' ranges.
	Affects string
	// Note, if set, is the "note" annotation.
	Note string
}

// Result makes the vulnerable result that keeps e for t. A withdrawn
// record is refused: it is not a vulnerability.
func (e *Entry) Result(t Target) (record.VulnResult, error) {
	if e.Withdrawn != "" {
		return record.VulnResult{}, fmt.Errorf("%s was withdrawn at %s: it is not a vulnerability", e.ID, e.Withdrawn)
	}
	affected, err := e.concerning(t)
	if err != nil {
		return record.VulnResult{}, err
	}
	kept := e.kept(affected)
	res := record.VulnResult{ID: e.ID, OSV: &kept}
	vectors := e.severities(affected)
	res.Severity = vectors
	score, _, ok, err := res.CVSSScore()
	if err != nil {
		return record.VulnResult{}, err
	}
	// A severity given is kept as given; one derived is written as its
	// name on cairn's scale (the CVSS vector it came from is kept).
	sev, derived := t.Severity, ""
	switch {
	case sev != "":
	case ok:
		derived = record.FormatScore(score)
	case t.Fallback != "":
		derived = t.Fallback
	case e.DatabaseSpecific != nil && e.DatabaseSpecific.Severity != "":
		derived = e.DatabaseSpecific.Severity
	default:
		return record.VulnResult{}, fmt.Errorf("%s has no CVSS v3 or v4 vector to score, nor a severity word cairn reads: give its severity (%s)", e.ID, record.SeverityWords)
	}
	if sev == "" {
		sev = derived
	}
	rank, err := record.ParseSeverity(sev)
	if err != nil {
		return record.VulnResult{}, fmt.Errorf("%s: %w", e.ID, err)
	}
	if derived != "" {
		sev = rank.String()
	}
	res.Severity = append([]record.VulnSeverity{{Method: "cairn", Score: sev}}, vectors...)
	affects := t.Affects
	if affects == "" {
		var parts []string
		for _, a := range kept.Affected {
			if s := a.Affects(); s != "" {
				parts = append(parts, s)
			}
		}
		affects = strings.Join(parts, " || ")
	}
	if affects != "" {
		res.Annotations = append(res.Annotations, map[string]string{"affects": affects})
	}
	if t.Note != "" {
		res.Annotations = append(res.Annotations, map[string]string{"note": t.Note})
	}
	if err := res.CheckSeverity(); err != nil {
		return record.VulnResult{}, err
	}
	if err := kept.Check(); err != nil {
		return record.VulnResult{}, fmt.Errorf("%s: %w", e.ID, err)
	}
	return res, nil
}

// Concerns says whether e is about the package cairn calls name: an
// affected entry names it, or names it as an ecosystem would, a path or
// scope that ends in it or that it ends in (github.com/acme/fastjson or
// @acme/fastjson for acme/fastjson; fastjson too), letters' case aside.
// An entry that lists no package concerns any.
func (e *Entry) Concerns(name string) bool {
	if len(e.Affected) == 0 {
		return true
	}
	name = strings.ToLower(strings.TrimPrefix(name, "@"))
	for _, a := range e.Affected {
		n := strings.ToLower(strings.TrimPrefix(a.Package.Name, "@"))
		if n == name || strings.HasSuffix(n, "/"+name) || strings.HasSuffix(name, "/"+n) {
			return true
		}
	}
	return false
}

// concerning returns the affected entries of the package t names.
func (e *Entry) concerning(t Target) ([]Affected, error) {
	var out []Affected
	names := map[string]bool{}
	for _, a := range e.Affected {
		names[a.Package.Ecosystem+"/"+a.Package.Name] = true
		if a.Package.Name == t.Name && (t.Ecosystem == "" || a.Package.Ecosystem == t.Ecosystem) {
			out = append(out, a)
		}
	}
	if len(out) > 0 || len(e.Affected) == 0 {
		return out, nil
	}
	if len(names) == 1 {
		return e.Affected, nil
	}
	if t.Ecosystem != "" {
		return nil, nil
	}
	var list []string
	for _, a := range e.Affected {
		list = append(list, fmt.Sprintf("%s (%s)", a.Package.Name, a.Package.Ecosystem))
	}
	return nil, fmt.Errorf("%s affects several packages and none is named %s: %s; name the one this package is with --osv-package", e.ID, t.Name, strings.Join(list, ", "))
}

// kept is what a result keeps of e, with the affected entries given.
func (e *Entry) kept(affected []Affected) record.VulnOSV {
	o := record.VulnOSV{Summary: truncate(e.Summary, record.MaxOSVSummary), Modified: e.Modified, Published: e.Published}
	for _, a := range e.Aliases {
		if a != e.ID && len(o.Aliases) < record.MaxOSVAliases {
			o.Aliases = append(o.Aliases, a)
		}
	}
	for _, a := range affected {
		if len(o.Affected) < record.MaxOSVAffected {
			o.Affected = append(o.Affected, keptAffected(a))
		}
	}
	if len(e.References) > record.MaxOSVReferences {
		o.References = e.References[:record.MaxOSVReferences]
	} else {
		o.References = e.References
	}
	return o
}

// keptAffected is what a result keeps of an affected entry: its package
// and ranges, and its versions only when it has no ranges (the ranges
// say the same, in less room) and they are not too many to keep.
func keptAffected(a Affected) record.OSVAffected {
	k := record.OSVAffected{Package: a.Package, Ranges: a.Ranges}
	if len(a.Ranges) == 0 && len(a.Versions) <= record.MaxOSVVersions {
		k.Versions = a.Versions
	}
	return k
}

// severities are e's CVSS vectors (its own, and those of the affected
// entries given), as a result's severities, each vector once. Ubuntu's
// words are not kept: cairn ranks by CVSS, or by the severity given.
func (e *Entry) severities(affected []Affected) []record.VulnSeverity {
	var out []record.VulnSeverity
	seen := map[string]bool{}
	add := func(ss []Severity) {
		for _, s := range ss {
			switch s.Type {
			case "CVSS_V2", record.MethodCVSSv3, record.MethodCVSSv4:
				if !seen[s.Score] {
					seen[s.Score] = true
					out = append(out, record.VulnSeverity{Method: s.Type, Score: s.Score})
				}
			}
		}
	}
	add(e.Severity)
	for _, a := range affected {
		add(a.Severity)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Export writes a vulnerable result as an OSV record: its id, aliases,
// summary, CVSS vectors, affected entries and references, modified at
// the OSV record's time or, for a result not made from one, at issued.
// What OSV's schema asks of these fields, record.VulnOSV.Check has
// checked when the record was read.
func Export(res record.VulnResult, issued time.Time) *Entry {
	e := &Entry{SchemaVersion: SchemaVersion, ID: res.ID, Modified: issued.UTC().Format(time.RFC3339)}
	if o := res.OSV; o != nil {
		e.Aliases, e.Summary, e.References = o.Aliases, o.Summary, o.References
		if o.Modified != "" {
			e.Modified = o.Modified
		}
		e.Published = o.Published
		for _, a := range o.Affected {
			e.Affected = append(e.Affected, Affected{Package: a.Package, Ranges: a.Ranges, Versions: a.Versions})
		}
	}
	for _, s := range res.Severity {
		switch s.Method {
		case "CVSS_V2", record.MethodCVSSv3, record.MethodCVSSv4:
			// A vector that a record made otherwise than from OSV (a
			// scanner's vulns predicate) names under an OSV type but
			// that does not read as one is left out, not written wrong.
			if checkVector(s.Method, s.Score) == nil {
				e.Severity = append(e.Severity, Severity{Type: s.Method, Score: s.Score})
			}
		}
	}
	if e.Summary == "" {
		e.Summary = res.Annotation("note")
	}
	return e
}

// ExportRecord writes each result of a vulnerable record about
// name@version as an OSV record (Export), its database_specific naming
// the version and the record. Another kind of record has none.
func ExportRecord(rec *record.Record, name, version string) []*Entry {
	p, ok := rec.Predicate.(record.VulnsPredicate)
	if !ok {
		return nil
	}
	var out []*Entry
	for _, res := range p.Scanner.Result {
		e := Export(res, p.Metadata.ScanFinishedOn)
		e.DatabaseSpecific = &DatabaseSpecific{Cairn: &Source{Package: name, Version: version, Record: rec.ID}}
		out = append(out, e)
	}
	return out
}

// SchemaVersion is the OSV schema version Export writes.
const SchemaVersion = "1.9.0"
