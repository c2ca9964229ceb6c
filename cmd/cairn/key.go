package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

func newKeyCmd() *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Make keys, and grant, revoke and list the keys of a repository"}
	c.AddCommand(newKeyNewCmd(), newKeyGrantCmd(), newKeyRevokeCmd(), newKeyListCmd(), newKeyVkeyCmd())
	return c
}

func newKeyNewCmd() *cobra.Command {
	var (
		comment string
		js      bool
	)
	c := &cobra.Command{
		Use:   "new FILE",
		Short: "Make an ed25519 key in OpenSSH format (FILE and FILE.pub); print its SHA256 fingerprint",
		Long: `Make an ed25519 key pair: FILE holds the private key in OpenSSH format (mode
0600, as ssh-keygen writes it) and FILE.pub the public key. The fingerprint
printed is the key's id everywhere in cairn, exactly as 'ssh-keygen -lf' prints it.
An existing file is never overwritten. Existing OpenSSH ed25519 keys work as they are.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := keys.Generate(args[0], comment)
			if err != nil {
				return err
			}
			if js {
				return printJSON(cmd.OutOrStdout(), struct {
					ID            string `json:"id"`
					PrivateKey    string `json:"private_key"`
					PublicKey     string `json:"public_key"`
					AuthorizedKey string `json:"authorized_key"`
				}{keys.ID(pub), args[0], args[0] + ".pub", keys.FormatPublic(pub)})
			}
			fmt.Fprintln(cmd.OutOrStdout(), keys.ID(pub))
			return nil
		},
	}
	c.Flags().StringVar(&comment, "comment", "", "comment stored with the key")
	c.Flags().BoolVar(&js, "json", false, "print JSON")
	return c
}

func newKeyVkeyCmd() *cobra.Command {
	var (
		origin string
		js     bool
	)
	c := &cobra.Command{
		Use:   "vkey KEY-FILE --origin ORIGIN",
		Short: "Print the vkey of a checkpoint key for a log, as witnesses name the log's keys",
		Long: `Print the note verifier key (C2SP signed-note vkey, ed25519) of the key in
KEY-FILE (a .pub file, or a private key file) under the name ORIGIN: what a
witness is given to witness the log ('cairn witness add-log --key VKEY', or
litewitness's key table). A cairn index's origin is cairn.dev/index/ and its
introduction; its checkpoints are signed by keys its root granted the
checkpoint scope.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if origin == "" {
				return usageError{errors.New("name the log with --origin (a cairn index's: cairn.dev/index/INTRODUCTION)")}
			}
			pub, err := keys.LoadPublic(args[0])
			if err != nil {
				return err
			}
			vkey, err := note.NewEd25519VerifierKey(origin, pub)
			if v, verr := note.NewVerifier(vkey); err != nil || verr != nil || v.Name() != origin {
				return usageError{fmt.Errorf("origin %q: not a note key name (want a name without spaces or '+', such as cairn.dev/index/INTRODUCTION)", origin)}
			}
			if js {
				return printJSON(cmd.OutOrStdout(), struct {
					Origin string `json:"origin"`
					Key    string `json:"key"`
					Vkey   string `json:"vkey"`
				}{origin, keys.ID(pub), vkey})
			}
			fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return nil
		},
	}
	c.Flags().StringVar(&origin, "origin", "", "the log's origin, the key's name (a cairn index's: cairn.dev/index/INTRODUCTION)")
	c.Flags().BoolVar(&js, "json", false, "print JSON")
	return c
}

func newKeyGrantCmd() *cobra.Command {
	var (
		f              changeFlags
		af             actFlags
		holder, expiry string
		scopes         []string
	)
	c := &cobra.Command{
		Use:   "grant PUBKEY-FILE --holder NAME --scope SCOPE...",
		Short: "Grant a key scopes, signed by a threshold of root keys",
		Long: `Grant the key in PUBKEY-FILE (an OpenSSH .pub file) the given scopes. The
grant is a record signed by the repository's root keys: pass --key once per
root key until the threshold is met.

Scopes:
  publish:PATTERN          publish (and deprecate or withdraw) packages matching PATTERN, e.g. publish:acme/*
                           (a PATTERN without '/' is NAMESPACE/*: publish:acme is publish:acme/*)
  certify:KIND[:PATTERN]   make KIND certifications (audited, tested, reviewed, reproduced,
                           proof-checked, scanned, vulnerable, fixed, deprecated, withdrawn), optionally only on PATTERN
  checkpoint               sign the log's checkpoints (cairn serve --checkpoint-key)
  snapshot                 create snapshots (cairn snapshot create)
  label:PATTERN            set labels matching PATTERN (cairn label set), e.g. label:lts-*
  policy:PATTERN           publish policies named by PATTERN (cairn policy publish)

--expires TIME ends the grant at TIME (RFC 3339 or a date); cairn key list shows
what is granted, until when, and what has ended.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if holder == "" || len(scopes) == 0 {
				return usageError{errors.New("a grant needs --holder and at least one --scope")}
			}
			for _, sc := range scopes {
				if _, err := record.ParseScope(sc); err != nil {
					return usageError{fmt.Errorf("--scope %s: %w", sc, err)}
				}
			}
			pub, err := keys.LoadPublic(args[0])
			if err != nil {
				return err
			}
			g := author.KeyGrant{Key: pub, Holder: holder, Scopes: scopes}
			if expiry != "" {
				t, err := parseTime(expiry)
				if err != nil {
					return usageError{err}
				}
				if !t.After(time.Now()) {
					return usageError{fmt.Errorf("--expires %s is past: a grant that has ended grants nothing (give a time to come)", t.UTC().Format(time.RFC3339))}
				}
				g.Expires = &t
			}
			if done, err := af.prepare(cmd, &f, func(ctx context.Context, r *index.Repo) (*author.Act, error) {
				return author.PrepareGrant(r, g, af.window)
			}); done {
				return err
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, roots []keys.Signer) (*changed, error) {
				a, err := author.Grant(ctx, r, g, roots...)
				return &changed{added: a, headline: fmt.Sprintf("granted %s to %s: %s", keys.ID(pub), holder, strings.Join(scopes, " "))}, err
			})
		},
	}
	f.register(c, "a root key file (repeat for a threshold)")
	af.register(c)
	c.Flags().StringVar(&holder, "holder", "", "who holds the key (a person, team or service)")
	c.Flags().StringArrayVar(&scopes, "scope", nil, "a scope to grant (repeatable)")
	c.Flags().StringVar(&expiry, "expires", "", "when the grant ends (RFC 3339 time or YYYY-MM-DD)")
	return c
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2027-01-31T00:00:00Z) or YYYY-MM-DD", s)
	}
	return t.UTC(), nil
}

func newKeyRevokeCmd() *cobra.Command {
	var (
		f      changeFlags
		af     actFlags
		reason string
	)
	c := &cobra.Command{
		Use:   "revoke KEY-ID --reason TEXT",
		Short: "Revoke a key, signed by a threshold of root keys",
		Long: `Revoke the key KEY-ID (its SHA256: fingerprint). The key signs nothing after
its revocation; what it signed before stays valid, and 'cairn show' marks it
"issuer key revoked".`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usageError{errors.New("say why with --reason")}
			}
			if done, err := af.prepare(cmd, &f, func(ctx context.Context, r *index.Repo) (*author.Act, error) {
				return author.PrepareRevokeKey(ctx, r, args[0], reason, af.window)
			}); done {
				return err
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, roots []keys.Signer) (*changed, error) {
				a, err := author.RevokeKey(ctx, r, args[0], reason, roots...)
				return &changed{added: a, headline: "revoked key " + args[0]}, err
			})
		},
	}
	f.register(c, "a root key file (repeat for a threshold)")
	af.register(c)
	c.Flags().StringVar(&reason, "reason", "", "why the key is revoked")
	return c
}

func newKeyListCmd() *cobra.Command {
	var (
		repo   string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List the root keys and every granted key with its holder, scopes and status",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				return listKeys(cmd, r, asJSON)
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func listKeys(cmd *cobra.Command, r *index.Repo, asJSON bool) error {
	ks, err := r.Keys(cmd.Context())
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), ks)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tHOLDER\tSTATUS\tSCOPES")
	for _, k := range ks {
		status := k.Status
		if k.Reason != "" {
			status += " (" + record.OneLine(k.Reason) + ")"
		}
		scopes := strings.Join(k.Scopes, " ")
		if k.Expires != nil {
			scopes += " (until " + k.Expires.UTC().Format(time.RFC3339) + ")"
		}
		if len(k.Ended) > 0 {
			scopes = strings.TrimSpace(scopes + "; ended: " + strings.Join(k.Ended, ", "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Holder, status, scopes)
	}
	return tw.Flush()
}
