package index_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
)

// gitOut runs git on the world's repository and returns its output.
func gitOut(t *testing.T, w *indextest.World, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir", indextest.GitDir(t, w.Repo)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// revokedHistory makes a history in which the root revokes the security
// team's key (revoked) after base, a forged commit on it that adds the
// audit the key signed before (forged), and a genuine history past the
// revocation (genuine).
func revokedHistory(t *testing.T) (w *indextest.World, base, revoked, forged, genuine string) {
	w = indextest.New(t)
	for i := 0; i < 6; i++ {
		w.Publish(indextest.Package{Name: fmt.Sprintf("acme/p%d", i), Version: "1.0.0"})
	}
	base = gitOut(t, w, nil, "rev-parse", index.MainRef)
	// The security team audits while its key is granted…
	w.Audit("acme/p0", "1.0.0")
	audited := gitOut(t, w, nil, "rev-parse", index.MainRef)
	// …and on the history that counts, the root revoked the key first.
	gitOut(t, w, nil, "update-ref", index.MainRef, base, audited)
	os.Remove(w.Repo.Main().Marker) // (and this copy forgets it verified the audit)
	os.RemoveAll(w.Repo.Main().LogDir())
	if _, err := author.RevokeKey(w.Ctx, w.Repo, keys.ID(w.Security.Public()), "left", w.Root); err != nil {
		t.Fatal(err)
	}
	revoked = gitOut(t, w, nil, "rev-parse", index.MainRef)
	// Mallory adds the audit's files after the revocation.
	idx := []string{"GIT_INDEX_FILE=" + filepath.Join(t.TempDir(), "index")}
	gitOut(t, w, idx, "read-tree", revoked)
	for _, line := range strings.Split(gitOut(t, w, nil, "diff-tree", "-r", "--no-commit-id", audited+"^", audited), "\n") {
		meta, path, _ := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		gitOut(t, w, idx, "update-index", "--add", "--cacheinfo", f[1]+","+f[3]+","+path)
	}
	tree := gitOut(t, w, idx, "write-tree")
	forged = gitOut(t, w, nil, "commit-tree", tree, "-p", revoked, "-m", "audit, replayed")
	// A genuine history past the revocation.
	w.Publish(indextest.Package{Name: "acme/p0", Version: "1.1.0"})
	w.Publish(indextest.Package{Name: "acme/q", Version: "1.0.0"})
	genuine = gitOut(t, w, nil, "rev-parse", index.MainRef)
	return w, base, revoked, forged, genuine
}

// A verification that starts from the state the one before it carried
// (a sliced pull's next slice) judges each commit by that state, exactly
// as one that reads the state from git: an audit signed by a key that
// the slice before revoked is refused, and a genuine history passes,
// with the same files as a verification in one piece.
func TestCarryKeepsTheRules(t *testing.T) {
	defer index.SetRebaseAt(4)() // the carried state sits on a tree
	w, base, revoked, forged, genuine := revokedHistory(t)
	line := func(name string) index.Line {
		return index.Line{Name: name, Ref: "refs/cairn/test/" + name, Introduction: w.Intro, Marker: filepath.Join(t.TempDir(), name+".json"), Carry: &index.Carry{}}
	}
	slices := func(l index.Line, heads ...string) (files int, err error) {
		old := ""
		for _, h := range heads {
			gitOut(t, w, nil, "update-ref", l.Ref, h, old)
			old = h
			res, err := w.Repo.VerifyLine(w.Ctx, l, false)
			if err != nil {
				return files, err
			}
			files += res.Records
		}
		return files, nil
	}
	_, err := slices(line("attack"), revoked, forged)
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleKeyRevoked {
		t.Fatalf("an audit by a key revoked in the slice before: %v; want a *RuleError of rule %s", err, index.RuleKeyRevoked)
	}
	files, err := slices(line("genuine"), base, revoked, genuine)
	if err != nil {
		t.Fatal(err)
	}
	one := line("whole")
	gitOut(t, w, nil, "update-ref", one.Ref, genuine)
	whole, err := w.Repo.VerifyLine(w.Ctx, one, true)
	if err == nil && whole.Records != files {
		err = fmt.Errorf("%d files in slices, %d whole", files, whole.Records)
	}
	if err != nil {
		t.Fatalf("the genuine history: %v", err)
	}
}

// Attack: a carry holds the state of a head the line's marker is no
// longer at (another verification of the line moved it, past a key's
// revocation): the next verification reads the state at the marker's
// head from git, not the carried one, and refuses an audit the revoked
// key signed.
func TestCarryOfAnotherHead(t *testing.T) {
	w, base, revoked, forged, _ := revokedHistory(t)
	l := index.Line{Name: "attack", Ref: "refs/cairn/test/attack", Introduction: w.Intro, Marker: filepath.Join(t.TempDir(), "attack.json"), Carry: &index.Carry{}}
	verify := func(l index.Line, head, old string) error {
		gitOut(t, w, nil, "update-ref", l.Ref, head, old)
		_, err := w.Repo.VerifyLine(w.Ctx, l, false)
		return err
	}
	if err := verify(l, base, ""); err != nil { // the carry holds base's state
		t.Fatal(err)
	}
	other := l
	other.Carry = nil
	if err := verify(other, revoked, base); err != nil { // the marker moves on, past the revocation
		t.Fatal(err)
	}
	err := verify(l, forged, revoked)
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleKeyRevoked {
		t.Fatalf("an audit by a key revoked after the carried head: %v; want a *RuleError of rule %s", err, index.RuleKeyRevoked)
	}
}
