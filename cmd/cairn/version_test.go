package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

// The version names the module's version, the revision built from and
// whether the work tree was modified, as the go command recorded them.
func TestVersionOfBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "cairn.dev/cairn", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-05-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := versionOf(bi)
	if v.Version != "v1.4.0" || v.Revision != "0123456789abcdef0123456789abcdef01234567" || !v.Modified || v.Go != "go1.26.8" || v.Time != "2026-05-01T10:00:00Z" {
		t.Fatalf("versionOf = %+v", v)
	}
	var b bytes.Buffer
	v.print(&b)
	for _, want := range []string{"cairn v1.4.0\n", "revision  0123456789abcdef0123456789abcdef01234567 (modified)\n", "time      2026-05-01T10:00:00Z\n", "go        go1.26.8 "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("version text lacks %q:\n%s", want, b.String())
		}
	}
	if got := versionOf(nil); got.Version != "(unknown)" || got.Go == "" {
		t.Errorf("versionOf(nil) = %+v", got)
	}
}

// cairn --version and cairn version print the same text; --json the
// same facts.
func TestVersionCommand(t *testing.T) {
	call := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != exitOK {
			t.Fatalf("cairn %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	flag, cmd := call("--version"), call("version")
	if flag != cmd || !strings.HasPrefix(flag, "cairn ") || !strings.Contains(flag, "  go        go1.") {
		t.Fatalf("--version:\n%s\nversion:\n%s", flag, cmd)
	}
	var v buildVersion
	if err := json.Unmarshal([]byte(call("version", "--json")), &v); err != nil || v.Module != "cairn.dev/cairn" || !strings.HasPrefix(v.Go, "go1.") {
		t.Fatalf("version --json: %+v, %v", v, err)
	}
}
