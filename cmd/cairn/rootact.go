package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/safefile"
)

// actFlags prepare a root act to be signed by each root key holder apart
// (--unsigned), instead of signing it with every --key in one process.
type actFlags struct {
	unsigned bool
	out      string
	window   time.Duration
}

func (a *actFlags) register(c *cobra.Command) {
	c.Flags().BoolVar(&a.unsigned, "unsigned", false, "prepare the act unsigned, for each root key holder to sign apart (cairn root sign), then cairn root apply")
	c.Flags().StringVarP(&a.out, "output", "o", "", "with --unsigned: the act's file (default stdout)")
	c.Flags().DurationVar(&a.window, "window", author.DefaultWindow, fmt.Sprintf("with --unsigned: how long the act may wait for its signatures before it can no longer be applied (at most %s)", record.MaxActWindow))
}

// prepare writes the act prep makes, when --unsigned; it reports whether
// it did.
func (a *actFlags) prepare(cmd *cobra.Command, f *changeFlags, prep func(ctx context.Context, r *index.Repo) (*author.Act, error)) (bool, error) {
	if !a.unsigned {
		if a.out != "" {
			return true, usageError{errors.New("-o writes an unsigned act: add --unsigned")}
		}
		return false, nil
	}
	if a.window <= 0 || a.window > record.MaxActWindow {
		return true, usageError{fmt.Errorf("--window %s: an act waits for its signatures more than no time and at most %s", a.window, record.MaxActWindow)}
	}
	if len(f.keys) > 0 {
		return true, usageError{errors.New("--unsigned prepares an act for the root key holders to sign apart: give no --key")}
	}
	return true, withRepo(cmd, f.repo, func(ctx context.Context, r *index.Repo) error {
		act, err := prep(ctx, r)
		if err != nil {
			return err
		}
		data, err := act.Marshal()
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if a.out == "" {
			_, err := rawOut(w).Write(data) // the act's own bytes, for the other signers
			return err
		}
		if err := safefile.Write(a.out, data, safefile.Options{Exclusive: true}); err != nil {
			return fmt.Errorf("writing the act to %s: %w", a.out, err)
		}
		fmt.Fprint(w, act.Describe())
		fmt.Fprintf(w, "wrote %s: each root key holder signs it (cairn root sign --key KEY %s -o KEY.sig), then cairn root apply %s SIG...\n", a.out, a.out, a.out)
		return nil
	})
}

func newRootSignCmd() *cobra.Command {
	var key, out string
	c := &cobra.Command{
		Use:   "sign ACT-FILE --key ROOT.key [-o SIG-FILE]",
		Short: "Sign a prepared root act apart, with one root key: a detached signature",
		Long: `Sign a root act prepared with --unsigned (key grant, key revoke, root rotate,
upstream add) with one root key, on the holder's own machine: no repository is
needed. It prints what the act does before it signs; read it. The signature
(a DSSE signature {keyid, sig} over the act) goes to SIG-FILE, or to stdout;
'cairn root apply' joins a threshold of them. An act whose window has passed
is not signed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			act, err := author.ParseAct(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			s, err := keys.Resolve(key)
			if err != nil {
				return err
			}
			sig, err := act.Sign(s)
			if err != nil {
				return err
			}
			enc, err := json.Marshal(sig)
			if err != nil {
				return err
			}
			enc = append(enc, '\n')
			say := cmd.ErrOrStderr()
			if out != "" {
				say = cmd.OutOrStdout()
			}
			fmt.Fprint(say, act.Describe())
			if out == "" {
				_, err := rawOut(cmd.OutOrStdout()).Write(enc)
				return err
			}
			if err := safefile.Write(out, enc, safefile.Options{Exclusive: true}); err != nil {
				return fmt.Errorf("writing the signature to %s: %w", out, err)
			}
			fmt.Fprintf(say, "signed act %.16s with %s: wrote %s\n", act.ID(), sig.KeyID, out)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "the root key that signs (a private key file, or the agent's key of a .pub file)")
	c.Flags().StringVarP(&out, "output", "o", "", "the signature's file (default stdout)")
	return c
}

func newRootApplyCmd() *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:   "apply ACT-FILE SIG-FILE...",
		Short: "Join a root act's detached signatures and append it",
		Long: `Join the detached signatures of a root act (cairn root sign) into one record
and append it. Each signature must be by a distinct root key (for a rotation,
a current or a new one) and verify over the act; the index's rules then check
the threshold and that the act's window has not passed, as for an act signed
in one process.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Errorf("give the act's file and at least one signature file (got %d argument(s))", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			act, err := author.ParseAct(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			var sigs []author.Detached
			for _, p := range args[1:] {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sig, err := author.ParseSignature(data)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				sigs = append(sigs, author.Detached{Source: p, Signature: sig})
			}
			r, err := openRepo(cmd.Context(), f.repo)
			if err != nil {
				return err
			}
			defer r.Close()
			a, err := author.Apply(cmd.Context(), r, act, sigs)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return printJSON(w, a)
			}
			fmt.Fprintf(w, "applied act %.16s (%s), signed by %d root key(s)\n", act.ID(), act.Summary(), len(sigs))
			printAdded(w, a)
			return nil
		},
	}
	repoFlag(c, &f.repo)
	c.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return c
}

// publicKeys loads public keys (a .pub file, or a private key file).
func publicKeys(paths []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, p := range paths {
		pub, err := keys.LoadPublic(p)
		if err != nil {
			return nil, err
		}
		out = append(out, pub)
	}
	return out, nil
}
