package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/server/servertest"
)

// Attack: a server that leaves a file out of each package's document. A
// lock refuses it as the light client does, with its *light.ProofError
// (tampering, exit 3 and a hint to distrust the server), not as a plan
// the ranges cannot satisfy (exit 1 and a hint to change them).
func TestLockRefusesTamperedDocumentAsTampering(t *testing.T) {
	w := newWorld(t)
	target, err := url.Parse(servertest.Serve(w.World))
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(target)
	director := p.Director
	p.Director = func(r *http.Request) {
		director(r)
		r.Header.Set("Accept", "application/json") // the JSON documents, to edit
	}
	drop := func(d map[string]any) {
		if s, _ := d["subject"].(string); strings.HasPrefix(s, "package ") {
			if files, _ := d["files"].([]any); len(files) > 1 {
				d["files"] = files[:len(files)-1]
				d["count"] = len(files) - 1
			}
		}
	}
	p.ModifyResponse = func(r *http.Response) error {
		if !strings.HasPrefix(r.Request.URL.Path, "/api/v1/log/subject") {
			return nil
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		var doc map[string]any
		if json.Unmarshal(body, &doc) == nil {
			if subjects, ok := doc["subjects"].([]any); ok {
				for _, s := range subjects {
					if d, ok := s.(map[string]any); ok {
						drop(d)
					}
				}
			} else {
				drop(doc)
			}
			body, _ = json.Marshal(doc)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Del("Content-Length")
		return nil
	}
	proxy := httptest.NewServer(p)
	t.Cleanup(proxy.Close)
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\npackages:\n  acme/app: ^1.0\nplatforms: [linux-amd64]\n", proxy.URL, w.Intro))
	_, _, _, err = w.lock(Options{Cache: t.TempDir()})
	var pe *light.ProofError
	if !errors.As(err, &pe) {
		t.Fatalf("a lock against a server leaving files out: %v, want a *light.ProofError in its chain", err)
	}
}
