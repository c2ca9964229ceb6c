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
		goMod    bool
	)
	c := &cobra.Command{
		Use:   "publish DIR | publish --go DIR VERSION",
		Short: "Publish the package version in DIR (cairn-package.yaml and its artifact files), or the Go module in DIR",
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
--no-upload leaves them for 'cairn push'.

With --go, DIR is a Go module (its go.mod names it) and VERSION its version
(v1.2.3 or 1.2.3): the version is named by the module path
(example.com/greet@1.2.3), its artifacts are the module zip, made exactly as
the go command makes it, and go.mod, and its descriptor carries go.sum's h1
hashes of both, so that the go command accepts what cairn serve's GOPROXY
(/go/) serves. Your key needs a publish scope covering the module path.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if goMod {
				return exactArgs(2)(cmd, args)
			}
			return exactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				s, err := oneKey(ss)
				if err != nil {
					return nil, err
				}
				var p *author.Published
				if goMod {
					p, err = publishGo(ctx, r, args[0], args[1], s)
				} else {
					p, err = author.Publish(ctx, r, args[0], s)
				}
				if err != nil {
					return nil, err
				}
				return uploadPublished(ctx, r, s, p, "published", noUpload)
			})
		},
	}
	f.register(c, "the signing key file (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	c.Flags().BoolVar(&noUpload, "no-upload", false, "in a clone of a server's index, do not upload the blobs")
	c.Flags().BoolVar(&goMod, "go", false, "publish the Go module in DIR at VERSION")
	return c
}

// uploadPublished reports a published version (verb: "published",
// "imported") and, in a clone of a server's index, uploads its blobs to
// the server unless noUpload.
func uploadPublished(ctx context.Context, r *index.Repo, s keys.Signer, p *author.Published, verb string, noUpload bool) (*changed, error) {
	headline := fmt.Sprintf("%s %s (descriptor sha256:%s, %d bytes)", verb, p.Descriptor.ID(), p.Ref.SHA256, p.Ref.Size)
	if origin := remote.Origin(ctx, r, s, remote.Options{}); origin != nil && !noUpload {
		refs := []blob.Ref{p.Ref}
		for _, a := range p.Descriptor.Artifacts {
			refs = append(refs, a.Ref)
		}
		n, err := remote.Upload(ctx, r, origin, refs)
		if err != nil {
			return nil, fmt.Errorf("%s %s in %s, but the upload failed (push nothing until it succeeds): %w", verb, p.Descriptor.ID(), r.Dir, err)
		}
		headline += fmt.Sprintf("\nuploaded %d blob(s) to %s", n, origin.URL)
	}
	return &changed{added: &p.Added, json: p, headline: headline}, nil
}
