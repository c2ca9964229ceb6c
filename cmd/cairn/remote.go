package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
)

func newRemoteCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "remote",
		Short: "Remotes: other copies of an index, pinned by their introduction",
	}
	var (
		repo, intro string
		logURL      string
		mirrors     []string
		maxAge      time.Duration
		noCheck     bool
		addJSON     bool
		witnesses   []string
		quorum      int
		blobsURL    string
	)
	add := &cobra.Command{
		Use:   "add NAME URL --introduction ID",
		Short: "Add a remote; with no repository at --repo yet, make an empty replica there",
		Long: `Add a remote: a cairn server's URL, pinned by the introduction its owner
published (the id 'cairn init' printed). Every pull verifies the remote's history
from that introduction and its signed checkpoint; nothing the server says is
trusted otherwise.

Name the witnesses you trust to cosign the remote's checkpoints with --witness
(each one's verifier key, as 'cairn witness vkey' or its operator prints it) and
how many of them must have cosigned each checkpoint with --quorum (default: all
of them): a pull then refuses a checkpoint below quorum, so that a server cannot
show you a history it does not show everyone. Without witnesses a pull warns that
such a split view cannot be detected.

An index may also live on a plain git host that runs no cairn code (git
http-backend behind a web server, git daemon, a path): give its git URL with
--log, the URL its log is published at (cairn log publish), and its blob
mirrors with --mirror. Nothing on such a host checks a push, so every pull
checks the commits it serves past its signed checkpoint too, and refuses one
that breaks a rule.

If --repo names no repository yet, an empty replica of the remote's index is made
there; 'cairn pull NAME' then fills it. With --blobs URL its blobs live on that
object store (as cairn init --blobs takes it): a read replica served with
'cairn serve --follow NAME' shares its writer's store this way.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := repoDir(repo)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// What the flags say is checked before anything is made.
			if intro == "" {
				return usageError{errors.New("--introduction is required: a remote is pinned by the id of its first root record")}
			}
			if !cmd.Flags().Changed("quorum") {
				quorum = len(witnesses)
			}
			rm := remote.Remote{Name: args[0], URL: args[1], Log: logURL, Introduction: intro, Mirrors: mirrors, MaxAge: maxAge, InsecureNoCheckpoint: noCheck, Witnesses: witnesses, Quorum: quorum}
			if u := strings.TrimSuffix(rm.URL, "/"); !rm.Plain() && strings.HasSuffix(u, "/index.git") {
				// The URL git clones from, which a server prints: its
				// server is the URL above it.
				rm.URL = strings.TrimSuffix(u, "/index.git")
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: note: %s is the server's git URL; the remote is the server, %s\n", args[1], rm.URL)
			}
			if _, err := rm.Policy(); err != nil {
				return usageError{err}
			}
			r, err := index.Open(ctx, dir)
			created := false
			var undo func()
			if errors.Is(err, fs.ErrNotExist) {
				undo = undoMaking(dir)
				r, err = index.InitReplicaWith(ctx, dir, intro, index.InitOptions{Blobs: blobsURL})
				created = true
			} else if err == nil && blobsURL != "" {
				r.Close()
				return usageError{fmt.Errorf("--blobs %s: %s is a repository already; --blobs chooses the blob store of an empty replica as remote add makes it", blobsURL, dir)}
			}
			if err != nil {
				if undo != nil {
					undo()
				}
				return err
			}
			defer r.Close()
			if err := remote.Add(r, rm); err != nil {
				if created {
					r.Close()
					undo()
				}
				return err
			}
			w := cmd.OutOrStdout()
			if addJSON {
				return printJSON(w, struct {
					*remote.Remote
					Created string `json:"created_replica,omitempty"`
				}{&rm, map[bool]string{true: dir}[created]})
			}
			if created {
				fmt.Fprintf(w, "created an empty replica at %s\n", dir)
			}
			if rm.Plain() {
				fmt.Fprintf(w, "remote %s: plain git host %s, log %s (introduction %s)\n", rm.Name, rm.URL, rm.Log, rm.Introduction)
				return nil
			}
			fmt.Fprintf(w, "remote %s: %s (introduction %s)\n", rm.Name, rm.URL, rm.Introduction)
			return nil
		},
	}
	repoFlag(add, &repo)
	add.Flags().StringVar(&blobsURL, "blobs", "", "an empty replica made here keeps its blobs on this object store (s3://BUCKET?region=…, file:///DIR): its writer's, to share it")
	add.Flags().StringVar(&intro, "introduction", "", "the id of the remote index's first root record (required)")
	add.Flags().StringArrayVar(&mirrors, "mirror", nil, "an extra blob mirror URL, tried after the remote (repeatable)")
	add.Flags().StringVar(&logURL, "log", "", "the URL of the index's published log (cairn log publish): URL is then a plain git host's git URL, and blobs come from --mirror")
	add.Flags().DurationVar(&maxAge, "max-age", remote.DefaultMaxAge, "refuse a checkpoint older than this (a frozen mirror)")
	add.Flags().BoolVar(&noCheck, "insecure-no-checkpoint", false, "accept a server that signs no checkpoints (a frozen mirror goes unnoticed)")
	add.Flags().BoolVar(&addJSON, "json", false, "print JSON")
	add.Flags().StringArrayVar(&witnesses, "witness", nil, "the verifier key of a witness trusted to cosign the remote's checkpoints (repeatable)")
	add.Flags().IntVar(&quorum, "quorum", 0, "how many of the --witness keys must have cosigned a checkpoint (default: all)")

	var listRepo string
	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the remotes and their verified heads",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, listRepo, func(ctx context.Context, r *index.Repo) error {
				rms, err := remote.List(r)
				if err != nil {
					return err
				}
				if listJSON {
					return printJSON(cmd.OutOrStdout(), rms)
				}
				for _, rm := range rms {
					head, n, _ := rm.Line(r).VerifiedHead()
					if head == "" {
						head = "(not pulled yet)"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%-12s %s  introduction %.16s  verified %s  %d files\n", rm.Name, rm.URL, rm.Introduction, head, n)
				}
				return nil
			})
		},
	}
	repoFlag(list, &listRepo)
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	var rmRepo string
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a remote: its settings and its verified copy; main is untouched",
		Long: `Forget a remote: its settings, its verified copy of the remote's index
(refs/remotes/NAME/main), what was verified of it and its last checkpoint.
Main, and every record it holds, stay as they are. Adding the remote again
verifies its history from its introduction again.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(cmd.Context(), rmRepo)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := remote.Remove(cmd.Context(), r, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed remote %s\n", args[0])
			return nil
		},
	}
	repoFlag(remove, &rmRepo)

	var (
		urlRepo string
		urlJSON bool
	)
	setURL := &cobra.Command{
		Use:   "set-url NAME URL",
		Short: "Point a remote at another URL; it stays pinned to its introduction",
		Long: `Point a remote at another URL: the same index served from a new address, or a
mirror of it. The remote stays pinned to its introduction and to the head
verified from it: the next pull verifies what the new URL serves against both,
and a server of another index is refused there — nothing it serves is kept.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(cmd.Context(), urlRepo)
			if err != nil {
				return err
			}
			defer r.Close()
			rm, err := remote.SetURL(r, args[0], args[1])
			if err != nil {
				return err
			}
			if urlJSON {
				return printJSON(cmd.OutOrStdout(), rm)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "remote %s: %s (introduction %s)\n", rm.Name, rm.URL, rm.Introduction)
			return nil
		},
	}
	repoFlag(setURL, &urlRepo)
	setURL.Flags().BoolVar(&urlJSON, "json", false, "print JSON")

	c.AddCommand(add, list, remove, setURL)
	return c
}

func newPullCmd() *cobra.Command {
	var (
		repo    string
		js      bool
		discard bool
	)
	c := &cobra.Command{
		Use:   "pull REMOTE",
		Short: "Fetch and verify what is new on a remote; move main along it",
		Long: `Fetch the remote's index and verify every commit after the head verified last
against the rules, from the remote's own introduction, up to exactly the head the
server's signed checkpoint names (signed by a key its root granted the checkpoint
scope, no older than the remote's --max-age) and never past it: commits the server
holds beyond its checkpoint wait, reported, until a checkpoint covers them. A head
that does not descend from the one verified before is refused with both heads: an
ancestor of it is a rollback (a stale server or mirror), anything else a fork.
Only then does the remote's ref move, and main with it when main has nothing the
remote lacks. A server that signs no checkpoints is refused unless the remote was
added with --insecure-no-checkpoint.

--discard-local gives up main's own commits that the remote's history refuses
(a publish of a version another published first) and keeps the rest: main moves
to the remote's verified head, each of its own commits is replayed there with
every rule checked, and one a rule refuses is dropped; each is named, and main's
old head is printed to keep. Then the pull goes on; push what was kept.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				var discarded *remote.Discarded
				if discard {
					var err error
					if discarded, err = remote.DiscardRefused(ctx, r, args[0]); err != nil {
						return err
					}
					for _, c := range discarded.Dropped {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: note: gave up %s: remote %s refuses it\n", record.OneLine(c), args[0])
					}
					for _, c := range discarded.Kept {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: note: kept %s, replayed onto remote %s's head: push it\n", record.OneLine(c), args[0])
					}
					if len(discarded.Dropped) > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: note: main was %s before (git -C %s branch rescue %s keeps it)\n", discarded.Was, filepath.Join(r.Dir, "index.git"), discarded.Was)
					}
				}
				bar := newProgress(cmd.ErrOrStderr(), js, false)
				p, err := remote.Pull(ctx, r, args[0], remote.Options{Progress: remoteProgress(bar)})
				bar.done()
				if err != nil {
					return err
				}
				if js {
					if discarded != nil {
						return printJSON(cmd.OutOrStdout(), struct {
							*remote.Pulled
							Discarded *remote.Discarded `json:"discarded"`
						}{p, discarded})
					}
					return printJSON(cmd.OutOrStdout(), p)
				}
				w := cmd.OutOrStdout()
				if p.From == p.Head {
					fmt.Fprintf(w, "%s: up to date at %s\n", p.Remote, p.Head)
				} else {
					fmt.Fprintf(w, "%s: verified %d commits, %d files: head %s\n", p.Remote, p.Commits, p.Records, p.Head)
				}
				if p.ServerHead != "" {
					fmt.Fprintf(w, "%s: the server's head %s is %d commit(s) past its checkpoint's %s: they wait until a checkpoint covers them\n", p.Remote, p.ServerHead, p.Pending, p.Head)
				}
				if p.Checkpoint != nil {
					fmt.Fprintf(w, "checkpoint: %d leaves at %.12s, signed %s by %s", p.Checkpoint.Size, p.Checkpoint.Head, p.Checkpoint.Time.Format(time.RFC3339), p.Checkpoint.Key)
					if !p.Unwitnessed {
						fmt.Fprintf(w, ", cosigned by %d trusted witness(es)", p.Cosigned)
					}
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "main: %s\n", p.Main)
				if p.Checkpoint != nil && p.Unwitnessed {
					fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: remote %s names no witnesses: a split view (the server showing others another history) cannot be detected\ncairn: hint: a remote trusts the witnesses named when it is added: cairn remote add NAME URL --introduction ID --witness VKEY [--quorum K]\n", p.Remote)
				}
				return nil
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&js, "json", false, "print JSON")
	c.Flags().BoolVar(&discard, "discard-local", false, "give up main's commits the remote lacks (a publish it refused) before pulling")
	return c
}

func newPushCmd() *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:   "push REMOTE",
		Short: "Upload the blobs main's new records refer to, then push main",
		Long: `Push main's commits that the remote lacks: first the blobs they refer to that
this repository holds (each upload signed with your key, which the remote's root
must have granted a publish or certify scope), then the commits, which the server checks
against every rule. If someone pushed first, your commits are replayed onto the
remote's verified head — every rule checked again — and pushed again (a bounded
number of times, waiting a little longer each time). Commits made long before
the push (offline) are replayed too, dated now: a server refuses commits dated
further from its clock than its bound (5m by default), since grant expiry and
revocation are judged by commit time.

Exit 3 when the server refuses the records (the hint says what to do about the
rule it names); exit 1 when other pushes kept landing first: push again.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withKey(cmd, func(ctx context.Context, r *index.Repo, s keys.Signer) error {
				bar := newProgress(cmd.ErrOrStderr(), f.json, false)
				p, err := remote.Push(ctx, r, args[0], s, remote.Options{Progress: remoteProgress(bar)})
				bar.done()
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), p)
				}
				w := cmd.OutOrStdout()
				if p.Commits == 0 {
					fmt.Fprintf(w, "%s: nothing to push; main is at %s\n", p.Remote, p.Head)
					return nil
				}
				fmt.Fprintf(w, "%s: pushed %d commit(s), uploaded %d blob(s), rebased %d time(s): head %s\n", p.Remote, p.Commits, p.Uploaded, p.Rebased, p.Head)
				return nil
			})
		},
	}
	f.register(c, "the key that signs blob uploads (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	return c
}

func newPromoteCmd() *cobra.Command {
	var (
		f         changeFlags
		to        string
		artifacts []string
	)
	c := &cobra.Command{
		Use:   "promote NAME@VERSION --to REMOTE --artifacts binary",
		Short: "Copy a version to another index: descriptor and records unchanged, only the chosen artifacts' blobs",
		Long: `Publish a version of this repository in another index (a remote pinned by its
own introduction), typically binaries to a public index while the source stays
internal. The descriptor and records are copied byte for byte, so every
signature over them still holds; only the blobs of the artifacts named by
--artifacts (binary, source, all, a platform, a file name) are uploaded —
the others, listed in the descriptor, are not sent.

The publisher's key must be granted a publish scope there; records whose issuer
the other index does not grant are left behind and listed. The other index's
rules are checked here before anything is sent, and again by its server.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError{errors.New("name the remote to promote to: --to REMOTE")}
			}
			return f.withKey(cmd, func(ctx context.Context, r *index.Repo, s keys.Signer) error {
				bar := newProgress(cmd.ErrOrStderr(), f.json, false)
				p, err := remote.Promote(ctx, r, args[0], to, artifacts, s, remote.Options{Progress: remoteProgress(bar)})
				bar.done()
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), p)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "promoted %s to %s: %d record(s), artifacts %s, uploaded %d blob(s): head %s\n",
					p.Version, p.Remote, len(p.Records), strings.Join(p.Artifacts, ", "), p.Uploaded, p.Head)
				for _, ref := range p.Withheld {
					fmt.Fprintf(w, "not sent: sha256:%s (%d bytes)\n", ref.SHA256, ref.Size)
				}
				for _, l := range p.Left {
					fmt.Fprintf(w, "left behind: %s record %.16s: %s\n", l.Kind, l.Record, record.OneLine(l.Reason))
				}
				return nil
			})
		},
	}
	f.register(c, "the publisher's key: signs the uploads (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	c.Flags().StringVar(&to, "to", "", "the remote (another index) to promote to")
	c.Flags().StringArrayVar(&artifacts, "artifacts", nil, "which artifacts to send: binary, source, all, a platform or a file name (repeatable)")
	return c
}

// undoMaking returns what removes what is made at dir from now on: dir
// itself if it is not there yet, else the entries it does not hold yet
// (a command that fails leaves nothing half-made).
func undoMaking(dir string) func() {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return func() { os.RemoveAll(dir) }
	}
	before := map[string]bool{}
	for _, e := range entries {
		before[e.Name()] = true
	}
	return func() {
		now, _ := os.ReadDir(dir)
		for _, e := range now {
			if !before[e.Name()] {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}
