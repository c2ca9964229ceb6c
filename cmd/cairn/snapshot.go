package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

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
				snap, err := plan.BuildSnapshot(c, filepath.Base(args[0]), data)
				if err != nil {
					return nil, err
				}
				a, ref, err := r.CreateSnapshot(ctx, snap, s)
				if err != nil {
					return nil, err
				}
				return &changed{added: a, headline: fmt.Sprintf("snapshot %s: %d packages\nsha256 %s\nsize %d", snap.Name, len(snap.Packages), ref.SHA256, ref.Size),
					json: struct {
						Name     string `json:"name"`
						Packages int    `json:"packages"`
						blob.Ref
						*index.Added
					}{snap.Name, len(snap.Packages), ref, a}}, nil
			})
		},
	}
	f.register(create, "the curator's key file (scope snapshot)")
	cmd.AddCommand(create)
	return cmd
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
				a, ref, err := r.SetLabel(ctx, args[0], args[1], s)
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
