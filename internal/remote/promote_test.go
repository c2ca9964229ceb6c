package remote

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
)

// Binary-only promotion: an organisation copies a version to the public
// index. The descriptor and the publisher's record arrive byte for byte,
// only the binary's blob is sent, records the public index does not
// accept stay behind, and a public client installs the binary.
func TestPromoteBinaryOnly(t *testing.T) {
	pub := newWorld(t)
	org := newWorld(t)
	alice, sec := newSigner(t), newSigner(t)
	pub.grant(alice, "alice", "publish:acme/*")
	org.grant(alice, "alice", "publish:acme/*")
	org.grant(sec, "security", "certify:audited")

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(`name: acme/fastjson
version: 1.2.3
artifacts:
  - kind: source
    file: src.tar.gz
  - kind: binary
    platform: linux-amd64
    file: fastjson-linux-amd64
`), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("the internal source"), 0o644)
	os.WriteFile(filepath.Join(dir, "fastjson-linux-amd64"), []byte("\x7fELF the binary"), 0o644)
	p, err := author.Publish(org.ctx, org.repo, dir, alice)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := author.Certify(org.ctx, org.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited}, sec)
	if err != nil {
		t.Fatal(err)
	}
	if err := Add(org.repo, Remote{Name: "public", URL: pub.url, Introduction: pub.intro}); err != nil {
		t.Fatal(err)
	}
	var src, bin blob.Ref
	for _, a := range p.Descriptor.Artifacts {
		if a.Kind == "source" {
			src = a.Ref
		} else {
			bin = a.Ref
		}
	}

	// The security team's key is not granted in the public index: it
	// cannot sign the uploads, and nothing lands.
	before, _ := pub.repo.Head(pub.ctx, index.MainRef)
	if _, err := Promote(org.ctx, org.repo, "acme/fastjson@1.2.3", "public", []string{"binary"}, sec, Options{}); !errors.Is(err, blob.ErrRefused) {
		t.Fatalf("promotion signed by an ungranted key: %v, want the upload refused", err)
	}
	if after, _ := pub.repo.Head(pub.ctx, index.MainRef); after != before {
		t.Fatal("a refused promotion moved the public index")
	}

	res, err := Promote(org.ctx, org.repo, "acme/fastjson@1.2.3", "public", []string{"binary"}, alice, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || res.Records[0] != p.Records[0] {
		t.Errorf("records copied: %v, want only the authored record %s", res.Records, p.Records[0])
	}
	if len(res.Left) != 1 || res.Left[0].Record != audit.Records[0] || !strings.Contains(res.Left[0].Reason, "not granted in this repository") {
		t.Errorf("left behind: %+v, want the audit, for its ungranted key", res.Left)
	}
	d, ref, err := pub.repo.Descriptor(pub.ctx, "acme/fastjson", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if ref != p.Ref {
		t.Errorf("the public descriptor is %s, the organisation's %s: it must be the same bytes", ref, p.Ref)
	}
	if len(d.Artifacts) != 2 {
		t.Errorf("the descriptor lost artifacts: %+v", d.Artifacts)
	}
	if ok, _ := pub.repo.Blobs.Stat(pub.ctx, bin); !ok {
		t.Error("the binary was not sent")
	}
	if ok, _ := pub.repo.Blobs.Stat(pub.ctx, src); ok {
		t.Error("the internal source reached the public server")
	}
	if _, err := pub.repo.Verify(pub.ctx, true); err != nil {
		t.Fatal(err)
	}
	// The organisation's copy of the public index is verified at the new head.
	if h, _, _ := (&Remote{Name: "public", Introduction: pub.intro}).Line(org.repo).VerifiedHead(); h != res.Head {
		t.Errorf("the organisation verified public at %s, want %s", h, res.Head)
	}

	// A public client gets the binary and nothing of the source.
	consumer := pub.client("consumer", pub.url)
	rm, _ := Get(consumer, "origin")
	chain := rm.Blobs(consumer, nil)
	if err := chain.Fetch(pub.ctx, bin); err != nil {
		t.Errorf("the binary: %v", err)
	}
	if err := chain.Fetch(pub.ctx, src); err == nil {
		t.Error("the source could be fetched from the public server")
	}

	// Promoting again has nothing to add.
	if _, err := Promote(org.ctx, org.repo, "acme/fastjson@1.2.3", "public", []string{"binary"}, alice, Options{}); err == nil || !strings.Contains(err.Error(), "nothing to promote") {
		t.Errorf("promoting twice: %v", err)
	}
}
