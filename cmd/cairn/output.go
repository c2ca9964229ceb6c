package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(rawOut(w)) // JSON escapes what steers a terminal itself
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printAdded prints the record ids and the commit an operation added.
func printAdded(w io.Writer, a *author.Added) {
	for _, id := range a.Records {
		fmt.Fprintf(w, "record %s\n", id)
	}
	if a.Existing {
		fmt.Fprintf(w, "already in the index at %s (the same record, signed in the same second, was appended before): nothing added\n", a.Commit)
		return
	}
	fmt.Fprintf(w, "commit %s\n", a.Commit)
}

// changeFlags are the flags of every command that adds to the index.
type changeFlags struct {
	repo string
	keys []string
	json bool
}

func (f *changeFlags) register(c *cobra.Command, keyHelp string) {
	repoFlag(c, &f.repo)
	c.Flags().StringArrayVar(&f.keys, "key", nil, keyHelp)
	c.Flags().BoolVar(&f.json, "json", false, "print JSON")
}

// changed is what an index-changing operation reports.
type changed struct {
	added    *author.Added
	headline string
	json     any // printed with --json; the Added if nil
}

// run opens the repository, resolves the signing keys (--key, once per
// key, or the default key), runs op, and prints its headline and the
// record ids and commit it added, or JSON.
// withKey opens the repository and resolves the one --key, for commands
// that sign requests rather than records.
func (f *changeFlags) withKey(cmd *cobra.Command, fn func(ctx context.Context, r *index.Repo, s keys.Signer) error) error {
	ss, err := signers(f.keys)
	if err != nil {
		return err
	}
	s, err := oneKey(ss)
	if err != nil {
		return err
	}
	return withRepo(cmd, f.repo, func(ctx context.Context, r *index.Repo) error { return fn(ctx, r, s) })
}

func (f *changeFlags) run(cmd *cobra.Command, op func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error)) error {
	r, err := openRepo(cmd.Context(), f.repo)
	if err != nil {
		return err
	}
	defer r.Close()
	ss, err := signers(f.keys)
	if err != nil {
		return err
	}
	c, err := op(cmd.Context(), r, ss)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if f.json {
		if c.json != nil {
			return printJSON(w, c.json)
		}
		return printJSON(w, c.added)
	}
	fmt.Fprintln(w, c.headline)
	printAdded(w, c.added)
	return nil
}

// oneKey refuses several --key where one signer signs.
func oneKey(ss []keys.Signer) (keys.Signer, error) {
	if len(ss) != 1 {
		return nil, usageError{fmt.Errorf("give one --key: this record has one signer")}
	}
	return ss[0], nil
}
