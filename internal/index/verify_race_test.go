package index_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
)

// verifyHelperEnv, set, makes the test binary a second process that
// verifies the repository it names (main, from its last verified head)
// and exits: a server verifying the pushes that moved main.
const verifyHelperEnv = "CAIRN_TEST_VERIFY_REPO"

// A full verification of a repository that a server is serving (cairn
// verify --full on the server's directory, while pushes land) races the
// server's own verification of each push, which moves main's log kept in
// REPO/log/ after git moved main. The kept log read before the
// verification took the log's write lock may have grown by the time it
// holds it: a verification that compared the log it then recomputed with
// the size it read before called the server's honest log one that
// differs from the history (a false *LogMismatchError), or, with main
// read before too, computed the log back to that older head and
// installed it, shrinking the log under the server.
func TestVerifyFullWhileAnotherProcessExtendsTheLog(t *testing.T) {
	if dir := os.Getenv(verifyHelperEnv); dir != "" {
		r, err := index.Open(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Verify(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, when := range []string{"main moved before", "main moved during"} {
		t.Run(when, func(t *testing.T) {
			f := newFixture(t)
			f.publish(f.alice, "acme/a", "1.0.0")
			// The same index elsewhere, one commit ahead: what a push brings.
			ahead := filepath.Join(t.TempDir(), "ahead")
			copyDir(t, f.dir, ahead)
			other, err := index.Open(f.ctx, ahead)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := author.Publish(f.ctx, other, f.pkgDir("acme/b", "1.0.0", ""), f.alice); err != nil {
				t.Fatal(err)
			}
			other.Close()
			push := func() {
				t.Helper()
				f.gitLog("fetch", "-q", filepath.Join(ahead, "index.git"), "main:main")
			}
			// The server's verification of the push, in a process of its own.
			serverVerifies := func() {
				t.Helper()
				cmd := exec.Command(os.Args[0], "-test.run=^TestVerifyFullWhileAnotherProcessExtendsTheLog$")
				cmd.Env = append(os.Environ(), verifyHelperEnv+"="+f.dir)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("the other process's verification: %v\n%s", err, out)
				}
			}
			if when == "main moved before" {
				push()
			}
			defer index.SetHookBeforeRecompute(func() {
				if when == "main moved during" {
					push()
				}
				serverVerifies()
			})()
			res, err := f.repo.Verify(f.ctx, true)
			if err != nil {
				t.Fatalf("a full verification while another process extended the log: %v", err)
			}
			head := f.head()
			if res.Head != head {
				t.Fatalf("verified head %.12s, want main's %.12s", res.Head, head)
			}
			f.checkLog(head) // not shrunk back, not replaced by another
		})
	}
}
