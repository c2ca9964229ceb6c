package main

import (
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"
)

// githttp ROOT VAR: serve the git repositories under ROOT with git's own
// http-backend (a real CGI process, no cairn code: a plain git host),
// for the rest of the script, and set $VAR to its URL.
func cmdGitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: githttp ROOT VAR")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		ts.Fatalf("%v", err)
	}
	srv := httptest.NewServer(&cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + ts.MkAbs(args[0]), "GIT_HTTP_EXPORT_ALL=1"}})
	ts.Defer(srv.Close)
	ts.Setenv(args[1], srv.URL)
}

// staticserve DIR VAR: serve DIR's files with a plain file server for
// the rest of the script, and set $VAR to its URL.
func cmdStaticServe(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: staticserve DIR VAR")
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(ts.MkAbs(args[0]))))
	ts.Defer(srv.Close)
	ts.Setenv(args[1], srv.URL)
}

// blobmirror REPO DIR: copy the blobs of the repository at REPO to DIR
// as a static blob mirror serves them (DIR/blobs/sha256/HEX), as an
// operator copies them to an object store behind a CDN.
func cmdBlobMirror(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: blobmirror REPO DIR")
	}
	dst := filepath.Join(ts.MkAbs(args[1]), "blobs", "sha256")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		ts.Fatalf("%v", err)
	}
	n := 0
	err := filepath.WalkDir(ts.MkAbs(args[0]), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(filepath.Dir(filepath.Dir(p))) != "sha256" || len(d.Name()) != 64 {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		return os.WriteFile(filepath.Join(dst, d.Name()), data, 0o644)
	})
	if err != nil || n == 0 {
		ts.Fatalf("copying the blobs of %s: %d copied, %v", args[0], n, err)
	}
}
