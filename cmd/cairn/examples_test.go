package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpExamples: every runnable command's help (hidden ones too) has an
// Examples: section; each example runs a command that exists with flags
// it has; and no
// example in the table is for a command that is gone.
func TestHelpExamples(t *testing.T) {
	root := newRoot(nil)
	used := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), "cairn ")
		if c.Runnable() && c.Name() != "help" {
			used[path] = true
			if c.Example == "" {
				t.Errorf("cairn %s has no examples: add them to the table in examples.go", path)
			}
			for _, line := range strings.Split(c.Example, "\n") {
				line = strings.TrimSpace(line)
				for _, part := range strings.Split(line, "&&") {
					if fields := shellWords(strings.TrimSpace(part)); len(fields) > 0 && fields[0] == "cairn" {
						checkExample(t, root, path, fields[1:])
					}
				}
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	for path := range examples {
		if !used[path] {
			t.Errorf("examples.go has examples for %q, which is no runnable command", path)
		}
	}

	var out bytes.Buffer
	if code := run(context.Background(), []string{"show", "--help"}, &out, &out); code != exitOK ||
		!strings.Contains(out.String(), "\nExamples:\n  cairn show acme/fastjson\n") {
		t.Errorf("cairn show --help: exit %d, no Examples: section:\n%s", code, out.String())
	}
}

// checkExample checks that args name a command, and only flags it has.
func checkExample(t *testing.T, root *cobra.Command, path string, args []string) {
	t.Helper()
	c, _, err := root.Find(args)
	if err != nil {
		t.Errorf("cairn %s: example %q: %v", path, strings.Join(args, " "), err)
		return
	}
	for _, a := range args {
		var name string
		switch {
		case strings.HasPrefix(a, "--"):
			name, _, _ = strings.Cut(a[2:], "=")
		case strings.HasPrefix(a, "-") && len(a) == 2:
			if f := c.Flags().ShorthandLookup(a[1:]); f != nil {
				name = f.Name
			} else {
				name = a
			}
		default:
			continue
		}
		if c.Flag(name) == nil {
			t.Errorf("cairn %s: example %q: no flag %s", path, strings.Join(args, " "), a)
		}
	}
}

// shellWords splits a line as sh would, for the quoting examples use
// (single and double quotes), stopping at a comment, pipe or redirect.
func shellWords(line string) []string {
	var (
		words []string
		cur   strings.Builder
		quote rune
		in    bool
	)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case (r == '#' || r == '|' || r == '>' || r == '<') && !in:
			return words
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}
