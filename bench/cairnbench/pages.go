package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/record"
)

// pageVersion is the version page page_version loads: a package of the
// large index whose latest version carries 50 records, judged by a
// policy of the index. preparePageVersion makes it before the server
// starts; benchPageVersion loads it.
type pageVersion struct{ path string }

// preparePageVersion certifies one version of ix until it carries 50
// records (half audited, half tested, by the index's auditor) and
// publishes the policy "org" that judges it.
func preparePageVersion(ctx context.Context, ix *gen.Index) (*pageVersion, error) {
	r := ix.Repo
	all, err := r.Packages(ctx, "refs/heads/main", "")
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("page_version: the index lists no package")
	}
	p := all[len(all)/2]
	for i := 0; i < 50-gen.RecordsPerVersion; i++ {
		kind := record.Audited
		if i%2 == 1 {
			kind = record.Tested
		}
		if _, err := author.Certify(ctx, r, author.Certification{Name: p.Name, Version: p.Latest, Kind: kind, Note: fmt.Sprintf("check %d", i)}, ix.Auditor); err != nil {
			return nil, err
		}
	}
	pol := "require:\n  - {name: audited, property: audited, by: auditor}\nforbid:\n  - {name: no-vulns, property: vulnerable, severity: high}\n"
	if _, err := author.PublishPolicy(ctx, r, "org", []byte(pol), ix.Root); err != nil {
		return nil, err
	}
	return &pageVersion{path: "/packages/" + p.Name + "@" + p.Latest}, nil
}

// benchPageVersion: the version page (50 records, every rule of the
// policy judged) from cairn serve under wrk, against nginx serving the
// same page, as cairn rendered it, from a file. The page is written into
// docroot, nginx's root, before the load starts.
func benchPageVersion(cairnURL, docroot string, pv *pageVersion, compare func(name, unit, goal string, conns int, path, script string, per func(wrkResult) float64) error) error {
	path := pv.path + "?policy=org"
	body, err := httpGet(cairnURL + path)
	if err != nil {
		return err
	}
	if !strings.Contains(string(body), "<html") || strings.Count(string(body), "<tr") < 50 {
		return fmt.Errorf("page_version: GET %s is not a version page with 50 records (%d bytes)", path, len(body))
	}
	f := filepath.Join(docroot, filepath.FromSlash(pv.path))
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(f, body, 0o644); err != nil {
		return err
	}
	return compare("page_version", "req/s", fmt.Sprintf("(a version page: 50 records and a policy's verdict, %d KiB; the floor is the same page as a file; goal: no page over 100 ms)", len(body)>>10),
		8, path, "", func(w wrkResult) float64 { return w.reqs })
}
