package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPolicyAndWhyExits: why for a package the plan does not hold exits
// 4 (not found); a policy with several bad rules names each of them, at
// once, and exits 1 — whichever command loads it.
func TestPolicyAndWhyExits(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	call := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	must := func(args ...string) string {
		t.Helper()
		code, out, stderr := call(args...)
		if code != exitOK {
			t.Fatalf("cairn %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	repo := filepath.Join(dir, "repo")
	must("key", "new", filepath.Join(dir, "root.key"))
	must("key", "new", filepath.Join(dir, "alice.key"))
	intro := regexp.MustCompile(`(?m)^introduction ([0-9a-f]{64})$`).FindStringSubmatch(must("init", repo, "--root-key", filepath.Join(dir, "root.key")))
	if intro == nil {
		t.Fatal("init printed no introduction")
	}
	must("key", "grant", "--repo", repo, "--key", filepath.Join(dir, "root.key"), filepath.Join(dir, "alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")
	pkg := filepath.Join(dir, "pkg")
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(pkg, "cairn-package.yaml"), "name: acme/fastjson\nversion: 1.0.0\nlicense: MIT\nartifacts:\n  - kind: source\n    file: src.tar.gz\n")
	write(filepath.Join(pkg, "src.tar.gz"), "source")
	must("publish", "--repo", repo, "--key", filepath.Join(dir, "alice.key"), pkg)

	project := filepath.Join(dir, "project")
	write(filepath.Join(project, "cairn.yaml"), fmt.Sprintf("repositories:\n  - {name: acme, path: %s, introduction: %s}\npackages:\n  acme/fastjson: ^1\npolicy: policy.yaml\n", repo, intro[1]))
	write(filepath.Join(project, "policy.yaml"), "require:\n  - {name: mit, expr: 'pkg.license == \"MIT\"'}\n")
	cache := filepath.Join(dir, "cache")
	must("lock", "--dir", project, "--cache", cache)

	if out := must("why", "acme/fastjson", "--dir", project, "--cache", cache); !strings.Contains(out, "verdict: acme/fastjson@1.0.0: allowed") {
		t.Fatalf("why acme/fastjson:\n%s", out)
	}
	code, _, stderr := call("why", "acme/none", "--dir", project, "--cache", cache)
	if code != exitNotFound || !strings.HasPrefix(stderr, "cairn: error: acme/none is not in the plan") || strings.Contains(stderr, "file does not exist") {
		t.Fatalf("why acme/none: exit %d, stderr %q; want exit %d (not found) naming the package", code, stderr, exitNotFound)
	}

	for _, args := range [][]string{
		{"policy", "check", "--dir", project, "--cache", cache, "acme/none@1.0.0"},
		{"policy", "check", "--dir", project, "--cache", cache, "acme/fastjson@9.9.9"},
	} {
		if code, _, stderr := call(args...); code != exitNotFound || strings.Contains(stderr, "file does not exist") {
			t.Fatalf("cairn %s: exit %d, stderr %q; want exit %d (not found)", strings.Join(args, " "), code, stderr, exitNotFound)
		}
	}

	bad := "require:\n  - name: ci\n    property: tested\n    where: record.reslt == \"PASSED\"\nforbid:\n  - name: gpl\n    expr: pkg.licence.startsWith(\"GPL\")\n"
	write(filepath.Join(dir, "bad.yaml"), bad)
	write(filepath.Join(project, "policy.yaml"), bad)
	for _, args := range [][]string{
		{"policy", "check", "--dir", project, "--cache", cache, "--policy", filepath.Join(dir, "bad.yaml")},
		{"lock", "--dir", project, "--cache", cache},
	} {
		code, _, stderr := call(args...)
		for _, want := range []string{
			"cairn: error: 2 errors in the policy:",
			`bad.yaml:4: rule "ci": where: ERROR: <input>:1:7: undefined field 'reslt'`,
			`bad.yaml:7: rule "gpl": expr: ERROR: <input>:1:4: undefined field 'licence'`,
			"cairn: hint: fix the file at the line named",
		} {
			if args[0] == "lock" {
				want = strings.ReplaceAll(want, "bad.yaml", "policy.yaml")
			}
			if code != exitError || !strings.Contains(stderr, want) {
				t.Fatalf("cairn %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(args, " "), code, stderr, exitError, want)
			}
		}
	}
}
