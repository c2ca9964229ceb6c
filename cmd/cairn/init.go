package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

func newInitCmd() *cobra.Command {
	var (
		rootKeys, holders []string
		threshold         int
		asJSON            bool
		blobsURL          string
	)
	c := &cobra.Command{
		Use:   "init DIR --root-key FILE... [--threshold N]",
		Short: "Create a repository: a bare git index, a blob store and its config; print its introduction",
		Long: `Create a repository in DIR (which must not exist, or be empty): index.git, a
bare git repository holding the index; blobs/, the content-addressed store;
cairn.json, the config. The index starts with the root record: the root keys
and the threshold of them that must sign every grant, key revocation and root
rotation. The root record is signed by every --root-key given.

The introduction printed is the root record's id. Clients pin a repository by
it: an index that does not start with it is another repository.

With --blobs URL the blobs live on an object store instead of blobs/:
s3://BUCKET?region=REGION (with &endpoint=URL for another S3 service, such
as SeaweedFS or MinIO), file:///DIR, and, in a cairn built with -tags gcs or
-tags azure, gs://BUCKET or azblob://CONTAINER. cairn.json records the URL;
credentials come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, …), never from the file. The store is asked for a blob
before anything is made, so a URL it cannot use is said at once.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(rootKeys) == 0 {
				return usageError{errors.New("name at least one --root-key")}
			}
			ss, err := signers(rootKeys)
			if err != nil {
				return err
			}
			r, intro, err := index.InitWith(cmd.Context(), args[0], ss, holders, threshold, index.InitOptions{Blobs: blobsURL})
			if err != nil {
				return err
			}
			defer r.Close()
			if asJSON {
				var ids []string
				for _, s := range ss {
					ids = append(ids, keys.ID(s.Public()))
				}
				out := map[string]any{"repo": args[0], "introduction": intro.ID, "root_keys": ids, "threshold": threshold}
				if blobsURL != "" {
					out["blobs"] = fmt.Sprint(r.Blobs)
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialized %s: %d root key(s), threshold %d\nintroduction %s\n", args[0], len(ss), threshold, intro.ID)
			if blobsURL != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "blobs in %s\n", r.Blobs)
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&rootKeys, "root-key", nil, "a root key file (repeatable); each signs the root record")
	c.Flags().StringArrayVar(&holders, "holder", nil, "the holder of each root key, in order (optional)")
	c.Flags().IntVar(&threshold, "threshold", 1, "how many distinct root keys must sign a root act")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&blobsURL, "blobs", "", "keep the blobs on the object store at this URL (s3://BUCKET?region=…, file:///DIR), not in DIR/blobs")
	return c
}
