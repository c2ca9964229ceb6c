package record

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Scope is one permission a grant gives a key.
//
//	publish:PATTERN            publish versions of matching packages (and deprecate or withdraw them)
//	certify:KIND[:PATTERN]     make KIND certifications, on every package or on matching ones
//	checkpoint                 sign a server's checkpoints of the index head
//
// PATTERN is a path.Match pattern over package names ("acme/*").
type Scope struct {
	Action  string // "publish", "certify" or "checkpoint"
	Kind    Kind   // for certify
	Pattern string // package name pattern; "*/*" when absent
}

var patternRE = regexp.MustCompile(`^[a-z0-9*?._-]+(/[a-z0-9*?._-]+)?$`)

// ParseScope parses and checks a scope string.
func ParseScope(s string) (Scope, error) {
	parts := strings.Split(s, ":")
	bad := func(why string) (Scope, error) {
		return Scope{}, fmt.Errorf("scope %q: %s (want publish:PATTERN, certify:KIND[:PATTERN] or checkpoint)", s, why)
	}
	pat := func(p string) (string, error) {
		if !patternRE.MatchString(p) {
			return "", fmt.Errorf("bad package pattern %q", p)
		}
		if _, err := path.Match(p, ""); err != nil {
			return "", err
		}
		if !strings.Contains(p, "/") {
			p += "/*"
		}
		return p, nil
	}
	switch parts[0] {
	case "checkpoint":
		if len(parts) != 1 {
			return bad("checkpoint takes no pattern")
		}
		return Scope{Action: "checkpoint"}, nil
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

// Allows reports whether the scope permits a record of kind about package name.
// A publish scope covers authored, deprecated and withdrawn records.
func (s Scope) Allows(kind Kind, name string) bool {
	if s.Action == "checkpoint" {
		return false
	}
	if ok, _ := path.Match(s.Pattern, name); !ok {
		return false
	}
	switch s.Action {
	case "publish":
		return kind == Authored || kind == Deprecated || kind == Withdrawn
	case "certify":
		return kind == s.Kind
	}
	return false
}

// Needed names the scope a record of kind about name requires, for errors.
func Needed(kind Kind, name string) string {
	if kind == Authored {
		return "publish:" + name
	}
	return "certify:" + string(kind) + " (on " + name + ")"
}
