package gitx

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParseCommit: whatever object it is given, ParseCommit does not
// panic; a commit it accepts has a tree, header values of one line each,
// a committer that ends at its ">", and writes back (FormatCommit) to an
// object that parses to the same commit.
func FuzzParseCommit(f *testing.F) {
	tree, parent := strings.Repeat("ab", 20), strings.Repeat("cd", 20)
	f.Add(FormatCommit(tree, nil, "cairn <cairn@localhost>", 1700000000, "root\n"))
	f.Add(FormatCommit(tree, []string{parent, strings.Repeat("ef", 20)}, "Ann Example <ann@example.org>", 1, "merge\n\nwith a body\n"))
	f.Add([]byte("tree " + tree + "\nparent " + parent + "\nauthor A <a@b> 1 +0000\ncommitter A <a@b> 1700000000 +0200\n" +
		"gpgsig -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----\nencoding ISO-8859-1\n\nsigned\n"))
	f.Add([]byte("tree " + tree + "\ncommitter no angle brackets 1 +0000\n\nbad\n"))
	f.Add([]byte("tree " + tree + "\ncommitter A <a@b> notanumber +0000\n"))
	f.Add([]byte("parent " + parent + "\n\nno tree\n"))
	f.Add([]byte("tree " + tree + "\ncommitter <a> 1 +0000\n\nmessage without newline"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCommit("id", data)
		if err != nil {
			return
		}
		if c.ID != "id" || c.Tree == "" {
			t.Fatalf("ParseCommit(%q) = %+v: no id or no tree", data, c)
		}
		for _, v := range append([]string{c.Tree, c.Committer}, c.Parents...) {
			if strings.Contains(v, "\n") {
				t.Fatalf("ParseCommit(%q): header value %q spans lines", data, v)
			}
		}
		if c.Committer == "" {
			if c.Time != 0 {
				t.Fatalf("ParseCommit(%q): a time %d without a committer", data, c.Time)
			}
			return // FormatCommit writes a committer: nothing to round-trip
		}
		if !strings.HasSuffix(c.Committer, ">") {
			t.Fatalf("ParseCommit(%q): committer %q does not end at its >", data, c.Committer)
		}
		again, err := ParseCommit("id", FormatCommit(c.Tree, c.Parents, c.Committer, c.Time, c.Message))
		if err != nil {
			t.Fatalf("ParseCommit(%q) = %+v, which written back does not parse: %v", data, c, err)
		}
		msg := c.Message
		if !strings.HasSuffix(msg, "\n") {
			msg += "\n" // FormatCommit ends a message with a newline
		}
		if again.Tree != c.Tree || !slices.Equal(again.Parents, c.Parents) || again.Committer != c.Committer ||
			again.Time != c.Time || again.Message != msg {
			t.Fatalf("ParseCommit(%q) = %+v; written back and parsed: %+v", data, c, again)
		}
	})
}
