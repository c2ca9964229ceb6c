package main

import (
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// goenv PROXY: set the go command's environment for what follows: PROXY
// as its GOPROXY, a module cache of the script's own (so every module
// comes through PROXY), the user's build cache (content-addressed: it
// holds no module), no checksum database (internal modules are in none),
// GOFLAGS=-mod=mod, the local toolchain.
func cmdGoEnv(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: goenv PROXY")
	}
	cache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		ts.Fatalf("go env GOCACHE: %v", err)
	}
	for _, kv := range [][2]string{
		{"GOPROXY", args[0]}, {"GOSUMDB", "off"}, {"GONOSUMDB", ""}, {"GOPRIVATE", ""}, {"GONOPROXY", ""},
		{"GOPATH", ts.MkAbs("gopath")}, {"GOMODCACHE", filepath.Join(ts.MkAbs("gopath"), "mod")},
		{"GOCACHE", strings.TrimSpace(string(cache))}, {"GOFLAGS", "-mod=mod -modcacherw"},
		{"GOTOOLCHAIN", "local"}, {"CGO_ENABLED", "0"},
	} {
		ts.Setenv(kv[0], kv[1])
	}
}
