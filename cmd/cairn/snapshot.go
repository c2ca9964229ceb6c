package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/plan"
)

func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Create immutable package sets"}
	var f changeFlags
	create := &cobra.Command{
		Use:   "create FILE",
		Short: "Create a snapshot from a file of name@version entries",
		Long: `Create a snapshot: an immutable package set, stored as a blob and in the index
beside your signed snapshot record. Your key needs the scope snapshot.

The file names the set (for display only: a snapshot is its sha256 and size),
an optional toolchain and build flags, and exact versions:

  name: lts-1.0
  toolchain: {name: go, version: 1.26.8}
  flags: {cgo: "0"}
  packages:
    - acme/fastjson@1.2.3
    - {name: acme/log, version: 2.0.1, flags: {debug: "off"}}

Each entry is pinned to its version's descriptor digest; the index refuses an
entry that is not published. Point a label at it with 'cairn label set'.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				s, err := oneKey(ss)
				if err != nil {
					return nil, err
				}
				c, err := r.Catalog(ctx, index.MainRef)
				if err != nil {
					return nil, err
				}
				ups, err := r.Followed(ctx)
				if err != nil {
					return nil, err
				}
				whose := func(name, version string) string {
					for _, u := range ups {
						if uc, err := r.Catalog(ctx, index.UpstreamRef(u.Name)); err == nil {
							if _, _, err := uc.Descriptor(name, version); err == nil {
								return u.Name
							}
						}
					}
					return ""
				}
				snap, err := plan.BuildSnapshot(c, filepath.Base(args[0]), data, whose)
				if err != nil {
					return nil, err
				}
				a, ref, err := author.CreateSnapshot(ctx, r, snap, s)
				if err != nil {
					return nil, err
				}
				return &changed{added: a, headline: fmt.Sprintf("snapshot %s: %d packages\nsha256 %s\nsize %d", snap.Name, len(snap.Packages), ref.SHA256, ref.Size),
					json: struct {
						Name     string `json:"name"`
						Packages int    `json:"packages"`
						blob.Ref
						*author.Added
					}{snap.Name, len(snap.Packages), ref, a}}, nil
			})
		},
	}
	f.register(create, "the curator's key file (scope snapshot)")
	cmd.AddCommand(create, newSnapshotShowCmd(), newSnapshotListCmd())
	return cmd
}

func newSnapshotShowCmd() *cobra.Command {
	var (
		repo   string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "show LABEL|SHA256",
		Short: "Show a snapshot: its packages, pinned descriptors, toolchain, creator and labels",
		Long: `Show a snapshot of the index, named by a label (the snapshot it points at now),
by its sha256 ("sha256:" optional), or by a unique prefix of 8 or more hex
digits: its name, digest and size, toolchain and flags, every package with the
descriptor digest it is pinned to, who created it, and the labels pointing at it.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				c, err := r.Catalog(ctx, index.MainRef)
				if err != nil {
					return err
				}
				v, err := c.ShowSnapshot(args[0])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, v)
				}
				s := v.Snapshot
				fmt.Fprintf(w, "snapshot %s\n", v.Name)
				fmt.Fprintf(w, "  sha256      %s (%d bytes)\n", v.Ref.SHA256, v.Ref.Size)
				if len(v.Labels) > 0 {
					fmt.Fprintf(w, "  labels      %s\n", strings.Join(v.Labels, ", "))
				}
				fmt.Fprintf(w, "  created by  %s  record %.16s  %s\n", who(v.Holder, v.Issuer), v.Record, v.Issued.Format(time.RFC3339))
				if s.Toolchain != nil {
					fmt.Fprintf(w, "  toolchain   %s %s\n", s.Toolchain.Name, s.Toolchain.Version)
				}
				for _, k := range sortedKeys(s.Flags) {
					fmt.Fprintf(w, "  flag        %s=%s\n", k, s.Flags[k])
				}
				fmt.Fprintf(w, "  packages (%d):\n", len(s.Packages))
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				for _, e := range s.Packages {
					var flags []string
					for _, k := range sortedKeys(e.Flags) {
						flags = append(flags, k+"="+e.Flags[k])
					}
					fmt.Fprintf(tw, "    %s@%s\tsha256:%s\t%s\n", e.Name, e.Version, e.Descriptor.SHA256, strings.Join(flags, " "))
				}
				return tw.Flush()
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newSnapshotListCmd() *cobra.Command {
	var (
		repo   string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List the index's snapshots and its labels, with where each label points",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				c, err := r.Catalog(ctx, index.MainRef)
				if err != nil {
					return err
				}
				snaps, err := c.Snapshots()
				if err != nil {
					return err
				}
				labels, err := c.Labels()
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, struct {
						Snapshots []index.SnapshotView `json:"snapshots"`
						Labels    []index.LabelState   `json:"labels"`
					}{append([]index.SnapshotView{}, snaps...), append([]index.LabelState{}, labels...)})
				}
				if len(snaps) == 0 {
					fmt.Fprintln(w, "no snapshots (cairn snapshot create makes one)")
					return nil
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "snapshots:")
				for _, s := range snaps {
					fmt.Fprintf(tw, "  sha256:%s\t%s\t%d packages\tby %s\t%s\n", s.Ref.SHA256, s.Name, s.Packages, who(s.Holder, s.Issuer), strings.Join(s.Labels, ", "))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(labels) == 0 {
					return nil
				}
				tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "labels:")
				for _, l := range labels {
					fmt.Fprintf(tw, "  %s\t→ sha256:%s\t%s\tmoved by %s\trecord %.16s\n", l.Label, l.Snapshot.SHA256, l.Name, who(l.Holder, l.Issuer), l.Record)
				}
				return tw.Flush()
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// who names a record's issuer: its holder, with the key in brackets.
func who(holder, issuer string) string {
	if holder == "" || holder == issuer { // a threshold of root keys: "root"
		return issuer
	}
	return holder + " [" + issuer + "]"
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newLabelCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "label", Short: "Move and inspect labels: named pointers to snapshots"}
	var f changeFlags
	set := &cobra.Command{
		Use:   "set LABEL SHA256",
		Short: "Point a label at a snapshot (a signed, logged move)",
		Long: `Move LABEL to the snapshot whose sha256 (or a unique prefix of 8+ hex digits) is
given. The move is a record signed by your key, which needs a label scope that
matches (label:lts-*), and names the move before it, so the label's history is
one chain: 'cairn label history' shows what the label meant, when, moved by whom.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				s, err := oneKey(ss)
				if err != nil {
					return nil, err
				}
				a, ref, err := author.SetLabel(ctx, r, args[0], args[1], s)
				if err != nil {
					return nil, err
				}
				return &changed{added: a, headline: fmt.Sprintf("label %s → sha256:%s (%d bytes)", args[0], ref.SHA256, ref.Size)}, nil
			})
		},
	}
	f.register(set, "the curator's key file (a label:PATTERN scope)")

	var repo string
	var asJSON bool
	history := &cobra.Command{
		Use:   "history LABEL",
		Short: "Every move of a label: the snapshot, when, by whom",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				moves, err := r.LabelHistory(ctx, args[0])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, moves)
				}
				for _, m := range moves {
					who := m.Issuer
					if m.Holder != "" {
						who = m.Holder + " [" + m.Issuer + "]"
					}
					fmt.Fprintf(w, "%s  %s → sha256:%s (%d bytes) %s  by %s  record %.16s\n",
						m.Time.Format(time.RFC3339), m.Label, m.Snapshot.SHA256, m.Snapshot.Size, m.Name, who, m.Record)
				}
				return nil
			})
		},
	}
	repoFlag(history, &repo)
	history.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(set, history)
	return cmd
}
