package main

import (
	"archive/tar"
	"compress/gzip"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/server"
)

func newDemoCmd() *cobra.Command {
	var serve string
	c := &cobra.Command{
		Use:   "demo [--serve HOST:PORT] DIR",
		Short: "Walk through cairn in DIR: keys, a repository, publish, certify, serve, git push, pull, the CI certifier, a snapshot, lock and install under a policy",
		Long: `Run a whole session in a new directory DIR, printing each command as you would
type it (paths relative to DIR) and its output: make keys, create a repository,
grant a publisher and an auditor, publish a package, audit it, declare a
vulnerability, watch the publisher fail to remove it, revoke it as its issuer,
show the package and verify the whole history. Then serve the repository, clone
its index with git, publish in the clone and 'git push' it, and follow the
server from a second, verified replica. A CI service (the certifier, one pass)
follows the server too, tests each version and pushes a signed tested record for
each that passes. Then a curator pins a snapshot behind the label lts-1.0, and a
project (DIR/project: cairn.yaml, a policy.yaml that requires the security
team's audit and the CI's tests) locks and installs it from the server; a
vulnerability certified after the lock makes
install refuse with the reason, until the security team answers it. With
--serve, keep serving at that address until interrupted.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if serve != "" {
				// Said before the walk, not after it.
				if _, port, err := net.SplitHostPort(serve); err != nil {
					return usageError{fmt.Errorf("--serve %q: want HOST:PORT (%v)", serve, err)}
				} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
					return usageError{fmt.Errorf("--serve %q: port %q is not a port number (0 to 65535)", serve, port)}
				}
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), args[0], serve)
		},
	}
	c.Flags().StringVar(&serve, "serve", "", "serve the demo repository at this address afterwards, until interrupted")
	return c
}

var recordLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^record ([0-9a-f]{64})$`) })

func runDemo(ctx context.Context, w io.Writer, dir, serve string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty: give the demo a new directory", dir)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		return err
	}
	p := func(rel string) string { return filepath.Join(dir, rel) }
	step := func(wantFail bool, args ...string) (string, error) {
		shown := make([]string, len(args))
		for i, a := range args {
			a = strings.ReplaceAll(a, dir+string(filepath.Separator), "")
			if strings.ContainsAny(a, " <>*'") {
				a = "'" + a + "'"
			}
			shown[i] = a
		}
		fmt.Fprintf(w, "\n$ cairn %s\n", strings.Join(shown, " "))
		var out bytes.Buffer
		code := run(ctx, args, io.MultiWriter(w, &out), w)
		if (code != 0) != wantFail {
			return "", fmt.Errorf("demo step 'cairn %s' exited %d", strings.Join(shown, " "), code)
		}
		return out.String(), nil
	}
	say := func(s string) { fmt.Fprintf(w, "\n# %s\n", s) }

	fmt.Fprintf(w, "# a cairn session in %s (paths below are relative to it)\n", dir)
	say("keys: OpenSSH ed25519, named by their SHA256 fingerprint")
	for _, k := range []string{"root", "alice", "audit"} {
		if _, err := step(false, "key", "new", p("keys/"+k+".key")); err != nil {
			return err
		}
	}
	say("a repository: a bare git index, a blob store, and its root of trust")
	repo := p("repo")
	if _, err := step(false, "init", repo, "--root-key", p("keys/root.key")); err != nil {
		return err
	}
	say("the root grants scoped keys: alice publishes acme/*, the security team certifies")
	if _, err := step(false, "key", "grant", "--repo", repo, "--key", p("keys/root.key"), p("keys/alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*"); err != nil {
		return err
	}
	if _, err := step(false, "key", "grant", "--repo", repo, "--key", p("keys/root.key"), p("keys/audit.key.pub"), "--holder", "acme-security", "--scope", "certify:audited", "--scope", "certify:vulnerable", "--scope", "certify:fixed"); err != nil {
		return err
	}
	pkg := p("fastjson")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "cairn-package.yaml"), []byte(`name: acme/fastjson
version: 1.2.3
summary: Fast JSON for Go
license: MIT
artifacts:
  - kind: source
    file: fastjson-1.2.3.tar.gz
  - kind: binary
    platform: linux-amd64
    file: fastjson-linux-amd64.tar.gz
`), 0o644)
	for file, content := range map[string][]byte{
		"fastjson-1.2.3.tar.gz":       tarGz("fastjson.go", "package fastjson // 1.2.3\n", 0o644),
		"fastjson-linux-amd64.tar.gz": tarGz("bin/fastjson", "#!/bin/sh\necho fastjson 1.2.3\n", 0o755),
	} {
		if err := os.WriteFile(filepath.Join(pkg, file), content, 0o644); err != nil {
			return err
		}
	}
	say("alice publishes fastjson/ (cairn-package.yaml and two artifacts)")
	if _, err := step(false, "publish", "--repo", repo, "--key", p("keys/alice.key"), pkg); err != nil {
		return err
	}
	say("the security team audits the linux-amd64 binary, then declares a vulnerability")
	if _, err := step(false, "certify", "--repo", repo, "--key", p("keys/audit.key"), "acme/fastjson@1.2.3", "--property", "audited", "--artifact", "linux-amd64", "--note", "reviewed the build"); err != nil {
		return err
	}
	out, err := step(false, "certify", "--repo", repo, "--key", p("keys/audit.key"), "acme/fastjson@1.2.3", "--property", "vulnerable", "--id", "GHSA-demo-0001", "--severity", "high", "--affects", "<1.2.4")
	if err != nil {
		return err
	}
	m := recordLine().FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("demo: no record id in the certify output")
	}
	vuln := m[1]
	say("alice would like the vulnerability gone: she is not its issuer, so the index refuses")
	if _, err := step(true, "revoke", "--repo", repo, "--key", p("keys/alice.key"), vuln[:12], "--reason", "not a real problem"); err != nil {
		return err
	}
	say("the security team finds it was a false positive and revokes its own record")
	if _, err := step(false, "revoke", "--repo", repo, "--key", p("keys/audit.key"), vuln[:12], "--reason", "false positive"); err != nil {
		return err
	}
	say("every record, its issuer and its status")
	if _, err := step(false, "show", "--repo", repo, "acme/fastjson@1.2.3"); err != nil {
		return err
	}
	if _, err := step(false, "key", "list", "--repo", repo); err != nil {
		return err
	}
	if _, err := step(false, "log", "--repo", repo, "-n", "2"); err != nil {
		return err
	}
	say("replay every rule over the whole history")
	if _, err := step(false, "verify", "--repo", repo, "--full"); err != nil {
		return err
	}
	return demoServe(ctx, w, dir, serve, step, say)
}

// demoServe serves the demo repository and publishes to it by git push.
func demoServe(ctx context.Context, w io.Writer, dir, addr string, step func(bool, ...string) (string, error), say func(string)) error {
	p := func(rel string) string { return filepath.Join(dir, rel) }
	repo := p("repo")
	say("a server key, granted the checkpoint scope, signs the server's view of the head")
	if _, err := step(false, "key", "new", p("keys/server.key")); err != nil {
		return err
	}
	if _, err := step(false, "key", "grant", "--repo", repo, "--key", p("keys/root.key"), p("keys/server.key.pub"), "--holder", "server", "--scope", "checkpoint"); err != nil {
		return err
	}
	r, err := index.Open(ctx, repo)
	if err != nil {
		return err
	}
	defer r.Close()
	ckey, err := keys.Resolve(p("keys/server.key"))
	if err != nil {
		return err
	}
	srv, err := server.New(r, server.Options{CheckpointKey: ckey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer srv.Close()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	url := "http://" + l.Addr().String()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	say("cairn serve --repo repo --addr " + l.Addr().String() + "   (running in this process)")
	// The plain git client's steps, as a user would type them: cairn runs
	// them through the index's doors to git (the one package that runs git).
	gitSays := func(line string) {
		fmt.Fprintf(w, "\n$ git %s\n", strings.ReplaceAll(line, dir+string(filepath.Separator), ""))
	}
	say("publishing by git push: clone the index, publish in the clone (the blobs go to the server), push")
	gitSays("clone -q " + url + "/index.git " + p("clone"))
	if err := index.Clone(ctx, url+"/index.git", p("clone")); err != nil {
		return err
	}
	pkg := p("fastjson-1.3.0")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		return err
	}
	manifest := "name: acme/fastjson\nversion: 1.3.0\nsummary: Fast JSON for Go\nlicense: MIT\nartifacts:\n  - kind: source\n    file: fastjson-1.3.0.tar.gz\n"
	if err := os.WriteFile(filepath.Join(pkg, "cairn-package.yaml"), []byte(manifest), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pkg, "fastjson-1.3.0.tar.gz"), []byte("source of fastjson 1.3.0\n"), 0o644); err != nil {
		return err
	}
	if _, err := step(false, "publish", "--repo", p("clone"), "--key", p("keys/alice.key"), pkg); err != nil {
		return err
	}
	gitSays("-C " + p("clone") + " push origin main")
	if err := demoPush(ctx, w, p("clone")); err != nil {
		return err
	}
	say("a laptop pins the repository by its introduction and pulls: every commit and the signed checkpoint verified")
	if _, err := step(false, "remote", "add", "origin", url, "--introduction", r.Config.Introduction, "--repo", p("laptop")); err != nil {
		return err
	}
	if _, err := step(false, "pull", "--repo", p("laptop"), "origin"); err != nil {
		return err
	}
	if _, err := step(false, "show", "--repo", p("laptop"), "acme/fastjson@1.3.0"); err != nil {
		return err
	}
	if err := demoCertifier(w, dir, url, r.Config.Introduction, step, say); err != nil {
		return err
	}
	if err := demoProject(w, dir, url, r.Config.Introduction, step, say); err != nil {
		return err
	}
	if addr == "127.0.0.1:0" {
		stop()
		return <-done
	}
	fmt.Fprintf(w, "\n# serving %s at %s until interrupted: git clone %s/index.git\n", repo, url, url)
	return <-done
}

// demoPush pushes the main of the clone at dir to its origin, as
// `git push origin main` would, and shows what git said (the server's
// "remote:" lines).
func demoPush(ctx context.Context, w io.Writer, dir string) error {
	c, err := index.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	origin, ok, err := c.GitRemoteURL(ctx, "origin")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pushing %s: the clone has no git remote origin", dir)
	}
	res, err := c.PushMain(ctx, origin, index.MainRef)
	if res != nil {
		fmt.Fprint(w, res.Stderr)
	}
	return err
}

// demoCertifier runs one pass of the CI certifier against the demo's
// server, as a CI service would run it from cron (--once): it follows
// the server from its own verified replica, tests each version it has
// not dealt with, and pushes a signed tested record for each that
// passes. The project's policy then requires those records.
func demoCertifier(w io.Writer, dir, url, intro string, step func(bool, ...string) (string, error), say func(string)) error {
	p := func(rel string) string { return filepath.Join(dir, rel) }
	say("a CI service follows the server: it tests each new version, and signs tested when the tests pass")
	if _, err := step(false, "key", "new", p("keys/ci.key")); err != nil {
		return err
	}
	if _, err := step(false, "key", "grant", "--repo", p("repo"), "--key", p("keys/root.key"), p("keys/ci.key.pub"), "--holder", "acme-ci", "--scope", "certify:tested"); err != nil {
		return err
	}
	test := "#!/bin/sh\n# runs in a fresh directory holding the version's source, every byte checked\nset -e\ntest -s \"$CAIRN_ARTIFACT\"\necho \"ok: $CAIRN_PACKAGE@$CAIRN_VERSION ($(wc -c < \"$CAIRN_ARTIFACT\") bytes of source)\"\n"
	fmt.Fprintf(w, "\n$ cat ci-test.sh\n%s", test)
	if err := os.WriteFile(p("ci-test.sh"), []byte(test), 0o755); err != nil {
		return err
	}
	if _, err := step(false, "remote", "add", "origin", url, "--introduction", intro, "--repo", p("ci")); err != nil {
		return err
	}
	say("one pass, as from cron (without --once it keeps following, woken by each push); its log is JSON lines")
	if _, err := step(false, "certifier", "--repo", p("ci"), "--remote", "origin", "--key", p("keys/ci.key"), "--property", "tested", "--run", "sh "+p("ci-test.sh"), "--filter", "acme/*", "--once"); err != nil {
		return err
	}
	_, err := step(false, "show", "--repo", p("repo"), "acme/fastjson@1.3.0")
	return err
}

var snapshotLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^sha256 ([0-9a-f]{64})$`) })

// demoProject pins a snapshot behind a label, then locks and installs a
// project from the server under a policy: a vulnerability certified
// after the lock refuses the install, with the reason, until the
// security team answers it.
func demoProject(w io.Writer, dir, url, intro string, step func(bool, ...string) (string, error), say func(string)) error {
	p := func(rel string) string { return filepath.Join(dir, rel) }
	repo := p("repo")
	show := func(rel, content string) error {
		fmt.Fprintf(w, "\n$ cat %s\n%s", rel, content)
		return os.WriteFile(p(rel), []byte(content), 0o644)
	}
	say("a curator pins a package set as a snapshot, and points the label lts-1.0 at it")
	if _, err := step(false, "key", "new", p("keys/curator.key")); err != nil {
		return err
	}
	if _, err := step(false, "key", "grant", "--repo", repo, "--key", p("keys/root.key"), p("keys/curator.key.pub"), "--holder", "curators", "--scope", "snapshot", "--scope", "label:lts-*"); err != nil {
		return err
	}
	if err := show("lts-1.0.yaml", "name: lts-1.0\ntoolchain: {name: go, version: 1.26}\npackages:\n  - acme/fastjson@1.2.3\n"); err != nil {
		return err
	}
	out, err := step(false, "snapshot", "create", "--repo", repo, "--key", p("keys/curator.key"), p("lts-1.0.yaml"))
	if err != nil {
		return err
	}
	m := snapshotLine().FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("demo: no sha256 in the snapshot output")
	}
	if _, err := step(false, "label", "set", "--repo", repo, "--key", p("keys/curator.key"), "lts-1.0", m[1]); err != nil {
		return err
	}
	say("a project pins the server by its introduction, follows the label, and installs under a policy")
	if err := os.MkdirAll(p("project"), 0o755); err != nil {
		return err
	}
	project := fmt.Sprintf("repositories:\n  - {name: acme, url: %s, introduction: %s}\nsnapshot: lts-1.0\npolicy: policy.yaml\nplatforms: [linux-amd64]\n", url, intro)
	if err := show("project/cairn.yaml", project); err != nil {
		return err
	}
	policy := "issuers:\n  security: [acme-security]\n  ci: [acme-ci]\nrequire:\n  - {name: audited, property: audited, by: security}\n  - {name: tested-by-ci, property: tested, by: ci, where: 'record.result == \"PASSED\"'}\nforbid:\n  - {name: high-vulnerabilities, property: vulnerable, severity: high}\n"
	if err := show("project/policy.yaml", policy); err != nil {
		return err
	}
	in := []string{"--dir", p("project"), "--cache", p("cache")}
	if _, err := step(false, append([]string{"lock"}, in...)...); err != nil {
		return err
	}
	if _, err := step(false, append([]string{"install"}, in...)...); err != nil {
		return err
	}
	say("after the lock, the security team finds a real vulnerability: install refuses, and says why")
	if _, err := step(false, "certify", "--repo", repo, "--key", p("keys/audit.key"), "acme/fastjson@1.2.3", "--property", "vulnerable", "--id", "GHSA-demo-0002", "--severity", "high"); err != nil {
		return err
	}
	if _, err := step(true, append([]string{"install"}, in...)...); err != nil {
		return err
	}
	if _, err := step(false, append([]string{"why", "acme/fastjson"}, in...)...); err != nil {
		return err
	}
	say("the security team answers it with a fixed record; the install goes through")
	if _, err := step(false, "certify", "--repo", repo, "--key", p("keys/audit.key"), "acme/fastjson@1.2.3", "--property", "fixed", "--id", "GHSA-demo-0002", "--note", "the linux-amd64 build does not include the parser"); err != nil {
		return err
	}
	_, err = step(false, append([]string{"install"}, in...)...)
	return err
}

// tarGz is a gzipped tarball of one file.
func tarGz(name, content string, mode int64) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	zw.Close()
	return b.Bytes()
}
