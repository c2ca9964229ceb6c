package remote

import (
	"net/http"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
)

// Attack: an upstream publishes into the organisation's namespace under
// a name the organisation has not used yet. The organisation's key is
// granted publish:acme/*; it publishes acme/app only. The upstream
// publishes acme/newthing (and a name outside acme/, which is fine).
// acme/newthing is internal all the same: sync reports it as a clash, the
// organisation's server does not serve the upstream's, and nobody in the
// organisation can certify it as an upstream version.
func TestUpstreamCannotPublishIntoOrgNamespace(t *testing.T) {
	pub := newWorld(t)
	writer := newSigner(t)
	pub.grant(writer, "author", "publish:*")
	for _, name := range []string{"acme/newthing", "libs/json"} {
		if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, name, "6.6.6"), writer); err != nil {
			t.Fatal(err)
		}
	}

	org := newWorld(t)
	dev, sec := newSigner(t), newSigner(t)
	org.grant(dev, "dev", "publish:acme/*")
	org.grant(sec, "security", "certify:audited")
	if _, err := author.Publish(org.ctx, org.repo, pkgDir(t, "acme/app", "1.0.0"), dev); err != nil {
		t.Fatal(err)
	}
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", pub.url, pub.intro, org.root); err != nil {
		t.Fatal(err)
	}
	orgURL := org.serve(org.repo, server.Options{Fallback: (&UpstreamBlobs{Repo: org.repo}).Fetch})

	res, err := Sync(org.ctx, org.repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Pulled == nil {
		t.Fatalf("sync: %+v", res)
	}
	if got := strings.Join(res[0].Collisions, ","); got != "acme/newthing" {
		t.Errorf("sync reports clashes %q, want acme/newthing (inside the organisation's publish:acme/*)", got)
	}

	// The organisation's server does not serve the upstream's acme/newthing,
	// and still serves the upstream's libs/json.
	if doc, code := getDoc(t, orgURL+"/api/v1/packages/acme/newthing"); code != http.StatusNotFound {
		t.Errorf("the organisation's server serves the upstream's acme/newthing: %d, source %q", code, doc.Source)
	}
	if doc, code := getDoc(t, orgURL+"/api/v1/packages/libs/json"); code != http.StatusOK || doc.Source != "public" {
		t.Fatalf("libs/json through the organisation: %d %+v", code, doc)
	}

	// Certifying the upstream's acme/newthing in the organisation's index
	// is refused: by the lookup, and by the rules themselves.
	_, err = author.Certify(org.ctx, org.repo, author.Certification{Name: "acme/newthing", Version: "6.6.6", Kind: record.Audited}, sec)
	if err == nil || !strings.Contains(err.Error(), "acme/newthing is an internal package") || !strings.Contains(err.Error(), "publish:acme/*") {
		t.Errorf("certifying the upstream's acme/newthing: %v, want it refused as internal", err)
	}
	if _, err := author.Certify(org.ctx, org.repo, author.Certification{Name: "libs/json", Version: "6.6.6", Kind: record.Audited}, sec); err != nil {
		t.Fatalf("certifying the upstream's libs/json: %v", err)
	}

	// Once the grant is revoked, acme/newthing is the upstream's again
	// (acme/app stays internal: it is published here).
	keys, err := org.repo.Keys(org.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Holder == "dev" {
			if _, err := author.RevokeKey(org.ctx, org.repo, k.ID, "left", org.root); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err = Sync(org.ctx, org.repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Collisions) != 0 {
		t.Fatalf("clashes after the grant's revocation: %v", res[0].Collisions)
	}
	if doc, code := getDoc(t, orgURL+"/api/v1/packages/acme/newthing"); code != http.StatusOK || doc.Source != "public" {
		t.Fatalf("acme/newthing after the grant's revocation: %d %+v", code, doc)
	}
}
