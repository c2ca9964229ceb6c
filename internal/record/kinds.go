package record

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
)

// Kind names what a record states.
type Kind string

// The record kinds. Certifications speak about a package version (or some
// of its artifacts); the others run the repository.
const (
	Authored     Kind = "authored"      // the publisher's claim, made at publish time
	Audited      Kind = "audited"       // a security audit passed
	Tested       Kind = "tested"        // a CI run (in-toto test-result)
	Reviewed     Kind = "reviewed"      // a code review passed
	Reproduced   Kind = "reproduced"    // a binary rebuilt from the named source
	ProofChecked Kind = "proof-checked" // a formal proof checked
	Scanned      Kind = "scanned"       // a scanner ran on it (its findings are vulnerable records)
	Vulnerable   Kind = "vulnerable"    // a known vulnerability (in-toto vulns)
	Deprecated   Kind = "deprecated"    // no longer recommended
	Withdrawn    Kind = "withdrawn"     // must not be used
	Revoke       Kind = "revoke"        // ends an earlier record
	Supersede    Kind = "supersede"     // replaces an earlier record with a later one
	Grant        Kind = "grant"         // the root grants a key scopes
	RevokeKey    Kind = "revoke-key"    // the root revokes a key
	Root         Kind = "root"          // the root keys and their threshold
	Upstream     Kind = "upstream"      // the root declares an upstream index the repository follows
	Fixed        Kind = "fixed"         // answers vulnerabilities: not (or no longer) affected
	Snapshot     Kind = "snapshot"      // a curator creates an immutable package set
	Label        Kind = "label"         // a curator moves a named label to a snapshot
	Imported     Kind = "imported"      // brought in from an upstream source (a GOPROXY), with who vouched for it
	Policy       Kind = "policy"        // a new version of a named policy, signed by the root or a policy:PATTERN key
)

// Predicate types reused from in-toto.
const (
	TestResultType = "https://in-toto.io/attestation/test-result/v0.1"
	VulnsType      = "https://in-toto.io/attestation/vulns/v0.2"
)

// OwnTypePrefix begins the predicate types cairn defines.
const OwnTypePrefix = "https://cairn.dev/attestation/"

var typeOf = map[Kind]string{Tested: TestResultType, Vulnerable: VulnsType}
var kindOf = map[string]Kind{}

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{Authored, Audited, Tested, Reviewed, Reproduced, ProofChecked, Scanned, Vulnerable, Fixed, Deprecated, Withdrawn, Imported, Revoke, Supersede, Grant, RevokeKey, Root, Upstream, Snapshot, Label, Policy}

func init() {
	for _, k := range Kinds {
		if _, ok := typeOf[k]; !ok {
			typeOf[k] = OwnTypePrefix + string(k) + "/v1"
		}
		kindOf[typeOf[k]] = k
	}
}

// PredicateType returns the predicate type URI of a kind.
func (k Kind) PredicateType() string { return typeOf[k] }

// IsCertification reports whether the kind is a statement about a package
// version made by someone other than (or as well as) its publisher.
func (k Kind) IsCertification() bool {
	switch k {
	case Audited, Tested, Reviewed, Reproduced, ProofChecked, Scanned, Vulnerable, Fixed, Deprecated, Withdrawn, Imported:
		return true
	}
	return false
}

// IsPackage reports whether records of the kind are about a package version.
func (k Kind) IsPackage() bool { return k == Authored || k.IsCertification() }

// MultiSig reports whether records of the kind may carry several
// signatures: those a threshold of root keys can sign.
func (k Kind) MultiSig() bool {
	return k.IsRootSigned() || k == Revoke || k == Supersede || k == Policy
}

// IsRootSigned reports whether records of the kind need a threshold of root keys.
func (k Kind) IsRootSigned() bool {
	return k == Grant || k == RevokeKey || k == Root || k == Upstream
}

// ParseKind parses a kind name.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown record kind %q", s)
}

// Ref names a blob by digest and size.
type Ref = blob.Ref

func checkRef(r Ref, what string) error {
	if err := r.Check(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// AuthoredPredicate is the publisher's claim. The subject is the descriptor.
type AuthoredPredicate struct {
	Descriptor Ref       `json:"descriptor"`
	Issued     time.Time `json:"issued"`
}

// Evidence is a blob backing a certification (a report, a log).
type Evidence struct {
	Name string `json:"name"`
	Ref
}

// CertificationPredicate is the predicate of cairn's own certification
// kinds (audited, reviewed, reproduced, proof-checked, scanned,
// deprecated, withdrawn). Subject 0 is the descriptor; further subjects narrow the
// statement to those artifacts.
type CertificationPredicate struct {
	Issued time.Time `json:"issued"`
	// Issuer is the signing key's id, as cairn names it (SHA256:…), so
	// that two certifiers saying the same thing in the same second sign
	// two payloads (two record ids: a count can be met). It decides
	// nothing: the signature says who signed. Records made before it
	// existed have none.
	Issuer      string     `json:"issuer,omitempty"`
	Note        string     `json:"note,omitempty"`
	Evidence    []Evidence `json:"evidence,omitempty"`
	Source      *Ref       `json:"source,omitempty"`      // reproduced: the source artifact rebuilt
	Replacement string     `json:"replacement,omitempty"` // deprecated: the package to use instead
}

// ResourceDescriptor is the in-toto ResourceDescriptor, as used in
// test-result configurations.
type ResourceDescriptor struct {
	Name             string            `json:"name,omitempty"`
	URI              string            `json:"uri,omitempty"`
	Digest           map[string]string `json:"digest,omitempty"`
	Content          []byte            `json:"content,omitempty"`
	DownloadLocation string            `json:"downloadLocation,omitempty"`
	MediaType        string            `json:"mediaType,omitempty"`
	Annotations      map[string]any    `json:"annotations,omitempty"`
}

// TestResultPredicate is in-toto's test-result v0.1.
type TestResultPredicate struct {
	Result        string               `json:"result"`
	Configuration []ResourceDescriptor `json:"configuration"`
	URL           string               `json:"url,omitempty"`
	PassedTests   []string             `json:"passedTests,omitempty"`
	WarnedTests   []string             `json:"warnedTests,omitempty"`
	FailedTests   []string             `json:"failedTests,omitempty"`
}

// The run entry of a test result's configuration: cairn adds one to
// every tested record it signs, a ResourceDescriptor (in-toto's own type,
// so the predicate stays a plain test-result v0.1) that names the run by
// its signing key and the time it was issued:
//
//	{"name": "cairn-run", "uri": "https://cairn.dev/attestation/test-run/v1",
//	 "annotations": {"issuer": "SHA256:…", "issued": "2026-11-30T14:40:00Z"}}
//
// The test result itself carries no issuer and no time, so without it two
// certifiers that report the same result on the same version would make
// one payload, one record id, and the second could never be appended
// ("tested by 2 of our 3 CI services" could not be met). The issued time
// is what max_age reads of a test result (TestResultPredicate.Issued).
// Records signed before it was added have no run entry, and no time.
const (
	TestRunName = "cairn-run"
	TestRunURI  = "https://cairn.dev/attestation/test-run/v1"
)

// TestRun is the run entry of a tested record issued by key issuer at
// time issued (see TestRunName).
func TestRun(issuer string, issued time.Time) ResourceDescriptor {
	return ResourceDescriptor{Name: TestRunName, URI: TestRunURI, Annotations: map[string]any{
		"issuer": issuer, "issued": issued.UTC().Format(time.RFC3339Nano),
	}}
}

// run returns the predicate's run entry (see TestRunName), if it has one.
func (p TestResultPredicate) run() (ResourceDescriptor, bool) {
	for _, c := range p.Configuration {
		if c.URI == TestRunURI && c.Name == TestRunName {
			return c, true
		}
	}
	return ResourceDescriptor{}, false
}

// Issued is when the test result says it was issued: the issued time of
// its run entry (see TestRunName); zero for a test result without one.
func (p TestResultPredicate) Issued() time.Time {
	c, ok := p.run()
	if !ok {
		return time.Time{}
	}
	s, _ := c.Annotations["issued"].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// namedIssuer is the issuer key a predicate names (a test result's run
// entry, cairn's own certification predicates); "" if none. Parse holds
// it to the record's signature.
func namedIssuer(pred any) string {
	switch p := pred.(type) {
	case CertificationPredicate:
		return p.Issuer
	case FixedPredicate:
		return p.Issuer
	case TestResultPredicate:
		if c, ok := p.run(); ok {
			s, _ := c.Annotations["issuer"].(string)
			return s
		}
	}
	return ""
}

// checkRun checks the run entries of a test result: at most one, with an
// issuer and an RFC 3339 issued time.
func (p TestResultPredicate) checkRun() error {
	n := 0
	for _, c := range p.Configuration {
		if c.URI != TestRunURI {
			continue // an entry named cairn-run without the URI is the producer's own (an evidence file, an artifact)
		}
		if n++; n > 1 {
			return fmt.Errorf("test result: %d configuration entries have the run's uri %s: want at most one", n, TestRunURI)
		}
		if c.Name != TestRunName {
			return fmt.Errorf("test result: the run entry (uri %s) is named %q: want %q", TestRunURI, c.Name, TestRunName)
		}
		issuer, _ := c.Annotations["issuer"].(string)
		issued, _ := c.Annotations["issued"].(string)
		if issuer == "" || len(issuer) > 256 {
			return fmt.Errorf("test result: the run entry's issuer annotation %q: want the signing key's id", issuer)
		}
		if _, err := time.Parse(time.RFC3339Nano, issued); err != nil {
			return fmt.Errorf("test result: the run entry's issued annotation %q: want an RFC 3339 time", issued)
		}
	}
	return nil
}

// VulnsPredicate is in-toto's vulns v0.2.
type VulnsPredicate struct {
	Scanner  VulnScanner  `json:"scanner"`
	Metadata VulnMetadata `json:"metadata"`
}

// VulnScanner names the scanner (or the person) and its findings.
type VulnScanner struct {
	URI     string       `json:"uri"`
	Version string       `json:"version,omitempty"`
	DB      *VulnDB      `json:"db,omitempty"`
	Result  []VulnResult `json:"result"`
}

// VulnDB names the vulnerability database a scanner used.
type VulnDB struct {
	URI        string    `json:"uri,omitempty"`
	Version    string    `json:"version,omitempty"`
	LastUpdate time.Time `json:"lastUpdate"`
}

// VulnResult is one vulnerability. cairn reads the annotations "affects"
// (a semver range of affected versions) and "note". A result made from
// an OSV record keeps its CVSS vectors as severities (methods
// MethodCVSSv3, MethodCVSSv4) and the rest of what cairn keeps of it in
// OSV; results made before cairn read OSV have none, and read as before.
type VulnResult struct {
	ID          string              `json:"id"`
	Severity    []VulnSeverity      `json:"severity"`
	Annotations []map[string]string `json:"annotations,omitempty"`
	OSV         *VulnOSV            `json:"osv,omitempty"`
}

// VulnOSV is what a vulnerable result keeps of the OSV record it was
// made from (https://ossf.github.io/osv-schema/), in OSV's own field
// names: its aliases (the same vulnerability's CVE and GHSA ids), its
// summary and times, the affected entries that concern the certified
// package, and its references. The CVSS vectors are the result's
// severities. Every field is optional.
type VulnOSV struct {
	Aliases    []string       `json:"aliases,omitempty"`
	Summary    string         `json:"summary,omitempty"`
	Modified   string         `json:"modified,omitempty"`  // RFC 3339, as the OSV record gives it
	Published  string         `json:"published,omitempty"` // RFC 3339
	Affected   []OSVAffected  `json:"affected,omitempty"`
	References []OSVReference `json:"references,omitempty"`
}

// OSVAffected is one affected entry of an OSV record: a package and the
// ranges (or, with none, the versions) of it that are affected.
type OSVAffected struct {
	Package  OSVPackage `json:"package"`
	Ranges   []OSVRange `json:"ranges,omitempty"`
	Versions []string   `json:"versions,omitempty"`
}

// OSVPackage names a package in an ecosystem, as OSV does.
type OSVPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// OSVRange is an OSV range: its type (SEMVER, ECOSYSTEM or GIT), the
// repository of a GIT range, and its events in order.
type OSVRange struct {
	Type   string     `json:"type"`
	Repo   string     `json:"repo,omitempty"`
	Events []OSVEvent `json:"events"`
}

// OSVEvent is one event of a range: exactly one of its fields is set.
type OSVEvent struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// OSVReference is a link about the vulnerability, typed as OSV types
// them (ADVISORY, FIX, WEB, …).
type OSVReference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Aliases returns the other ids the result's vulnerability is known by
// (from its OSV record), without its own id.
func (v VulnResult) Aliases() []string {
	if v.OSV == nil {
		return nil
	}
	var out []string
	for _, a := range v.OSV.Aliases {
		if a != v.ID {
			out = append(out, a)
		}
	}
	return out
}

// AnsweredBy is the rule for whether a fixed record's ids answer this
// vulnerability: one of them is its id or one of its aliases (a fixed
// record naming CVE-2024-1 answers a result GHSA-x whose OSV record
// gives CVE-2024-1 as an alias). Ids compare exactly. It returns the id
// that answers.
func (v VulnResult) AnsweredBy(ids []string) (string, bool) {
	for _, id := range ids {
		if id == v.ID {
			return id, true
		}
		for _, a := range v.Aliases() {
			if id == a {
				return id, true
			}
		}
	}
	return "", false
}

// VulnSeverity is one score of a vulnerability.
type VulnSeverity struct {
	Method string `json:"method"`
	Score  string `json:"score"`
}

// VulnMetadata carries the scan's times.
type VulnMetadata struct {
	ScanStartedOn  time.Time `json:"scanStartedOn"`
	ScanFinishedOn time.Time `json:"scanFinishedOn"`
}

// Annotation returns the first annotation named key of a result.
func (v VulnResult) Annotation(key string) string {
	for _, a := range v.Annotations {
		if s, ok := a[key]; ok {
			return s
		}
	}
	return ""
}

// FixedPredicate answers vulnerabilities on a version: the version is
// not, or no longer, affected by them (a VEX "fixed" / "not affected").
// Subject 0 is the descriptor.
type FixedPredicate struct {
	Vulnerabilities []string   `json:"vulnerabilities"` // the ids answered (GHSA-…, CVE-…)
	Note            string     `json:"note,omitempty"`
	Evidence        []Evidence `json:"evidence,omitempty"`
	Issued          time.Time  `json:"issued"`
	Issuer          string     `json:"issuer,omitempty"` // the signing key's id: see CertificationPredicate.Issuer
	// How it answers, in OpenVEX's terms (see vexterms.go): Status is
	// fixed (also when empty: every record made before it existed) or
	// not_affected, which says why with a Justification (one of
	// Justifications) or an ImpactStatement.
	Status          FixedStatus `json:"status,omitempty"`
	Justification   string      `json:"justification,omitempty"`
	ImpactStatement string      `json:"impact_statement,omitempty"`
}

// ImportedPredicate says where an imported version came from and who
// vouched for it: the upstream it was fetched from (a GOPROXY) and the
// checksum database whose signed log holds its hashes, with that
// database's own words as evidence. Subject 0 is the descriptor. Its
// importer signs it with the authored record, in the commit that
// publishes the version (cairn import go).
type ImportedPredicate struct {
	Source string         `json:"source"` // the upstream's URL (a GOPROXY)
	SumDB  *SumDBEvidence `json:"sumdb,omitempty"`
	// Released is when the upstream says the version was made (a
	// GOPROXY's .info Time), which cairn serve's .info gives in turn;
	// absent from records made before it was kept.
	Released *time.Time `json:"released,omitempty"`
	Issued   time.Time  `json:"issued"`
}

// SumDBEvidence is what a Go checksum database said of a module version:
// its go.sum lines, the record of its log that holds them, and the tree
// note it signed whose tree includes that record (checkable with its key,
// and against the database's later trees, by anyone).
type SumDBEvidence struct {
	Name   string   `json:"name"`   // the database's name (sum.golang.org)
	Key    string   `json:"key"`    // its note verifier key
	URL    string   `json:"url"`    // where it was read
	Lines  []string `json:"lines"`  // "path version h1:…" and "path version/go.mod h1:…"
	Record int64    `json:"record"` // the record's index in its log
	Tree   string   `json:"tree"`   // the signed tree note
}

// SnapshotPredicate creates a snapshot: an immutable package set, stored
// as a blob (and beside the record in the index). The subject is that
// blob, named by the snapshot's display name.
type SnapshotPredicate struct {
	Snapshot Ref       `json:"snapshot"`
	Name     string    `json:"name"` // for display only: a snapshot is its digest
	Issued   time.Time `json:"issued"`
}

// LabelPredicate moves a label to a snapshot. Each move names the move
// it follows, so a label's history is one chain. The subject is the
// snapshot blob, named by the label.
type LabelPredicate struct {
	Label    string    `json:"label"`
	Snapshot Ref       `json:"snapshot"`
	Previous string    `json:"previous,omitempty"` // the record of the move before; "" for the first
	Issued   time.Time `json:"issued"`
}

// CheckLabel checks a label's name (a path element of the index).
func CheckLabel(name string) error { return checkPathName("label", name) }

// PolicyPredicate is one version of a named policy: its whole text (a
// policy file, as internal/policy parses it). Each version names the one
// it follows, so a policy's history is one chain and "which policy was
// in force" has one answer. The subject is the text, named by the
// policy's name, with the text's sha256 as digest. It is signed by a key
// granted policy:PATTERN, or by a threshold of root keys.
type PolicyPredicate struct {
	Name     string    `json:"name"`
	Policy   string    `json:"policy"`             // the policy file's text
	Previous string    `json:"previous,omitempty"` // the record of the version before; "" for the first
	Issued   time.Time `json:"issued"`
}

// MaxPolicyText caps a policy record's text. A record's envelope is
// itself capped (MaxSize), and the text travels in it base64-encoded.
const MaxPolicyText = 32 << 10

// CheckPolicyName checks a policy's name (a path element of the index).
func CheckPolicyName(name string) error { return checkPathName("policy name", name) }

// PolicyDigest is the sha256 (hex) of a policy text: a policy record's
// subject digest, and what a lock or a server's refusal names.
func PolicyDigest(text string) string { return blob.DigestBytes([]byte(text)).SHA256 }

// EndPredicate is the predicate of revoke and supersede records. The
// subject is the record ended, named "record" with its id as digest.
type EndPredicate struct {
	Reason      string    `json:"reason"`
	Replacement string    `json:"replacement,omitempty"` // supersede: the record that replaces it
	Issued      time.Time `json:"issued"`
}

// GrantPredicate grants a key scopes. The subject is the key: its
// fingerprint as name and the fingerprint's digest.
type GrantPredicate struct {
	Key     string     `json:"key"` // authorized_keys line
	Holder  string     `json:"holder"`
	Scopes  []string   `json:"scopes"`
	Expires *time.Time `json:"expires,omitempty"`
	Issued  time.Time  `json:"issued"`
	ApplyBy *time.Time `json:"apply_by,omitempty"` // see Record.ApplyBy
	Index   string     `json:"index,omitempty"`    // see Record.ActIndex
}

// RevokeKeyPredicate revokes a key. The subject is the key.
type RevokeKeyPredicate struct {
	Reason  string     `json:"reason"`
	Issued  time.Time  `json:"issued"`
	ApplyBy *time.Time `json:"apply_by,omitempty"` // see Record.ApplyBy
	Index   string     `json:"index,omitempty"`    // see Record.ActIndex
}

// RootKey is one root key.
type RootKey struct {
	Key    string `json:"key"` // authorized_keys line
	Holder string `json:"holder,omitempty"`
}

// RootPredicate sets the root keys and threshold. Version 1 is the
// repository's introduction; each rotation adds one and names the record
// it replaces. The subjects are the root keys.
type RootPredicate struct {
	Version   int        `json:"version"`
	Keys      []RootKey  `json:"keys"`
	Threshold int        `json:"threshold"`
	Previous  string     `json:"previous,omitempty"`
	Issued    time.Time  `json:"issued"`
	ApplyBy   *time.Time `json:"apply_by,omitempty"` // see Record.ApplyBy
	Index     string     `json:"index,omitempty"`    // see Record.ActIndex
	// Nonce, in the introduction (version 1), is 128 random bits in hex:
	// two indexes made with the same root keys in the same second are
	// still two indexes, each with its own introduction (the id every
	// client pins, acts are bound to and the log's origin names).
	Nonce string `json:"nonce,omitempty"`
}

// UpstreamPredicate declares an upstream: another index, pinned by its
// introduction, whose packages the repository serves beside its own
// (internal names win). The subject is the upstream's introduction, named
// by the upstream's name.
type UpstreamPredicate struct {
	Name         string     `json:"name"`
	URL          string     `json:"url"`
	Introduction string     `json:"introduction"`
	Issued       time.Time  `json:"issued"`
	ApplyBy      *time.Time `json:"apply_by,omitempty"` // see Record.ApplyBy
	Index        string     `json:"index,omitempty"`    // see Record.ActIndex
}

// ApplyBy is the end of a root act's window: a root act prepared to be
// signed by its root key holders apart (each on their own machine, at
// their own time) is issued when it is prepared and may enter an index
// until its apply_by time, not after; the commit that adds it is dated
// within that window (the index's rules check it, and a server checks the
// commit's date against its clock). An act signed in one process has no
// window: nil.
func (r *Record) ApplyBy() *time.Time {
	switch p := r.Predicate.(type) {
	case GrantPredicate:
		return p.ApplyBy
	case RevokeKeyPredicate:
		return p.ApplyBy
	case RootPredicate:
		return p.ApplyBy
	case UpstreamPredicate:
		return p.ApplyBy
	}
	return nil
}

// MaxActWindow is the longest window a root act signed apart may have:
// its apply_by is at most this long after it is issued. An act nobody
// applied must not stay valid for years, waiting for someone to.
const MaxActWindow = 30 * 24 * time.Hour

// Window is how long a root act signed apart may wait for its
// signatures: its apply_by time less its issued time; 0 for a record with
// no apply_by.
func (r *Record) Window() time.Duration {
	by := r.ApplyBy()
	if by == nil {
		return 0
	}
	var issued time.Time
	switch p := r.Predicate.(type) {
	case GrantPredicate:
		issued = p.Issued
	case RevokeKeyPredicate:
		issued = p.Issued
	case RootPredicate:
		issued = p.Issued
	case UpstreamPredicate:
		issued = p.Issued
	}
	return by.Sub(issued)
}

// ActIndex is the index a root act signed apart is for: the introduction
// (the id of the first root record) of the index it was prepared from,
// signed with the act so that the same act and signatures do not apply to
// another index with the same root keys (staging and production). An act
// signed in one process, or one prepared before acts named their index,
// has none: "".
func (r *Record) ActIndex() string {
	switch p := r.Predicate.(type) {
	case GrantPredicate:
		return p.Index
	case RevokeKeyPredicate:
		return p.Index
	case RootPredicate:
		return p.Index
	case UpstreamPredicate:
		return p.Index
	}
	return ""
}

// checkWindow checks an act's window and index: the window ends after it
// is issued, and an index is named only by an act with a window, by its
// introduction's id. How long the window is, and whether the index is
// the right one, the index's rules check (act-window).
func checkWindow(issued time.Time, applyBy *time.Time, index string) error {
	if applyBy != nil && !applyBy.After(issued) {
		return fmt.Errorf("apply_by %s is not after issued %s", applyBy.UTC().Format(time.RFC3339), issued.UTC().Format(time.RFC3339))
	}
	if index != "" && applyBy == nil {
		return fmt.Errorf("index %.16s is named by an act signed apart, which has an apply_by time: this one has none", index)
	}
	if index != "" && !IsDigest(index) {
		return fmt.Errorf("index %q is not an introduction's record id", index)
	}
	return nil
}

// CheckUpstreamName checks an upstream's name (a path element of the index).
func CheckUpstreamName(name string) error { return checkPathName("upstream name", name) }

var pathNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`) }) // compiled when first used (not as every command starts); at most 63: checked apart, as a bounded repetition compiles into 62 copies

// checkPathName checks a name that is one path element of the index.
func checkPathName(what, name string) error {
	if len(name) > 63 || !pathNameRE().MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%s %q: use lowercase letters, digits, '.', '_' and '-' (at most 63)", what, name)
	}
	return nil
}

func parsePredicate(kind Kind, raw json.RawMessage) (any, error) {
	dec := func(v any) error { return decodeStrict(raw, v, "predicate") }
	switch kind {
	case Authored:
		var p AuthoredPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		return p, checkRef(p.Descriptor, "descriptor")
	case Audited, Reviewed, Reproduced, ProofChecked, Scanned, Deprecated, Withdrawn:
		var p CertificationPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		for _, e := range p.Evidence {
			if err := checkRef(e.Ref, "evidence "+e.Name); err != nil {
				return nil, err
			}
		}
		if p.Source != nil {
			if err := checkRef(*p.Source, "source"); err != nil {
				return nil, err
			}
		}
		if len(p.Note) > 4096 {
			return nil, fmt.Errorf("note is %d bytes, over 4096", len(p.Note))
		}
		return p, nil
	case Tested:
		var p TestResultPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		switch p.Result {
		case "PASSED", "WARNED", "FAILED":
		default:
			return nil, fmt.Errorf("test result %q, want PASSED, WARNED or FAILED", p.Result)
		}
		if p.Configuration == nil {
			return nil, fmt.Errorf("test result needs a configuration")
		}
		return p, p.checkRun()
	case Vulnerable:
		var p VulnsPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if p.Scanner.URI == "" || len(p.Scanner.Result) == 0 {
			return nil, fmt.Errorf("a vulnerable record needs scanner.uri and at least one result")
		}
		for _, r := range p.Scanner.Result {
			if r.ID == "" || len(r.Severity) == 0 {
				return nil, fmt.Errorf("every result needs an id and a severity")
			}
			if r.OSV != nil {
				if err := r.OSV.Check(); err != nil {
					return nil, fmt.Errorf("result %s: osv: %w", r.ID, err)
				}
			}
		}
		return p, nil
	case Fixed:
		var p FixedPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if len(p.Vulnerabilities) == 0 {
			return nil, fmt.Errorf("a fixed record names at least one vulnerability id")
		}
		for _, id := range p.Vulnerabilities {
			if strings.TrimSpace(id) == "" || len(id) > 128 {
				return nil, fmt.Errorf("vulnerability id %q: want a non-empty id of at most 128 characters", id)
			}
		}
		for _, e := range p.Evidence {
			if err := checkRef(e.Ref, "evidence "+e.Name); err != nil {
				return nil, err
			}
		}
		return p, p.checkAnswer()
	case Imported:
		var p ImportedPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		return p, p.check()
	case Snapshot:
		var p SnapshotPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if len(p.Name) > 128 {
			return nil, fmt.Errorf("snapshot name is %d bytes, over 128", len(p.Name))
		}
		return p, checkRef(p.Snapshot, "snapshot")
	case Label:
		var p LabelPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if err := CheckLabel(p.Label); err != nil {
			return nil, err
		}
		if p.Previous != "" && !IsDigest(p.Previous) {
			return nil, fmt.Errorf("label move: previous %q is not a record id", p.Previous)
		}
		return p, checkRef(p.Snapshot, "snapshot")
	case Policy:
		var p PolicyPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if err := CheckPolicyName(p.Name); err != nil {
			return nil, err
		}
		if len(p.Policy) > MaxPolicyText || strings.TrimSpace(p.Policy) == "" {
			return nil, fmt.Errorf("policy %s: its text is %d bytes; want 1 to %d", p.Name, len(p.Policy), MaxPolicyText)
		}
		if p.Previous != "" && !IsDigest(p.Previous) {
			return nil, fmt.Errorf("policy %s: previous %q is not a record id", p.Name, p.Previous)
		}
		return p, nil
	case Revoke, Supersede:
		var p EndPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if kind == Supersede && !IsDigest(p.Replacement) {
			return nil, fmt.Errorf("supersede needs the replacement record's id")
		}
		if kind == Revoke && p.Replacement != "" {
			return nil, fmt.Errorf("revoke takes no replacement")
		}
		return p, nil
	case Grant:
		var p GrantPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if strings.TrimSpace(p.Holder) == "" || len(p.Scopes) == 0 {
			return nil, fmt.Errorf("a grant needs a holder and at least one scope")
		}
		for _, s := range p.Scopes {
			if _, err := ParseScope(s); err != nil {
				return nil, err
			}
		}
		return p, checkWindow(p.Issued, p.ApplyBy, p.Index)
	case RevokeKey:
		var p RevokeKeyPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		return p, checkWindow(p.Issued, p.ApplyBy, p.Index)
	case Upstream:
		var p UpstreamPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if err := CheckUpstreamName(p.Name); err != nil {
			return nil, err
		}
		if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("upstream URL %q: want http:// or https://", p.URL)
		}
		if !IsDigest(p.Introduction) {
			return nil, fmt.Errorf("upstream introduction %q is not a record id", p.Introduction)
		}
		return p, checkWindow(p.Issued, p.ApplyBy, p.Index)
	case Root:
		var p RootPredicate
		if err := dec(&p); err != nil {
			return nil, err
		}
		if p.Version < 1 || len(p.Keys) == 0 || p.Threshold < 1 || p.Threshold > len(p.Keys) {
			return nil, fmt.Errorf("root needs version ≥ 1, keys, and 1 ≤ threshold ≤ number of keys")
		}
		if (p.Version == 1) != (p.Previous == "") {
			return nil, fmt.Errorf("root version %d: previous must be set exactly when version > 1", p.Version)
		}
		return p, checkWindow(p.Issued, p.ApplyBy, p.Index)
	}
	return nil, fmt.Errorf("no predicate parser for kind %q", kind)
}

// Blobs returns the blobs a record refers to: the descriptor of an
// authored record, a certification's evidence and source, a test
// result's configuration files (Size -1: the predicate gives no size). A
// server keeps these; an upload nothing refers to is collected.
func (r *Record) Blobs() []Ref {
	var out []Ref
	switch p := r.Predicate.(type) {
	case AuthoredPredicate:
		out = append(out, p.Descriptor)
	case CertificationPredicate:
		for _, e := range p.Evidence {
			out = append(out, e.Ref)
		}
		if p.Source != nil {
			out = append(out, *p.Source)
		}
	case FixedPredicate:
		for _, e := range p.Evidence {
			out = append(out, e.Ref)
		}
	case SnapshotPredicate:
		out = append(out, p.Snapshot)
	case TestResultPredicate:
		for _, c := range p.Configuration {
			if d := c.Digest["sha256"]; IsDigest(d) {
				// Evidence gives its size in an annotation; what the
				// run read (the artifacts) is named by digest alone.
				size := int64(-1)
				if n, ok := c.Annotations["size"].(float64); ok && n >= 0 && n == float64(int64(n)) {
					size = int64(n)
				}
				out = append(out, Ref{SHA256: d, Size: size})
			}
		}
	}
	return out
}

// check checks an imported record's predicate: an http(s) source, and a
// checksum database's evidence of bounded size that names the database
// and gives its lines and signed tree.
func (p ImportedPredicate) check() error {
	if u, err := url.Parse(p.Source); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(p.Source) > 2048 {
		return fmt.Errorf("imported: source %q: want the http:// or https:// URL it was fetched from", p.Source)
	}
	db := p.SumDB
	if db == nil {
		return nil
	}
	if db.Name == "" || len(db.Name) > 256 || len(db.Key) > 512 || len(db.URL) > 2048 {
		return fmt.Errorf("imported: the checksum database needs a name (at most 256 bytes), a key and a URL")
	}
	if len(db.Lines) == 0 || len(db.Lines) > 4 || db.Record < 0 {
		return fmt.Errorf("imported: checksum database %s: want its go.sum lines (1 to 4) and its record's index", db.Name)
	}
	for _, l := range db.Lines {
		if len(l) > 1024 || len(strings.Fields(l)) != 3 {
			return fmt.Errorf("imported: checksum database %s: line %.64q is not a go.sum line", db.Name, l)
		}
	}
	if db.Tree == "" || len(db.Tree) > 8192 {
		return fmt.Errorf("imported: checksum database %s: want its signed tree note (at most 8192 bytes)", db.Name)
	}
	return nil
}
