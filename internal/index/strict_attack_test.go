package index_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server/servertest"
)

func TestMain(m *testing.M) { servertest.Main(m) }

// git runs git in dir and returns its combined output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=mallory", "GIT_AUTHOR_EMAIL=m@example.com", "GIT_COMMITTER_NAME=mallory", "GIT_COMMITTER_EMAIL=m@example.com", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// smuggled is an audited record about name@version, signed by s, whose
// predicate also carries a whole vulnerability body (scanner, metadata):
// signed by a key properly granted certify:audited, and well-formed but
// for the members its kind does not have.
func smuggled(t *testing.T, w *indextest.World, s keys.Signer, pub *author.Published) (path string, data []byte) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	subj := record.Subject{Name: pub.Descriptor.ID(), Digest: map[string]string{"sha256": pub.Ref.SHA256}}
	payload, err := record.Build(record.Audited, []record.Subject{subj}, record.CertificationPredicate{Issued: now})
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	json.Unmarshal(payload, &st)
	pred := st["predicate"].(map[string]any)
	pred["scanner"] = map[string]any{"uri": "https://evil.example", "result": []any{map[string]any{"id": "GHSA-none", "severity": []any{map[string]any{"method": "cairn", "score": "none"}}}}}
	pred["metadata"] = map[string]any{"scanStartedOn": now, "scanFinishedOn": now}
	if payload, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(dsse.PAE(record.PayloadType, payload))
	if err != nil {
		t.Fatal(err)
	}
	env, err := json.Marshal(dsse.Envelope{PayloadType: record.PayloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []dsse.Signature{{KeyID: keys.ID(s.Public()), Sig: base64.StdEncoding.EncodeToString(sig)}}})
	if err != nil {
		t.Fatal(err)
	}
	return layout.RecordPath(layout.VersionDir(pub.Descriptor.Name, pub.Descriptor.Version), record.ID(payload)), append(env, '\n')
}

func wantSmuggledRefused(t *testing.T, how string, err error) {
	t.Helper()
	var re *index.RuleError
	var ue *record.UnknownMemberError
	if !errors.As(err, &re) || re.Rule != index.RuleWellFormed || !errors.As(err, &ue) || ue.Member != "metadata" && ue.Member != "scanner" ||
		!strings.Contains(err.Error(), "unknown member") {
		t.Fatalf("%s: err = %v; want rule %s naming the unknown member scanner or metadata", how, err, index.RuleWellFormed)
	}
}

// Attack: an auditor properly granted certify:audited signs an audited
// record whose predicate carries a whole vulnerability body. It lands by
// no road: not appended with the API, not pushed to a server with git,
// and not replayed when put on main with plain git.
func TestAttackUnknownPredicateMembers(t *testing.T) {
	w := indextest.New(t)
	pub := w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	path, data := smuggled(t, w, w.Security, pub)
	before, err := w.Repo.Head(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}

	// Appended with the API.
	_, err = w.Repo.Append(w.Ctx, index.Change{Replayed: []gitx.File{{Path: path, Data: data}}}, "acme-security <sec@example.com>", "audited")
	wantSmuggledRefused(t, "append", err)
	if head, _ := w.Repo.Head(w.Ctx, index.MainRef); head != before {
		t.Fatalf("main moved to %s on a refused append", head)
	}

	// Pushed with git to a server.
	url := servertest.Serve(w) // grants the server's checkpoint key: main moves
	if before, err = w.Repo.Head(w.Ctx, index.MainRef); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	git(t, ".", "clone", "-q", url+"/index.git", clone)
	if err := os.MkdirAll(filepath.Join(clone, filepath.Dir(path)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clone, path), data, 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, clone, "add", path)
	git(t, clone, "commit", "-q", "-m", "audited")
	cmd := exec.Command("git", "push", "origin", "main")
	cmd.Dir = clone
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown member "metadata"`) && !strings.Contains(string(out), `unknown member "scanner"`) {
		t.Fatalf("push of the smuggling record: err %v, want a refusal naming the member:\n%s", err, out)
	}
	if head, _ := w.Repo.Head(w.Ctx, index.MainRef); head != before {
		t.Fatalf("main moved to %s on a refused push", head)
	}

	// Put on main with plain git, behind the server's back: the replay refuses it.
	bare := filepath.Join(w.Dir, "index.git")
	git(t, clone, "push", "-q", bare, "main")
	_, err = w.Repo.Verify(w.Ctx, false)
	wantSmuggledRefused(t, "verify", err)
	_, err = w.Repo.Verify(w.Ctx, true)
	wantSmuggledRefused(t, "verify --full", err)
}
