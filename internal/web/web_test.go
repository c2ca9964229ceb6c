package web_test

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/web"
)

func TestMain(m *testing.M) { servertest.Main(m) }

// hostile is a package summary that a page must show as text.
const hostile = `<script>alert("pwned")</script><img src=x onerror=alert(1)> & "quoted"`

// orgPolicy requires an audit by the security team.
const orgPolicy = "require:\n  - {name: audited-by-security, property: audited, by: acme-security}\n"

// site is a served index with what the pages show: acme/hello 1.0.0
// (audited, a vulnerability answered by a fix) and 1.1.0 (its audit
// revoked, so the index's policy org refuses it), a package with a
// hostile summary, and the policy org in the index.
type site struct {
	w                    *indextest.World
	url                  string
	audit10, audit11     string // the audits' record ids
	revoke11             string // the revocation of audit11
	vuln10, fixed10      string
	publisherID, secID   string
	refusedRule, hostile string
}

func newSite(t *testing.T) *site {
	w := indextest.New(t)
	s := &site{w: w}
	w.Publish(indextest.Package{Name: "acme/hello", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/hello", Version: "1.1.0"})
	publishWithSummary(t, w, "acme/evil", "0.1.0", hostile)
	s.audit10 = w.Audit("acme/hello", "1.0.0")
	s.vuln10 = w.Certify(author.Certification{Name: "acme/hello", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-aaaa-bbbb-cccc", Severity: "high", Affects: "<1.0.1"}).Records[0]
	s.fixed10 = w.Certify(author.Certification{Name: "acme/hello", Version: "1.0.0", Kind: record.Fixed, VulnID: "GHSA-aaaa-bbbb-cccc", Note: "not reachable"}).Records[0]
	s.audit11 = w.Audit("acme/hello", "1.1.0")
	rev, err := author.Revoke(w.Ctx, w.Repo, s.audit11, "audited the wrong tarball", w.Security)
	if err != nil {
		t.Fatal(err)
	}
	s.revoke11 = rev.Records[0]
	if _, err := author.PublishPolicy(w.Ctx, w.Repo, "org", []byte(orgPolicy), w.Root); err != nil {
		t.Fatal(err)
	}
	s.publisherID, s.secID = keys.ID(w.Publisher.Public()), keys.ID(w.Security.Public())
	s.url = servertest.ServeWith(w, server.Options{IndexPolicy: "org"})
	return s
}

// publishWithSummary publishes a version whose manifest has summary.
func publishWithSummary(t *testing.T, w *indextest.World, name, version, summary string) {
	dir := t.TempDir()
	manifest := "name: " + name + "\nversion: " + version + "\nsummary: '" + strings.ReplaceAll(summary, "'", "''") + "'\nlicense: MIT\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"
	if err := os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src.tar.gz"), indextest.TarGz(t, map[string]string{"README": "evil\n"}, "s"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Publish(w.Ctx, w.Repo, dir, w.Publisher); err != nil {
		t.Fatal(err)
	}
}

// get fetches path as a browser would (Accept: text/html) and parses
// the page.
func get(t *testing.T, url string, wantCode int) *html.Node {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %d, want %d\n%s", url, resp.StatusCode, wantCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("GET %s: Content-Type %q, want HTML", url, ct)
	}
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// find returns the elements under n for which match holds.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// text is n's visible text, spaces collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// byID returns the element with id, or fails.
func byID(t *testing.T, doc *html.Node, id string) *html.Node {
	t.Helper()
	els := find(doc, func(n *html.Node) bool { return attr(n, "id") == id })
	if len(els) != 1 {
		t.Fatalf("%d elements with id %q, want 1", len(els), id)
	}
	return els[0]
}

// rows returns the text of each body row of the tables under n.
func rows(n *html.Node) []string {
	var out []string
	for _, tb := range find(n, tag("tbody")) {
		for _, tr := range find(tb, tag("tr")) {
			out = append(out, text(tr))
		}
	}
	return out
}

// rowWith returns the one row whose text contains s.
func rowWith(t *testing.T, n *html.Node, s string) string {
	t.Helper()
	var found []string
	for _, r := range rows(n) {
		if strings.Contains(r, s) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d rows contain %q, want 1: %q", len(found), s, rows(n))
	}
	return found[0]
}

// accessible checks what every page has: a language, a title, the
// landmarks, a skip link to main, and table headers with a scope.
func accessible(t *testing.T, doc *html.Node, title string) {
	t.Helper()
	if h := find(doc, tag("html")); len(h) != 1 || attr(h[0], "lang") != "en" {
		t.Errorf("no <html lang=en>")
	}
	if ts := find(doc, tag("title")); len(ts) != 1 || !strings.Contains(text(ts[0]), title) {
		t.Errorf("title: want %q in it", title)
	}
	for _, l := range []string{"header", "nav", "main", "footer"} {
		if len(find(doc, tag(l))) == 0 {
			t.Errorf("no <%s> landmark", l)
		}
	}
	if m := find(doc, tag("main")); len(m) != 1 || attr(m[0], "id") != "main" {
		t.Errorf("want one <main id=main>")
	}
	if a := find(doc, tag("a")); len(a) == 0 || attr(a[0], "href") != "#main" {
		t.Errorf("the first link is not the skip link to #main")
	}
	for _, th := range find(doc, tag("th")) {
		if s := attr(th, "scope"); s != "col" && s != "row" {
			t.Errorf("<th> %q without scope", text(th))
		}
	}
	for _, in := range find(doc, func(n *html.Node) bool { return n.Data == "input" || n.Data == "select" }) {
		id := attr(in, "id")
		if id == "" || len(find(doc, func(n *html.Node) bool { return n.Data == "label" && attr(n, "for") == id })) != 1 {
			t.Errorf("<%s name=%s> has no label", in.Data, attr(in, "name"))
		}
	}
}

func TestHomePage(t *testing.T) {
	s := newSite(t)
	doc := get(t, s.url+"/", 200)
	accessible(t, doc, "Packages")
	main := byID(t, doc, "main")
	if r := rowWith(t, main, "acme/hello"); !strings.Contains(r, "1.1.0") || !strings.Contains(r, "2") {
		t.Errorf("acme/hello's row %q: want latest 1.1.0, 2 versions", r)
	}
	links := find(main, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == "/packages/acme/hello" })
	if len(links) == 0 {
		t.Errorf("no link to /packages/acme/hello")
	}
	if l := find(main, func(n *html.Node) bool {
		return n.Data == "a" && attr(n, "href") == web.KeyURL(s.secID) && text(n) == s.secID
	}); len(l) != 1 {
		t.Errorf("the activity's grant of %s does not link to its key page", s.secID)
	}
	form := find(doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "role") == "search" })
	if len(form) != 1 || attr(form[0], "method") != "get" {
		t.Fatalf("no GET search form")
	}
	// Recent activity: the revocation, newest first, by its key.
	act := find(main, tag("ol"))
	if len(act) != 1 || !strings.Contains(text(act[0]), "revoke record "+s.audit11[:16]+" signed by acme-security "+s.secID[:19]) {
		t.Errorf("recent activity does not show the revocation by acme-security (%s)", s.secID)
	}

	doc = get(t, s.url+"/?q=hel", 200)
	if got := rows(byID(t, doc, "main")); len(got) != 1 || !strings.Contains(got[0], "acme/hello") {
		t.Errorf("search hel: rows %q, want acme/hello alone", got)
	}
	doc = get(t, s.url+"/?q=nothing-like-it", 200)
	if !strings.Contains(text(byID(t, doc, "main")), "No package matches") {
		t.Errorf("search with no match does not say so")
	}
}

func TestPackagePage(t *testing.T) {
	s := newSite(t)
	doc := get(t, s.url+"/packages/acme/hello", 200)
	accessible(t, doc, "acme/hello")
	main := byID(t, doc, "main")
	got := rows(main)
	if len(got) != 2 || !strings.HasPrefix(got[0], "1.1.0") || !strings.HasPrefix(got[1], "1.0.0") {
		t.Fatalf("versions %q: want 1.1.0 then 1.0.0", got)
	}
	views, err := s.w.Repo.Show(s.w.Ctx, "acme/hello", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	d := views[0].Descriptor
	if !strings.Contains(text(main), d.UUID) {
		t.Errorf("the uuid %s is not shown", d.UUID)
	}
	for _, a := range d.Artifacts {
		if !strings.Contains(got[1], a.File) || !strings.Contains(got[1], "sha256:"+a.SHA256) || !strings.Contains(got[1], a.Label()) {
			t.Errorf("1.0.0's row %q lacks artifact %s sha256:%s", got[1], a.File, a.SHA256)
		}
	}
}

func TestVersionPage(t *testing.T) {
	s := newSite(t)
	doc := get(t, s.url+"/packages/acme/hello@1.1.0", 200)
	accessible(t, doc, "acme/hello@1.1.0")
	// The revoked audit: its issuer's holder and key, revoked, linked to
	// the revocation, which links back.
	audit := text(byID(t, doc, "r-"+s.audit11))
	for _, want := range []string{"audited", "acme-security", s.secID[:19], "revoked by " + s.revoke11[:16]} {
		if !strings.Contains(audit, want) {
			t.Errorf("the revoked audit's row %q lacks %q", audit, want)
		}
	}
	tr := byID(t, doc, "r-"+s.audit11)
	if l := find(tr, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == web.KeyURL(s.secID) }); len(l) != 1 {
		t.Errorf("the revoked audit does not link to its issuer's key page")
	}
	if l := find(tr, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == "#r-"+s.revoke11 }); len(l) != 1 {
		t.Errorf("the revoked audit does not link to its revocation")
	}
	rev := byID(t, doc, "r-"+s.revoke11)
	if l := find(rev, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == "#r-"+s.audit11 }); len(l) != 1 {
		t.Errorf("the revocation does not link to the record it ends: %q", text(rev))
	}
	// The verdict of the server's policy (index:org): refused, rule by
	// rule, as cairn why says it.
	verdict := text(byID(t, doc, "main"))
	for _, want := range []string{"under index:org : REFUSED", "require audited-by-security (index:org:2) FAIL"} {
		if !strings.Contains(verdict, want) {
			t.Errorf("the verdict lacks %q:\n%s", want, verdict)
		}
	}
	rule := rowWith(t, byID(t, doc, "main"), "audited-by-security")
	if !strings.Contains(rule, "FAIL") || !strings.Contains(rule, "acme-security") {
		t.Errorf("the failing rule's row %q does not explain the refusal", rule)
	}

	// 1.0.0 under ?policy=org: allowed, its audit deciding; the fix
	// answers the vulnerability, linked.
	doc = get(t, s.url+"/packages/acme/hello@1.0.0?policy=org", 200)
	if v := text(byID(t, doc, "main")); !strings.Contains(v, "under index:org : allowed") {
		t.Errorf("1.0.0 under org is not allowed:\n%s", v)
	}
	fixed := byID(t, doc, "r-"+s.fixed10)
	if l := find(fixed, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == "#r-"+s.vuln10 }); len(l) != 1 {
		t.Errorf("the fixed record does not link to the vulnerable one it answers: %q", text(fixed))
	}
	if st := text(byID(t, doc, "r-"+s.audit10)); !strings.Contains(st, "active") {
		t.Errorf("1.0.0's audit %q is not active", st)
	}

	// A policy the index does not hold: 400, the page says which it holds.
	doc = get(t, s.url+"/packages/acme/hello@1.0.0?policy=nope", 400)
	if v := text(byID(t, doc, "main")); !strings.Contains(v, `no policy "nope"`) || !strings.Contains(v, "org") {
		t.Errorf("an unknown policy: %s", v)
	}
}

func TestKeyPage(t *testing.T) {
	s := newSite(t)
	doc := get(t, s.url+web.KeyURL(s.publisherID), 200)
	accessible(t, doc, s.publisherID)
	main := text(byID(t, doc, "main"))
	for _, want := range []string{"alice", "active", "publish:acme/*", "acme/hello@1.0.0", "acme/hello@1.1.0", "acme/evil@0.1.0"} {
		if !strings.Contains(main, want) {
			t.Errorf("the publisher's key page lacks %q:\n%s", want, main)
		}
	}
	rootID := keys.ID(s.w.Root.Public())
	if g := rowWith(t, byID(t, doc, "main"), "publish:acme/*"); !strings.Contains(g, rootID) {
		t.Errorf("the grant %q does not say the root key %s signed it", g, rootID)
	}
	if _, err := author.RevokeKey(s.w.Ctx, s.w.Repo, s.publisherID, "left the team", s.w.Root); err != nil {
		t.Fatal(err)
	}
	doc = get(t, s.url+web.KeyURL(s.publisherID), 200)
	if main := text(byID(t, doc, "main")); !strings.Contains(main, "revoked") || !strings.Contains(main, "left the team") {
		t.Errorf("a revoked key's page:\n%s", main)
	}
	get(t, s.url+"/keys/SHA256:nosuchkey", 404)
	// An empty window (before the first leaf) says so, not "leaves 0 to -1".
	if main := text(byID(t, get(t, s.url+web.KeyURL(s.publisherID)+"?before=0", 200), "main")); strings.Contains(main, "to -1") || !strings.Contains(main, "nothing to show") {
		t.Errorf("the key page before leaf 0:\n%s", main)
	}
}

// A key whose id holds "//" (base64 may: about one key in a hundred) has
// a page at the link the pages give it: its id is one escaped segment,
// not a path the server cleans of a slash and redirects to another id.
func TestKeyPageOfAnIDWithSlashes(t *testing.T) {
	s := newSite(t)
	var id string
	var signer keys.Signer
	for id == "" || !strings.Contains(id, "//") {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		signer = keys.NewSigner(priv)
		id = keys.ID(signer.Public())
	}
	if _, err := author.Grant(s.w.Ctx, s.w.Repo, author.KeyGrant{Key: signer.Public(), Holder: "slashed-auditor", Scopes: []string{"certify:audited"}}, s.w.Root); err != nil {
		t.Fatal(err)
	}
	// The home page's latest commit is the grant, linked to the key.
	links := find(get(t, s.url+"/", 200), func(n *html.Node) bool {
		return n.Data == "a" && strings.HasPrefix(attr(n, "href"), "/keys/") && strings.Contains(text(n), id)
	})
	if len(links) == 0 {
		t.Fatalf("the home page links no page of key %s", id)
	}
	href := attr(links[0], "href")
	if href != web.KeyURL(id) {
		t.Errorf("the home page links key %s at %s, not %s", id, href, web.KeyURL(id))
	}
	main := text(byID(t, get(t, s.url+href, 200), "main"))
	if !strings.Contains(main, "slashed-auditor") || !strings.Contains(main, id) {
		t.Errorf("the page at %s is not key %s's:\n%s", href, id, main)
	}
}

// The log page shows the latest checkpoint, who signed it and which
// witnesses cosigned it (a real witness, cairn's own, over HTTP).
func TestLogPage(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/hello", Version: "1.0.0"})
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	wurl, vkey := servertest.Witness(w, "witness.example")
	url := servertest.ServeWith(w, server.Options{Witnesses: []server.Witness{{URL: wurl, VKey: vkey}}})
	doc := get(t, url+"/log", 200)
	accessible(t, doc, "Transparency log")
	main := text(byID(t, doc, "main"))
	for _, want := range []string{"tree size", "leaves", "signed by the repository's checkpoint key", keys.ID(w.Checkpointer.Public()),
		"cosigned by witness witness.example", "/log/checkpoint"} {
		if !strings.Contains(main, want) {
			t.Errorf("the log page lacks %q:\n%s", want, main)
		}
	}
	if r := rowWith(t, byID(t, doc, "main"), "witness.example"); !strings.Contains(r, wurl) || !strings.Contains(r, "yes") {
		t.Errorf("the witness's row %q: want its URL, and that it cosigned", r)
	}
}

// A hostile summary is text on every page that shows it, never markup.
func TestEscaping(t *testing.T) {
	s := newSite(t)
	for _, path := range []string{"/packages/acme/evil", "/packages/acme/evil@0.1.0"} {
		doc := get(t, s.url+path, 200)
		if n := len(find(doc, tag("script"))) + len(find(doc, tag("img"))); n != 0 {
			t.Errorf("%s: the summary became %d element(s)", path, n)
		}
		if !strings.Contains(text(doc), hostile) {
			t.Errorf("%s: the summary is not shown as text", path)
		}
	}
}

// A page that does not exist is an HTML page with what to do, for a
// browser; the APIs answer as they did.
func TestNotFound(t *testing.T) {
	s := newSite(t)
	for _, path := range []string{"/packages/acme/none", "/packages/acme/hello@9.9.9", "/nothing/here", "/packages/NOT A NAME"} {
		doc := get(t, s.url+strings.ReplaceAll(path, " ", "%20"), 404)
		accessible(t, doc, "404")
		if m := text(byID(t, doc, "main")); !strings.Contains(m, "search") || !strings.Contains(m, "/packages/NAME") {
			t.Errorf("%s: the 404 page does not say what to do: %s", path, m)
		}
	}
	for _, path := range []string{"/nothing/here", "/api/v1/packages/acme/none"} {
		resp, err := http.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || strings.Contains(resp.Header.Get("Content-Type"), "html") {
			t.Errorf("GET %s without Accept text/html: %d %s %q, want the API's plain 404", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}

// TestPageKeptUntilMainMoves: a page is rendered once per head and then
// served as rendered, with an ETag a browser can revalidate (304); when
// main moves, the next request shows the new head's records at once.
func TestPageKeptUntilMainMoves(t *testing.T) {
	s := newSite(t)
	u := s.url + "/packages/acme/hello@1.0.0?policy=org"
	fetch := func(etag string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", u, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	first, body := fetch("")
	etag := first.Header.Get("ETag")
	if first.StatusCode != http.StatusOK || etag == "" {
		t.Fatalf("first GET: %s, ETag %q", first.Status, etag)
	}
	again, body2 := fetch("")
	if again.Header.Get("ETag") != etag || body2 != body {
		t.Fatalf("the same page at the same head changed: ETag %q then %q", etag, again.Header.Get("ETag"))
	}
	if nm, rest := fetch(etag); nm.StatusCode != http.StatusNotModified || rest != "" {
		t.Fatalf("If-None-Match with the page's ETag: %s with %d bytes, want 304 and no body", nm.Status, len(rest))
	}
	if nm, _ := fetch(`"another"`); nm.StatusCode != http.StatusOK {
		t.Fatalf("If-None-Match with another ETag: %s, want 200", nm.Status)
	}

	audit := s.w.Certify(author.Certification{Name: "acme/hello", Version: "1.0.0", Kind: record.Tested, Note: "a second look"}).Records[0]
	moved, body3 := fetch(etag)
	if moved.StatusCode != http.StatusOK || !strings.Contains(body3, audit) {
		t.Fatalf("after main moved (a new audit %s): %s, the page shows it: %v; a page kept for the old head was served", audit, moved.Status, strings.Contains(body3, audit))
	}
	if moved.Header.Get("ETag") == etag {
		t.Fatal("the page of the new head has the old head's ETag")
	}
}
