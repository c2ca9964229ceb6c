package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob" // s3:// stores, for cairn log publish --to

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/witness"
)

func newLogPublishCmd() *cobra.Command {
	var (
		repo, to, ckey string
		witnesses      []string
		asJSON, check  bool
	)
	c := &cobra.Command{
		Use:   "publish --to DIR|URL",
		Short: "Write the index's verified transparency log as static files (C2SP tlog-tiles) to a directory or an object store",
		Long: `Write main's transparency log, verified first, as static files: the signed
checkpoint and the tiles and entry bundles of C2SP tlog-tiles, at the paths
cairn serve serves under /log/ (checkpoint, tile/L/N…, tile/entries/N…). A
static file server, a CDN or an object store serving them answers light
clients and tlog clients without cairn serve; and for an index on a plain git
host (git http-backend, git daemon), it is where clients find its signed
checkpoint: cairn remote add NAME GIT-URL --log LOG-URL, or git: and log: in
cairn.yaml.

--to is a directory, or an object store URL (file:///DIR, s3://BUCKET?…&prefix=log/).
Tiles never change at their path: only those the store lacks are written,
each object whole, then the checkpoint last (--check reads every tile the
store holds too, and writes again those missing or not the log's). A store that holds the log of
another index, of a larger tree or of another history is refused.

With --checkpoint-key a fresh checkpoint of main's verified head is signed (a
key the root granted the checkpoint scope), and each --witness URL=VKEY asked
to cosign it first (C2SP tlog-witness, as cairn serve --witness does): clients
that name witnesses refuse a checkpoint below their quorum. A witness that
does not cosign is named, and the checkpoint published with the others'
cosignatures. Without --checkpoint-key, the checkpoint cairn serve signed last
in this repository is published, with the cosignatures it got. Run it after each push (a
CI job, or a cron job well within the clients' --max-age, 24h by default).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError{fmt.Errorf("--to is required: a directory or an object store URL (file:///DIR, s3://BUCKET?…)")}
			}
			o := remote.PublishOptions{Check: check}
			if ckey != "" {
				s, err := keys.Resolve(ckey)
				if err != nil {
					return err
				}
				o.Key = s
			}
			if len(witnesses) > 0 && ckey == "" {
				return usageError{errors.New("--witness cosigns the checkpoint signed now: give --checkpoint-key too")}
			}
			var err error
			if o.Witnesses, err = parseWitnesses(witnesses); err != nil {
				return err
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				dst, name, err := openLogStore(ctx, to)
				if err != nil {
					return err
				}
				defer dst.Close()
				p, err := remote.PublishLog(ctx, r, dst, name, o)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				for _, why := range p.Refused {
					fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: a witness did not cosign the checkpoint: %s\n", why)
				}
				if asJSON {
					return printJSON(w, p)
				}
				if len(p.Cosigned) > 0 {
					fmt.Fprintf(w, "cosigned by %d witness(es): %s\n", len(p.Cosigned), strings.Join(p.Cosigned, ", "))
				}
				if p.Kept && !check {
					fmt.Fprintf(w, "%s (%s): %d leaves (head %.12s), nothing written\n", remote.KeptNewer, p.To, p.Size, p.Head)
					return nil
				}
				if check {
					fmt.Fprintf(w, "checked the %d tiles of the log of %s at %s (%d leaves, head %.12s): %d missing or not the log's, written again", p.Checked, r.Dir, p.To, p.Size, p.Head, p.Tiles)
					if p.Kept {
						fmt.Fprintf(w, "; %s\n", remote.KeptNewer)
					} else {
						fmt.Fprintln(w, ", checkpoint last")
					}
					return nil
				}
				fmt.Fprintf(w, "published the log of %s to %s: %d leaves (head %.12s), %d tiles written", r.Dir, p.To, p.Size, p.Head, p.Tiles)
				if p.From > 0 {
					fmt.Fprintf(w, " past the %d leaves published before", p.From)
				}
				fmt.Fprintln(w, ", checkpoint last")
				return nil
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().StringVar(&to, "to", "", "where to write: a directory, or an object store URL (file:///DIR, s3://BUCKET?endpoint=…&region=…&prefix=…)")
	c.Flags().StringVar(&ckey, "checkpoint-key", "", "sign a fresh checkpoint with this key (granted the checkpoint scope); default: publish the one cairn serve signed last")
	c.Flags().StringArrayVar(&witnesses, "witness", nil, "ask this witness to cosign the checkpoint signed, URL=VKEY (repeatable; with --checkpoint-key)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&check, "check", false, "read every tile and entry bundle the store holds, and write again those missing or not the log's (a copy damaged, cut short or partly deleted)")
	return c
}

// parseWitnesses parses --witness URL=VKEY flags (cairn serve, cairn log
// publish); a malformed one is a usage error.
func parseWitnesses(flags []string) ([]witness.Endpoint, error) {
	var out []witness.Endpoint
	for _, f := range flags {
		e, err := witness.ParseEndpoint(f)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, e)
	}
	return out, nil
}

// openLogStore opens where cairn log publish writes: a directory (made
// if need be; no metadata files beside the objects, temporary files
// renamed into place), or an object store URL, returned with the name
// messages give it.
func openLogStore(ctx context.Context, to string) (*gcblob.Bucket, string, error) {
	if u, err := url.Parse(to); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		b, err := gcblob.OpenBucket(ctx, to)
		if err != nil {
			return nil, "", fmt.Errorf("log store %s: %w", u.Redacted(), err)
		}
		c := *u
		c.RawQuery = ""
		return b, strings.TrimSuffix(c.Redacted(), "?"), nil
	}
	dir, err := filepath.Abs(to)
	if err != nil {
		return nil, "", err
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true, CreateDir: true})
	if err != nil {
		return nil, "", fmt.Errorf("log store %s: %w", dir, err)
	}
	return b, dir, nil
}
