package main

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/sbom"
	"cairn.dev/cairn/internal/vex"
)

func newVEXCmd() *cobra.Command {
	var (
		f           projectFlags
		out, author string
	)
	c := &cobra.Command{
		Use:   "vex [--dir DIR | NAME@VERSION…] [-o FILE] [--json]",
		Short: "Write an OpenVEX document from the signed vulnerable and fixed records",
		Long: `Write what the signed, append-only records say about vulnerabilities as an
OpenVEX ` + vex.SpecVersion + ` document (https://openvex.dev), for every package of cairn.lock
(checked as cairn install checks it) or for the named versions, read from
cairn.yaml's repositories, or with --url (and --introduction) from a server read
as a light client, every read proved against its signed checkpoint.

Each statement is one vulnerability of one version, the version named by the
purl the SBOM gives it (pkg:generic/NAMESPACE/NAME@VERSION, with its
repository's URL). Its status is what the active records say:

  vulnerable, not answered                  affected (action_statement: certify --action)
  vulnerable --status under_investigation   under_investigation
  answered by a fixed record                fixed
  fixed --status not_affected               not_affected, with its --justification or --impact

A fixed record answers the vulnerable records of its own repository only; one
that answers none states its status on its own. Revoked and superseded records
say nothing. Each statement is dated by its deciding record's issue time, and
its status_notes name every record it was made from by full id (cairn show,
GET /api/v1/records/ID). The same records give the same bytes: the document is
dated by its newest statement, and its @id is urn:cairn:vex:sha256: and the
SHA-256 of its statements.

When the records name no vulnerability, no document is written (OpenVEX needs
at least one statement) and cairn says so. Without -o the document is printed;
with -o it is written atomically, and --json prints what was written.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if f.viaServer() {
				if len(args) == 0 {
					return usageError{errors.New("with --url, name the versions, NAME@VERSION …: a server has no cairn.lock")}
				}
				for _, a := range args {
					if name, version := descriptor.SplitID(a); version != "" {
						f.wants = append(f.wants, plan.Want{Name: name, Range: "=" + version})
					}
				}
			}
			pr, err := f.open(ctx, "")
			if err != nil {
				return err
			}
			defer pr.srcs.Close()
			var products []vex.Product
			if len(args) == 0 {
				l, err := pr.checked(ctx)
				if l == nil && errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("a VEX document without names describes a lock: %w", err)
				}
				if err != nil {
					return err
				}
				locs := map[string]string{}
				for _, r := range l.Repositories {
					locs[r.Name] = r.Location
				}
				for _, pkg := range l.Packages {
					p, err := vexProduct(pr.srcs.Get(pkg.Repository), pkg.Repository, pkg.Name, pkg.Version, locs[pkg.Repository])
					if err != nil {
						return err
					}
					products = append(products, p)
				}
			}
			for _, a := range args {
				name, version := descriptor.SplitID(a)
				if version == "" {
					return usageError{fmt.Errorf("%q: name the version, NAME@VERSION", a)}
				}
				s, _, err := pr.srcs.Publisher(name)
				if err != nil {
					return err
				}
				p, err := vexProduct(s, s.Name, name, version, s.Where())
				if err != nil {
					return err
				}
				products = append(products, p)
			}
			if author == "" {
				var repos []string
				for _, p := range products {
					for _, r := range p.Records {
						if !slices.Contains(repos, r.Repository) {
							repos = append(repos, r.Repository)
						}
					}
				}
				author = "cairn: the signed records of " + strings.Join(repos, ", ")
			}
			doc, err := vex.Make(products, vex.Options{Author: author, Tooling: "cairn " + currentVersion().Version})
			if errors.Is(err, vex.ErrNoStatements) {
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: no OpenVEX document written: %d package(s), %v\n", len(products), err)
				return nil
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if written, err := writeDocument(w, out, doc.JSON); !written || err != nil {
				return err
			}
			if f.json {
				return printJSON(w, struct {
					File string `json:"file"`
					*vex.Document
					Packages int `json:"packages"`
				}{out, doc, len(products)})
			}
			fmt.Fprintf(w, "wrote %s: OpenVEX %s, %d statement(s) about %d package(s), id %s\n", out, vex.SpecVersion, doc.Statements, len(products), doc.ID)
			return nil
		},
	}
	f.register(c)
	f.registerServer(c)
	c.Flags().StringVarP(&out, "output", "o", "", "the document's file, written atomically (default: print it)")
	c.Flags().StringVar(&author, "author", "", "the document's author (default: cairn and the repositories whose records it holds)")
	return c
}

// vexProduct is a version of source s (named repo in the project) and
// every record about it, for a VEX document: its own repository's
// records, and, for an upstream's version, those the repository that
// follows the upstream keeps about it; loc names the repository in its
// purl.
func vexProduct(s *plan.Source, repo, name, version, loc string) (vex.Product, error) {
	if s == nil {
		return vex.Product{}, fmt.Errorf("%s@%s: repository %s is not in %s", name, version, repo, plan.ProjectFile)
	}
	d, _, views, err := s.Catalog.Version(name, version)
	if err != nil {
		return vex.Product{}, err
	}
	recs := vex.Records(views, s.Name)
	if s.Via != nil {
		own, err := s.Via.Catalog.UpstreamRecords(s.Upstream, name, version)
		if err != nil {
			return vex.Product{}, err
		}
		recs = append(recs, vex.Records(own, s.Via.Name)...)
	}
	return vex.Product{Name: name, Version: version, PURL: sbom.PURL(name, version, loc), Descriptor: d, Records: recs}, nil
}
