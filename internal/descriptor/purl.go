package descriptor

import (
	"fmt"
	"strings"
)

// PURL is a package version's package URL, as cairn's SBOM and VEX
// documents name it: pkg:generic/NAMESPACE/NAME@VERSION (a Go module
// path's every element a segment: pkg:generic/example.com/greet/v2@2.0.0,
// each escaped apart), with a
// repository_url qualifier when its repository is served (loc an http://
// or https:// URL; not path:DIR, an index on one machine's disk). cairn
// is no registered purl type: generic is the honest one, and the
// qualifier says where the name means something.
func PURL(name, version, loc string) string {
	elems := strings.Split(name, "/")
	for i, e := range elems {
		elems[i] = purlEscape(e, false)
	}
	s := "pkg:generic/" + strings.Join(elems, "/") + "@" + purlEscape(version, false)
	if strings.HasPrefix(loc, "https://") || strings.HasPrefix(loc, "http://") {
		s += "?repository_url=" + purlEscape(loc, true)
	}
	return s
}

// purlEscape percent-encodes s for a purl: every byte but the unreserved
// characters, and but ':' and '/' in a qualifier's value (a URL), which
// the purl specification's own examples leave unencoded there.
func purlEscape(s string, qualifier bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		case qualifier && (c == ':' || c == '/'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
