package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/proof"
)

// cairn proof and cairn proof verify exit by the one table: a proof
// made and checked is 0; one refused, 3 with the proof's hint; no
// checkpoint to prove against or no file, 4; keys or a quorum that make
// no sense, 2.
func TestProofExitCodes(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	call := func(want int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, &out, &errb); code != want {
			t.Fatalf("cairn %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	call(exitOK, "key", "new", p("root.key"))
	call(exitOK, "key", "new", p("log.key"))
	out, _ := call(exitOK, "init", p("repo"), "--root-key", p("root.key"))
	intro := regexp.MustCompile(`(?m)^introduction ([0-9a-f]{64})$`).FindStringSubmatch(out)[1]
	out, _ = call(exitOK, "key", "grant", "--repo", p("repo"), "--key", p("root.key"), p("log.key.pub"), "--holder", "server", "--scope", "checkpoint")
	id := regexp.MustCompile(`(?m)^record ([0-9a-f]{64})$`).FindStringSubmatch(out)[1]

	// No checkpoint yet: nothing to prove against.
	_, stderr := call(exitNotFound, "proof", id, "--repo", p("repo"))
	if !strings.Contains(stderr, "no signed checkpoint to prove against") || !strings.Contains(stderr, "cairn: hint: serve the repository with --checkpoint-key KEY") {
		t.Fatalf("proof without a checkpoint:\n%s", stderr)
	}

	// The server's key signs a checkpoint of main's log, as cairn serve does.
	r, err := index.Open(ctx, p("repo"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.StoreOf(r.Main())
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Map()
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.LoadPrivate(p("log.key"))
	if err != nil {
		t.Fatal(err)
	}
	note, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: checkpoint.Origin(intro), Size: m.Size, Root: m.Root, Map: m.Map.Root(), Head: st.Head(), Time: time.Now().UTC().Truncate(time.Second)}, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(proof.ServedCheckpoint(r), note, 0o644); err != nil {
		t.Fatal(err)
	}
	r.Close()

	out, _ = call(exitOK, "proof", id[:10], "--repo", p("repo"), "-o", p("grant.tlog-proof"))
	if !strings.HasPrefix(out, "wrote "+p("grant.tlog-proof")+": record "+id+" is leaf 2 of the log of cairn.dev/index/"+intro+" at size 4") {
		t.Fatalf("proof -o: %q", out)
	}
	vkey, _ := call(exitOK, "key", "vkey", p("log.key.pub"), "--origin", checkpoint.Origin(intro))
	vkey = strings.TrimSpace(vkey)
	out, stderr = call(exitOK, "proof", "verify", p("grant.tlog-proof"), "--log-key", vkey, "--introduction", intro)
	if !strings.Contains(out, "proven: record "+id+" is leaf 2") || !strings.Contains(out, "  kind        grant\n") || !strings.Contains(stderr, "a split view cannot be detected") {
		t.Fatalf("proof verify:\n%s%s", out, stderr)
	}
	call(exitOK, "proof", "verify", p("grant.tlog-proof"), "--repo", p("repo"))

	// Refused: exit 3, with the proof's hint.
	data, err := os.ReadFile(p("grant.tlog-proof"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(data, []byte("\nindex 2\n"), []byte("\nindex 0\n"), 1)
	if err := os.WriteFile(p("bad.tlog-proof"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr = call(exitRefused, "proof", "verify", p("bad.tlog-proof"), "--log-key", vkey)
	if !strings.HasPrefix(stderr, "cairn: error: offline proof refused: SECURITY ERROR: the proof of leaf 0") || !strings.Contains(stderr, "\ncairn: hint: do not rely on this proof") {
		t.Fatalf("a tampered proof:\n%s", stderr)
	}
	otherIntro := strings.Repeat("0", 64)
	call(exitRefused, "proof", "verify", p("grant.tlog-proof"), "--log-key", vkey, "--introduction", otherIntro)
	witnessVkey, _ := call(exitOK, "witness", "vkey", "--key", p("root.key.pub"), "--name", "w.example")
	_, stderr = call(exitRefused, "proof", "verify", p("grant.tlog-proof"), "--log-key", vkey, "--witness", strings.TrimSpace(witnessVkey))
	if !strings.Contains(stderr, "is cosigned by 0 of the 1 trusted witnesses required") {
		t.Fatalf("quorum not met:\n%s", stderr)
	}

	// Not found, and usage.
	call(exitNotFound, "proof", "verify", p("none.tlog-proof"), "--log-key", vkey)
	call(exitUsage, "proof", "verify", p("grant.tlog-proof"), "--log-key", strings.TrimSpace(witnessVkey))
	call(exitUsage, "proof", "verify", p("grant.tlog-proof"), "--log-key", vkey, "--witness", strings.TrimSpace(witnessVkey), "--quorum", "2")
	call(exitUsage, "proof")
}

// A proof made under a checkpoint key that was rotated out since (a
// successor granted, then the key revoked) still verifies inside the
// replica, whose log holds its tree; a checkpoint the key signs after its
// revocation proves nothing, and the refusal says where the log revoked
// it. Before revoked keys' checkpoints were placed in the log, the proof
// was refused.
func TestProofVerifyRotatedKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	call := func(want int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, &out, &errb); code != want {
			t.Fatalf("cairn %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	call(exitOK, "key", "new", p("root.key"))
	call(exitOK, "key", "new", p("log.key"))
	call(exitOK, "key", "new", p("log2.key"))
	out, _ := call(exitOK, "init", p("repo"), "--root-key", p("root.key"))
	intro := regexp.MustCompile(`(?m)^introduction ([0-9a-f]{64})$`).FindStringSubmatch(out)[1]
	out, _ = call(exitOK, "key", "grant", "--repo", p("repo"), "--key", p("root.key"), p("log.key.pub"), "--holder", "server", "--scope", "checkpoint")
	id := regexp.MustCompile(`(?m)^record ([0-9a-f]{64})$`).FindStringSubmatch(out)[1]
	// sign signs main's log as it is with the key file, as cairn serve
	// does, and keeps it as the server's checkpoint.
	sign := func(key string) {
		t.Helper()
		r, err := index.Open(ctx, p("repo"))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Verified(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := r.StoreOf(r.Main())
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.Map()
		if err != nil {
			t.Fatal(err)
		}
		s, err := keys.LoadPrivate(key)
		if err != nil {
			t.Fatal(err)
		}
		note, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: checkpoint.Origin(intro), Size: m.Size, Root: m.Root, Map: m.Map.Root(), Head: st.Head(), Time: time.Now().UTC().Truncate(time.Second)}, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(proof.ServedCheckpoint(r), note, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sign(p("log.key"))
	call(exitOK, "proof", id, "--repo", p("repo"), "-o", p("grant.tlog-proof"))

	// The server rotates its key: log2 granted, log revoked.
	call(exitOK, "key", "grant", "--repo", p("repo"), "--key", p("root.key"), p("log2.key.pub"), "--holder", "server", "--scope", "checkpoint")
	pub, err := keys.LoadPublic(p("log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ = call(exitOK, "key", "revoke", keys.ID(pub), "--reason", "rotated", "--repo", p("repo"), "--key", p("root.key"))
	revocation := regexp.MustCompile(`(?m)^record ([0-9a-f]{64})$`).FindStringSubmatch(out)[1]

	out, _ = call(exitOK, "proof", "verify", p("grant.tlog-proof"), "--repo", p("repo"))
	if !strings.Contains(out, "proven: record "+id+" is leaf 2") || !strings.Contains(out, "by key "+keys.ID(pub)) {
		t.Fatalf("a proof under a key rotated out since:\n%s", out)
	}

	// The revoked key signs the log as it is now: no proof is made from it.
	sign(p("log.key"))
	_, stderr := call(exitRefused, "proof", id, "--repo", p("repo"))
	want := regexp.MustCompile(`key ` + regexp.QuoteMeta(keys.ID(pub)) + ` \(holder server\) was revoked by record ` + revocation[:16] +
		` \(rotated\) at leaf (\d+) \(\S+\); the checkpoint of (\d+) leaves signed at \S+ is of a tree that holds the revocation \(leaf \d+ < \d+\)`)
	if !want.MatchString(stderr) {
		t.Fatalf("a checkpoint signed by a key after its revocation:\n%s", stderr)
	}
	// Its successor's checkpoint proves the record again.
	sign(p("log2.key"))
	call(exitOK, "proof", id, "--repo", p("repo"), "-o", p("grant2.tlog-proof"))
	call(exitOK, "proof", "verify", p("grant2.tlog-proof"), "--repo", p("repo"))
}
