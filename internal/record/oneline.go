package record

import "strings"

// OneLine is s with its line breaks (and the other separators a line
// can be cut by: vertical tab, form feed, NEL, LS, PS) written escaped:
// a record's words are its signer's, and one printed where lines
// are listed must not add a line that reads as another record's.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\n\r\v\f\u0085\u2028\u2029") {
		return s
	}
	return oneLineReplacer.Replace(s)
}

var oneLineReplacer = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\v", `\v`, "\f", `\f`, "\u0085", `\u0085`, "\u2028", `\u2028`, "\u2029", `\u2029`)
