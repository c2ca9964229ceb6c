package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/translog"
)

// maxResource bounds one answer a recorder keeps.
const maxResource = 256 << 20

// batchPath is the light client's batched read, which a bundle does not
// keep: a recorder answers it 405, so that the client reads subject by
// subject, and a replay answers it from the subjects' own members.
const batchPath = "api/v1/log/subjects"

var (
	linePrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^upstreams/[^/]+/`) })
	blobPath   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/(?:.*/)?blobs/sha256/([0-9a-f]{64})$`) })
)

// resources maps a light client's requests to bundle members
// (docs/evidence.md, Resources of a repository).
type resources struct {
	bases []string // each repository's URL, without a final slash
	// compact says subject documents are kept in the compact encoding of
	// a batch of one (translog.SubjectsMedia), as version 3 keeps them
	// (….subjects); else as the JSON a server answers (….json, version 2).
	compact bool
}

// newResources returns the resources of a bundle of a version (2 or 3)
// of repositories at urls.
func newResources(urls []string, version int) resources {
	r := resources{compact: version >= 3}
	for _, u := range urls {
		r.bases = append(r.bases, strings.TrimSuffix(u, "/"))
	}
	return r
}

// member returns the bundle member that answers req (a GET), and the
// repository it is of (-1 for a blob, which is of none); ok false if a
// bundle keeps no answer to such a request.
func (rs resources) member(u *url.URL) (name string, repo int, ok bool) {
	if m := blobPath().FindStringSubmatch(u.Path); m != nil {
		return "blobs/sha256/" + m[1], -1, true
	}
	i, line, rest, ok := rs.locate(u.Scheme + "://" + u.Host + u.EscapedPath())
	if !ok {
		return "", 0, false
	}
	switch {
	case rest == "log/checkpoint" || strings.HasPrefix(rest, "log/tile/"):
		if checkPath(line+rest) != nil {
			return "", 0, false
		}
		return fmt.Sprintf("repos/%d/%s", i, line+rest), i, true
	case rest == "api/v1/log/subject":
		q := u.Query()
		s, size := q.Get("s"), q.Get("size")
		if s == "" || len(q["s"]) != 1 || len(q["size"]) != 1 || !canonicalSize(size) {
			return "", 0, false
		}
		return rs.subjectMember(i, line, s, size), i, true
	}
	return "", 0, false
}

// locate returns the repository whose URL a request's (scheme, host and
// escaped path) is under, the upstream line it reads through
// (upstreams/UP/, or none) and the path after them; ok false if it is
// under none.
func (rs resources) locate(full string) (repo int, line, rest string, ok bool) {
	for i, b := range rs.bases {
		rel, found := strings.CutPrefix(full, b+"/")
		if !found {
			continue
		}
		line := linePrefix().FindString(rel)
		return i, line, rel[len(line):], true
	}
	return 0, "", "", false
}

// subjectMember is the member that answers the read of subject s at size
// (canonicalSize) from repository i through line (locate).
func (rs resources) subjectMember(i int, line, s, size string) string {
	sum := sha256.Sum256([]byte(s))
	ext := ".json"
	if rs.compact {
		ext = compactExt
	}
	return "repos/" + strconv.Itoa(i) + "/" + line + "api/v1/log/subject/" + size + "/" + hex.EncodeToString(sum[:]) + ext
}

// canonicalSize says whether a tree size asked for is a decimal number
// without a sign or leading zeros.
func canonicalSize(size string) bool {
	n, err := strconv.ParseInt(size, 10, 64)
	return err == nil && n >= 0 && strconv.FormatInt(n, 10) == size
}

// batchMembers returns the members that answer a batched subject read
// (POST api/v1/log/subjects?size=N of a repository or its line) of
// subjects, each subject's as a GET of it would be answered (member);
// ok false if u is no such read.
func (rs resources) batchMembers(u *url.URL, subjects []string) (names []string, repo int, ok bool) {
	base := strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/")
	lineURL, found := strings.CutSuffix(base, "/"+batchPath)
	if !found {
		return nil, 0, false
	}
	q := u.Query()
	if len(q) != 1 || len(q["size"]) != 1 || len(subjects) == 0 {
		return nil, 0, false
	}
	size := q["size"][0]
	repo, line, rest, ok := rs.locate(lineURL + "/api/v1/log/subject")
	if !ok || rest != "api/v1/log/subject" || !canonicalSize(size) {
		return nil, 0, false
	}
	for _, s := range subjects {
		if s == "" {
			return nil, 0, false
		}
		names = append(names, rs.subjectMember(repo, line, s, size))
	}
	return names, repo, true
}

// isBatch reports whether req is the batched subject read.
func isBatch(req *http.Request) bool {
	return req.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(req.URL.Path, "/"), "/"+batchPath)
}

func answer(req *http.Request, code int, body []byte, hdr http.Header) *http.Response {
	if hdr == nil {
		hdr = http.Header{}
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}

// recorder is a RoundTripper that keeps the answers a bundle keeps of
// the requests it passes on: what the light client reads while Make
// opens the project and checks its lock. Recording may be turned off
// (for the reads that make the records' offline proofs, whose paths the
// proofs carry).
type recorder struct {
	next http.RoundTripper
	rs   resources

	mu    sync.Mutex
	on    bool
	files map[string][]byte
	keys  map[int]map[string]string // repository → checkpoint path → key id
	err   error                     // the first conflict seen
}

func newRecorder(next http.RoundTripper, rs resources) *recorder {
	return &recorder{next: next, rs: rs, on: true, files: map[string][]byte{}, keys: map[int]map[string]string{}}
}

func (r *recorder) setOn(on bool) {
	r.mu.Lock()
	r.on = on
	r.mu.Unlock()
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if isBatch(req) {
		return answer(req, http.StatusMethodNotAllowed, []byte("an evidence bundle keeps subject reads one by one\n"), nil), nil
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	name, repo, ok := r.rs.member(req.URL)
	r.mu.Lock()
	on := r.on
	r.mu.Unlock()
	if !ok || !on {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResource+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > maxResource {
		return nil, fmt.Errorf("%s: an answer of more than %d bytes", req.URL, maxResource)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	kept := body
	if r.rs.compact && strings.HasSuffix(name, compactExt) {
		// The client checks the JSON document the server answered; the
		// bundle keeps the same document in the compact encoding.
		if kept, err = compactDocument(body); err != nil {
			r.mu.Lock()
			if r.err == nil {
				r.err = fmt.Errorf("%s: %w", req.URL, err)
			}
			r.mu.Unlock()
			return resp, nil
		}
	}
	body = kept
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, seen := r.files[name]; seen && !bytes.Equal(prev, body) && r.err == nil {
		r.err = fmt.Errorf("%s answered twice with different content while the evidence was read (a new checkpoint?): %w", req.URL, errMoved)
	}
	r.files[name] = body
	if repo >= 0 && strings.HasSuffix(name, "/log/checkpoint") {
		if k := resp.Header.Get(light.KeyHeader); k != "" {
			if r.keys[repo] == nil {
				r.keys[repo] = map[string]string{}
			}
			r.keys[repo][strings.TrimPrefix(name, fmt.Sprintf("repos/%d/", repo))] = k
		}
	}
	return resp, nil
}

// replay is a RoundTripper that answers a light client from a bundle: a
// request it keeps an answer to gets it, a batched read the answers it
// keeps to each subject's (batch), anything else 404. It reaches no
// network.
type replay struct {
	rs    resources
	files map[string][]byte
	keys  []map[string]string

	mu     sync.Mutex
	served map[string]bool // the members answered
}

func (r *replay) RoundTrip(req *http.Request) (*http.Response, error) {
	if isBatch(req) {
		return r.batch(req), nil
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return answer(req, http.StatusMethodNotAllowed, nil, nil), nil
	}
	if req.Body != nil {
		req.Body.Close()
	}
	name, repo, ok := r.rs.member(req.URL)
	body, held := r.files[name]
	if !ok || !held {
		return answer(req, http.StatusNotFound, []byte("not in the evidence bundle\n"), nil), nil
	}
	if r.rs.compact && strings.HasSuffix(name, compactExt) {
		// A subject read alone is answered in JSON, as a server answers
		// it; a member that is no document, as it is, for the client to
		// refuse.
		if doc, err := jsonDocument(body); err == nil {
			body = doc
		}
	}
	r.mu.Lock()
	if r.served == nil {
		r.served = map[string]bool{}
	}
	r.served[name] = true
	r.mu.Unlock()
	hdr := http.Header{}
	if repo >= 0 && repo < len(r.keys) {
		if k := r.keys[repo][strings.TrimPrefix(name, fmt.Sprintf("repos/%d/", repo))]; k != "" {
			hdr.Set(light.KeyHeader, k)
		}
	}
	if req.Method == http.MethodHead {
		resp := answer(req, http.StatusOK, nil, hdr)
		resp.ContentLength = int64(len(body))
		return resp, nil
	}
	return answer(req, http.StatusOK, body, hdr), nil
}

// batch answers a batched subject read from the members that answer each
// subject's own read, as a server answers it ({"size": N, "subjects":
// [each document]}), so that the light client reads and judges them in
// batches, as it reads a server. The documents are the members' bytes,
// checked by the client as each one alone is; each must be one JSON
// value, so that one member cannot stand for another's. A read of a
// subject the bundle keeps no answer to is answered 405, as a bundle
// without batches answers: the client then reads subject by subject, and
// the read the bundle lacks fails as it fails alone.
func (r *replay) batch(req *http.Request) *http.Response {
	refused := answer(req, http.StatusMethodNotAllowed, nil, nil)
	if req.Body == nil {
		return refused
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	req.Body.Close()
	if err != nil || !bytes.HasSuffix(data, []byte("\n")) {
		return refused
	}
	subjects := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	names, _, ok := r.rs.batchMembers(req.URL, subjects)
	if !ok {
		return refused
	}
	// The answer is read from the members where they are: the client
	// reads it once, into its own buffer.
	size := req.URL.Query().Get("size")
	parts := make([]io.Reader, 0, 2*len(names)+1)
	n := 0
	add := func(b []byte) {
		parts, n = append(parts, bytes.NewReader(b)), n+len(b)
	}
	var hdr http.Header
	if r.rs.compact {
		// Each member is a batch of one document at the batch's size:
		// the answer is a batch of them all.
		if !translog.AcceptsSubjects(req.Header.Values("Accept")) {
			return refused
		}
		at, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			return refused
		}
		add(translog.AppendSubjectsHeader(nil, at, len(names)))
		for _, name := range names {
			doc, held := r.files[name]
			if !held {
				return refused
			}
			sizes, spans, err := translog.SubjectSpans(doc)
			if err != nil || len(spans) != 1 || sizes[0] != at {
				return refused
			}
			add(doc[spans[0][0]:spans[0][1]])
		}
		hdr = http.Header{"Content-Type": {translog.SubjectsMedia}}
	} else {
		add([]byte(`{"size":` + size + `,"subjects":[`))
		for i, name := range names {
			doc, held := r.files[name]
			if !held || !jsontext.Value(doc).IsValid() {
				return refused
			}
			if i > 0 {
				add([]byte{','})
			}
			add(bytes.TrimSpace(doc))
		}
		add([]byte("]}\n"))
	}
	r.mu.Lock()
	if r.served == nil {
		r.served = map[string]bool{}
	}
	for _, name := range names {
		r.served[name] = true
	}
	r.mu.Unlock()
	resp := answer(req, http.StatusOK, nil, hdr)
	resp.Body, resp.ContentLength = io.NopCloser(io.MultiReader(parts...)), int64(n)
	return resp
}

// compactExt ends the name of a subject's member in the compact
// encoding (version 3).
const compactExt = ".subjects"

// subjectJSON is a subject document as GET /api/v1/log/subject answers
// it (docs/transparency.md, Serving).
type subjectJSON struct {
	Subject string            `json:"subject"`
	Size    int64             `json:"size"`
	Count   uint64            `json:"count"`
	Files   []fileJSON        `json:"files"`
	Proof   translog.MapProof `json:"proof"`
}

type fileJSON struct {
	Index   int64  `json:"index"`
	Entry   string `json:"entry"`
	Content []byte `json:"content"`
}

// compactDocument returns a subject document a server answered in JSON
// as a version 3 bundle keeps it: the compact encoding of a batch of
// that one document, at its size.
func compactDocument(body []byte) ([]byte, error) {
	var d subjectJSON
	if err := jsonv2.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("not a subject document: %w", err)
	}
	doc := translog.SubjectDoc{Subject: d.Subject, Size: d.Size, Count: d.Count, Files: make([]translog.SubjectFile, len(d.Files)), Proof: d.Proof}
	n := len(body) // more than the compact encoding takes
	for i, f := range d.Files {
		doc.Files[i] = translog.SubjectFile{Index: f.Index, Entry: []byte(f.Entry), Content: f.Content}
	}
	return translog.AppendSubject(translog.AppendSubjectsHeader(make([]byte, 0, n), d.Size, 1), &doc), nil
}

// jsonDocument returns a version 3 member, a batch of one subject
// document, as a server answers that document's read alone (JSON).
func jsonDocument(member []byte) ([]byte, error) {
	docs, _, err := translog.ParseSubjects(member)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%w: %d documents, not one", translog.ErrSubjects, len(docs))
	}
	d := &docs[0]
	out := subjectJSON{Subject: d.Subject, Size: d.Size, Count: d.Count, Files: make([]fileJSON, len(d.Files)), Proof: d.Proof}
	for i, f := range d.Files {
		out.Files[i] = fileJSON{Index: f.Index, Entry: string(f.Entry), Content: f.Content}
	}
	return jsonv2.Marshal(out)
}
