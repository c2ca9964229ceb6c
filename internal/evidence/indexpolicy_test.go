package evidence

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
)

// usePolicy points the project's cairn.yaml at another policy.
func (w *world) usePolicy(ref string) {
	w.T.Helper()
	raw, err := os.ReadFile(filepath.Join(w.project, "cairn.yaml"))
	if err != nil {
		w.T.Fatal(err)
	}
	w.write("cairn.yaml", strings.Replace(string(raw), "policy: policy.yaml", "policy: "+ref, 1))
}

// A project judged by a policy of the index (policy: index:NAME): the
// bundle keeps no policy file, the reads it records prove the policy's
// version as they prove the records, and the report names its digest.
func TestIndexPolicyBundle(t *testing.T) {
	w := newWorld(t)
	if _, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(policyFile), w.Root); err != nil {
		t.Fatal(err)
	}
	w.usePolicy("index:org-default")
	w.lock()
	data, made, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if made.Manifest.Policy != "index:org-default" || len(made.Manifest.Verdicts) != 2 {
		t.Fatalf("manifest: policy %q, verdicts %+v", made.Manifest.Policy, made.Manifest.Verdicts)
	}
	w.stop()
	rep, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Allowed || rep.Policy != "index:org-default" || rep.PolicySHA256 != record.PolicyDigest(policyFile) {
		t.Fatalf("report: allowed %v, policy %q sha256 %s", rep.Allowed, rep.Policy, rep.PolicySHA256)
	}
}

// The next version of the policy, published after the lock, refuses the
// plan: the bundle is made and verifies as refused.
func TestIndexPolicyBundleRefused(t *testing.T) {
	w := newWorld(t)
	if _, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(policyFile), w.Root); err != nil {
		t.Fatal(err)
	}
	w.usePolicy("index:org-default")
	w.lock()
	strict := policyFile + "  - {name: no-tests, expr: 'true'}\n"
	if _, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(strict), w.Root); err != nil {
		t.Fatal(err)
	}
	// The lock pins the first version: a bundle of it does not check.
	_, _, err := w.bundle(Options{})
	if err == nil || !strings.Contains(err.Error(), "the policy changed since the lock was written") {
		t.Fatalf("a bundle of a lock made under the first version: %v", err)
	}
	w.lock()
	data, _, err := w.bundle(Options{})
	var re *policy.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("Make = %v", err)
	}
	rep, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}})
	if !errors.As(err, &re) || rep == nil || rep.Allowed || rep.PolicySHA256 != record.PolicyDigest(strict) {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}
