package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// What cairn prints is the words of others too (a rule's name, a signed
// record's note): no byte of it may steer the user's terminal. Tabs,
// newlines and UTF-8 text are written as they are.
func TestTermSafe(t *testing.T) {
	for _, tc := range []struct {
		in   []string // written one after the other
		want string
	}{
		{[]string{"acme/hello@1.0.0  REFUSED\n"}, "acme/hello@1.0.0  REFUSED\n"},
		{[]string{"a\tb\nc — é ą ✓\n"}, "a\tb\nc — é ą ✓\n"},
		{[]string{"deprecated\r\x1b[1A\x1b[2Kacme/hello  allowed\x1b[8m\n"}, `deprecated\x0d\x1b[1A\x1b[2Kacme/hello  allowed\x1b[8m` + "\n"},
		{[]string{"GHSA-\x1b]0;title\x07X"}, `GHSA-\x1b]0;title\x07X`},
		{[]string{"csi \u009b2J and del \x7f"}, `csi \u009b2J and del \u007f`},
		// A C1 control split between two writes (bufio, tabwriter cut
		// where they will), and one as a lone byte.
		{[]string{"split \xc2", "\x9b2J"}, `split \u009b2J`},
		{[]string{"lone \x9b2J"}, `lone \x9b2J`},
		{[]string{"é split \xc3", "\xa9"}, "é split é"},
		{[]string{"ą split \xc4", "\x85 and ✓ \xe2\x9c", "\x93"}, "ą split ą and ✓ ✓"},
		// Text that reorders or hides itself (Trojan Source).
		{[]string{"admin\u202e lanigiro\u202c and zero\u200bwidth"}, `admin\u202e lanigiro\u202c and zero\u200bwidth`},
		// The same characters as a server's pages escape (web.Hides): an
		// Arabic letter mark, a word joiner, invisible operators.
		{[]string{"alm\u061c wj\u2060 times\u2062 ok ؀ ⁰"}, `alm\u061c wj\u2060 times\u2062 ok ؀ ⁰`},
	} {
		var b bytes.Buffer
		w := newTermSafe(&b)
		for _, p := range tc.in {
			if n, err := w.Write([]byte(p)); err != nil || n != len(p) {
				t.Fatalf("termSafe.Write(%q) = %d, %v", p, n, err)
			}
		}
		if b.String() != tc.want {
			t.Errorf("termSafe(%q) = %q, want %q", tc.in, b.String(), tc.want)
		}
	}
	// JSON and documents go out as they are: a note with DEL in JSON
	// stays JSON.
	var b bytes.Buffer
	if err := printJSON(newTermSafe(&b), map[string]string{"note": "a\x7fb\x1b"}); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(b.Bytes(), &got); err != nil || got["note"] != "a\x7fb\x1b" {
		t.Errorf("printJSON through termSafe: %q (%v)", b.String(), err)
	}
}
