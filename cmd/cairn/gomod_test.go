package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"

	"cairn.dev/cairn/internal/gomod"
)

// gozip [-files-only|-sum-only] MODDIR VERSION PROXYDIR: build the Go
// module in MODDIR at VERSION (as cairn publish --go builds it) into
// PROXYDIR, a GOPROXY's files (.info, .mod, .zip, list, @latest), and
// append its go.sum lines to PROXYDIR/go.sum, which the checksum
// database goupstream starts vouches for. -files-only writes the files
// and no lines, -sum-only the lines and no files (a proxy that serves
// another zip than the database holds).
func cmdGoZip(ts *testscript.TestScript, neg bool, args []string) {
	files, sums := true, true
	if len(args) == 4 && (args[0] == "-files-only" || args[0] == "-sum-only") {
		files, sums = args[0] == "-files-only", args[0] == "-sum-only"
		args = args[1:]
	}
	if len(args) != 3 || neg {
		ts.Fatalf("usage: gozip [-files-only|-sum-only] MODDIR VERSION PROXYDIR")
	}
	m, err := gomod.Build(ts.MkAbs(args[0]), args[1])
	ts.Check(err)
	defer m.Close()
	g := m.Descriptor.Go
	root := ts.MkAbs(args[2])
	if files {
		ep, err := module.EscapePath(g.Module)
		ts.Check(err)
		ev, err := module.EscapeVersion(g.Version)
		ts.Check(err)
		at := filepath.Join(root, filepath.FromSlash(ep), "@v")
		ts.Check(os.MkdirAll(at, 0o755))
		info, _ := json.Marshal(gomod.Info{Version: g.Version, Time: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)})
		zip, err := os.ReadFile(m.Zip)
		ts.Check(err)
		ts.Check(os.WriteFile(filepath.Join(at, ev+".info"), info, 0o644))
		ts.Check(os.WriteFile(filepath.Join(at, ev+".mod"), m.Mod, 0o644))
		ts.Check(os.WriteFile(filepath.Join(at, ev+".zip"), zip, 0o644))
		ts.Check(os.WriteFile(filepath.Join(root, filepath.FromSlash(ep), "@latest"), info, 0o644))
		appendFile(ts, filepath.Join(at, "list"), g.Version+"\n")
	}
	if sums {
		appendFile(ts, filepath.Join(root, "go.sum"), fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", g.Module, g.Version, g.Sum, g.Module, g.Version, g.ModSum))
	}
}

func appendFile(ts *testscript.TestScript, path, s string) {
	ts.Check(os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	ts.Check(err)
	_, err = f.WriteString(s)
	ts.Check(err)
	ts.Check(f.Close())
}

// goupstream PROXYDIR: serve PROXYDIR as a GOPROXY and start a real
// checksum database (golang.org/x/mod/sumdb's server over its
// TestServer, its key made now, named sum.example.com) that holds the
// lines of PROXYDIR/go.sum; set $GOPROXY to the proxy's URL and $GOSUMDB
// to "KEY URL", as the go command reads them, until the script ends.
func cmdGoUpstream(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: goupstream PROXYDIR")
	}
	root := ts.MkAbs(args[0])
	proxy := httptest.NewServer(http.FileServer(http.Dir(root)))
	ts.Defer(proxy.Close)
	skey, vkey, err := note.GenerateKey(rand.Reader, "sum.example.com")
	ts.Check(err)
	db := sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		f, err := os.Open(filepath.Join(root, "go.sum"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var out strings.Builder
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, path+" "+vers+" ") || strings.HasPrefix(l, path+" "+vers+"/go.mod ") {
				out.WriteString(l + "\n")
			}
		}
		if out.Len() == 0 {
			return nil, fmt.Errorf("%s@%s: %w", path, vers, os.ErrNotExist)
		}
		return []byte(out.String()), sc.Err()
	})
	sums := httptest.NewServer(sumdb.NewServer(db))
	ts.Defer(sums.Close)
	ts.Setenv("GOPROXY", proxy.URL+",direct")
	ts.Setenv("GOSUMDB", vkey+" "+sums.URL)
	ts.Setenv("GOPROXY_URL", proxy.URL)
}
