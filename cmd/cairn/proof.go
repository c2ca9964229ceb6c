package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/proof"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

func newProofCmd() *cobra.Command {
	var (
		repo, out string
		lf        lightFlags
	)
	c := &cobra.Command{
		Use:   "proof RECORD-ID [-o FILE] [--repo DIR | --url URL --introduction ID]",
		Short: "Write an offline proof that the index's log holds a record (C2SP tlog-proof)",
		Long: `Write a self-contained proof that the index's transparency log holds a
record: the record's log entry and bytes, its leaf index, the inclusion path
to the root of a signed checkpoint, and that checkpoint with its witnesses'
cosignatures (C2SP tlog-proof; docs/transparency.md, "Offline proofs"). Anyone
checks it with 'cairn proof verify', with no network and no copy of the index.

The proof is made from this repository's own transparency log, against the
checkpoint its server signed (cairn serve --checkpoint-key), else the last one
pulled from a remote: the record must be older than that checkpoint.
RECORD-ID is the record's id, or its first 8 or more hex digits.

With --url, the proof is made from a server as a light client, with no
repository: the server's checkpoint verified (pinned by --introduction, checked
against the one verified last and the --witness cosignatures), the record's
inclusion path computed from its tiles. RECORD-ID is then the whole id.

The proof is written to stdout, or atomically to -o FILE (name it
RECORD.tlog-proof).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lf.url != "" {
				v, err := lf.open(cmd)
				if err != nil {
					return err
				}
				made, err := proof.FromView(cmd.Context(), v, lf.url, args[0])
				if err != nil {
					return err
				}
				return writeProof(cmd, out, made)
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				made, err := proof.FromRepo(ctx, r, args[0])
				if err != nil {
					return err
				}
				return writeProof(cmd, out, made)
			})
		},
	}
	repoFlag(c, &repo)
	lf.register(c)
	c.Flags().StringVarP(&out, "output", "o", "", "the proof's file, written atomically (default stdout; name it RECORD.tlog-proof)")
	c.AddCommand(newProofVerifyCmd())
	return c
}

// writeProof writes a proof made to -o FILE (atomically), or to stdout,
// and says what it proves on stderr.
func writeProof(cmd *cobra.Command, out string, m *proof.Made) error {
	data := m.Proof.Marshal()
	if out == "" {
		_, err := rawOut(cmd.OutOrStdout()).Write(data) // the proof's own bytes
		return err
	}
	if err := safefile.Write(out, data, safefile.Options{Perm: 0o644}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: record %s is leaf %d of the log of %s at size %d (%s)\n",
		out, m.ID, m.Proof.Index, m.Checkpoint.Origin, m.Checkpoint.Size, m.Source)
	return nil
}

func newProofVerifyCmd() *cobra.Command {
	var (
		repo, intro   string
		logKeys, wits []string
		quorum        int
		js            bool
	)
	c := &cobra.Command{
		Use:   "verify FILE [--log-key VKEY]... [--introduction ID] [--witness VKEY]... [--quorum K]",
		Short: "Check an offline proof, with no network",
		Long: `Check an offline proof that 'cairn proof' wrote, with no network: the record's
bytes match its log entry; the inclusion path leads from the entry's leaf to the
checkpoint's root; the checkpoint is signed by one of the index's log keys;
its origin is the index named by --introduction, when given; and at least
--quorum of the --witness keys (default: all of them) cosigned it.

The log keys are --log-key VKEY (each a note verifier key named by the
index's origin, as 'cairn key vkey KEY.pub --origin ORIGIN' prints it), or,
without any, the keys the root of this repository (--repo, CAIRN_REPO, or the
current directory) granted the checkpoint scope, checked at the checkpoint's
time; the index is then this repository's. A key revoked since (rotated out)
still proves a checkpoint of a tree that ends before its revocation in the
log, if this repository's log holds that tree or the --witness quorum
cosigned it.

Without witnesses, a proof only shows what the log's key signed: nothing shows
that every reader was shown that log (a split view cannot be detected), and
cairn says so. FILE - reads stdin. Every refusal exits 3 and says what was wrong.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readProofFile(cmd, args[0])
			if err != nil {
				return err
			}
			if quorum, err = witnessQuorum(len(wits), quorum, cmd.Flags().Changed("quorum")); err != nil {
				return err
			}
			pol, err := witness.NewPolicy(wits, quorum)
			if err != nil {
				return usageError{err}
			}
			verify := func(trust proof.Trust) error {
				trust.Witnesses = pol
				if intro != "" {
					trust.Introduction = intro
				}
				p, err := proof.Verify(data, trust)
				if err != nil {
					return err
				}
				return printProven(cmd, args[0], p, js)
			}
			if len(logKeys) > 0 {
				var trust proof.Trust
				for _, k := range logKeys {
					lk, err := proof.ParseLogKey(k)
					if err != nil {
						return usageError{err}
					}
					trust.LogKeys = append(trust.LogKeys, lk)
				}
				return verify(trust)
			}
			if repo == "" && os.Getenv("CAIRN_REPO") == "" {
				if _, err := repoDir(""); err != nil {
					var nr *noRepoError
					if errors.As(err, &nr) {
						return usageError{errors.New("name the index's log keys with --log-key VKEY ('cairn key vkey KEY.pub --origin ORIGIN' prints one), or run inside a replica of the index, whose verified keys are then used")}
					}
					return err
				}
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				trust, err := proof.TrustOf(ctx, r)
				if err != nil {
					return err
				}
				return verify(trust)
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().StringArrayVar(&logKeys, "log-key", nil, "a verifier key of the index's log, named by its origin (repeatable; default: the keys the current repository granted the checkpoint scope)")
	c.Flags().StringVar(&intro, "introduction", "", "the index the proof must be of: its introduction (the id of its first root record)")
	c.Flags().StringArrayVar(&wits, "witness", nil, "the verifier key of a witness trusted to cosign the checkpoint (repeatable)")
	c.Flags().IntVar(&quorum, "quorum", 0, "how many of the --witness keys must have cosigned the checkpoint (default: all)")
	c.Flags().BoolVar(&js, "json", false, "print what was proven as JSON")
	return c
}

// readProofFile reads a proof file, or stdin for "-", up to the largest
// proof there is.
func readProofFile(cmd *cobra.Command, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, translog.MaxProof+1))
	if err != nil {
		return nil, fmt.Errorf("reading the proof %s: %w", name, err)
	}
	return data, nil
}

// provenJSON is what 'cairn proof verify --json' prints.
type provenJSON struct {
	Record     string         `json:"record,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Subject    string         `json:"subject,omitempty"`
	Path       string         `json:"path"`
	Commit     string         `json:"commit"`
	Time       time.Time      `json:"time"`
	SHA256     string         `json:"sha256"`
	Size       int64          `json:"size"`
	Index      int64          `json:"index"`
	Checkpoint checkpointJSON `json:"checkpoint"`
	Witnesses  []string       `json:"witnesses"`
	Quorum     int            `json:"quorum"`
}

type checkpointJSON struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   []byte    `json:"root"`
	Map    []byte    `json:"map"` // cairn-map, proved the tree's last leaf's
	Head   string    `json:"head"`
	Time   time.Time `json:"time"`
	Key    string    `json:"key"`
}

func printProven(cmd *cobra.Command, file string, p *proof.Proven, js bool) error {
	if p.Unwitnessed {
		fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: %v\n", witness.ErrUnwitnessed)
	}
	names := []string{}
	for _, c := range p.Cosignatures {
		names = append(names, c.Witness.Name)
	}
	c := p.Checkpoint
	if js {
		out := provenJSON{
			Subject: p.Subject, Path: p.Entry.Path, Commit: p.Entry.Commit, Time: time.Unix(p.Entry.Time, 0).UTC(),
			SHA256: fmt.Sprintf("%x", p.Entry.SHA256[:]), Size: p.Entry.Size, Index: p.Index,
			Checkpoint: checkpointJSON{Origin: c.Origin, Size: c.Size, Root: c.Root[:], Map: c.Map[:], Head: c.Head, Time: c.Time, Key: p.Key},
			Witnesses:  names, Quorum: p.Quorum,
		}
		if p.Record != nil {
			out.Record, out.Kind = p.Record.ID, string(p.Record.Kind)
		}
		return printJSON(cmd.OutOrStdout(), out)
	}
	w := cmd.OutOrStdout()
	what := "file " + p.Entry.Path
	if p.Record != nil {
		what = "record " + p.Record.ID
	}
	fmt.Fprintf(w, "%s: proven: %s is leaf %d of the log of %s\n", file, what, p.Index, c.Origin)
	if p.Record != nil {
		fmt.Fprintf(w, "  kind        %s\n", p.Record.Kind)
	}
	if p.Subject != "" {
		fmt.Fprintf(w, "  subject     %s\n", p.Subject)
	}
	fmt.Fprintf(w, "  path        %s\n", p.Entry.Path)
	fmt.Fprintf(w, "  added       by commit %s at %s\n", p.Entry.Commit, time.Unix(p.Entry.Time, 0).UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  checkpoint  size %d, head %s, signed at %s by key %s\n", c.Size, c.Head, c.Time.UTC().Format(time.RFC3339), p.Key)
	fmt.Fprintf(w, "  map         %x (the tree's last leaf: subject map proofs check against it)\n", c.Map[:])
	if p.Unwitnessed {
		fmt.Fprintf(w, "  witnesses   none required\n")
	} else {
		fmt.Fprintf(w, "  witnesses   cosigned by %d trusted witness(es), quorum %d: %s\n", len(names), p.Quorum, strings.Join(names, ", "))
	}
	return nil
}
