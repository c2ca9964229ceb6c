package remote

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/witness"
)

// An organisation's repository names the witnesses it trusts for an
// upstream's checkpoints and a quorum, as a remote's: a sync refuses an
// upstream checkpoint below the quorum (a *CheckpointError with the
// checkpoint and a *witness.QuorumError naming the witnesses found and
// missing) and keeps nothing of it; met, it counts the cosignatures; with
// none, it says a split view cannot be detected. Witnesses are set only
// for an upstream main follows, and a quorum above them is refused.
func TestSyncUpstreamWitnessQuorum(t *testing.T) {
	pub := newWorld(t)
	writer := newSigner(t)
	pub.grant(writer, "author", "publish:*")
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "acme/fastjson", "1.2.3"), writer); err != nil {
		t.Fatal(err)
	}
	w1 := pub.witnessOf("w1.example")
	idle := pub.witnessOf("idle.example") // trusted by the organisation, never submitted to
	pubURL := pub.serve(pub.repo, server.Options{Witnesses: []server.Witness{w1}})

	org := newWorld(t)
	if err := SetUpstreamWitnesses(org.ctx, org.repo, "public", UpstreamWitnesses{Witnesses: []string{w1.VKey}, Quorum: 1}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("witnesses for an upstream not followed: %v, want fs.ErrNotExist", err)
	}
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", pubURL, pub.intro, org.root); err != nil {
		t.Fatal(err)
	}
	if err := SetUpstreamWitnesses(org.ctx, org.repo, "public", UpstreamWitnesses{Witnesses: []string{w1.VKey}, Quorum: 2}); err == nil {
		t.Fatal("a quorum of 2 of 1 witness was accepted")
	}
	if err := SetUpstreamWitnesses(org.ctx, org.repo, "public", UpstreamWitnesses{Witnesses: []string{w1.VKey, idle.VKey}, Quorum: 2}); err != nil {
		t.Fatal(err)
	}
	if got, err := GetUpstreamWitnesses(org.repo, "public"); err != nil || got.Quorum != 2 || len(got.Witnesses) != 2 {
		t.Fatalf("the witnesses kept: %+v, %v", got, err)
	}

	res, err := Sync(org.ctx, org.repo, Options{})
	var qe *witness.QuorumError
	var ce *CheckpointError
	if !errors.As(err, &qe) || !errors.As(err, &ce) || ce.Remote != "upstream public" || !strings.Contains(string(ce.Evidence), "\ncairn-head ") ||
		!strings.Contains(err.Error(), "found: w1.example; missing: idle.example") {
		t.Fatalf("an upstream checkpoint below quorum: %v, want a *CheckpointError of upstream public with a *witness.QuorumError naming both", err)
	}
	if len(res) != 1 || res[0].Error == "" || res[0].Pulled != nil {
		t.Fatalf("the sync's report: %+v, want upstream public not synced", res)
	}
	ups, err := org.repo.Followed(org.ctx)
	if err != nil || len(ups) != 1 {
		t.Fatal(ups, err)
	}
	if head, _, err := org.repo.UpstreamLine(ups[0]).VerifiedHead(); err != nil || head != "" {
		t.Fatalf("upstream public verified at %q (%v) from a refused sync", head, err)
	}

	if err := SetUpstreamWitnesses(org.ctx, org.repo, "public", UpstreamWitnesses{Witnesses: []string{w1.VKey, idle.VKey}, Quorum: 1}); err != nil {
		t.Fatal(err)
	}
	res, err = Sync(org.ctx, org.repo, Options{})
	if err != nil || len(res) != 1 || res[0].Pulled == nil || res[0].Pulled.Cosigned != 1 || res[0].Pulled.Unwitnessed {
		t.Fatalf("one of two, quorum 1: %+v, %v", res, err)
	}
	if err := SetUpstreamWitnesses(org.ctx, org.repo, "public", UpstreamWitnesses{}); err != nil {
		t.Fatal(err)
	}
	res, err = Sync(org.ctx, org.repo, Options{})
	if err != nil || len(res) != 1 || res[0].Pulled == nil || !res[0].Pulled.Unwitnessed {
		t.Fatalf("no witnesses named: %+v, %v; want Unwitnessed", res, err)
	}
}
