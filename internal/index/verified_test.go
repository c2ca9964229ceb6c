package index_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/record"
)

// Verified, the check every read goes through: a replica with no main yet
// has nothing to verify; a plain-git deletion is a *RuleError naming the
// commit and path; a rewritten history a *ForkError — every time it is
// asked, not only the first.
func TestVerifiedBeforeReads(t *testing.T) {
	f := newFixture(t)
	replica, err := index.InitReplica(f.ctx, filepath.Join(t.TempDir(), "replica"), f.intro)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if res, err := replica.Verified(f.ctx); err != nil || res.Head != "" {
		t.Fatalf("replica before its first pull: %+v, %v; want nothing to verify", res, err)
	}

	f.publish(f.alice, "acme/fastjson", "1.0.0")
	vuln, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-x", Severity: "high"}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	good, err := f.repo.Verified(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	path := layout.RecordPath(layout.VersionDir("acme/fastjson", "1.0.0"), vuln.Records[0])
	clone := filepath.Join(t.TempDir(), "clone")
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=m", "GIT_AUTHOR_EMAIL=m@x", "GIT_COMMITTER_NAME=m", "GIT_COMMITTER_EMAIL=m@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(".", "clone", "-q", filepath.Join(f.dir, "index.git"), clone)
	run(clone, "rm", "-q", path)
	run(clone, "commit", "-q", "-m", "drop it")
	run(clone, "push", "-q", "origin", "main")
	f.repo.ResetReader()
	for i := 0; i < 2; i++ {
		_, err := f.repo.Verified(f.ctx)
		var re *index.RuleError
		if !errors.As(err, &re) || re.Rule != index.RuleAppendOnly || re.Path != path || len(re.Commit) != 40 {
			t.Fatalf("read %d after a deletion: err = %v; want rule %s at %s", i, err, index.RuleAppendOnly, path)
		}
	}

	run(clone, "reset", "-q", "--hard", good.Head+"~1")
	run(clone, "commit", "-q", "--allow-empty", "-m", "nothing to see")
	run(clone, "push", "-q", "--force", "origin", "main")
	f.repo.ResetReader()
	_, err = f.repo.Verified(f.ctx)
	var fe *index.ForkError
	if !errors.As(err, &fe) || fe.Verified != good.Head {
		t.Fatalf("read after a rewrite: err = %v; want a *ForkError from %s", err, good.Head)
	}
}
