package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/install"
)

// raceEnabled is set by race_test.go in -race builds.
var raceEnabled bool

func cairnCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command("cairn", args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "CAIRN_KEY=")
	return cmd
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cairnCmd(t, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Attack 11: a publish killed with SIGKILL at random moments, many times,
// never leaves the repository unverifiable or referencing a missing blob.
func TestPublishKilledAtRandom(t *testing.T) {
	rounds := 40
	if testing.Short() || raceEnabled {
		rounds = 20 // every process is several times slower under the race detector
	}
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	mustRun(t, "key", "new", p("root.key"))
	mustRun(t, "key", "new", p("alice.key"))
	mustRun(t, "init", p("repo"), "--root-key", p("root.key"))
	mustRun(t, "key", "grant", "--repo", p("repo"), "--key", p("root.key"), p("alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")

	artifact := make([]byte, 4<<20) // big enough that a kill can land mid-blob
	pkg := func(i int) string {
		d := p(fmt.Sprintf("pkg%d", i))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "cairn-package.yaml"), []byte(fmt.Sprintf("name: acme/crash\nversion: 1.0.%d\nartifacts:\n  - kind: source\n    file: src.tar.gz\n  - kind: binary\n    platform: linux-amd64\n    file: bin.tar.gz\n", i)), 0o644)
		rand.Read(artifact)
		os.WriteFile(filepath.Join(d, "src.tar.gz"), artifact, 0o644)
		os.WriteFile(filepath.Join(d, "bin.tar.gz"), artifact[:1<<20], 0o644)
		return d
	}
	// One undisturbed publish gives the window to kill in.
	start := time.Now()
	mustRun(t, "publish", "--repo", p("repo"), "--key", p("alice.key"), pkg(0))
	window := time.Since(start) * 3 / 2

	published := map[string]bool{"1.0.0": true}
	for i := 1; i <= rounds; i++ {
		cmd := cairnCmd(t, "publish", "--repo", p("repo"), "--key", p("alice.key"), pkg(i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(mrand.Int64N(int64(window))))
		cmd.Process.Signal(syscall.SIGKILL) // may land after the publish ended: both outcomes count
		err := cmd.Wait()
		if err == nil {
			published[fmt.Sprintf("1.0.%d", i)] = true
		}
	}
	t.Logf("%d rounds: %d publishes killed before they finished, %d completed", rounds, rounds+1-len(published), len(published))

	mustRun(t, "verify", "--repo", p("repo"), "--full")
	// Nothing referenced is missing: every descriptor and artifact of every
	// version in the index is in the blob store, and reads back verified.
	ctx := context.Background()
	r, err := index.Open(ctx, p("repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	views, err := r.Show(ctx, "acme/crash", "")
	if err != nil {
		t.Fatal(err)
	}
	inIndex := map[string]bool{}
	for _, v := range views {
		inIndex[v.Version] = true
		refs := []blob.Ref{v.Ref}
		for _, a := range v.Descriptor.Artifacts {
			refs = append(refs, a.Ref)
		}
		for _, ref := range refs {
			if _, err := blob.ReadAll(ctx, r.Blobs, ref); err != nil {
				t.Fatalf("%s@%s references %s, which the store cannot give back: %v", v.Name, v.Version, ref, err)
			}
		}
		if _, err := descriptor.Parse(mustBlob(t, r, v.Ref)); err != nil {
			t.Fatal(err)
		}
	}
	for v := range published {
		if !inIndex[v] {
			t.Fatalf("publish of %s exited 0 but the version is not in the index", v)
		}
	}
	// git agrees the object store is sound.
	if out, err := exec.Command("git", "--git-dir", p("repo/index.git"), "fsck", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck after kills: %v\n%s", err, out)
	}
	// And the repository still takes new work.
	mustRun(t, "publish", "--repo", p("repo"), "--key", p("alice.key"), pkg(rounds+1))
}

func mustBlob(t *testing.T, r *index.Repo, ref blob.Ref) []byte {
	b, err := blob.ReadAll(context.Background(), r.Blobs, ref)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Attack 7: an install killed with SIGKILL at random moments leaves the
// target as the old install or the new one — every file the manifest
// lists, with its digest, and nothing else — never half of each, and
// never missing.
func TestInstallKilledAtRandom(t *testing.T) {
	rounds := 30
	if testing.Short() || raceEnabled {
		rounds = 12
	}
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	mustRun(t, "key", "new", p("root.key"))
	mustRun(t, "key", "new", p("alice.key"))
	out := mustRun(t, "init", p("repo"), "--root-key", p("root.key"))
	intro := strings.Fields(out[strings.Index(out, "introduction "):])[1]
	mustRun(t, "key", "grant", "--repo", p("repo"), "--key", p("root.key"), p("alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")
	data := make([]byte, 2<<20)
	const packages = 6
	for _, v := range []string{"1.0.0", "2.0.0"} {
		for i := 0; i < packages; i++ {
			d := p(fmt.Sprintf("pkg-%s-%d", v, i))
			os.MkdirAll(d, 0o755)
			os.WriteFile(filepath.Join(d, "cairn-package.yaml"), []byte(fmt.Sprintf("name: acme/p%d\nversion: %s\nartifacts:\n  - kind: binary\n    platform: linux-amd64\n    file: data-%d.bin\n", i, v, i)), 0o644)
			rand.Read(data)
			os.WriteFile(filepath.Join(d, fmt.Sprintf("data-%d.bin", i)), data, 0o644)
			mustRun(t, "publish", "--repo", p("repo"), "--key", p("alice.key"), d)
		}
	}
	digests := map[string]string{} // lock digest → project
	for _, v := range []string{"1.0.0", "2.0.0"} {
		proj := p("project-" + v)
		os.MkdirAll(proj, 0o755)
		var b strings.Builder
		fmt.Fprintf(&b, "repositories:\n  - name: acme\n    path: %s\n    introduction: %s\nplatforms: [linux-amd64]\npackages:\n", p("repo"), intro)
		for i := 0; i < packages; i++ {
			fmt.Fprintf(&b, "  acme/p%d: \"=%s\"\n", i, v)
		}
		os.WriteFile(filepath.Join(proj, "cairn.yaml"), []byte(b.String()), 0o644)
		mustRun(t, "lock", "--dir", proj, "--cache", p("cache"))
		data, _ := os.ReadFile(filepath.Join(proj, "cairn.lock"))
		var l struct{ Digest string }
		json.Unmarshal(data, &l)
		digests[l.Digest] = proj
	}
	target := p("deps")
	installCmd := func(proj string, round int) *exec.Cmd {
		return cairnCmd(t, "install", "--dir", proj, "--into", target, "--cache", p(fmt.Sprintf("cache-%d", round)))
	}
	start := time.Now()
	mustRun(t, installCmd(p("project-1.0.0"), 0).Args[1:]...)
	window := time.Since(start) * 3 / 2
	check := func(round int) string {
		t.Helper()
		m, err := install.ReadManifest(target)
		if err != nil {
			t.Fatalf("round %d: the target is not a whole install: %v", round, err)
		}
		if digests[m.Lock] == "" {
			t.Fatalf("round %d: the manifest names lock %s, neither install's", round, m.Lock)
		}
		want := map[string]string{}
		for _, pkg := range m.Packages {
			for _, f := range pkg.Files {
				want[f.Path] = f.SHA256
			}
		}
		got := map[string]string{}
		filepath.WalkDir(target, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() == ".cairn-manifest.json" {
				return err
			}
			rel, _ := filepath.Rel(target, path)
			f, _ := os.Open(path)
			ref, _ := blob.Digest(f)
			f.Close()
			got[filepath.ToSlash(rel)] = ref.SHA256
			return nil
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: the files are not the manifest's:\n got %v\nwant %v", round, got, want)
		}
		return m.Lock
	}
	check(0)
	seen := map[string]bool{}
	for round := 1; round <= rounds; round++ {
		proj := p("project-1.0.0")
		if round%2 == 1 {
			proj = p("project-2.0.0")
		}
		cmd := installCmd(proj, round)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(mrand.Int64N(int64(window))))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		seen[check(round)] = true
	}
	t.Logf("%d rounds; the target ended as %d different installs", rounds, len(seen))
}

// Attack 12: a certifier killed with SIGKILL at random moments — while
// its command runs, while it signs, between its push landing and its
// progress being written — resumes each time, and in the end every
// version carries exactly one tested record of its key.
func TestCertifierKilledAtRandom(t *testing.T) {
	rounds := 10
	if testing.Short() || raceEnabled {
		rounds = 6
	}
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, k := range []string{"root", "alice", "server", "ci"} {
		mustRun(t, "key", "new", p(k+".key"))
	}
	out := mustRun(t, "init", p("repo"), "--root-key", p("root.key"))
	intro := regexp.MustCompile(`introduction ([0-9a-f]{64})`).FindStringSubmatch(out)[1]
	grant := func(key, holder, scope string) {
		mustRun(t, "key", "grant", "--repo", p("repo"), "--key", p("root.key"), p(key+".pub"), "--holder", holder, "--scope", scope)
	}
	grant("alice.key", "alice", "publish:acme/*")
	grant("server.key", "server", "checkpoint")
	grant("ci.key", "acme-ci", "certify:tested")
	srv := cairnCmd(t, "serve", "--repo", p("repo"), "--addr", "127.0.0.1:0", "--ready-file", p("url"), "--checkpoint-key", p("server.key"))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Signal(syscall.SIGINT); srv.Wait() })
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(p("url"))
		url = strings.TrimSpace(string(data))
		if time.Now().After(deadline) {
			t.Fatal("the server did not start")
		}
	}
	mustRun(t, "remote", "add", "origin", url, "--introduction", intro, "--repo", p("laptop"))
	mustRun(t, "pull", "--repo", p("laptop"), "origin")
	mustRun(t, "remote", "add", "public", url, "--introduction", intro, "--repo", p("ci"))
	const versions = 12
	for i := range versions {
		d := p(fmt.Sprintf("pkg%d", i))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "cairn-package.yaml"), fmt.Appendf(nil, "name: acme/log\nversion: 1.0.%d\nartifacts:\n  - kind: source\n    file: src.txt\n", i), 0o644)
		os.WriteFile(filepath.Join(d, "src.txt"), fmt.Appendf(nil, "source %d\n", i), 0o644)
		mustRun(t, "publish", "--repo", p("laptop"), "--key", p("alice.key"), d)
	}
	mustRun(t, "push", "--repo", p("laptop"), "--key", p("alice.key"), "origin")

	args := []string{"certifier", "--repo", p("ci"), "--remote", "public", "--key", p("ci.key"), "--property", "tested", "--run", "sleep 0.1; cat \"$CAIRN_ARTIFACT\"", "--poll", "50ms"}
	// The server's main, read as git writes it (a loose ref).
	head := func() string {
		data, err := os.ReadFile(p("repo/index.git/refs/heads/main"))
		if err != nil {
			out, _ := exec.Command("git", "--git-dir", p("repo/index.git"), "rev-parse", "main").Output()
			return strings.TrimSpace(string(out))
		}
		return strings.TrimSpace(string(data))
	}
	for i := range rounds {
		cmd := cairnCmd(t, args...)
		before := head()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			// Anywhere.
			time.Sleep(time.Duration(mrand.Int64N(int64(time.Second))))
		} else {
			// The moment a record lands: before the certifier has written
			// its progress.
			for deadline := time.Now().Add(5 * time.Second); head() == before && time.Now().Before(deadline); {
				time.Sleep(200 * time.Microsecond)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	mustRun(t, append(args, "--once")...)

	mustRun(t, "pull", "--repo", p("laptop"), "origin")
	mustRun(t, "verify", "--repo", p("laptop"), "--full")
	certified := 0
	for i := range versions {
		var views []index.VersionView
		if err := json.Unmarshal([]byte(mustRun(t, "show", "--repo", p("laptop"), fmt.Sprintf("acme/log@1.0.%d", i), "--json")), &views); err != nil {
			t.Fatal(err)
		}
		tested := 0
		for _, rv := range views[0].Records {
			if rv.Kind == "tested" && rv.Holder == "acme-ci" {
				tested++
			}
		}
		if tested != 1 {
			t.Fatalf("acme/log@1.0.%d: %d tested records after %d kills, want exactly 1", i, tested, rounds)
		}
		certified++
	}
	t.Logf("%d kills; %d versions certified once each", rounds, certified)
}
