package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/web"
)

// BenchmarkPages times each page, one request at a time through real
// HTTP, on an index of CAIRN_BENCH_RECORDS signed records (default
// 100000, bench/gen's), whose version under test carries 50 records and
// is judged by a policy of the index. The goal (issue 17): no page over
// 100 ms.
func BenchmarkPages(b *testing.B) {
	n := 100_000
	if s := os.Getenv("CAIRN_BENCH_RECORDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	ix, err := gen.Build(ctx, filepath.Join(b.TempDir(), "repo"), n, false)
	if err != nil {
		b.Fatal(err)
	}
	r := ix.Repo
	b.Cleanup(func() { r.Close() })
	ck := indextest.NewSigner()
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, ix.Root); err != nil {
		b.Fatal(err)
	}
	all, err := r.Packages(ctx, "refs/heads/main", "")
	if err != nil || len(all) == 0 {
		b.Fatalf("listing: %v", err)
	}
	p := all[len(all)/2]
	for i := 0; i < 50-gen.RecordsPerVersion; i++ {
		kind := record.Audited
		if i%2 == 1 {
			kind = record.Tested
		}
		if _, err := author.Certify(ctx, r, author.Certification{Name: p.Name, Version: p.Latest, Kind: kind, Note: fmt.Sprintf("check %d", i)}, ix.Auditor); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := author.PublishPolicy(ctx, r, "org", []byte("require:\n  - {name: audited, property: audited, by: auditor}\nforbid:\n  - {name: no-vulns, property: vulnerable, severity: high}\n"), ix.Root); err != nil {
		b.Fatal(err)
	}
	exe, _ := filepath.Abs(os.Args[0])
	srv, err := server.New(r, server.Options{Exe: exe, CheckpointKey: ck, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(func() { ts.Close(); srv.Close() })
	fetch := func(b *testing.B, path string) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	pages := []struct{ name, path string }{
		{"home", "/"},
		{"home_page_100", "/?after=" + all[min(100*50, len(all)-1)].Name},
		{"search", "/?q=" + p.Name[len(p.Name)-4:]},
		{"package", "/packages/" + p.Name},
		{"version_50_records", "/packages/" + p.Name + "@" + p.Latest + "?policy=org"},
		{"key", web.KeyURL(keys.ID(ix.Auditor.Public()))},
		{"log", "/log"},
	}
	for _, pg := range pages {
		fetch(b, pg.path) // warm: the listing and catalog of the head, the checkpoint
	}
	for _, pg := range pages {
		// Each request at an address of its own (a parameter no page
		// reads), so that every page is rendered: the pages keep what
		// they rendered for a head, and a repeated address is a copy.
		sep := "?"
		if strings.Contains(pg.path, "?") {
			sep = "&"
		}
		b.Run(pg.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				fetch(b, pg.path+sep+"bench="+strconv.Itoa(i))
			}
		})
		b.Run(pg.name+"_kept", func(b *testing.B) {
			for b.Loop() {
				fetch(b, pg.path)
			}
		})
	}
	if testing.Verbose() {
		out, _ := json.Marshal(pages)
		b.Logf("pages: %s", out)
	}
}
