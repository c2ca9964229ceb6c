package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/osv/osvtest"
)

// What cairn show --osv exports of vulnerable records is valid OSV by
// OSV's own schema — records made from OSV (a GHSA, a two-package Go
// advisory) and one made from an id and a severity alone — and names the
// version and record it came from; a superseded record is not exported.
func TestShowOSVIsValid(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	must := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, &out, &errb); code != exitOK {
			t.Fatalf("cairn %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func(name string) string { return filepath.Join(dir, name+".key") }
	repo := filepath.Join(dir, "repo")
	for _, k := range []string{"root", "alice", "audit"} {
		must("key", "new", key(k))
	}
	must("init", repo, "--root-key", key("root"))
	must("key", "grant", "--repo", repo, "--key", key("root"), key("alice")+".pub", "--holder", "alice", "--scope", "publish:acme/*")
	must("key", "grant", "--repo", repo, "--key", key("root"), key("audit")+".pub", "--holder", "acme-security", "--scope", "certify:vulnerable")
	pkg := filepath.Join(dir, "pkg")
	write(filepath.Join(pkg, "cairn-package.yaml"), "name: acme/fastjson\nversion: 1.2.3\nartifacts:\n  - kind: source\n    file: src.tar.gz\n")
	write(filepath.Join(pkg, "src.tar.gz"), "source")
	must("publish", "--repo", repo, "--key", key("alice"), pkg)
	certify := func(args ...string) string {
		out := must(append([]string{"certify", "--repo", repo, "--key", key("audit"), "acme/fastjson@1.2.3", "--property", "vulnerable"}, args...)...)
		for _, l := range strings.Split(out, "\n") {
			if id, ok := strings.CutPrefix(l, "record "); ok {
				return id
			}
		}
		t.Fatalf("certify printed no record: %s", out)
		return ""
	}
	testdata := filepath.Join("..", "..", "internal", "osv", "testdata")
	certify("--osv", filepath.Join(testdata, "GHSA-4v7x-pqxf-cx7m.json"))
	certify("--osv", filepath.Join(testdata, "GO-2026-4102.json"), "--osv-package", "github.com/acme/httpkit")
	old := certify("--id", "CVE-2026-1111", "--severity", "medium", "--note", "found by our audit")
	plain := certify("--id", "CVE-2026-1111", "--severity", "high", "--note", "found by our audit", "--supersedes", old)

	var entries []json.RawMessage
	if err := json.Unmarshal([]byte(must("show", "--repo", repo, "acme/fastjson@1.2.3", "--osv")), &entries); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		osvtest.Valid(t, "cairn show --osv's entry", e)
		var got struct {
			ID               string
			Severity         []struct{ Type, Score string }
			DatabaseSpecific struct {
				Cairn struct{ Package, Version, Record string }
			} `json:"database_specific"`
		}
		if err := json.Unmarshal(e, &got); err != nil {
			t.Fatal(err)
		}
		c := got.DatabaseSpecific.Cairn
		if c.Package != "acme/fastjson" || c.Version != "1.2.3" || len(c.Record) != 64 {
			t.Errorf("%s: database_specific.cairn %+v", got.ID, c)
		}
		if got.ID == "CVE-2026-1111" && c.Record != plain {
			t.Errorf("the superseded record is exported: %s", c.Record)
		}
		ids = append(ids, got.ID)
	}
	if strings.Join(ids, " ") != "GHSA-4v7x-pqxf-cx7m GO-2026-4102 CVE-2026-1111" {
		t.Fatalf("exported %v", ids)
	}
}
