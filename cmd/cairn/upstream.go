package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/transport"
)

func newUpstreamCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "upstream",
		Short: "Upstreams: public indexes an organisation's repository follows beside its own packages",
	}
	var (
		f     changeFlags
		af    actFlags
		intro string
	)
	add := &cobra.Command{
		Use:   "add NAME URL --introduction ID --key ROOT.key",
		Short: "Follow an upstream index, declared by a record the root signs",
		Long: `Declare an upstream: another cairn server's index, pinned by the introduction its
owner published. The declaration is a record signed by a threshold of this
repository's root keys (pass --key once per root key), so every replica of the
repository follows the same upstreams.

'cairn sync' (and 'cairn serve', every --sync interval) then fetches the
upstream's index, verifies it against the upstream's own root, and serves its
packages beside this repository's own. A name internal to this repository (one
it publishes, or inside a live publish grant of its keys, such as publish:acme/*)
is never served from an upstream (internal names win; sync reports the clash).
A declaration is made once per name; 'cairn upstream remove' ends it.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if intro == "" {
				return usageError{errors.New("--introduction is required: the id the upstream's owner published")}
			}
			if err := record.CheckUpstreamName(args[0]); err != nil {
				return usageError{err}
			}
			// A declaration is made once per name: one mistyped is
			// caught now, while the server can be asked, not at the
			// first sync.
			if served, err := remote.ServedIntroduction(cmd.Context(), transport.Client(), args[1]); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: the introduction could not be checked against %s (%v): a declaration is made once per name, so check it before a sync does\n", args[1], err)
			} else if served != intro {
				return &introMismatchError{url: args[1], served: served, given: intro}
			}
			if done, err := af.prepare(cmd, &f, func(ctx context.Context, r *index.Repo) (*author.Act, error) {
				return author.PrepareDeclareUpstream(ctx, r, args[0], args[1], intro, af.window)
			}); done {
				return err
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, roots []keys.Signer) (*changed, error) {
				a, err := author.DeclareUpstream(ctx, r, args[0], args[1], intro, roots...)
				return &changed{added: a, headline: fmt.Sprintf("following upstream %s at %s (run cairn sync)", args[0], args[1])}, err
			})
		},
	}
	f.register(add, "a root key file (repeat for a threshold)")
	af.register(add)
	add.Flags().StringVar(&intro, "introduction", "", "the upstream's introduction (its first root record's id)")

	var rf changeFlags
	remove := &cobra.Command{
		Use:   "remove NAME --key ROOT.key",
		Short: "Stop following an upstream (a revocation the root signs)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.run(cmd, func(ctx context.Context, r *index.Repo, roots []keys.Signer) (*changed, error) {
				ups, err := r.Followed(ctx)
				if err != nil {
					return nil, err
				}
				for _, u := range ups {
					if u.Name == args[0] {
						a, err := author.Revoke(ctx, r, u.RecordID, "stop following upstream "+u.Name, roots...)
						return &changed{added: a, headline: "no longer following upstream " + u.Name}, err
					}
				}
				return nil, fmt.Errorf("%s follows no upstream %s (cairn upstream list): %w", r.Dir, args[0], fs.ErrNotExist)
			})
		},
	}
	rf.register(remove, "a root key file (repeat for a threshold)")

	var (
		repo string
		js   bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the upstreams main declares, with the head verified of each",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				head, err := r.Head(ctx, index.MainRef)
				if err != nil {
					return err
				}
				ups, err := r.Upstreams(ctx, head)
				if err != nil {
					return err
				}
				type row struct {
					*index.Upstream
					Verified string `json:"verified,omitempty"`
					Records  int    `json:"records"`
					// The witnesses this replica trusts for it (cairn upstream set).
					Witnesses []string `json:"witnesses,omitempty"`
					Quorum    int      `json:"quorum"`
				}
				var rows []row
				for _, u := range ups {
					h, n, err := r.UpstreamLine(u).VerifiedHead()
					if err != nil {
						return err
					}
					w, err := remote.GetUpstreamWitnesses(r, u.Name)
					if err != nil {
						return err
					}
					rows = append(rows, row{u, h, n, w.Witnesses, w.Quorum})
				}
				if js {
					return printJSON(cmd.OutOrStdout(), rows)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tURL\tINTRODUCTION\tVERIFIED\tFILES")
				for _, x := range rows {
					v := x.Verified
					switch {
					case x.RevokedBy != "":
						v = "removed"
					case v == "":
						v = "never synced"
					default:
						v = v[:12]
					}
					fmt.Fprintf(tw, "%s\t%s\t%.16s\t%s\t%d\n", x.Name, x.URL, x.Introduction, v, x.Records)
				}
				return tw.Flush()
			})
		},
	}
	repoFlag(list, &repo)
	list.Flags().BoolVar(&js, "json", false, "print JSON")
	c.AddCommand(add, remove, list, newUpstreamSetCmd())
	return c
}

func newUpstreamSetCmd() *cobra.Command {
	var (
		repo      string
		witnesses []string
		quorum    int
	)
	c := &cobra.Command{
		Use:   "set NAME [--witness VKEY]... [--quorum K]",
		Short: "Name the witnesses this replica trusts to cosign an upstream's checkpoints",
		Long: `Name the witnesses you trust to cosign a followed upstream's checkpoints with
--witness (each one's verifier key, as 'cairn witness vkey' or its operator prints
it) and how many of them must have cosigned each checkpoint with --quorum (default:
all of them), as 'cairn remote add' does for a remote: 'cairn sync' (and 'cairn
serve', every --sync interval) then refuses an upstream checkpoint below quorum,
so that the upstream cannot show this organisation a history it does not show
everyone. The setting is this replica's own (kept in its state directory, not in
the index); set it on every replica that syncs. Without --witness, no witness is
trusted again, and a sync warns that a split view cannot be detected.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("quorum") {
				quorum = len(witnesses)
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				w := remote.UpstreamWitnesses{Witnesses: witnesses, Quorum: quorum}
				if err := remote.SetUpstreamWitnesses(ctx, r, args[0], w); err != nil {
					return err
				}
				if len(witnesses) == 0 || quorum == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "upstream %s: no witness quorum: a split view cannot be detected\n", args[0])
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "upstream %s: a checkpoint needs %d of %d witness(es)\n", args[0], quorum, len(witnesses))
				return nil
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().StringArrayVar(&witnesses, "witness", nil, "the verifier key of a witness trusted to cosign the upstream's checkpoints (repeatable)")
	c.Flags().IntVar(&quorum, "quorum", 0, "how many of the --witness keys must have cosigned a checkpoint (default: all)")
	return c
}

func newSyncCmd() *cobra.Command {
	var (
		repo string
		js   bool
	)
	c := &cobra.Command{
		Use:   "sync",
		Short: "Follow the upstreams: fetch each, verify it against its own root, report name clashes",
		Long: `Fetch every upstream main declares into its own ref, verify every new commit
against the upstream's own root and its signed checkpoint (like 'cairn pull'),
and only then move the ref the repository serves from. The fetch tells the
upstream nothing of this repository's own commits.

An upstream that cannot be synced (unreachable, frozen, rewritten) is reported
and keeps the head verified before; the others are synced regardless, and
everything is still served. An upstream's package names that are internal to this
repository (published here or inside its keys' publish grants) are reported: only
this repository's packages are served under them.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				bar := newProgress(cmd.ErrOrStderr(), js, false)
				res, err := remote.Sync(ctx, r, remote.Options{Progress: remoteProgress(bar)})
				bar.done()
				if js {
					if perr := printJSON(cmd.OutOrStdout(), res); perr != nil {
						return perr
					}
					return err
				}
				w := cmd.OutOrStdout()
				if len(res) == 0 && err == nil {
					fmt.Fprintln(w, "no upstreams (cairn upstream add NAME URL --introduction ID)")
				}
				for _, s := range res {
					switch {
					case s.Error != "":
						fmt.Fprintf(w, "upstream %s: NOT synced, still serving what was verified before: %s\n", s.Upstream, s.Error)
					case s.Pulled.From == s.Pulled.Head:
						fmt.Fprintf(w, "upstream %s: up to date at %s\n", s.Upstream, s.Pulled.Head)
					default:
						fmt.Fprintf(w, "upstream %s: verified %d commits, %d files: head %s\n", s.Upstream, s.Pulled.Commits, s.Pulled.Records, s.Pulled.Head)
					}
					if s.Pulled != nil && s.Pulled.Checkpoint != nil && !s.Pulled.Unwitnessed {
						fmt.Fprintf(w, "upstream %s: checkpoint cosigned by %d trusted witness(es)\n", s.Upstream, s.Pulled.Cosigned)
					}
					if s.Pulled != nil && s.Pulled.ServerHead != "" {
						fmt.Fprintf(w, "upstream %s: its head %s is %d commit(s) past its checkpoint's %s: they wait until a checkpoint covers them\n", s.Upstream, s.Pulled.ServerHead, s.Pulled.Pending, s.Pulled.Head)
					}
					if len(s.Collisions) > 0 {
						fmt.Fprintf(w, "upstream %s: WARNING: publishes %d name(s) internal to this repository (published here or inside its keys' publish grants); only the internal packages are served: %s\n",
							s.Upstream, len(s.Collisions), strings.Join(s.Collisions, ", "))
					}
				}
				for _, s := range res {
					if s.Pulled != nil && s.Pulled.Checkpoint != nil && s.Pulled.Unwitnessed {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: upstream %s names no witnesses: a split view (the upstream showing others another history) cannot be detected\ncairn: hint: name the witnesses you trust for it: cairn upstream set %s --witness VKEY [--quorum K]\n", s.Upstream, s.Upstream)
					}
				}
				return err
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&js, "json", false, "print JSON")
	return c
}

// introMismatchError: an upstream declared with an introduction its
// server's log is not of.
type introMismatchError struct{ url, served, given string }

func (e *introMismatchError) Error() string {
	return fmt.Sprintf("%s serves the index whose introduction is %s, not %s: nothing was declared", e.url, e.served, e.given)
}
