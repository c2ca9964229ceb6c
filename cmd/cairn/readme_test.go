package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
)

// fence is one fenced code block of a Markdown file.
type fence struct {
	info string // what follows the opening ```: "sh", "yaml", ""
	line int    // of the opening fence, 1-based
	body string
}

// fences returns the fenced code blocks of a Markdown document.
func fences(md string) []fence {
	var (
		out []fence
		cur *fence
		b   strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(md))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &fence{info: strings.TrimSpace(strings.TrimPrefix(l, "```")), line: n}
			b.Reset()
		case cur != nil && l == "```":
			cur.body = b.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return out
}

// readme is the repository's README.md.
func readme(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestReadme runs the README's walkthrough, the one ```sh block, exactly
// as written, with bash -euo pipefail, cairn on PATH (this test binary,
// as testscript.Main set it up), from the repository's root (it copies
// examples/) into a new temporary directory, on a machine as fresh as a
// new user's: an empty HOME, no git identity, no key in an agent. It
// asserts what a reader of the walkthrough is promised to see.
func TestReadme(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("the README's walkthrough is a bash script, and there is no bash")
	}
	var script []fence
	for _, f := range fences(readme(t)) {
		if f.info == "sh" {
			script = append(script, f)
		}
	}
	if len(script) != 1 {
		t.Fatalf("README.md has %d ```sh blocks, want exactly one (the walkthrough, run by this test); mark other blocks ```sh fragment", len(script))
	}
	tmp := t.TempDir()
	file := filepath.Join(tmp, "walkthrough.sh")
	if err := os.WriteFile(file, []byte(script[0].body), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(tmp, "home")
	// The go command the walkthrough runs leaves its module cache
	// read-only; make it removable before the temporary directory goes.
	t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", home).Run() })
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", file)
	cmd.Dir = "../.."
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp, "LANG=C", "GIT_CONFIG_NOSYSTEM=1"}
	// The go command's build cache is this machine's, so that the
	// walkthrough's go build does not compile the standard library again.
	if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		cmd.Env = append(cmd.Env, "GOCACHE="+string(bytes.TrimSpace(out)), "GOTOOLCHAIN=local")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that the server it starts in the
	// background goes too, whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	t.Logf("the walkthrough ran in %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("the README's walkthrough (README.md:%d) failed: %v\n%s", script[0].line, err, out.String())
	}
	got := out.String()
	for _, want := range []struct {
		re    string
		count int // 0: at least once
	}{
		{re: `^initialized repo: 1 root key\(s\), threshold 1$`},
		{re: `^granted SHA256:\S+ to acme-security: certify:audited certify:vulnerable certify:fixed$`},
		{re: `^built hello-1.0.0.tar.gz and hello-1.0.0-linux-amd64.tar.gz$`},
		{re: `^published acme/hello@1.0.0 \(descriptor sha256:[0-9a-f]{64}, [0-9]+ bytes\)$`},
		// alice may not revoke the security team's record; its issuer may.
		{re: `^cairn: error: rule issuer-only broken at .*\(holder alice\) may not revoke it`},
		{re: `^refused: exit 3$`, count: 3},
		{re: `^revoked record [0-9a-f]{64}$`},
		{re: `(?m)^ +[0-9a-f]{16} +\S+ +vulnerable +acme-security .* revoked by [0-9a-f]{16} +GHSA-0000-0001 severity high affects <1.0.1$`},
		{re: `^ok: verified 8 commits, 9 files from the introduction`},
		// The clone publishes by git push; the laptop pulls, certifies, pushes.
		{re: `^wrote greet/cairn-package.yaml$`},
		{re: `^uploaded 2 blob\(s\) to http://127.0.0.1:`},
		{re: `remote: cairn: checked 1 commit\(s\), 2 record file\(s\) for refs/heads/main: they keep the index's rules`},
		{re: `^checkpoint: 20 leaves at [0-9a-f]{12}, signed `},
		{re: `^origin: pushed 1 commit\(s\)`},
		{re: `^ +[0-9a-f]{16} +\S+ +audited +acme-security .* active +read it all$`},
		// The project installs the binary, is refused, then installs again.
		{re: `^locked 1 packages$`},
		{re: `^hello, world \(acme/hello 1.0.0\)$`},
		{re: `^  acme/hello@1.0.0: forbid high-vulnerabilities: vulnerable GHSA-0000-0002 \(high\) by acme-security .*not answered by a fixed record$`},
		{re: `^installed 1 packages for linux-amd64 into .*/project/cairn_packages: 2 files, [0-9]+ B \(fetched 1, from cache 0\)$`},
		{re: `^installed 1 packages for linux-amd64 into .*/project/cairn_packages: 2 files, [0-9]+ B \(fetched 0, from cache 1\)$`},
		{re: `^verdict: acme/hello@1.0.0: allowed$`},
		{re: `pass +forbid high-vulnerabilities .*GHSA-0000-0002 answered by fixed record`},
		// Go modules: go builds through cairn's GOPROXY, and is refused the
		// vulnerable version with the server's policy's words.
		{re: `^published example.com/greet@1.1.0 \(descriptor sha256:[0-9a-f]{64}, [0-9]+ bytes\)$`},
		{re: `^hello, world$`},
		{re: `example.com/greet@v1.1.0: reading http://127.0.0.1:\d+/go/example.com/greet/@v/v1.1.0.(info|mod|zip): 403 Forbidden$`},
		{re: `^\tcairn: refused by policy policy.yaml \(sha256:[0-9a-f]{8}…\): example.com/greet@v1.1.0$`},
		{re: `^\trule "high-vulnerabilities" \(forbid vulnerable >= high\): vulnerable GHSA-0000-0003 \(high\) by acme-security .*not answered by a fixed record$`},
		{re: `^refused: exit 1$`, count: 1},
		// The witness cosigns the server's checkpoints; a split view served from the third
		// replica is refused: the witness would not cosign it.
		{re: `^witness witness.example/w1 serving at http://127\.0\.0\.1:\d+$`},
		{re: `SECURITY ERROR: .*cosigned by 0 of the 1 trusted witnesses required \(found: none; missing: witness.example/w1\)`},
		// The root rotates, revokes a key with the new threshold, and the laptop follows.
		{re: `^rotated the root: 2 key\(s\), threshold 2$`},
		{re: `^act [0-9a-f]{64}: revoke key SHA256:\S+`},
		{re: `^signed act [0-9a-f]{16} with SHA256:\S+: wrote root2.sig$`},
		{re: `^signed act [0-9a-f]{16} with SHA256:\S+: wrote root3.sig$`},
		{re: `^applied act [0-9a-f]{16} \(.*\), signed by 2 root key\(s\)$`},
		{re: `^SHA256:\S+ +active +root \(threshold 2 of 2, version 2\)$`, count: 2},
		{re: `^SHA256:\S+ +alice +revoked \(laptop lost\) +(publish:acme/\* publish:example.com/\*|publish:example.com/\* publish:acme/\*)$`},
		// The evidence of the plan, verified with every server stopped.
		{re: `^wrote ../build.evidence: 1 packages, [0-9.]+ KiB, judged at \S+ under policy.yaml: 1 allowed, 0 refused$`},
		{re: `^build.evidence: sound: 1 packages, judged at \S+ under policy.yaml \(sha256:[0-9a-f]{64}\)$`, count: 2},
		{re: `^repository acme \(http://127.0.0.1:\d+\) introduction [0-9a-f]{64}: checkpoint of \d+ leaves, head [0-9a-f]{12}, signed \S+ by SHA256:\S+, cosigned by witness.example/w1 \(your quorum 1\)$`},
		{re: `^repository acme \(http://127.0.0.1:\d+\) introduction [0-9a-f]{64}: checkpoint of \d+ leaves, head [0-9a-f]{12}, signed \S+ by SHA256:\S+, cosigned by witness.example/w1 \(the project's quorum 1\)$`},
		{re: `^acme/hello@1.0.0  allowed  descriptor sha256:[0-9a-f]{64}`, count: 2},
		{re: `^  artifact linux-amd64 binary hello-1.0.0-linux-amd64.tar.gz  sha256:[0-9a-f]{64}`},
	} {
		n := len(regexp.MustCompile(`(?m)`+want.re).FindAllStringIndex(got, -1))
		if n == 0 || want.count > 0 && n != want.count {
			t.Errorf("the walkthrough's output matches %q %d time(s), want %d", want.re, n, max(want.count, 1))
		}
	}
	if t.Failed() {
		t.Logf("the walkthrough's output:\n%s", got)
	}
}

// TestReadmeFragments holds the README to its word: the walkthrough is
// the one block that runs as written; every other block of commands says
// that it is a fragment, in its first line, where a reader sees it.
func TestReadmeFragments(t *testing.T) {
	for _, f := range fences(readme(t)) {
		if f.info == "sh" {
			continue
		}
		commands := regexp.MustCompile(`(?m)^cairn `).MatchString(f.body)
		marked := strings.HasPrefix(f.body, "# fragment")
		if commands && !marked {
			t.Errorf("README.md:%d: a block of cairn commands that does not run as written: start it with a '# fragment: …' line (or make it the walkthrough's ```sh)", f.line)
		}
		if marked && !strings.HasPrefix(f.info, "sh") {
			t.Errorf("README.md:%d: a fragment of commands is fenced ```%s: fence it ```sh fragment", f.line, f.info)
		}
	}
}

// TestExamples holds examples/ valid: the package builds and its
// manifest makes a descriptor, the policy parses, and the project parses
// and names that policy.
func TestExamples(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("examples/hello/build.sh needs tar")
	}
	pkg := filepath.Join(t.TempDir(), "hello")
	if err := os.CopyFS(pkg, os.DirFS("../../examples/hello")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", filepath.Join(pkg, "build.sh")).CombinedOutput(); err != nil {
		t.Fatalf("examples/hello/build.sh: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(pkg, descriptor.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := descriptor.ParseManifest(data)
	if err != nil {
		t.Fatalf("examples/hello/cairn-package.yaml: %v", err)
	}
	store, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := descriptor.FromDir(context.Background(), pkg, store, func(string) (string, error) {
		return "3933e902-5f02-4110-8b88-5530f2866ec0", nil
	})
	if err != nil {
		t.Fatalf("examples/hello: %v", err)
	}
	if d.ID() != m.Name+"@"+m.Version || len(d.Artifacts) != 2 {
		t.Errorf("examples/hello makes %s with %d artifacts, want %s@%s with a source and a binary", d.ID(), len(d.Artifacts), m.Name, m.Version)
	}
	if _, ok := d.Artifact("linux-amd64"); !ok {
		t.Errorf("examples/hello has no linux-amd64 binary: %+v", d.Artifacts)
	}

	dir := "../../examples/project"
	p, err := plan.ReadProject(dir)
	if err != nil {
		t.Fatalf("examples/project: %v", err)
	}
	if p.Policy != "policy.yaml" || len(p.Packages) != 1 || p.Packages[0].Name != m.Name {
		t.Errorf("examples/project/cairn.yaml: policy %q, packages %+v; want policy.yaml and %s", p.Policy, p.Packages, m.Name)
	}
	data, err = os.ReadFile(filepath.Join(dir, p.Policy))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Parse("policy.yaml", data); err != nil {
		t.Fatalf("examples/project/policy.yaml: %v", err)
	}
}

// TestPackageInit: 'cairn package init' writes a manifest that the real
// parser reads back with the name and version asked for, which publishes
// once the source it names is beside it, and never overwrites one.
func TestPackageInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "greet")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"package", "init", dir, "--name", "acme/greet", "--version", "0.2.0", "--summary", `says "hi": loudly`, "--license", "MIT"}, &out, &errb); code != 0 {
		t.Fatalf("package init exited %d: %s", code, errb.String())
	}
	path := filepath.Join(dir, descriptor.ManifestFile)
	if !strings.Contains(out.String(), "wrote "+path+"\n") || !strings.Contains(out.String(), "greet-0.2.0.tar.gz") {
		t.Errorf("package init printed %q", out.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := descriptor.ParseManifest(data)
	if err != nil {
		t.Fatalf("the manifest package init wrote does not parse: %v\n%s", err, data)
	}
	if m.Name != "acme/greet" || m.Version != "0.2.0" || m.Summary != `says "hi": loudly` || m.License != "MIT" || m.UUID != "" {
		t.Errorf("the manifest reads back as %+v", m)
	}
	if len(m.Artifacts) != 1 || m.Artifacts[0].Kind != "source" || m.Artifacts[0].File != "greet-0.2.0.tar.gz" {
		t.Errorf("the manifest's artifacts: %+v, want the one source greet-0.2.0.tar.gz", m.Artifacts)
	}
	if !bytes.Contains(data, []byte("\n# dependencies:\n")) || !bytes.Contains(data, []byte("\n#    platform: linux-amd64\n")) {
		t.Errorf("the manifest does not show the optional fields, commented:\n%s", data)
	}
	if err := os.WriteFile(filepath.Join(dir, "greet-0.2.0.tar.gz"), []byte("source\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := descriptor.FromDir(context.Background(), dir, store, func(string) (string, error) {
		return "21ce4a9e-dbcb-4785-a56b-f32afb5783c5", nil
	}); err != nil {
		t.Errorf("the package package init started does not make a descriptor: %v", err)
	}

	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"package", "init", dir, "--name", "acme/other"}, &out, &errb); code != exitError {
		t.Errorf("package init over a manifest exited %d, want %d", code, exitError)
	}
	if !strings.Contains(errb.String(), "already exists: refusing to overwrite a manifest") {
		t.Errorf("package init over a manifest said %q", errb.String())
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Errorf("package init changed an existing manifest")
	}

	for _, args := range [][]string{
		{"package", "init", filepath.Join(t.TempDir(), "x")},                                       // no --name
		{"package", "init", filepath.Join(t.TempDir(), "x"), "--name", "Greet"},                    // not namespace/name
		{"package", "init", filepath.Join(t.TempDir(), "x"), "--name", "acme/x", "--version", "1"}, // not semver
	} {
		errb.Reset()
		if code := run(context.Background(), args, &out, &errb); code != exitUsage {
			t.Errorf("cairn %s exited %d, want %d: %s", strings.Join(args, " "), code, exitUsage, errb.String())
		}
		if _, err := os.Stat(filepath.Join(args[2], descriptor.ManifestFile)); err == nil {
			t.Errorf("cairn %s wrote a manifest", strings.Join(args, " "))
		}
	}
}

// TestReadmeLayout holds the README's "Layout of the code" to the code:
// every path it names exists, and every package under internal/ is
// named (itself, or as a helper package its parent's line names).
func TestReadmeLayout(t *testing.T) {
	md := readme(t)
	i := strings.Index(md, "## Layout of the code\n")
	if i < 0 {
		t.Fatal("README.md has no '## Layout of the code' section")
	}
	var layout string
	for _, f := range fences(md[i:]) {
		layout = f.body
		break
	}
	named := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(layout), "\n") {
		path := strings.TrimSuffix(strings.Fields(l)[0], "/")
		named[path] = true
		if _, err := os.Stat(filepath.Join("../..", path)); err != nil {
			t.Errorf("README.md's layout names %s: %v", path, err)
		}
	}
	err := filepath.WalkDir("../../internal", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || d.Name() == "testdata" {
			if d != nil && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return err
		}
		gos, _ := filepath.Glob(filepath.Join(p, "*.go"))
		if len(gos) == 0 {
			return nil
		}
		rel, _ := filepath.Rel("../..", p)
		parent := filepath.Dir(rel)
		if !named[rel] && !(named[parent] && strings.Contains(layout, filepath.Base(rel)+":")) {
			t.Errorf("README.md's layout does not name %s: add a line for it (DESIGN.md's Parts is the map)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadmeCommands holds the README's "Commands" section to the CLI:
// every command a user can run (each leaf of the command tree, but for
// help and completion's shells) is named there as `cairn PATH…`.
func TestReadmeCommands(t *testing.T) {
	md := readme(t)
	i := strings.Index(md, "## Commands\n")
	if i < 0 {
		t.Fatal("README.md has no '## Commands' section")
	}
	section := md[i+len("## Commands\n"):]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if !c.HasAvailableSubCommands() {
			if !strings.Contains(section, "`"+c.CommandPath()) {
				t.Errorf("README.md's Commands section does not name `%s`: add it to the table", c.CommandPath())
			}
			return
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(io.Discard))
}
