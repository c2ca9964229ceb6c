package web

import "testing"

// Characters that hide or reorder text (a right-to-left override in a
// note: "exe.txt" read as "txt.exe"; a terminal's escape) are written as
// their codes, in text, attributes and scripts alike; the rest is left
// as it is, line ends and tabs and every other letter.
func TestVisible(t *testing.T) {
	for in, want := range map[string]string{
		"<p>safe \u202etxt.exe</p>":                `<p>safe \u202etxt.exe</p>`,
		"bell\x07 esc\x1b[31m del\x7f":             `bell\u0007 esc\u001b[31m del\u007f`,
		"c1 \u009b isolate \u2066x\u2069 zw\u200b": `c1 \u009b isolate \u2066x\u2069 zw\u200b`,
		"bom\ufeff ls\u2028 alm\u061c":             `bom\ufeff ls\u2028 alm\u061c`,
		"tab\tline\r\nnaïve 日本語 ✓":                 "tab\tline\r\nnaïve 日本語 ✓",
	} {
		if got := string(visible([]byte(in))); got != want {
			t.Errorf("visible(%q) = %q, want %q", in, got, want)
		}
	}
}
