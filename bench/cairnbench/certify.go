package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// benchCertify measures the time from a publisher's push landing to the
// CI certifier's tested record landing, on the embedded default (cairn
// serve on one directory, a certifier with its default poll of 10 s,
// woken by the server when the push lands), less the command's own run.
// The floor is raw git doing the same round trip over smart HTTP: fetch
// the pushed commit from the same server, commit one file on it, push
// that to a plain git http-backend.
func benchCertify(cairn, work string) error {
	dir, err := filepath.Abs(filepath.Join(work, "certify"))
	if err != nil {
		return err
	}
	p := func(s string) string { return filepath.Join(dir, s) }
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(cairn, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	for _, k := range []string{"root", "alice", "server", "ci"} {
		if _, err := run("key", "new", p(k+".key")); err != nil {
			return err
		}
	}
	out, err := run("init", p("repo"), "--root-key", p("root.key"))
	if err != nil {
		return err
	}
	intro := regexp.MustCompile(`introduction ([0-9a-f]{64})`).FindStringSubmatch(out)[1]
	for _, g := range [][3]string{{"alice", "alice", "publish:acme/*"}, {"server", "server", "checkpoint"}, {"ci", "acme-ci", "certify:tested"}} {
		if _, err := run("key", "grant", "--repo", p("repo"), "--key", p("root.key"), p(g[0]+".key.pub"), "--holder", g[1], "--scope", g[2]); err != nil {
			return err
		}
	}
	srv, url, err := startCairn(cairn, dir, p("repo"), p("server.key"))
	if err != nil {
		return err
	}
	defer stop(srv)
	for _, c := range [][]string{
		{"remote", "add", "origin", url, "--introduction", intro, "--repo", p("laptop")},
		{"pull", "--repo", p("laptop"), "origin"},
		{"remote", "add", "public", url, "--introduction", intro, "--repo", p("ci")},
	} {
		if _, err := run(c...); err != nil {
			return err
		}
	}
	logf, err := os.Create(p("certifier.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cert := exec.Command(cairn, "certifier", "--repo", p("ci"), "--remote", "public", "--key", p("ci.key"), "--property", "tested", "--run", "true")
	cert.Stderr = logf
	if err := cert.Start(); err != nil {
		return err
	}
	defer stop(cert)

	// The floor's own repositories: a clone of the server's index, and a
	// plain bare repository behind git http-backend.
	floorClone, floorBare := p("floor-clone.git"), p("floor-bare.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", url+"/index.git", floorClone).CombinedOutput(); err != nil {
		return fmt.Errorf("git clone: %v\n%s", err, out)
	}
	if out, err := exec.Command("git", "clone", "-q", "--bare", floorClone, floorBare).CombinedOutput(); err != nil {
		return fmt.Errorf("git clone: %v\n%s", err, out)
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return err
	}
	plain := httptest.NewServer(&cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + dir, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true"}})
	defer plain.Close()
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"--git-dir", floorClone}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=floor", "GIT_AUTHOR_EMAIL=floor@example.com", "GIT_COMMITTER_NAME=floor", "GIT_COMMITTER_EMAIL=floor@example.com")
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}

	head := func(after string, wait time.Duration) (string, error) {
		b, err := httpGet(fmt.Sprintf("%s/api/v1/head?after=%s&wait=%.0f", url, after, wait.Seconds()))
		return strings.TrimSpace(string(b)), err
	}
	const rounds = 20
	var lat, floors []time.Duration
	landed := map[string]time.Duration{}
	for i := range rounds {
		version := fmt.Sprintf("1.0.%d", i)
		pkg := p("pkg-" + version)
		os.MkdirAll(pkg, 0o755)
		os.WriteFile(filepath.Join(pkg, "cairn-package.yaml"), fmt.Appendf(nil, "name: acme/log\nversion: %s\nartifacts:\n  - kind: source\n    file: src.txt\n", version), 0o644)
		os.WriteFile(filepath.Join(pkg, "src.txt"), fmt.Appendf(nil, "source %s\n", version), 0o644)
		if _, err := run("publish", "--repo", p("laptop"), "--key", p("alice.key"), pkg); err != nil {
			return err
		}
		out, err := run("push", "--repo", p("laptop"), "--key", p("alice.key"), "origin")
		if err != nil {
			return err
		}
		pushed := time.Now()
		m := regexp.MustCompile(`head ([0-9a-f]{40})`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("cairn push said %q", out)
		}
		// The certifier's record lands: main moves past the push.
		if h, err := head(m[1], 60*time.Second); err != nil {
			return err
		} else if h == m[1] {
			return fmt.Errorf("acme/log@%s was not certified within 60 s (see %s)", version, p("certifier.log"))
		}
		landed[version] = time.Since(pushed)

		// The floor: the same round trip by raw git.
		t0 := time.Now()
		if _, err := git("fetch", "-q", url+"/index.git", "+main:main"); err != nil {
			return err
		}
		tree, err := git("mktree", "--missing")
		if err != nil {
			return err
		}
		commit, err := git("commit-tree", tree, "-p", "main", "-m", "floor "+version)
		if err != nil {
			return err
		}
		if _, err := git("push", "-q", plain.URL+"/floor-bare.git", "+"+commit+":refs/heads/floor"); err != nil {
			return err
		}
		floors = append(floors, time.Since(t0))
	}
	// The command's own run, per version, from the certifier's log.
	stop(cert)
	logf.Sync()
	runs, err := runSeconds(p("certifier.log"))
	if err != nil {
		return err
	}
	for v, d := range landed {
		s, ok := runs[v]
		if !ok {
			return fmt.Errorf("the certifier did not log certifying acme/log@%s (see %s)", v, p("certifier.log"))
		}
		lat = append(lat, d-time.Duration(s*float64(time.Second)))
	}
	f, l := median(floors), median(lat)
	line("floor_git_roundtrip", ms(f), "ms", 1, "git fetch of the pushed commit from the same server + commit-tree + git push to a plain git http-backend, median of 20")
	line("push_to_certified", ms(l), "ms", ms(f)/ms(l), fmt.Sprintf("cairn push returned → the certifier's tested record on the server (default poll 10 s, woken by the server), less the command's run, median of %d (min %.0f, max %.0f ms)", len(lat), ms(slices.Min(lat)), ms(slices.Max(lat))))
	return nil
}

// runSeconds reads the certifier's JSON log: each certified version's run
// time.
func runSeconds(file string) (map[string]float64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Msg     string  `json:"msg"`
			Version string  `json:"version"`
			Seconds float64 `json:"seconds"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "certified" {
			out[l.Version] = l.Seconds
		}
	}
	return out, sc.Err()
}
