// Package vex writes what cairn's signed, append-only records say about
// vulnerabilities as an OpenVEX document (https://openvex.dev, spec
// v0.2.0), the format VEX consumers and scanners read, built and
// serialised with github.com/openvex/go-vex.
//
// One function (judge) maps records onto OpenVEX statuses; for each
// version (a product, identified by the purl the SBOM gives it) and each
// vulnerability its active records name:
//
//   - a vulnerable record that no active fixed record of its own
//     repository answers is "affected", with the record's action
//     (certify --action) as action_statement, or go-vex's "No action
//     statement provided" when it has none (OpenVEX requires one);
//   - one whose every result is declared under investigation (certify
//     --status under_investigation) is "under_investigation";
//   - one that a fixed record answers (the latest issued, when several
//     do) takes that record's status: "fixed", or "not_affected" with its
//     justification, else its impact statement (OpenVEX's schema takes
//     one of the two: a record that gives both has its impact statement
//     in status_notes);
//   - a fixed record that answers no vulnerable record of its repository
//     states its status on its own, unless another repository's
//     vulnerable record names that vulnerability (a fixed record answers
//     its own repository's only, as the policy reads it).
//
// A vulnerability is named by its id, with the aliases and summary its
// OSV record gave (certify --osv); a fixed record naming an alias answers
// it (record.VulnResult.AnsweredBy). Ended records (revoked, superseded)
// say nothing. Each statement's
// timestamp is its deciding record's issue time; its status_notes name
// every record it was made from, by full id, holder and repository; its
// product's subcomponents are the artifacts the deciding records narrowed
// to (by sha-256), none when one of them is about the whole version.
//
// The document is a function of the records: statements in the order of
// the products given, then by vulnerability; its timestamp is the newest
// statement's; its @id is urn:cairn:vex:sha256:HEX, the SHA-256 of its
// statements as written; its version is 1.
package vex

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	govex "github.com/openvex/go-vex/pkg/vex"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
)

// SpecVersion is the OpenVEX version written.
const SpecVersion = govex.SpecVersion

// IDPrefix begins every document's @id; the SHA-256 of its statements
// follows, in hex.
const IDPrefix = "urn:cairn:vex:sha256:"

// ErrNoStatements is returned when the records name no vulnerability: an
// OpenVEX document holds at least one statement.
var ErrNoStatements = errors.New("no vulnerability is recorded about them: an OpenVEX document needs at least one statement")

// Product is one package version a document speaks about, and every
// record about it.
type Product struct {
	Name, Version string
	// PURL identifies the version as the SBOM does (sbom.PURL): the
	// statement's product @id and purl identifier.
	PURL string
	// Descriptor resolves the artifacts a record narrows to; nil: they
	// are not named.
	Descriptor *descriptor.Descriptor
	Records    []Record
}

// Record is one record about a version, as a VEX document reads it.
type Record struct {
	ID string
	// Repository is the repository whose root granted the issuer, as
	// the caller names it: a fixed record answers the vulnerable
	// records of its own repository only.
	Repository string
	Holder     string // the issuer's holder, "" if none
	// Active reports whether the record counts: not revoked, not
	// superseded.
	Active    bool
	Artifacts []string // the artifacts it narrows to; none: the whole version
	Record    *record.Record
}

// Records reads a version's records as an index shows them, granted by
// repository's root.
func Records(views []index.RecordView, repository string) []Record {
	out := make([]Record, 0, len(views))
	for i := range views {
		v := &views[i]
		if v.Record == nil {
			continue
		}
		out = append(out, Record{ID: v.ID, Repository: repository, Holder: v.Holder, Active: v.Status.Active(), Artifacts: v.Artifacts, Record: v.Record})
	}
	return out
}

// Options are a document's metadata.
type Options struct {
	Author  string // the document's author (default "cairn")
	Tooling string // what made it, e.g. "cairn v1.2.3" (default none)
}

// Document is an OpenVEX document as written.
type Document struct {
	ID         string    `json:"id"`
	Timestamp  time.Time `json:"timestamp"`
	Statements int       `json:"statements"`
	JSON       []byte    `json:"-"`
}

// Make writes the OpenVEX document of products' records;
// ErrNoStatements if they name no vulnerability.
func Make(products []Product, o Options) (*Document, error) {
	doc := govex.New()
	doc.Author = cmp.Or(o.Author, "cairn")
	doc.Tooling = o.Tooling
	seen := map[string]bool{}
	var newest time.Time
	for i := range products {
		p := &products[i]
		if p.PURL == "" {
			return nil, fmt.Errorf("%s@%s: no purl to name it by", p.Name, p.Version)
		}
		if seen[p.PURL] {
			continue
		}
		seen[p.PURL] = true
		for _, st := range Statements(p) {
			if err := st.Validate(); err != nil {
				return nil, fmt.Errorf("%s@%s: %s: %w", p.Name, p.Version, st.Vulnerability.Name, err)
			}
			if st.Timestamp.After(newest) {
				newest = *st.Timestamp
			}
			doc.Statements = append(doc.Statements, st)
		}
	}
	if len(doc.Statements) == 0 {
		return nil, ErrNoStatements
	}
	stmts, err := json.Marshal(doc.Statements)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(stmts)
	doc.ID = IDPrefix + hex.EncodeToString(sum[:])
	doc.Timestamp = &newest
	var buf bytes.Buffer
	if err := doc.ToJSON(&buf); err != nil {
		return nil, err
	}
	return &Document{ID: doc.ID, Timestamp: newest, Statements: len(doc.Statements), JSON: buf.Bytes()}, nil
}

// finding is one vulnerability that a repository's vulnerable records
// declare about a version: the results naming it, with their records.
type finding struct {
	repository, id string
	results        []record.VulnResult
	records        []*Record
}

// answer is an active fixed record.
type answer struct {
	rec  *Record
	pred record.FixedPredicate
}

// Statements are the OpenVEX statements p's active records make, by
// vulnerability: one per vulnerability that a vulnerable record
// declares (per repository), then one per vulnerability that a fixed
// record answers on its own.
func Statements(p *Product) []govex.Statement {
	var findings []*finding
	byKey := map[[2]string]*finding{}
	var answers []answer
	for i := range p.Records {
		r := &p.Records[i]
		if !r.Active || r.Record == nil {
			continue
		}
		switch pred := r.Record.Predicate.(type) {
		case record.VulnsPredicate:
			for _, res := range pred.Scanner.Result {
				k := [2]string{r.Repository, res.ID}
				f := byKey[k]
				if f == nil {
					f = &finding{repository: r.Repository, id: res.ID}
					byKey[k] = f
					findings = append(findings, f)
				}
				f.results = append(f.results, res)
				f.records = append(f.records, r)
			}
		case record.FixedPredicate:
			answers = append(answers, answer{r, pred})
		}
	}
	// The latest issued answer first: it decides.
	slices.SortStableFunc(answers, func(a, b answer) int {
		return cmp.Or(b.pred.Issued.Compare(a.pred.Issued), strings.Compare(a.rec.ID, b.rec.ID))
	})
	used := map[*Record]map[string]bool{} // the ids each answer answered
	var out []govex.Statement
	for _, f := range findings {
		var by *answer
		for i := range answers {
			a := &answers[i]
			if a.rec.Repository != f.repository {
				continue
			}
			if id, ok := answeredBy(f.results, a.pred.Vulnerabilities); ok {
				by = a
				if used[a.rec] == nil {
					used[a.rec] = map[string]bool{}
				}
				used[a.rec][id] = true
				break
			}
		}
		out = append(out, judge(p, f.id, aliases(f.results), f.results, f.records, by))
	}
	// Answers standing alone: each id a fixed record names that it did
	// not answer above, and that no repository's vulnerable record names.
	named := map[string]bool{}
	for _, f := range findings {
		named[f.id] = true
		for _, a := range aliases(f.results) {
			named[a] = true
		}
	}
	alone := map[string]bool{}
	for i := range answers {
		a := &answers[i]
		for _, id := range a.pred.Vulnerabilities {
			if used[a.rec][id] || named[id] || alone[id] {
				continue
			}
			alone[id] = true // the latest answer decides
			out = append(out, judge(p, id, nil, nil, nil, a))
		}
	}
	slices.SortStableFunc(out, func(a, b govex.Statement) int {
		return strings.Compare(string(a.Vulnerability.Name), string(b.Vulnerability.Name))
	})
	return out
}

// answeredBy is whether a fixed record's ids answer a vulnerability, as
// record.VulnResult.AnsweredBy decides (its id or an alias): the id that
// answers one of its results.
func answeredBy(results []record.VulnResult, ids []string) (string, bool) {
	for _, res := range results {
		if id, ok := res.AnsweredBy(ids); ok {
			return id, true
		}
	}
	return "", false
}

// aliases are the other ids the results' vulnerability is known by
// (from their OSV records), each once.
func aliases(results []record.VulnResult) []string {
	var out []string
	for _, res := range results {
		for _, a := range res.Aliases() {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// summary is the vulnerability's summary from its OSV record, if one
// of the results keeps it.
func summary(results []record.VulnResult) string {
	for _, res := range results {
		if res.OSV != nil && res.OSV.Summary != "" {
			return res.OSV.Summary
		}
	}
	return ""
}

// judge is the one mapping of cairn's records onto an OpenVEX statement
// about vulnerability id of product p: results are the active vulnerable
// results naming it (with their records, in the same order; none for a
// fixed record standing alone), by the active fixed record of their
// repository that answers them (the latest issued), or nil.
func judge(p *Product, id string, aliases []string, results []record.VulnResult, recs []*Record, by *answer) govex.Statement {
	st := govex.Statement{Vulnerability: govex.Vulnerability{Name: govex.VulnerabilityID(id), Description: summary(results)}}
	for _, a := range aliases {
		if a != id && !slices.Contains(st.Vulnerability.Aliases, govex.VulnerabilityID(a)) {
			st.Vulnerability.Aliases = append(st.Vulnerability.Aliases, govex.VulnerabilityID(a))
		}
	}
	var notes []string
	var when time.Time
	for _, r := range recs {
		notes = append(notes, "vulnerable "+describe(r))
		if t := r.Record.Predicate.(record.VulnsPredicate).Metadata.ScanFinishedOn; t.After(when) {
			when = t
		}
	}
	deciding := recs
	switch {
	case by != nil:
		notes = append(notes, "fixed "+describe(by.rec))
		when, deciding = by.pred.Issued, []*Record{by.rec}
		switch by.pred.Answer() {
		case record.StatusNotAffected:
			st.Status = govex.StatusNotAffected
			if by.pred.Justification != "" {
				st.Justification = govex.Justification(by.pred.Justification)
				if by.pred.ImpactStatement != "" {
					notes = append(notes, "impact: "+by.pred.ImpactStatement)
				}
			} else {
				st.ImpactStatement = by.pred.ImpactStatement
			}
		default:
			st.Status = govex.StatusFixed
		}
	case underInvestigation(results):
		st.Status = govex.StatusUnderInvestigation
	default:
		st.Status = govex.StatusAffected
		st.ActionStatement = govex.NoActionStatementMsg
		for i := len(results) - 1; i >= 0; i-- {
			if a := results[i].Annotation(record.AnnotationAction); a != "" {
				st.ActionStatement = a
				break
			}
		}
	}
	when = when.UTC()
	st.Timestamp = &when
	st.StatusNotes = "cairn records: " + strings.Join(notes, "; ")
	st.Products = []govex.Product{product(p, deciding)}
	return st
}

// underInvestigation reports whether every result declares its
// vulnerability under investigation.
func underInvestigation(results []record.VulnResult) bool {
	for _, r := range results {
		if !r.UnderInvestigation() {
			return false
		}
	}
	return len(results) > 0
}

// describe names a record in status notes: its full id, holder and
// repository.
func describe(r *Record) string {
	s := r.ID
	var by []string
	if r.Holder != "" {
		by = append(by, r.Holder)
	}
	if r.Repository != "" {
		by = append(by, "of "+r.Repository)
	}
	if len(by) > 0 {
		s += " by " + strings.Join(by, " ")
	}
	return s
}

// product is p as a statement's product: its purl, and the artifacts
// the deciding records narrowed to, none if one is about the whole
// version.
func product(p *Product, deciding []*Record) govex.Product {
	pr := govex.Product{Component: govex.Component{ID: p.PURL, Identifiers: map[govex.IdentifierType]string{govex.PURL: p.PURL}}}
	if p.Descriptor == nil {
		return pr
	}
	var hashes []string
	for _, r := range deciding {
		if len(r.Artifacts) == 0 {
			return pr
		}
		for _, sel := range r.Artifacts {
			if a, ok := p.Descriptor.Artifact(sel); ok && !slices.Contains(hashes, a.SHA256) {
				hashes = append(hashes, a.SHA256)
			}
		}
	}
	slices.Sort(hashes)
	for _, h := range hashes {
		pr.Subcomponents = append(pr.Subcomponents, govex.Subcomponent{Component: govex.Component{Hashes: map[govex.Algorithm]govex.Hash{govex.SHA256: govex.Hash(h)}}})
	}
	return pr
}
