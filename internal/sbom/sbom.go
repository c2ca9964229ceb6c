// Package sbom writes a lock's software bill of materials: a CycloneDX
// 1.6 JSON document (https://cyclonedx.org/docs/1.6/json/) that lists
// every locked package and every locked artifact with its SHA-256 and
// SHA-512 (Germany's BSI TR-03183-2 asks for SHA-512), and the dependency
// graph as the lock resolved it, so that the SBOM tools an organisation
// already runs read a cairn build plan.
//
// The document is a function of the lock and the bytes it names:
//
//   - each package is a component of type library, its bom-ref its
//     name@version, its purl pkg:generic/NAMESPACE/NAME@VERSION with a
//     repository_url qualifier naming the repository's URL when it is
//     served (cairn is no registered purl type: generic is the honest
//     one, and the qualifier says where the name means something), its
//     licence (an SPDX expression), its summary, its supplier (the
//     repository it was locked from), its publisher (the holder of the
//     key that signed its authored record, when known), and the
//     properties cairn:repository and cairn:descriptor (the descriptor's
//     sha256, hex);
//   - each distinct artifact of a package is a nested component of type
//     file, its bom-ref name@version#sha256:HEX, with hashes SHA-256 and
//     SHA-512 and the properties cairn:kind, cairn:size and one
//     cairn:platform for each locked platform it serves;
//   - metadata.component is the lock itself (bom-ref "cairn.lock",
//     properties cairn:lock, its digest, and cairn:project, the sha256 of
//     the cairn.yaml it was made from); dependencies give the lock's
//     roots (the packages cairn.yaml or the snapshot chose) and each
//     package's dependencies, resolved to the locked versions;
//   - serialNumber is urn:uuid: of a UUIDv5 (SHA-1 name-based) of the
//     lock's digest in cairn's own namespace, version 1;
//   - metadata.timestamp is absent unless the caller gives a time (cairn
//     sbom takes SOURCE_DATE_EPOCH, the reproducible-builds convention),
//     so that the same lock and bytes give the same document.
package sbom

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/google/uuid"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/record"
)

// SpecVersion is the CycloneDX version written.
const SpecVersion = cdx.SpecVersion1_6

// LockRef is the bom-ref of the document's subject, the lock.
const LockRef = "cairn.lock"

// JSONSchema is the document's $schema: CycloneDX 1.6's.
const JSONSchema = "http://cyclonedx.org/schema/bom-1.6.schema.json"

// Namespace is the UUIDv5 namespace of documents' serial numbers: the
// UUIDv5 of the URL https://cairn.dev/sbom in the URL namespace.
var Namespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://cairn.dev/sbom"))

// ErrUnread is the parent of Make's errors for a blob it could not read.
var ErrUnread = errors.New("a blob the lock names could not be read")

// Options configures Make.
type Options struct {
	// Open reads an artifact of pkg that the lock names, verified by its
	// SHA-256 and size as it streams (blob.Store.Open's contract).
	// Required unless SHA512 has every artifact.
	Open func(ctx context.Context, pkg *plan.Locked, ref blob.Ref) (io.ReadCloser, error)
	// SHA512 gives artifacts' SHA-512 (hex) by their SHA-256 (hex),
	// stated without reading them: the claims of a document being
	// derived again where the artifacts are not at hand (Claims). An
	// artifact it lacks is read through Open.
	SHA512 map[string]string
	// Time, if not zero, is the document's metadata.timestamp.
	Time time.Time
	// Tool names the program that writes the document ("cairn v0.14.0"):
	// metadata.tools, a component named by its first word, versioned by
	// the rest. Empty: none.
	Tool string
	// Compact makes Document.JSON the document without its indentation
	// (the encoder's compact output): the same values, cheaper to write,
	// for Indented to compare with a document's bytes.
	Compact bool
}

// Document is a lock's SBOM.
type Document struct {
	JSON      []byte `json:"-"`         // the CycloneDX document
	Serial    string `json:"serial"`    // its serialNumber
	Packages  int    `json:"packages"`  // components of type library
	Artifacts int    `json:"artifacts"` // nested components of type file
}

// Make writes the SBOM of l (see the package's documentation), reading
// each package's descriptor and records from its repository in srcs and
// each artifact's bytes through o.Open. The lock must have been checked
// against srcs (plan.Check).
func Make(ctx context.Context, l *plan.Lock, srcs plan.Sources, o Options) (*Document, error) {
	locs := map[string]string{}
	for _, r := range l.Repositories {
		locs[r.Name] = r.Location
	}
	doc := &Document{Serial: "urn:uuid:" + uuid.NewSHA1(Namespace, []byte(l.Digest)).String()}
	bom := cdx.NewBOM()
	bom.SpecVersion = SpecVersion
	bom.JSONSchema = JSONSchema
	bom.SerialNumber = doc.Serial
	bom.Metadata = &cdx.Metadata{Component: &cdx.Component{
		BOMRef: LockRef, Type: cdx.ComponentTypeApplication, Name: LockRef,
		Description: "a cairn build plan: every package and artifact pinned by hash",
		Properties:  &[]cdx.Property{{Name: "cairn:lock", Value: l.Digest}, {Name: "cairn:project", Value: l.Project}},
	}}
	if !o.Time.IsZero() {
		bom.Metadata.Timestamp = o.Time.UTC().Format(time.RFC3339)
	}
	if o.Tool != "" {
		name, version, _ := strings.Cut(o.Tool, " ")
		bom.Metadata.Tools = &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: name, Version: version}}}
	}

	var comps []cdx.Component
	var roots []string
	deps := []cdx.Dependency{}
	for i := range l.Packages {
		pkg := &l.Packages[i]
		d, publisher, err := read(pkg, srcs)
		if err != nil {
			return nil, err
		}
		c := cdx.Component{
			BOMRef:      pkg.ID(),
			Type:        cdx.ComponentTypeLibrary,
			Name:        pkg.Name,
			Version:     pkg.Version,
			Description: d.Summary,
			Publisher:   publisher,
			PackageURL:  PURL(pkg.Name, pkg.Version, locs[pkg.Repository]),
			Supplier:    &cdx.OrganizationalEntity{Name: pkg.Repository},
			Properties: &[]cdx.Property{
				{Name: "cairn:repository", Value: pkg.Repository},
				{Name: "cairn:descriptor", Value: pkg.Descriptor.SHA256},
			},
		}
		if u := locs[pkg.Repository]; served(u) {
			c.Supplier.URL = &[]string{u}
		}
		if d.License != "" {
			c.Licenses = &cdx.Licenses{{Expression: d.License}}
		}
		files, err := artifacts(ctx, pkg, o)
		if err != nil {
			return nil, err
		}
		if len(files) > 0 {
			c.Components = &files
		}
		doc.Artifacts += len(files)
		comps = append(comps, c)

		dep := cdx.Dependency{Ref: pkg.ID()}
		var on []string
		for _, dd := range d.Dependencies {
			to := l.Package(dd.Name)
			if to == nil {
				return nil, fmt.Errorf("package %s depends on %s (%s), which %s does not lock: run cairn lock again", pkg.ID(), dd.Name, dd.Version, plan.LockFile)
			}
			on = append(on, to.ID())
		}
		slices.Sort(on)
		if on = slices.Compact(on); len(on) > 0 {
			dep.Dependencies = &on
		}
		deps = append(deps, dep)
		if slices.ContainsFunc(pkg.ChosenBy, func(why string) bool { return !strings.HasPrefix(why, "required by ") }) {
			roots = append(roots, pkg.ID())
		}
	}
	doc.Packages = len(comps)
	if len(comps) > 0 {
		bom.Components = &comps
	}
	root := cdx.Dependency{Ref: LockRef}
	if len(roots) > 0 {
		root.Dependencies = &roots
	}
	deps = append([]cdx.Dependency{root}, deps...)
	bom.Dependencies = &deps

	var buf bytes.Buffer
	// Encode, not EncodeVersion: the BOM is of SpecVersion already, and
	// EncodeVersion copies it whole (through gob) to convert it to the
	// version it is of; TestEncodeIsEncodeVersion keeps them the same.
	if err := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(!o.Compact).SetEscapeHTML(false).Encode(bom); err != nil {
		return nil, fmt.Errorf("sbom: encoding the CycloneDX document: %w", err)
	}
	doc.JSON = buf.Bytes()
	return doc, nil
}

// Indented reports whether doc is, byte for byte, the document whose
// compact encoding (Options.Compact) is compact: compact indented as Make
// indents it (encoding/json's indentation by two spaces: a newline and
// the depth's indent after an opening bracket or brace of a non-empty
// value, after a comma, and before the closing one; ": " after a name;
// an empty object or array as {} or []), compared as it is read, with no
// copy made. compact must be JSON as encoding/json writes it: no space
// outside strings, then a newline.
func Indented(doc, compact []byte) bool {
	i := 0 // the next byte of doc
	newline := func(depth int) bool {
		if i+1+2*depth > len(doc) || doc[i] != '\n' {
			return false
		}
		for _, c := range doc[i+1 : i+1+2*depth] {
			if c != ' ' {
				return false
			}
		}
		i += 1 + 2*depth
		return true
	}
	depth, needIndent := 0, false
	for k := 0; k < len(compact); k++ {
		c := compact[k]
		if c == '"' {
			// A string, as it is, to its closing quote.
			end := k + 1
			for end < len(compact) && compact[end] != '"' {
				if compact[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end+1, len(compact))
			if needIndent {
				needIndent, depth = false, depth+1
				if !newline(depth) {
					return false
				}
			}
			if i+end-k > len(doc) || string(doc[i:i+end-k]) != string(compact[k:end]) {
				return false
			}
			i, k = i+end-k, end-1
			continue
		}
		if needIndent && c != '}' && c != ']' {
			needIndent, depth = false, depth+1
			if !newline(depth) {
				return false
			}
		}
		switch c {
		case '{', '[':
			needIndent = true
		case ',':
			if i >= len(doc) || doc[i] != c {
				return false
			}
			i++
			if !newline(depth) {
				return false
			}
			continue
		case ':':
			if i+1 >= len(doc) || doc[i] != ':' || doc[i+1] != ' ' {
				return false
			}
			i += 2
			continue
		case '}', ']':
			if needIndent {
				needIndent = false
			} else {
				if depth == 0 {
					return false // not compact JSON
				}
				depth--
				if !newline(depth) {
					return false
				}
			}
		}
		if i >= len(doc) || doc[i] != c {
			return false
		}
		i++
	}
	return i == len(doc)
}

// read returns a locked package's descriptor as its repository holds it
// (the lock's, by digest) and its publisher: the holder (as the
// repository's root granted it) of the key that signed its active
// authored record, several joined by ", ", or none. The descriptor is
// the catalog's own (index.Catalog.VersionShared): read, never changed.
func read(pkg *plan.Locked, srcs plan.Sources) (*descriptor.Descriptor, string, error) {
	s := srcs.Get(pkg.Repository)
	if s == nil {
		return nil, "", fmt.Errorf("package %s: repository %s is not in %s", pkg.ID(), pkg.Repository, plan.ProjectFile)
	}
	d, ref, recs, err := s.Catalog.VersionShared(pkg.Name, pkg.Version)
	if err != nil {
		return nil, "", fmt.Errorf("package %s: %w", pkg.ID(), err)
	}
	if ref != pkg.Descriptor {
		return nil, "", fmt.Errorf("package %s: repository %s holds descriptor %s, %s names %s: check the lock (cairn lock --check)", pkg.ID(), pkg.Repository, ref, plan.LockFile, pkg.Descriptor)
	}
	var holders []string
	for _, r := range recs {
		if r.Kind == string(record.Authored) && r.Status.Active() && r.Holder != "" {
			holders = append(holders, r.Holder)
		}
	}
	slices.Sort(holders)
	return d, strings.Join(slices.Compact(holders), ", "), nil
}

// artifacts returns a package's distinct artifacts as file components, in
// the lock's order, each with the platforms it serves.
func artifacts(ctx context.Context, pkg *plan.Locked, o Options) ([]cdx.Component, error) {
	var out []cdx.Component
	index := map[string]int{}
	for _, a := range pkg.Artifacts {
		if i, ok := index[a.SHA256]; ok {
			if a.Platform != "" {
				*out[i].Properties = append(*out[i].Properties, cdx.Property{Name: "cairn:platform", Value: a.Platform})
			}
			continue
		}
		sum, err := sha512Of(ctx, pkg, a, o)
		if err != nil {
			return nil, err
		}
		props := []cdx.Property{{Name: "cairn:kind", Value: a.Kind}, {Name: "cairn:size", Value: strconv.FormatInt(a.Size, 10)}}
		if a.Platform != "" {
			props = append(props, cdx.Property{Name: "cairn:platform", Value: a.Platform})
		}
		index[a.SHA256] = len(out)
		out = append(out, cdx.Component{
			BOMRef: pkg.ID() + "#sha256:" + a.SHA256,
			Type:   cdx.ComponentTypeFile,
			Name:   a.File,
			Hashes: &[]cdx.Hash{
				{Algorithm: cdx.HashAlgoSHA256, Value: a.SHA256},
				{Algorithm: cdx.HashAlgoSHA512, Value: sum},
			},
			Properties: &props,
		})
	}
	return out, nil
}

// sha512Of returns an artifact's SHA-512: o.SHA512's, or hashed from its
// bytes as o.Open reads them (checked by SHA-256 as they stream).
func sha512Of(ctx context.Context, pkg *plan.Locked, a plan.LockedArtifact, o Options) (string, error) {
	if sum, ok := o.SHA512[a.SHA256]; ok {
		return sum, nil
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("%w: %s's artifact %s (sha256 %s): %w", ErrUnread, pkg.ID(), a.File, a.SHA256, err)
	}
	if o.Open == nil {
		return fail(errors.New("no SHA-512 given and no way to read it"))
	}
	rc, err := o.Open(ctx, pkg, a.Ref)
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	h := sha512.New()
	if _, err := io.Copy(h, rc); err != nil {
		return fail(err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// served reports whether a lock's repository location is a URL (not
// path:DIR, an index on one machine's disk).
func served(loc string) bool {
	return strings.HasPrefix(loc, "https://") || strings.HasPrefix(loc, "http://")
}

// PURL is a locked package's package URL: pkg:generic/NAMESPACE/NAME@VERSION,
// with a repository_url qualifier when the repository is served (loc a
// URL), as descriptor.PURL writes it (the VEX documents name versions
// the same way).
func PURL(name, version, loc string) string { return descriptor.PURL(name, version, loc) }

// Claims returns what a document states of each artifact's SHA-512, by
// SHA-256 (both hex): Options.SHA512 for deriving it again where the
// artifacts are not at hand.
func Claims(doc []byte) (map[string]string, error) {
	// Only the components and their hashes are read (decoding the whole
	// CycloneDX model costs more than deriving the document): whatever
	// they say, the document derived with them must be the same bytes.
	var bom struct {
		BOMFormat  string             `json:"bomFormat"`
		Components []claimedComponent `json:"components"`
	}
	if err := jsonv2.Unmarshal(doc, &bom); err != nil {
		return nil, fmt.Errorf("not a CycloneDX JSON document: %w", err)
	}
	out := map[string]string{}
	var walk func([]claimedComponent)
	walk = func(cs []claimedComponent) {
		for _, c := range cs {
			var s256, s512 string
			for _, h := range c.Hashes {
				switch cdx.HashAlgorithm(h.Alg) {
				case cdx.HashAlgoSHA256:
					s256 = h.Content
				case cdx.HashAlgoSHA512:
					s512 = h.Content
				}
			}
			if s256 != "" && s512 != "" {
				out[s256] = s512
			}
			walk(c.Components)
		}
	}
	walk(bom.Components)
	return out, nil
}

// claimedComponent is what Claims reads of a component.
type claimedComponent struct {
	Hashes []struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	} `json:"hashes"`
	Components []claimedComponent `json:"components"`
}
