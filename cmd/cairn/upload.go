package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/remote"
)

func newUploadCmd() *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:   "upload REMOTE [NAME@VERSION…]",
		Short: "Upload the blobs a server lacks that main's records name (of the versions given, or all)",
		Long: `Upload to a server the blobs that main's index names — descriptors, artifacts,
evidence, snapshots — which this repository holds and the server lacks: of the
versions given, or of every version. A server refuses a push whose new records
name blobs it does not hold; this sends them, and the push then goes through.
It also repairs a version already on the server without its blobs.

REMOTE is a remote (cairn remote add) or, in a git clone of a cairn server, the
git remote it was cloned from (origin). Each upload is signed with your key,
which the server's root must have granted a publish or certify scope.
'cairn push' uploads before it pushes: use this after a plain 'git push'.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageError{fmt.Errorf("name the remote to upload to")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withKey(cmd, func(ctx context.Context, r *index.Repo, s keys.Signer) error {
				bar := newProgress(cmd.ErrOrStderr(), f.json, false)
				u, err := remote.UploadMissing(ctx, r, args[0], s, args[1:], remote.Options{Progress: remoteProgress(bar)})
				bar.done()
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), u)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: uploaded %d blob(s) the server lacked; %d named, %d held here\n", u.Remote, u.Uploaded, u.Named, u.Held)
				return nil
			})
		},
	}
	f.register(c, "the key that signs the uploads (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	return c
}
