package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestErrorVoice: what a new user meets first reads cleanly: the hint after
// a bad flag names the command with single spaces (the root's too), and a
// not-found error says what was not found, not ": file does not exist",
// while still exiting 4.
func TestErrorVoice(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	call := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, errb.String()
	}
	if code, _ := call("key", "new", filepath.Join(dir, "root.key")); code != exitOK {
		t.Fatalf("key new: %d", code)
	}
	repo := filepath.Join(dir, "repo")
	if code, _ := call("init", repo, "--root-key", filepath.Join(dir, "root.key")); code != exitOK {
		t.Fatalf("init: %d", code)
	}
	cases := []struct {
		args []string
		code int
		want string // the whole of stderr, a regular expression
	}{
		{[]string{"--bogus"}, exitUsage, `^cairn: error: unknown flag: --bogus\ncairn: hint: see 'cairn --help'\n$`},
		{[]string{"key", "--bogus"}, exitUsage, `^cairn: error: unknown flag: --bogus\ncairn: hint: see 'cairn key --help'\n$`},
		{[]string{"show", "--repo", repo, "acme/none"}, exitNotFound, `^cairn: error: acme/none is not published in \S+ at [0-9a-f]{12}\n$`},
		{[]string{"label", "history", "--repo", repo, "stable"}, exitNotFound, `^cairn: error: label stable is not set in the index at [0-9a-f]{12}\n$`},
		{[]string{"pull", "--repo", repo, "nowhere"}, exitNotFound, `^cairn: error: no remote nowhere in \S+ \(cairn remote add nowhere URL --introduction ID\)\n$`},
		{[]string{"verify", "--repo", filepath.Join(dir, "nowhere")}, exitNotFound, `^cairn: error: no repository at \S+\n$`},
	}
	for _, c := range cases {
		code, stderr := call(c.args...)
		if code != c.code || !regexp.MustCompile(c.want).MatchString(stderr) {
			t.Errorf("cairn %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
}

// TestNotFoundText: the sentinel's text is taken out of a message that
// already says what is missing, and turned into "not found" after a
// name that does not; the error still is fs.ErrNotExist.
func TestNotFoundText(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("no repository at /x: %w", fs.ErrNotExist), "no repository at /x"},
		{fmt.Errorf("pulling origin: blob sha256:ab: %w", fs.ErrNotExist), "pulling origin: blob sha256:ab not found"},
		{fmt.Errorf("reading: acme/x@1 is not published at 0123: %w (try cairn sync)", fs.ErrNotExist), "reading: acme/x@1 is not published at 0123 (try cairn sync)"},
		{fmt.Errorf("open a.key: %w", errors.New("no such file or directory")), "open a.key: no such file or directory"},
		{errors.New("kept as it is: file does not exist"), "kept as it is: file does not exist"},
	} {
		if got := errorText(c.err); got != c.want {
			t.Errorf("errorText(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}
