package main

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"

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
