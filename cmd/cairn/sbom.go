package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/sbom"
)

func newSBOMCmd() *cobra.Command {
	var f projectFlags
	var out string
	c := &cobra.Command{
		Use:   "sbom [--dir DIR] [-o FILE] [--json]",
		Short: "Write the locked plan's SBOM: a CycloneDX 1.6 document",
		Long: `Write cairn.lock's software bill of materials, a CycloneDX 1.6 JSON document that
SBOM tools read: every locked package (its purl pkg:generic/NAMESPACE/NAME@VERSION
with its repository's URL, its licence, its publisher, its descriptor's sha256),
every locked artifact with its SHA-256 and SHA-512 (which BSI TR-03183-2 asks
for) and the platforms it serves, and the dependency graph as the lock resolved
it. The lock is checked as cairn install checks it; each artifact is fetched into
the shared blob cache, verified by its sha256 and size, and hashed.

The same lock gives the same document: its serialNumber is derived from the
lock's digest, and it has no timestamp unless SOURCE_DATE_EPOCH (seconds since
1970, the reproducible-builds convention) gives one. Without -o the document is
printed; with -o it is written atomically, and --json prints what was written.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var at time.Time
			if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
				sec, err := strconv.ParseInt(v, 10, 64)
				if err != nil || sec < 0 {
					return usageError{fmt.Errorf("SOURCE_DATE_EPOCH=%q: want the seconds since 1970-01-01T00:00:00Z", v)}
				}
				at = time.Unix(sec, 0)
			}
			pr, err := f.open(ctx, "")
			if err != nil {
				return err
			}
			defer pr.srcs.Close()
			l, err := pr.checked(ctx)
			if l == nil && errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("an SBOM describes a lock: %w", err)
			}
			if err != nil {
				return err
			}
			cache, err := blob.NewFS(filepath.Join(pr.cache, "blobs"))
			if err != nil {
				return err
			}
			// Each artifact through the shared cache, fetched from its
			// repository's stores if it is not there, verified as install
			// verifies it.
			open := func(ctx context.Context, pkg *plan.Locked, ref blob.Ref) (io.ReadCloser, error) {
				s := pr.srcs.Get(pkg.Repository)
				if s == nil {
					return nil, fmt.Errorf("repository %s is not in %s", pkg.Repository, plan.ProjectFile)
				}
				return (&blob.Chain{Local: cache, Mirrors: s.Blobs}).Open(ctx, ref)
			}
			doc, err := sbom.Make(ctx, l, pr.srcs, sbom.Options{Open: open, Time: at, Tool: "cairn " + currentVersion().Version})
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
					*sbom.Document
					Lock string `json:"lock"`
				}{out, doc, l.Digest})
			}
			fmt.Fprintf(w, "wrote %s: CycloneDX %s, %d packages, %d artifacts (SHA-256, SHA-512), serial %s\n", out, sbom.SpecVersion, doc.Packages, doc.Artifacts, doc.Serial)
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVarP(&out, "output", "o", "", "the document's file, written atomically (default: print it)")
	return c
}

// writeDocument prints a document (an SBOM, a VEX document), or with
// out set writes it there atomically; written says it went to out.
func writeDocument(w io.Writer, out string, data []byte) (written bool, err error) {
	if out == "" {
		_, err := rawOut(w).Write(data) // the document's own bytes: JSON escapes what steers a terminal
		return false, err
	}
	return true, safefile.Write(out, data, safefile.Options{Perm: 0o644})
}
