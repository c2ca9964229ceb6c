package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newPublishCmd() *cobra.Command {
	var (
		repo, key string
		asJSON    bool
	)
	c := &cobra.Command{
		Use:   "publish DIR",
		Short: "Publish the package version in DIR (cairn-package.yaml and its artifact files)",
		Long: `Publish a package version. DIR holds cairn-package.yaml and the artifact files
it names:

  name: acme/fastjson            # namespace/name, lowercase
  version: 1.2.3                 # strict semver
  summary: Fast JSON for Go
  license: MIT
  uuid: …                        # optional: taken from earlier versions, or made new
  dependencies:
    - name: acme/base
      version: ">=1.0.0 <2.0.0"  # a semver range
  artifacts:
    - kind: source
      file: fastjson-1.2.3.tar.gz
    - kind: binary
      platform: linux-amd64
      file: fastjson-linux-amd64.tar.gz

The artifacts and the descriptor go to the blob store, then the descriptor and
your signed authored record to the index, in one commit. Your key needs a
publish scope covering the name. A version is published once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(cmd.Context(), repo)
			if err != nil {
				return err
			}
			defer r.Close()
			s, err := signer(key)
			if err != nil {
				return err
			}
			p, err := r.Publish(cmd.Context(), args[0], s)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, p)
			}
			fmt.Fprintf(w, "published %s (descriptor sha256:%s, %d bytes)\n", p.Descriptor.ID(), p.Ref.SHA256, p.Ref.Size)
			printAdded(w, &p.Added)
			return nil
		},
	}
	repoFlag(c, &repo)
	c.Flags().StringVar(&key, "key", "", "the signing key file (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
