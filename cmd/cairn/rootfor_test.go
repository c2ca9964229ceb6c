package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// The root built for one command (newRootFor: only the command its first
// argument names) runs it as the root with every command does: each
// command's and subcommand's help is the same, global flags included,
// and commands() names each command by the name it answers to.
func TestRootForOneCommand(t *testing.T) {
	for _, c := range commands() {
		if got := c.build().Name(); got != c.name {
			t.Errorf("commands() names %q a command that answers to %q", c.name, got)
		}
	}
	help := func(root *cobra.Command, out *bytes.Buffer, args []string) string {
		root.SetArgs(args)
		root.SetOut(out)
		root.SetErr(out)
		if err := root.Execute(); err != nil {
			t.Fatalf("cairn %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	full := newRoot(io.Discard)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			walk(s)
		}
		if c == full || c.Name() == "help" || c.Name() == "completion" || strings.HasPrefix(c.CommandPath(), "cairn completion") {
			return
		}
		args := append(strings.Fields(c.CommandPath())[1:], "--help")
		var wantOut, gotOut bytes.Buffer
		want := help(newRoot(&wantOut), &wantOut, args)
		lazy := newRootFor(&gotOut, args)
		got := help(lazy, &gotOut, args)
		if got != want {
			t.Errorf("cairn %s: the help of the root built for %s alone differs:\n%s\nfrom the whole root's:\n%s", strings.Join(args, " "), args[0], got, want)
		}
		if n := len(lazy.Commands()); n > 3 { // the command, help, completion
			t.Errorf("cairn %s: the root built for it holds %d commands", strings.Join(args, " "), n)
		}
	}
	walk(full)
	// Anything else (help, a flag first, a mistyped name) gets every command.
	for _, args := range [][]string{nil, {"help"}, {"--version"}, {"lokc"}} {
		if got, want := len(newRootFor(io.Discard, args).Commands()), len(full.Commands()); got < want {
			t.Errorf("the root built for %q holds %d commands, want all %d", args, got, want)
		}
	}
}
