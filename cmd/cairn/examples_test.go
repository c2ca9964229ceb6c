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
		if c.Runnable() {
			used[path] = true
		}
		// Every help page: a runnable command's, and a group's
		// (cairn key, cairn completion, which cobra adds).
		if c != root && !c.Hidden && c.Name() != "help" {
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

	for _, page := range []struct{ args, want string }{
		{"show --help", "\nExamples:\n  cairn show acme/fastjson\n"},
		{"completion --help", "\nExamples:\n  source <(cairn completion bash)\n  cairn completion fish > "},
		{"completion zsh --help", "\nExamples:\n  cairn completion zsh > "},
		{"key --help", "\nExamples:\n  cairn key grant --key root.key "},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), strings.Fields(page.args), &out, &out); code != exitOK ||
			!strings.Contains(out.String(), page.want) {
			t.Errorf("cairn %s: exit %d, no Examples: section with %q:\n%s", page.args, code, page.want, out.String())
		}
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
