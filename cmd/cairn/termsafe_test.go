package main

import (
	"bytes"
	"testing"
)

// What cairn prints is the words of others too (a rule's name, a signed
// record's note): no byte of it may steer the user's terminal. Tabs,
// newlines and UTF-8 text are written as they are.
func TestTermSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"acme/hello@1.0.0  REFUSED\n", "acme/hello@1.0.0  REFUSED\n"},
		{"a\tb\nc — é ✓\n", "a\tb\nc — é ✓\n"},
		{"deprecated\r\x1b[1A\x1b[2Kacme/hello  allowed\x1b[8m\n", `deprecated\x0d\x1b[1A\x1b[2Kacme/hello  allowed\x1b[8m` + "\n"},
		{"GHSA-\x1b]0;title\x07X", `GHSA-\x1b]0;title\x07X`},
		{"csi \u009b2J and del \x7f", `csi \u009b2J and del \x7f`},
		{"\xc2", "\xc2"}, // a lone lead byte: no control
	} {
		var b bytes.Buffer
		n, err := termSafe{&b}.Write([]byte(tc.in))
		if err != nil || n != len(tc.in) || b.String() != tc.want {
			t.Errorf("termSafe(%q) = %q (%d, %v), want %q", tc.in, b.String(), n, err, tc.want)
		}
	}
}
