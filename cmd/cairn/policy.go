package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
)

// newPolicyPublishCmd is cairn policy publish: a new version of a named
// policy in the index.
func newPolicyPublishCmd() *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:   "publish NAME FILE",
		Short: "Publish FILE as the next version of the index's policy NAME (signed, logged)",
		Long: `Publish FILE as the next version of policy NAME in the index: a record that holds
the policy's whole text, signed by your key, which needs a policy scope that
matches (policy:org-*), or by a threshold of root keys (--key once per key).
Each version names the one before it, so the policy's history is one chain and
'which policy was in force' has one answer: 'cairn policy show NAME --at TIME'.
The index refuses a text that does not compile as a policy.

A project judges with it by naming it in cairn.yaml (policy: index:NAME), and a
server with 'cairn serve --policy index:NAME': both read the version in force at
the index head they verified, and a lock records its sha256.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			// Compiled here first, so that its errors name the file and
			// line as given (the index's rule names the record's path).
			pol, err := policy.Parse(args[1], text)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				// Its issuers as a server of this index reads them (cairn
				// serve --policy index:NAME): a forbid rule naming a holder
				// no root granted would forbid nothing.
				if err := r.CheckPolicyIssuers(ctx, pol, func(msg string) {
					fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: %s\n", msg)
				}); err != nil {
					return nil, err
				}
				// Bound as a server of this index binds it: one that cannot
				// refuses to start with it, and refuses a push of it
				// (projects that name their repositories as it does may
				// read it still).
				if bound, err := policy.Parse(args[1], text); err == nil {
					if err := r.BindPolicy(ctx, bound, nil); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: a server of this index cannot enforce this policy (cairn serve --policy index:%s): %v\n", args[0], err)
					}
				}
				p, err := author.PublishPolicy(ctx, r, args[0], text, ss...)
				if err != nil {
					return nil, err
				}
				return &changed{added: &p.Added, headline: fmt.Sprintf("policy %s\nsha256 %s", p.Name, p.SHA256), json: p}, nil
			})
		},
	}
	f.register(c, "the key file (a policy:PATTERN scope), or each root key of a threshold")
	return c
}

// newPolicyShowCmd is cairn policy show: a policy's version in force,
// now or at a time.
func newPolicyShowCmd() *cobra.Command {
	var (
		repo   string
		at     string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "The version of a policy in force (now, or --at TIME): its text, digest and signer",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var when time.Time
			if at != "" {
				t, err := parseAt(at)
				if err != nil {
					return usageError{err}
				}
				when = t
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				c, err := r.Catalog(ctx, index.MainRef)
				if err != nil {
					return err
				}
				v, err := c.PolicyAt(ctx, args[0], when)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, v)
				}
				printPolicyVersion(w, v)
				return nil
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().StringVar(&at, "at", "", "the version in force at this time (RFC 3339, or YYYY-MM-DD)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// printPolicyVersion writes a policy's version as people read it: what
// it is, who signed it, from when, then its text.
func printPolicyVersion(w io.Writer, v *index.PolicyView) {
	fmt.Fprintf(w, "policy %s\n", v.Name)
	fmt.Fprintf(w, "  sha256     %s\n", v.SHA256)
	fmt.Fprintf(w, "  record     %s\n", v.Record)
	if v.Previous != "" {
		fmt.Fprintf(w, "  follows    %s\n", v.Previous)
	}
	fmt.Fprintf(w, "  signed by  %s\n", who(v.Holder, v.Issuer))
	fmt.Fprintf(w, "  in force   since %s (commit %.12s)\n\n", v.Time.UTC().Format(time.RFC3339), v.Commit)
	fmt.Fprint(w, v.Policy)
	if !strings.HasSuffix(v.Policy, "\n") {
		fmt.Fprintln(w)
	}
}

// newPolicyLogCmd is cairn policy log: every version of a policy.
func newPolicyLogCmd() *cobra.Command {
	var (
		repo   string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "log NAME",
		Short: "Every version of a policy: its digest, when, signed by whom",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				versions, err := r.PolicyHistory(ctx, args[0])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, versions)
				}
				for _, v := range versions {
					fmt.Fprintf(w, "%s  %s sha256:%s  by %s  record %.16s\n",
						v.Time.UTC().Format(time.RFC3339), v.Name, v.SHA256, who(v.Holder, v.Issuer), v.Record)
				}
				return nil
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
