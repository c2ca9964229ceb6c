package record

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
)

// Scope is one permission a grant gives a key.
//
//	publish:PATTERN            publish versions of matching packages (and deprecate, withdraw or import them)
//	certify:KIND[:PATTERN]     make KIND certifications, on every package or on matching ones
//	checkpoint                 sign a server's checkpoints of the index head
//	snapshot                   create snapshots (immutable package sets)
//	label:LABELPATTERN         move matching labels ("lts-*") to snapshots
//	policy:POLICYPATTERN       publish new versions of matching policies ("org-*")
//
// PATTERN is a path.Match pattern over package names ("acme/*",
// "example.com/*", "github.com/BurntSushi/*"), matched by MatchName: case
// folded, and covering every name beneath one it matches; a pattern of
// one element means NS/* ("acme" is "acme/*"). LABELPATTERN is one over
// label names; POLICYPATTERN one over policy names.
type Scope struct {
	Action  string // "publish", "certify", "checkpoint", "snapshot", "label" or "policy"
	Kind    Kind   // for certify
	Pattern string // package name pattern ("*/*" when absent); label pattern for label, policy pattern for policy
}

var labelPatternRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9*?._-]+$`) }) // compiled when first used (not as every command starts); at most 63: checked apart, as a bounded repetition compiles into 63 copies

// patternRE is a package pattern: elements of the characters a package
// name may hold (descriptor.CheckName: a cairn name's, a Go module path's)
// and the wildcards * and ?; its length is checked apart (maxPattern).
var patternRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9*?._~-]+(/[A-Za-z0-9*?._~-]+)*$`) }) // compiled when first used (not as every command starts)

// maxPattern caps a package pattern, as descriptor.MaxNameLen caps a name.
const maxPattern = 255

// MatchName reports whether a package pattern covers name: the pattern
// matches the name (path.Match, '*' not crossing '/'), or a name that
// name lies beneath ("example.com/*" and "example.com/greet" both cover
// "example.com/greet/v2"), both sides case-folded as the index folds
// names (descriptor.FoldName), so that no case variant of a name escapes
// the pattern that covers it. Every check of a name against a scope's
// pattern asks it.
func MatchName(pattern, name string) bool {
	k := strings.Count(pattern, "/") + 1
	elems := strings.SplitN(name, "/", k+1)
	if len(elems) < k {
		return false
	}
	ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(strings.Join(elems[:k], "/")))
	return ok
}

// CheckPattern checks a package pattern: elements of the characters a
// package name may hold and the wildcards, no empty element, no space, no
// version (a pattern that no name could match is an error, not a rule
// that never applies).
func CheckPattern(p string) error {
	if len(p) > maxPattern || !patternRE().MatchString(p) {
		return fmt.Errorf("bad package pattern %q: elements of letters, digits, '.', '_', '~', '-' and the wildcards * and ?, joined by '/' (acme/*, example.com/*, acme/hello)", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("bad package pattern %q: %w", p, err)
	}
	return nil
}

// ParseScope parses and checks a scope string.
func ParseScope(s string) (Scope, error) {
	parts := strings.Split(s, ":")
	bad := func(why string) (Scope, error) {
		return Scope{}, fmt.Errorf("scope %q: %s (want publish:PATTERN, certify:KIND[:PATTERN], checkpoint, snapshot, label:PATTERN or policy:PATTERN)", s, why)
	}
	pat := func(p string) (string, error) {
		if err := CheckPattern(p); err != nil {
			return "", err
		}
		if !strings.Contains(p, "/") {
			p += "/*"
		}
		return p, nil
	}
	switch parts[0] {
	case "checkpoint", "snapshot":
		if len(parts) != 1 {
			return bad(parts[0] + " takes no pattern")
		}
		return Scope{Action: parts[0]}, nil
	case "label":
		if len(parts) != 2 || len(parts[1]) > 63 || !labelPatternRE().MatchString(parts[1]) {
			return bad("label takes one label pattern (lowercase letters, digits, '.', '_', '-', '*', '?')")
		}
		return Scope{Action: "label", Pattern: parts[1]}, nil
	case "policy":
		if len(parts) != 2 || len(parts[1]) > 63 || !labelPatternRE().MatchString(parts[1]) {
			return bad("policy takes one policy name pattern (lowercase letters, digits, '.', '_', '-', '*', '?')")
		}
		return Scope{Action: "policy", Pattern: parts[1]}, nil
	case "publish":
		if len(parts) != 2 {
			return bad("publish takes one package pattern")
		}
		p, err := pat(parts[1])
		if err != nil {
			return bad(err.Error())
		}
		return Scope{Action: "publish", Pattern: p}, nil
	case "certify":
		if len(parts) < 2 || len(parts) > 3 {
			return bad("certify takes a kind and an optional package pattern")
		}
		k, err := ParseKind(parts[1])
		if err != nil || !k.IsCertification() {
			return bad(fmt.Sprintf("%q is not a certification kind", parts[1]))
		}
		p := "*/*"
		if len(parts) == 3 {
			if p, err = pat(parts[2]); err != nil {
				return bad(err.Error())
			}
		}
		return Scope{Action: "certify", Kind: k, Pattern: p}, nil
	}
	return bad("unknown action")
}

// Allows reports whether the scope permits a record of kind about name:
// a package name, for label moves the label, for policies the policy's name.
// A publish scope covers authored, imported, deprecated and withdrawn records.
func (s Scope) Allows(kind Kind, name string) bool {
	if !s.Covers(kind) {
		return false
	}
	if s.Action == "snapshot" {
		return true
	}
	if s.Action == "label" || s.Action == "policy" {
		ok, _ := path.Match(s.Pattern, name)
		return ok
	}
	return MatchName(s.Pattern, name)
}

// Covers reports whether the scope permits records of kind about some
// name: Allows without its pattern, which a certifier asks of its key
// before it knows the versions it will sign.
func (s Scope) Covers(kind Kind) bool {
	switch s.Action {
	case "snapshot":
		return kind == Snapshot
	case "label":
		return kind == Label
	case "policy":
		return kind == Policy
	case "publish":
		return kind == Authored || kind == Deprecated || kind == Withdrawn || kind == Imported
	case "certify":
		return kind == s.Kind && kind != Snapshot && kind != Label
	}
	return false
}

// Needed names the scope a record of kind about name requires, for errors.
func Needed(kind Kind, name string) string {
	switch kind {
	case Authored, Imported:
		return "publish:" + name
	case Snapshot:
		return "snapshot"
	case Label:
		return "label:" + name
	case Policy:
		return "policy:" + name
	}
	return "certify:" + string(kind) + " (on " + name + ")"
}
