package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/remote"
)

func newPublishCmd() *cobra.Command {
	var (
		f        changeFlags
		noUpload bool
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
publish scope covering the name. A version is published once.

In a git clone of a cairn server's index, the blobs are also uploaded to that
server (signed with your key), so that 'git push' then publishes the version;
--no-upload leaves them for 'cairn push'.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				s, err := oneKey(ss)
				if err != nil {
					return nil, err
				}
				p, err := author.Publish(ctx, r, args[0], s)
				if err != nil {
					return nil, err
				}
				headline := fmt.Sprintf("published %s (descriptor sha256:%s, %d bytes)", p.Descriptor.ID(), p.Ref.SHA256, p.Ref.Size)
				if origin := remote.Origin(ctx, r, s, remote.Options{}); origin != nil && !noUpload {
					refs := []blob.Ref{p.Ref}
					for _, a := range p.Descriptor.Artifacts {
						refs = append(refs, a.Ref)
					}
					n, err := remote.Upload(ctx, r, origin, refs)
					if err != nil {
						return nil, fmt.Errorf("published %s in %s, but the upload failed (push nothing until it succeeds): %w", p.Descriptor.ID(), r.Dir, err)
					}
					headline += fmt.Sprintf("\nuploaded %d blob(s) to %s", n, origin.URL)
				}
				return &changed{added: &p.Added, json: p, headline: headline}, nil
			})
		},
	}
	f.register(c, "the signing key file (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	c.Flags().BoolVar(&noUpload, "no-upload", false, "in a clone of a server's index, do not upload the blobs")
	return c
}
