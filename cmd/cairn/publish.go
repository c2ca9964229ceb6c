package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

func newPublishCmd() *cobra.Command {
	var f changeFlags
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
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				s, err := oneKey(ss)
				if err != nil {
					return nil, err
				}
				p, err := r.Publish(ctx, args[0], s)
				if err != nil {
					return nil, err
				}
				return &changed{added: &p.Added, json: p,
					headline: fmt.Sprintf("published %s (descriptor sha256:%s, %d bytes)", p.Descriptor.ID(), p.Ref.SHA256, p.Ref.Size)}, nil
			})
		},
	}
	f.register(c, "the signing key file (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	return c
}
