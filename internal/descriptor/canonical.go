package descriptor

import (
	"strconv"
	"sync"
	"unicode/utf8"
)

// appendIndented appends d as encoding/json's MarshalIndent(d, "", "  ")
// writes it, byte for byte (FuzzAppendIndented holds the two together),
// without reflection and without a second, indenting pass: a descriptor's
// canonical form, which Parse compares every descriptor it reads with.
func appendIndented(b []byte, d *Descriptor) []byte {
	b = append(b, "{\n  \"schema\": "...)
	b = appendString(b, d.Schema)
	b = append(b, ",\n  \"name\": "...)
	b = appendString(b, d.Name)
	b = append(b, ",\n  \"version\": "...)
	b = appendString(b, d.Version)
	b = append(b, ",\n  \"uuid\": "...)
	b = appendString(b, d.UUID)
	if d.Summary != "" {
		b = append(b, ",\n  \"summary\": "...)
		b = appendString(b, d.Summary)
	}
	if d.License != "" {
		b = append(b, ",\n  \"license\": "...)
		b = appendString(b, d.License)
	}
	if len(d.Dependencies) > 0 {
		b = append(b, ",\n  \"dependencies\": ["...)
		for i, dep := range d.Dependencies {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n    {\n      \"name\": "...)
			b = appendString(b, dep.Name)
			b = append(b, ",\n      \"version\": "...)
			b = appendString(b, dep.Version)
			b = append(b, "\n    }"...)
		}
		b = append(b, "\n  ]"...)
	}
	b = append(b, ",\n  \"artifacts\": "...)
	switch {
	case d.Artifacts == nil:
		b = append(b, "null"...)
	case len(d.Artifacts) == 0:
		b = append(b, "[]"...)
	default:
		b = append(b, '[')
		for i, a := range d.Artifacts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n    {\n      \"kind\": "...)
			b = appendString(b, a.Kind)
			if a.Platform != "" {
				b = append(b, ",\n      \"platform\": "...)
				b = appendString(b, a.Platform)
			}
			b = append(b, ",\n      \"file\": "...)
			b = appendString(b, a.File)
			b = append(b, ",\n      \"sha256\": "...)
			b = appendString(b, a.SHA256)
			b = append(b, ",\n      \"size\": "...)
			b = strconv.AppendInt(b, a.Size, 10)
			b = append(b, "\n    }"...)
		}
		b = append(b, "\n  ]"...)
	}
	if g := d.Go; g != nil {
		b = append(b, ",\n  \"go\": {\n    \"module\": "...)
		b = appendString(b, g.Module)
		b = append(b, ",\n    \"version\": "...)
		b = appendString(b, g.Version)
		b = append(b, ",\n    \"sum\": "...)
		b = appendString(b, g.Sum)
		b = append(b, ",\n    \"mod_sum\": "...)
		b = appendString(b, g.ModSum)
		b = append(b, "\n  }"...)
	}
	return append(b, "\n}"...)
}

// appendString appends s as a JSON string as encoding/json writes it
// (HTML escaped: <, > and & as \u003c, \u003e, \u0026; U+2028 and U+2029
// escaped; each byte of invalid UTF-8 as \ufffd).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// canonicalBufs holds the buffers Parse writes a descriptor's canonical
// form into, to compare: a replay parses hundreds of descriptors.
var canonicalBufs = sync.Pool{New: func() any { return new([]byte) }}

// isCanonical reports whether data is d's canonical form followed by a
// newline, the bytes Marshal writes.
func isCanonical(d *Descriptor, data []byte) bool {
	p := canonicalBufs.Get().(*[]byte)
	b := append(appendIndented((*p)[:0], d), '\n')
	ok := string(b) == string(data)
	if cap(b) <= MaxSize+1024 {
		*p = b
		canonicalBufs.Put(p)
	}
	return ok
}
