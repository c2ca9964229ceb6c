package remote

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
)

// spy stands between an organisation and its upstream: it keeps every
// request (method, URL, body) the organisation sends, and can play an
// unreachable upstream.
type spy struct {
	next http.Handler
	down atomic.Bool

	mu   sync.Mutex
	seen []string
}

func newSpy(t *testing.T, target string) (*spy, string) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	s := &spy{next: httputil.NewSingleHostReverseProxy(u)}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func (s *spy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	text := body
	if r.Header.Get("Content-Encoding") == "gzip" {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			text, _ = io.ReadAll(zr)
		}
	}
	s.mu.Lock()
	s.seen = append(s.seen, r.Method+" "+r.URL.String()+"\n"+string(text))
	s.mu.Unlock()
	if s.down.Load() {
		panic(http.ErrAbortHandler) // the connection drops, as with a dead host
	}
	s.next.ServeHTTP(w, r)
}

// mentions returns the requests that contain any of the words.
func (s *spy) mentions(words ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, req := range s.seen {
		for _, w := range words {
			if strings.Contains(req, w) {
				out = append(out, req)
				break
			}
		}
	}
	return out
}

func (s *spy) since(i int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen[i:]...)
}

func (s *spy) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func getDoc(t *testing.T, url string) (*server.PackageDoc, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var doc server.PackageDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return &doc, resp.StatusCode
}

// An organisation's repository follows a public upstream: the upstream's
// packages are served beside the internal ones and verified against the
// upstream's root; an upstream package with an internal name is never
// served and is reported (attack 4); the organisation certifies an
// upstream version in its own index; when the upstream is unreachable the
// organisation's server and its clients keep working (attack 6); and no
// request the upstream receives names an internal package, an internal
// blob or an internal commit (attack 7).
func TestOrganisationFollowsUpstream(t *testing.T) {
	pub := newWorld(t)
	writer := newSigner(t)
	pub.grant(writer, "author", "publish:*")
	for _, p := range []struct{ name, version string }{{"acme/fastjson", "1.2.3"}, {"corp/secret", "9.9.9"}} {
		if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, p.name, p.version), writer); err != nil {
			t.Fatal(err)
		}
	}
	upstream, upURL := newSpy(t, pub.url)

	org := newWorld(t)
	dev, sec := newSigner(t), newSigner(t)
	org.grant(dev, "dev", "publish:corp/*")
	org.grant(sec, "security", "certify:audited")
	if _, err := author.Publish(org.ctx, org.repo, pkgDir(t, "corp/secret", "1.0.0"), dev); err != nil {
		t.Fatal(err)
	}
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", upURL, pub.intro, org.root); err != nil {
		t.Fatal(err)
	}
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", upURL, pub.intro, org.root); !isRule(err, index.RuleUpstream) {
		t.Fatalf("declaring upstream public twice: %v, want rule %s", err, index.RuleUpstream)
	}
	orgURL := org.serve(org.repo, server.Options{Fallback: (&UpstreamBlobs{Repo: org.repo}).Fetch, UpstreamCheckpoint: func(ctx context.Context, u *index.Upstream) ([]byte, string, error) {
		return UpstreamCheckpoint(ctx, org.repo, u)
	}})

	// Sync, through its own handle as `cairn serve` does.
	syncer, err := index.Open(org.ctx, org.repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer syncer.Close()
	res, err := Sync(org.ctx, syncer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Pulled == nil || res[0].Pulled.Head == "" {
		t.Fatalf("sync: %+v", res)
	}
	if got := strings.Join(res[0].Collisions, ","); got != "corp/secret" {
		t.Errorf("collisions reported: %q, want corp/secret", got)
	}

	// Upstream packages are served through the organisation's URL.
	doc, code := getDoc(t, orgURL+"/api/v1/packages/acme/fastjson")
	if code != http.StatusOK || doc.Source != "public" || doc.SourceIntroduction != pub.intro || len(doc.Versions) != 1 || doc.Versions[0].Version != "1.2.3" {
		t.Fatalf("acme/fastjson through the organisation: %d %+v", code, doc)
	}
	// Internal names win: the upstream's corp/secret@9.9.9 is never served.
	doc, _ = getDoc(t, orgURL+"/api/v1/packages/corp/secret")
	if doc == nil || doc.Source != "" || len(doc.Versions) != 1 || doc.Versions[0].Version != "1.0.0" {
		t.Fatalf("corp/secret: %+v, want only the internal 1.0.0", doc)
	}

	// Upstream blobs are fetched on demand, verified, kept.
	d, _, err := pub.repo.Descriptor(pub.ctx, "acme/fastjson", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	src := d.Artifacts[0].Ref
	if ok, _ := org.repo.Blobs.Stat(org.ctx, src); ok {
		t.Fatal("the organisation holds the upstream blob before anyone asked")
	}
	orgBlobs := &blob.HTTP{URL: orgURL}
	if _, err := blob.ReadAll(org.ctx, orgBlobs, src); err != nil {
		t.Fatalf("upstream blob through the organisation: %v", err)
	}
	if ok, _ := org.repo.Blobs.Stat(org.ctx, src); !ok {
		t.Error("the upstream blob was not kept")
	}

	// The organisation's security team audits the upstream version in
	// its own index; the record is served beside the upstream's.
	if _, err := author.Certify(org.ctx, org.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited, Note: "reviewed for internal use"}, sec); err != nil {
		t.Fatal(err)
	}
	doc, _ = getDoc(t, orgURL+"/api/v1/packages/acme/fastjson")
	if doc == nil || len(doc.Versions[0].LocalRecords) != 1 {
		t.Fatalf("the organisation's audit is not served beside the upstream version: %+v", doc)
	}
	if rec, err := record.Parse(doc.Versions[0].LocalRecords[0]); err != nil || rec.Kind != record.Audited || rec.Statement.Subject[0].SHA256() != doc.Versions[0].Descriptor.SHA256 {
		t.Errorf("local record: %v, %+v", err, rec)
	}
	// Certifying the upstream's namesake of an internal package, or with
	// a key that may only publish, is refused.
	if _, err := author.Certify(org.ctx, org.repo, author.Certification{Name: "corp/secret", Version: "9.9.9", Kind: record.Audited}, sec); err == nil || !strings.Contains(err.Error(), "internal package") {
		t.Errorf("certifying corp/secret@9.9.9 from upstream: %v", err)
	}
	if _, err := author.Certify(org.ctx, org.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Withdrawn}, dev); !isRule(err, index.RuleScope) {
		t.Errorf("withdrawing an upstream version with a publish key: %v, want rule %s", err, index.RuleScope)
	}
	if _, err := org.repo.Verify(org.ctx, true); err != nil {
		t.Fatalf("the organisation's index does not verify: %v", err)
	}

	// A client of the organisation sees both through the one URL, the
	// upstream's line verified against the upstream's own root.
	laptop := org.client("laptop", orgURL)
	if _, err := Pull(org.ctx, laptop, "origin", Options{}); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := laptop.UpstreamLine(&index.Upstream{Name: "public", Introduction: pub.intro}).VerifiedHead(); h != res[0].Pulled.Head {
		t.Errorf("the laptop's copy of upstream public is verified at %q, want %s", h, res[0].Pulled.Head)
	}

	// The upstream goes away.
	upstream.down.Store(true)
	before := upstream.count()
	res, err = Sync(org.ctx, syncer, Options{})
	var se *SyncError
	if !errors.As(err, &se) || len(res) != 1 || res[0].Error == "" {
		t.Fatalf("sync with the upstream down: %v %+v", err, res)
	}
	if doc, _ := getDoc(t, orgURL+"/api/v1/packages/acme/fastjson"); doc == nil || len(doc.Versions) != 1 {
		t.Error("the organisation stopped serving the upstream's packages when the upstream went down")
	}
	if _, err := blob.ReadAll(org.ctx, orgBlobs, src); err != nil {
		t.Errorf("the cached upstream blob is not served with the upstream down: %v", err)
	}
	if _, err := author.Publish(org.ctx, org.repo, pkgDir(t, "corp/tool", "2.0.0"), dev); err != nil {
		t.Fatal(err)
	}
	if p, err := Pull(org.ctx, laptop, "origin", Options{}); err != nil || p.Main != "fast-forwarded" {
		t.Errorf("the organisation's client with the upstream down: %v %+v", err, p)
	}
	// Internal blobs a client asks for and the server lacks are not
	// looked for upstream.
	missing := strings.Repeat("ab", 32)
	if resp, err := http.Get(orgURL + "/blobs/sha256/" + missing + "?size=3"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown blob: %v %v", err, resp.Status)
	}
	for _, req := range upstream.since(before) {
		if !strings.HasPrefix(req, "GET /api/v1/checkpoint") {
			t.Errorf("sent to the (down) upstream: %q; want only the sync's checkpoint request (and the client's retry)", req)
		}
	}
	upstream.down.Store(false)

	// The upstream moves on; a second sync fetches only its new commits.
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "acme/fastjson", "1.2.4"), writer); err != nil {
		t.Fatal(err)
	}
	if res, err = Sync(org.ctx, syncer, Options{}); err != nil || res[0].Pulled.Commits != 1 {
		t.Fatalf("second sync: %v %+v", err, res)
	}
	if doc, _ := getDoc(t, orgURL+"/api/v1/packages/acme/fastjson"); doc == nil || len(doc.Versions) != 2 {
		t.Errorf("after the second sync: %+v", doc)
	}

	// Nothing the upstream ever received names an internal package, an
	// internal blob, or an internal commit.
	words := []string{"corp/secret", "corp/tool", missing}
	for _, name := range []string{"corp/secret", "corp/tool"} {
		views, err := org.repo.Show(org.ctx, name, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range views {
			words = append(words, v.Ref.SHA256)
			for _, a := range v.Descriptor.Artifacts {
				words = append(words, a.SHA256)
			}
		}
	}
	commits, err := indextest.Git(t, org.repo, "rev-list", index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	words = append(words, strings.Fields(string(commits))...)
	if leaks := upstream.mentions(words...); len(leaks) > 0 {
		t.Errorf("%d request(s) to the upstream name internal things, first:\n%s", len(leaks), leaks[0])
	}
	if upstream.count() < 4 {
		t.Fatalf("the spy saw %d requests: it is not in the path", upstream.count())
	}

	// Removing the upstream stops serving its packages.
	f, err := org.repo.Followed(org.ctx)
	if err != nil || len(f) != 1 {
		t.Fatal(f, err)
	}
	if _, err := author.Revoke(org.ctx, org.repo, f[0].RecordID, "no longer used", org.root); err != nil {
		t.Fatal(err)
	}
	if _, code := getDoc(t, orgURL+"/api/v1/packages/acme/fastjson"); code != http.StatusNotFound {
		t.Errorf("acme/fastjson after the upstream was removed: %d, want 404", code)
	}
}

func isRule(err error, rule string) bool {
	var re *index.RuleError
	return errors.As(err, &re) && re.Rule == rule
}
