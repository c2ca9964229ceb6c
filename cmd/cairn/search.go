package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
)

func newSearchCmd() *cobra.Command {
	var (
		repo   string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "search [TERM]",
		Short: "List the packages whose names match TERM, with their latest versions",
		Long: `List the packages of the repository, and of the upstreams it follows (as far
as it verified them), whose names match TERM, by name, with the latest version
of each. TERM matches a part of the name, ignoring case; with * ? or [ it is a
glob over the whole name ('acme/*', where * stops at '/'). With no TERM, every
package is listed. An upstream's package whose name is internal to the
repository is never listed: internal names win.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("accepts at most 1 arg(s), received %d", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			term := ""
			if len(args) == 1 {
				term = args[0]
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				head, err := r.Head(ctx, index.MainRef)
				if err != nil {
					return err
				}
				pkgs, err := r.Packages(ctx, head, term)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, append([]index.PackageEntry{}, pkgs...))
				}
				if len(pkgs) == 0 {
					if term == "" {
						fmt.Fprintln(w, "no packages (cairn publish publishes one)")
					} else {
						fmt.Fprintf(w, "no package matches %q\n", term)
					}
					return nil
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				for _, p := range pkgs {
					fmt.Fprintf(tw, "%s\t%s\t%d version(s)", p.Name, p.Latest, p.Versions)
					if p.Upstream != "" {
						fmt.Fprintf(tw, "\tupstream %s", p.Upstream)
					}
					fmt.Fprintln(tw)
				}
				return tw.Flush()
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
