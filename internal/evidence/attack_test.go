package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

// rewrite reads a bundle, lets edit change it, and writes it again with
// a manifest that lists what it holds: a forger's bundle, sound as a
// file, whose content is what edit made it.
func rewrite(t *testing.T, data []byte, edit func(m *Manifest, files map[string][]byte) []string) []byte {
	t.Helper()
	b, err := Read(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	names := memberNames(&b.Manifest)
	if more := edit(&b.Manifest, b.Files); more != nil {
		names = more
	}
	var out bytes.Buffer
	if err := Write(&out, b.Manifest, names, b.Files); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// subjectMember is the member holding a subject's document at the
// bundle's checkpoint.
func subjectMember(t *testing.T, files map[string][]byte, subject string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(subject))
	for _, ext := range []string{".json", compactExt} {
		suffix := "/" + hex.EncodeToString(sum[:]) + ext
		for name := range files {
			if strings.HasPrefix(name, "repos/0/api/v1/log/subject/") && strings.HasSuffix(name, suffix) {
				return name
			}
		}
	}
	t.Fatalf("the bundle holds no document of %s", subject)
	return ""
}

// verify checks a forger's bundle on its own word for which index it is
// of (the index is the honest one here; TestTrustPins pins it).
func verify(data []byte) (*Report, error) {
	return Verify(context.Background(), bytes.NewReader(data), VerifyOptions{TrustBundle: true})
}

// A bundle that leaves a record out — the vulnerability of a locked
// version dropped from its package's document, or a record's proof
// dropped — is refused: the map proof of the package no longer proves
// the document complete, and every record of a locked version needs its
// proof.
func TestAttackRecordRemoved(t *testing.T) {
	w := newWorld(t)
	// acme/log@1.0.0 is vulnerable; lock it, so its record matters.
	w.write("cairn.yaml", strings.Replace(readFile(t, w.project, "cairn.yaml"), "acme/app: ^1.0\n", "acme/app: ^1.0\n  acme/log: 1.0.0\n", 1))
	w.write("policy.yaml", strings.Split(policyFile, "forbid:")[0])
	w.lock()
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for version, data := range bothVersions(t, data) {
		if _, err := verify(data); err != nil {
			t.Fatalf("the honest bundle, version %d: %v", version, err)
		}
		dropped := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
			name := subjectMember(t, files, "package acme/log")
			files[name] = editDoc(t, files[name], func(d *translog.SubjectDoc) {
				// The last record of acme/log@1.0.0: the vulnerability.
				drop := -1
				for i, f := range d.Files {
					entry := string(f.Entry)
					if strings.Contains(entry, "/acme/log/1.0.0/") && !strings.HasSuffix(entry, "/descriptor.json\n") {
						drop = i
					}
				}
				if drop < 0 {
					t.Fatalf("no record of acme/log@1.0.0 in %s", files[name])
				}
				d.Files = append(d.Files[:drop:drop], d.Files[drop+1:]...)
				d.Count-- // as the document would count them
			})
			return nil
		})
		_, err = verify(dropped)
		var pe *light.ProofError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "acme/log") {
			t.Fatalf("version %d: a record dropped from a package's document: %v", version, err)
		}
	}

	noProof := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		var names []string
		for _, mem := range m.Members {
			if !strings.HasPrefix(mem.Path, "proofs/") || len(names) < 0 {
				names = append(names, mem.Path)
			}
		}
		for name := range files {
			if strings.HasPrefix(name, "proofs/") {
				delete(files, name)
				break
			}
		}
		var out []string
		for _, n := range names {
			if _, ok := files[n]; ok {
				out = append(out, n)
			}
		}
		return out
	})
	if _, err := verify(noProof); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "has no proof") {
		t.Fatalf("a record's proof dropped: %v", err)
	}
}

// A record of another repository, its proof put in place of one of this
// repository's record, is refused: its checkpoint is of another index.
func TestAttackRecordOfAnotherRepository(t *testing.T) {
	w := newWorld(t)
	other := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	theirs, _, err := other.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Read(bytes.NewReader(theirs), 0)
	if err != nil {
		t.Fatal(err)
	}
	forged := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		files["proofs/"+w.audit+".proof"] = tb.Files["proofs/"+other.audit+".proof"]
		return nil
	})
	if _, err := verify(forged); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "another index") {
		t.Fatalf("another index's record in place of ours: %v", err)
	}
	// Added beside ours, under its own id: it proves nothing the plan uses.
	added := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		name := "proofs/" + other.audit + ".proof"
		files[name] = tb.Files[name]
		names := memberNames(m)
		return append(names, name)
	})
	if _, err := verify(added); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "no locked version") {
		t.Fatalf("another index's record added: %v", err)
	}
}

// A swapped artifact: the lock's digest of an artifact changed (and the
// lock's own digest recomputed), or with --with-blobs the artifact's
// bytes changed. Both refused.
func TestAttackSwappedArtifact(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{WithBlobs: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify(data)
	if err != nil || !rep.Blobs {
		t.Fatalf("the honest bundle with blobs: %+v, %v", rep, err)
	}
	evil := sha256.Sum256([]byte("evil"))
	relocked := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		l, err := plan.ParseLock(files["project/cairn.lock"])
		if err != nil {
			t.Fatal(err)
		}
		l.Packages[0].Artifacts[0].SHA256 = hex.EncodeToString(evil[:])
		l.Packages[0].Artifacts[0].Size = 4
		out, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		files["project/cairn.lock"] = out
		return nil
	})
	if _, err := plan.ParseLock(mustRead(t, relocked).Files["project/cairn.lock"]); err != nil {
		t.Fatalf("the forged lock's digest was not recomputed: %v", err)
	}
	if _, err := verify(relocked); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "cairn.lock") {
		t.Fatalf("an artifact's digest swapped in the lock: %v", err)
	}

	swapped := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		l, _ := plan.ParseLock(files["project/cairn.lock"])
		a := l.Packages[0].Artifacts[0]
		name := "blobs/sha256/" + a.SHA256
		b := append([]byte(nil), files[name]...)
		b[len(b)-1] ^= 1
		files[name] = b
		return nil
	})
	if _, err := verify(swapped); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "holds bytes of sha256") {
		t.Fatalf("an artifact's bytes swapped: %v", err)
	}
}

// An edited lock (its digest not recomputed) is refused.
func TestAttackEditedLock(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	edited := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		files["project/cairn.lock"] = bytes.Replace(files["project/cairn.lock"], []byte(`"linux-amd64"`), []byte(`"linux-arm64"`), 1)
		return nil
	})
	if _, err := verify(edited); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "edited by hand") {
		t.Fatalf("an edited lock: %v", err)
	}
}

// A bundle whose cairn.yaml does not parse is a bundle not sound (its
// maker's file), not a file for the verifier to fix.
func TestAttackUnparsableProject(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	edited := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		files["project/cairn.yaml"] = []byte("repositories: [\x01\n")
		return nil
	})
	if _, err := verify(edited); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "the bundle's cairn.yaml") {
		t.Fatalf("a bundle whose cairn.yaml does not parse: %v", err)
	}
}

// A checkpoint whose witness cosignature was stripped is below the
// project's quorum: refused.
func TestAttackBelowQuorum(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	stripped := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		cp := files["repos/0/log/checkpoint"]
		var keep [][]byte
		for _, line := range bytes.SplitAfter(cp, []byte("\n")) {
			if !bytes.HasPrefix(line, []byte("— w1.example ")) {
				keep = append(keep, line)
			}
		}
		if len(keep) == len(bytes.SplitAfter(cp, []byte("\n"))) {
			t.Fatalf("no cosignature in %s", cp)
		}
		files["repos/0/log/checkpoint"] = bytes.Join(keep, nil)
		return nil
	})
	var qe *witness.QuorumError
	if _, err := verify(stripped); !errors.As(err, &qe) {
		t.Fatalf("a checkpoint below quorum: %v", err)
	}
}

// A bundle that claims another verdict than its contents give.
func TestAttackClaimedVerdict(t *testing.T) {
	w := newWorld(t)
	w.Certify(authorVuln("acme/log", "1.1.0", "GHSA-3333"))
	data, _, err := w.bundle(Options{})
	if err == nil {
		t.Fatal("the plan is refused, and Make says nothing")
	}
	claimed := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		for _, v := range m.Verdicts {
			v.Allowed = true
			for i := range v.Rules {
				v.Rules[i].Pass = true
			}
		}
		return nil
	})
	if _, err := verify(claimed); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "acme/log@1.1.0 allowed; its contents give refused") {
		t.Fatalf("a refused plan claimed allowed: %v", err)
	}
	// Judged at another time than its checkpoint's.
	later := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		m.JudgedAt = m.JudgedAt.Add(48 * time.Hour)
		return nil
	})
	if _, err := verify(later); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "the newest checkpoint it holds is of") {
		t.Fatalf("a bundle claiming another judging time: %v", err)
	}
}

// The file itself: truncated, over the reader's size limit, a member
// not listed, a member altered, a path that escapes.
func TestAttackFile(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Cut anywhere, the end's zero blocks and the last member's padding
	// included (whole blocks cut left a tar reader content).
	for _, n := range []int{10, len(data) / 2, len(data) - 8, len(data) - 1, len(data) - 512, len(data) - 1024, len(data) - 1024 - 100, len(data) - 1536} {
		if _, err := verify(data[:n]); !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated to %d of %d bytes: %v", n, len(data), err)
		}
	}
	if _, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{TrustBundle: true, MaxSize: 1000}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "more than 1000 bytes") {
		t.Errorf("over the size limit: %v", err)
	}
	for _, tail := range [][]byte{{0}, {'x'}, append(make([]byte, 511), 1), make([]byte, 2<<20)} {
		if _, err := verify(append(append([]byte(nil), data...), tail...)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes after the archive's end: %v", len(tail), err)
		}
	}
	// Zero blocks after the end, as tar tools pad an archive, are none of
	// its content.
	if _, err := verify(append(append([]byte(nil), data...), make([]byte, 20*512)...)); err != nil {
		t.Errorf("zero blocks after the archive's end: %v", err)
	}
	b := mustRead(t, data)
	var names []string
	for _, mem := range b.Manifest.Members {
		names = append(names, mem.Path)
	}
	// A byte in a padding no hash covers: two files that differ would
	// both verify. The manifest's (its header one block, its bytes
	// after it), then a member's.
	hdr, err := tar.NewReader(bytes.NewReader(data)).Next()
	if err != nil || hdr.Name != ManifestName || hdr.Size%512 == 0 {
		t.Fatalf("the manifest's header: %v %+v", err, hdr)
	}
	padded := bytes.Clone(data)
	padded[512+hdr.Size] = 'x'
	if _, err := verify(padded); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "the manifest's padding") {
		t.Errorf("a byte in the manifest's padding: %v", err)
	}
	for _, name := range names {
		content := b.Files[name]
		if len(content)%512 == 0 || len(content) < 64 {
			continue
		}
		off := bytes.Index(data, content)
		padded := bytes.Clone(data)
		padded[off+len(content)] = 'x'
		if _, err := verify(padded); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "member "+name+": its padding") {
			t.Errorf("a byte in the padding of %s: %v", name, err)
		}
		break
	}
	// A member the manifest does not list: a manifest that lists all
	// but the last.
	m := b.Manifest
	manifest, err := json.Marshal(Manifest{Format: m.Format, Version: m.Version, Created: m.Created, JudgedAt: m.JudgedAt, Policy: m.Policy, Repositories: m.Repositories, Verdicts: m.Verdicts, Members: m.Members[:len(m.Members)-1]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(rawBundle(t, manifest, names, b.Files)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "not in the manifest") {
		t.Errorf("an unlisted member: %v", err)
	}
	// A member altered, the manifest not.
	if manifest, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	altered := map[string][]byte{}
	for k, v := range b.Files {
		altered[k] = v
	}
	altered["project/cairn.yaml"] = append([]byte("# hi\n"), altered["project/cairn.yaml"]...)
	if _, err := verify(rawBundle(t, manifest, names, altered)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "member project/cairn.yaml is") {
		t.Errorf("an altered member: %v", err)
	}
	// The manifest not first.
	if _, err := verify(rawBundle(t, nil, names, b.Files)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "not the manifest") {
		t.Errorf("no manifest first: %v", err)
	}
	var out bytes.Buffer
	for _, bad := range []string{"../x", "/etc/passwd", "a//b", "a/./b", "proofs\\x"} {
		if err := Write(&out, m, []string{bad}, map[string][]byte{bad: nil}); err == nil {
			t.Errorf("Write took the path %q", bad)
		}
	}
}

// rawBundle writes a tar of the manifest (if any) then the named files,
// as they are: a file whose manifest may lie.
func rawBundle(t *testing.T, manifest []byte, names []string, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if manifest != nil {
		put(ManifestName, manifest)
	}
	for _, n := range names {
		put(n, files[n])
	}
	tw.Close()
	return buf.Bytes()
}

func mustRead(t *testing.T, data []byte) *Bundle {
	t.Helper()
	b, err := Read(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func authorVuln(name, version, id string) author.Certification {
	return author.Certification{Name: name, Version: version, Kind: "vulnerable", VulnID: id, Severity: "high"}
}

// A record signed after its key's revocation, in a log the holder of the
// checkpoint key forged and signed (no witness to stop it): a bundle of
// what a light client read from that server (the forger's checkpoint,
// tiles and documents in place of the honest ones) is refused by the
// rule a full replica applies, naming the record.
func TestAttackSignedAfterRevocation(t *testing.T) {
	w := newWorldWitnessed(t, false)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := author.RevokeKey(context.Background(), w.Repo, keys.ID(w.Security.Public()), "left", w.Root); err != nil {
		t.Fatal(err)
	}
	p, err := plan.ReadProject(w.project)
	if err != nil {
		t.Fatal(err)
	}
	l, err := plan.ReadLock(w.project)
	if err != nil {
		t.Fatal(err)
	}
	app := l.Package("acme/app")
	payload, err := record.Build(record.Audited, []record.Subject{{Name: "acme/app@1.0.0", Digest: map[string]string{"sha256": app.Descriptor.SHA256}}}, record.CertificationPredicate{Issued: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := record.Sign(payload, w.Security)
	if err != nil {
		t.Fatal(err)
	}
	// The honest server signs the revocation first; then the forger
	// serves one more commit: the revoked key's record.
	httpGet(t, w.url+"/log/checkpoint")
	forger := servertest.NewForger(w.World, w.url)
	forger.Serve(servertest.AppendCommit(w.World, func(commit string, at int64) ([]translog.Entry, [][]byte) {
		path := layout.RecordPath(layout.VersionDir("acme/app", "1.0.0"), forged.ID)
		return []translog.Entry{translog.NewEntry(commit, at, path, forged.Raw)}, [][]byte{forged.Raw}
	}))

	// What a light client reads of the forger, as the project names the
	// server (its URL), recorded as Make records it: the light client
	// refuses, and what it read up to then is what a bundle would hold.
	rec := newRecorder(redirect{from: w.url, to: forger.URL}, newResources([]string{w.url}, Version))
	for i := range p.Repositories {
		light := true
		p.Repositories[i].Light = &light
	}
	srcs, err := plan.Open(context.Background(), p, plan.Options{Cache: t.TempDir(), Remote: remote.Options{Client: &http.Client{Transport: rec}}})
	if err == nil {
		for _, pkg := range l.Packages {
			if _, err = srcs.Get(pkg.Repository).View.Subject(context.Background(), "package "+pkg.Name); err != nil {
				break
			}
		}
		srcs.Close()
	}
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleKeyRevoked || re.Record != forged.ID {
		t.Fatalf("the forger's log read by a light client: %v; want rule %s broken by %s", err, index.RuleKeyRevoked, forged.ID)
	}
	bundle := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		var names []string
		for _, mem := range m.Members {
			if strings.HasPrefix(mem.Path, "repos/") {
				delete(files, mem.Path)
			} else {
				names = append(names, mem.Path)
			}
		}
		for name, body := range rec.files {
			if strings.HasPrefix(name, "repos/") {
				files[name] = body
				names = append(names, name)
			}
		}
		c, err := checkpoint.Claimed(files["repos/0/log/checkpoint"])
		if err != nil {
			t.Fatal(err)
		}
		m.JudgedAt = c.Time.UTC() // the forger's checkpoint's time, as Make would say
		return names
	})
	_, err = verify(bundle)
	re = nil
	if !errors.Is(err, ErrRefused) || !errors.As(err, &re) || re.Rule != index.RuleKeyRevoked || re.Record != forged.ID {
		t.Fatalf("a bundle of the forger's log: %v; want rule %s broken by %s", err, index.RuleKeyRevoked, forged.ID)
	}
}

// redirect sends requests for one server to another.
type redirect struct{ from, to string }

func (r redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL.String()
	if rest, ok := strings.CutPrefix(u, r.from); ok {
		out := req.Clone(req.Context())
		nu, err := url.Parse(r.to + rest)
		if err != nil {
			return nil, err
		}
		out.URL, out.Host = nu, nu.Host
		return http.DefaultTransport.RoundTrip(out)
	}
	return http.DefaultTransport.RoundTrip(req)
}

func httpGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", u, resp.Status, err)
	}
	return body
}

// memberNames are the manifest's members' paths, in order.
func memberNames(m *Manifest) []string {
	var names []string
	for _, mem := range m.Members {
		names = append(names, mem.Path)
	}
	return names
}

// A subject's member that holds more than its one document (a forger's
// try to answer two subjects' reads with one member, now that the
// replay answers batched reads from the members) is refused, read in a
// batch or alone.
func TestAttackMemberOfTwoDocuments(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for version, data := range bothVersions(t, data) {
		if _, err := verify(data); err != nil {
			t.Fatalf("the honest bundle, version %d: %v", version, err)
		}
		two := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
			name := subjectMember(t, files, "package acme/app")
			sep := []byte(" ") // between two JSON values; two compact batches need none
			if strings.HasSuffix(name, compactExt) {
				sep = nil
			}
			files[name] = append(append(bytes.Clone(files[name]), sep...), files[name]...)
			return nil
		})
		_, err = verify(two)
		var pe *light.ProofError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "acme/app") {
			t.Fatalf("version %d: a member holding two documents: %v", version, err)
		}
	}
}
