package index_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

type fixture struct {
	t                       *testing.T
	ctx                     context.Context
	repo                    *index.Repo
	dir                     string
	root, alice, audit, bob keys.Signer
	intro                   string
}

func newSigner() keys.Signer {
	_, priv, _ := ed25519.GenerateKey(nil)
	return keys.NewSigner(priv)
}

// newFixture makes a repository with alice (publish:acme/*), the security
// team (certify:audited, certify:vulnerable) and bob (publish:bob/*,
// certify:audited).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), dir: filepath.Join(t.TempDir(), "repo"),
		root: newSigner(), alice: newSigner(), audit: newSigner(), bob: newSigner()}
	r, intro, err := index.Init(f.ctx, f.dir, []keys.Signer{f.root}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.repo, f.intro = r, intro.ID
	f.grant(f.alice, "alice", "publish:acme/*")
	f.grant(f.audit, "acme-security", "certify:audited", "certify:vulnerable")
	f.grant(f.bob, "bob", "publish:bob/*", "certify:audited")
	return f
}

func (f *fixture) grant(s keys.Signer, holder string, scopes ...string) {
	f.t.Helper()
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: s.Public(), Holder: holder, Scopes: scopes}, f.root); err != nil {
		f.t.Fatal(err)
	}
}

// pkgDir writes a package directory: manifest plus one source and one
// binary artifact whose content is salted.
func (f *fixture) pkgDir(name, version, salt string) string {
	dir := f.t.TempDir()
	manifest := fmt.Sprintf("name: %s\nversion: %s\nsummary: test package\nlicense: MIT\nartifacts:\n  - kind: source\n    file: src.tar.gz\n  - kind: binary\n    platform: linux-amd64\n    file: bin.tar.gz\n", name, version)
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(manifest), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source of "+name+version+salt), 0o644)
	os.WriteFile(filepath.Join(dir, "bin.tar.gz"), []byte("binary of "+name+version+salt), 0o644)
	return dir
}

func (f *fixture) publish(s keys.Signer, name, version string) *author.Published {
	f.t.Helper()
	p, err := author.Publish(f.ctx, f.repo, f.pkgDir(name, version, ""), s)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) verifyFull() error {
	_, err := f.repo.Verify(f.ctx, true)
	return err
}

// keySubjectOf is the subject of a record about key pub.
func keySubjectOf(pub ed25519.PublicKey) record.Subject {
	return record.Subject{Name: keys.ID(pub), Digest: map[string]string{"sha256": keys.IDHex(pub)}}
}

func wantRule(t *testing.T, err error, rule string) {
	t.Helper()
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != rule {
		t.Fatalf("err = %v, want rule %s", err, rule)
	}
}

func TestWorkflow(t *testing.T) {
	f := newFixture(t)
	p := f.publish(f.alice, "acme/fastjson", "1.2.3")
	if len(p.Records) != 1 {
		t.Fatalf("publish added %d records", len(p.Records))
	}
	aud, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited, Artifacts: []string{"linux-amd64"}, Note: "looks fine"}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	vuln, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Vulnerable, VulnID: "GHSA-xxxx", Severity: "high", Affects: "<1.2.4"}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := author.Revoke(f.ctx, f.repo, aud.Records[0][:12], "false positive", f.audit); err != nil {
		t.Fatal(err)
	}
	// The next version keeps the uuid.
	p2 := f.publish(f.alice, "acme/fastjson", "1.2.4")
	if p2.Descriptor.UUID != p.Descriptor.UUID {
		t.Fatalf("uuid changed across versions: %s → %s", p.Descriptor.UUID, p2.Descriptor.UUID)
	}
	views, err := f.repo.Show(f.ctx, "acme/fastjson", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 || views[0].Version != "1.2.3" || views[1].Version != "1.2.4" {
		t.Fatalf("show: %+v", views)
	}
	status := map[string]index.Status{}
	for _, rv := range views[0].Records {
		status[rv.ID] = rv.Status
		if rv.Time.IsZero() {
			t.Fatalf("record %s has no append time", rv.ID)
		}
	}
	if status[aud.Records[0]] != index.StatusRevoked || status[vuln.Records[0]] != index.StatusActive {
		t.Fatalf("statuses: %v", status)
	}
	if err := f.verifyFull(); err != nil {
		t.Fatal(err)
	}
	res, err := f.repo.Verify(f.ctx, false)
	if err != nil || res.Commits != 0 {
		t.Fatalf("incremental verify after full: %+v %v", res, err)
	}
	// Every blob the index references is in the store.
	for _, v := range views {
		for _, a := range v.Descriptor.Artifacts {
			if ok, _ := f.repo.Blobs.Stat(f.ctx, a.Ref); !ok {
				t.Fatalf("artifact %s missing from the blob store", a.File)
			}
		}
		if ok, _ := f.repo.Blobs.Stat(f.ctx, v.Ref); !ok {
			t.Fatal("descriptor missing from the blob store")
		}
	}
	out, err := exec.Command("git", "--git-dir", f.repo.GitRepo().GitDir, "fsck", "--strict").CombinedOutput()
	if err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
	var n int
	f.repo.Log(f.ctx, 0, func(e index.LogEntry) error { n++; return nil })
	if n != 9 { // introduction, 3 grants, publish, 2 certify, revoke, publish
		t.Fatalf("log has %d commits, want 9", n)
	}
}

func TestKeysView(t *testing.T) {
	f := newFixture(t)
	if _, err := author.RevokeKey(f.ctx, f.repo, keys.ID(f.bob.Public()), "laptop lost", f.root); err != nil {
		t.Fatal(err)
	}
	ks, err := f.repo.Keys(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, k := range ks {
		got[k.Holder] = k.Status + " " + strings.Join(k.Scopes, ",")
	}
	if got["bob"] != "revoked publish:bob/*,certify:audited" || got["alice"] != "active publish:acme/*" || len(ks) != 4 {
		t.Fatalf("keys: %v", got)
	}
}

// A rewritten history is a fork even when git has already collected the
// commits that were verified.
func TestForkAfterGC(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	if _, err := f.repo.Verify(f.ctx, false); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("git", append([]string{"--git-dir", f.repo.GitRepo().GitDir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	git("update-ref", index.MainRef, index.MainRef+"~2")
	git("reflog", "expire", "--expire=now", "--all")
	git("gc", "--prune=now", "-q")
	f.repo.ResetReader()
	for _, full := range []bool{false, true} {
		_, err := f.repo.Verify(f.ctx, full)
		var fe *index.ForkError
		if !errors.As(err, &fe) {
			t.Fatalf("full=%v: err = %v, want *ForkError", full, err)
		}
	}
}

// A long replay rebases its state on the tree to bound its memory; the
// rules hold the same across a rebase, and attacks on what came before it
// are still caught. The names it has seen are past their exact set here,
// in the Bloom filter that bounds them too (the other rebase tests keep
// them exact).
func TestVerifyAcrossRebases(t *testing.T) {
	defer index.SetRebaseAt(3)()
	defer index.SetNameSetExact(2)()
	f := newFixture(t)
	for i := 0; i < 6; i++ {
		f.publish(f.alice, fmt.Sprintf("acme/p%d", i), "1.0.0")
	}
	a, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/p0", Version: "1.0.0", Kind: record.Audited}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(f.alice, "acme/p0", "1.1.0") // uuid read back from before the rebases
	if _, err := author.Revoke(f.ctx, f.repo, a.Records[0], "redo", f.audit); err != nil {
		t.Fatal(err)
	}
	if err := f.verifyFull(); err != nil {
		t.Fatalf("full verify across rebases: %v", err)
	}
	// An attack on state from before the rebases, pushed with plain git:
	// acme/p1@2.0.0 published with acme/p0's uuid.
	head, _ := f.repo.Head(f.ctx, index.MainRef)
	d, _, err := f.repo.Descriptor(f.ctx, "acme/p0", "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	d.Name, d.Version = "acme/p1", "2.0.0"
	data, _ := d.Marshal()
	vdir := layout.VersionDir("acme/p1", "2.0.0")
	ref := blob.DigestBytes(data)
	authored := f.sign(record.Authored, []record.Subject{{Name: "acme/p1@2.0.0", Digest: map[string]string{"sha256": ref.SHA256}}},
		record.AuthoredPredicate{Descriptor: ref, Issued: time.Now()}, f.alice)
	rd, _ := f.repo.GitReader(f.ctx)
	c, _ := rd.Commit(head)
	b := f.repo.GitRepo().NewBatch()
	tree, err := b.AddToTree(rd, c.Tree, []gitx.File{{Path: vdir + "/" + layout.DescriptorFile, Data: data}, {Path: layout.RecordPath(vdir, authored.ID), Data: authored.Raw}})
	if err != nil {
		t.Fatal(err)
	}
	id := b.Write("commit", gitx.FormatCommit(tree, []string{head}, "mallory <m>", time.Now().Unix(), "uuid swap"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.GitRepo().UpdateRef(f.ctx, index.MainRef, id, head, "attack"); err != nil {
		t.Fatal(err)
	}
	f.repo.ResetReader()
	err = f.verifyFull()
	wantRule(t, err, index.RuleUUID)
}
