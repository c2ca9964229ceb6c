package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server/servertest"
)

// A project names a policy of the index (policy: index:NAME): it judges
// with the version in force at its first repository's verified head, and
// the lock pins that version's digest and record, so that a lock made
// under another version is stale (and --verified refuses it).
func TestIndexPolicy(t *testing.T) {
	w := newWorld(t)
	officer := indextest.NewSigner()
	w.Grant(officer, "policy-officers", "policy:org-*")
	lax := "forbid:\n  - {name: no-withdrawn, property: withdrawn}\n"
	strict := "forbid:\n  - {name: high-vulnerabilities, property: vulnerable, severity: high}\n"
	first, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(lax), officer)
	if err != nil {
		t.Fatal(err)
	}
	w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Vulnerable, VulnID: "GHSA-9999", Severity: "high"})
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npolicy: index:org-default\n"))
	p, srcs, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Policy == nil || *l.Policy != (PolicyPin{File: "index:org-default", SHA256: record.PolicyDigest(lax), Record: first.Record}) {
		t.Fatalf("the lock's policy pin = %+v", l.Policy)
	}
	pol, err := LoadPolicy(p, "", srcs)
	if err != nil {
		t.Fatal(err)
	}
	if pol.File != "index:org-default" || pol.Ref.SHA256 != record.PolicyDigest(lax) {
		t.Fatalf("policy %s %v", pol.File, pol.Ref)
	}
	if _, err := Evaluate(l, srcs, pol, time.Now()); err != nil {
		t.Fatalf("the lax version refuses: %v", err)
	}
	if err := Check(context.Background(), p, l, nil, srcs); err != nil {
		t.Fatalf("the lock, checked at once: %v", err)
	}

	// The next version is stricter: the lock made under the first is
	// stale, and the project now judges by the new one.
	second, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(strict), w.Root)
	if err != nil {
		t.Fatal(err)
	}
	p2, srcs2, l2, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = Check(context.Background(), p2, l, nil, srcs2)
	var le *LockError
	if !errors.As(err, &le) || !le.Stale || !strings.Contains(err.Error(), "the policy changed since the lock was written") {
		t.Fatalf("a lock made under the first version, checked under the second: %v", err)
	}
	if l2.Policy.Record != second.Record || l2.Policy.SHA256 != record.PolicyDigest(strict) {
		t.Fatalf("the new lock's pin = %+v", l2.Policy)
	}
	pol2, err := LoadPolicy(p2, "", srcs2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Evaluate(l2, srcs2, pol2, time.Now())
	var re *policy.RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "acme/log@1.1.0: forbid high-vulnerabilities") {
		t.Fatalf("the strict version: %v", err)
	}

	// A --policy flag may name one too; one that does not exist says so.
	if _, err := LoadPolicy(p2, "index:org-none", srcs2); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "index:org-none, in repository acme") {
		t.Fatalf("a policy the index lacks: %v", err)
	}
	w.write("cairn.yaml", w.projectFile("snapshot: lts-1.0\npolicy: index:Org/Default\n"))
	if _, err := ReadProject(w.project); err == nil || !strings.Contains(err.Error(), "a policy file, or index:NAME") {
		t.Fatalf("a bad policy name in cairn.yaml: %v", err)
	}
}

// A light client reads the policy from the server, proved against its
// checkpoint.
func TestIndexPolicyLight(t *testing.T) {
	w := newWorld(t)
	text := "forbid:\n  - {name: high-vulnerabilities, property: vulnerable, severity: high}\n"
	v, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(text), w.Root)
	if err != nil {
		t.Fatal(err)
	}
	url := servertest.Serve(w.World)
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\nsnapshot: lts-1.0\npolicy: index:org-default\n", url, w.Intro))
	p, srcs, l, err := w.lock(Options{Cache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if srcs[0].View == nil {
		t.Fatal("the repository was not read by the light client")
	}
	if l.Policy == nil || l.Policy.Record != v.Record || l.Policy.SHA256 != v.SHA256 {
		t.Fatalf("pin = %+v", l.Policy)
	}
	if pol, err := LoadPolicy(p, "", srcs); err != nil || len(pol.Rules) != 1 {
		t.Fatalf("the light client's policy: %v", err)
	}
}
