package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/osv"
	"cairn.dev/cairn/internal/record"
)

func newShowCmd() *cobra.Command {
	var (
		repo   string
		asJSON bool
		asOSV  bool
		lf     lightFlags
	)
	c := &cobra.Command{
		Use:   "show NAME[@VERSION]",
		Short: "Show a package's versions, artifacts and every record about them, with its status",
		Long: `Show a package (or one version): its descriptor, artifacts with digests, and
every record about it — kind, issuer (holder and key), when it was appended,
and its status: active, revoked, superseded, or "issuer key revoked" (signed
before the key's revocation, so still valid, but worth a look).

With --url, a server is read as a light client, with no repository: the
package's files proved complete against the server's signed checkpoint and
judged by the index's rules, the checkpoint checked against the one verified
last (and against --witness cosignatures). A package an organisation's server
takes from an upstream is read through the upstream's line on that server,
proved against the upstream's own checkpoint, with the server's records about it.
A version the server's policy refuses to serve (cairn serve --policy) is marked
"server  refused by the server's policy P: rule R, the server says: reason (its
word, not proved)" (--json: refused_by_server).

With --osv, the active vulnerable records of the version(s) are printed as a
JSON list of OSV records (https://ossf.github.io/osv-schema/), one per
vulnerability: id, aliases, summary, CVSS vectors, affected ranges and
references as the record keeps them, and database_specific.cairn naming the
version and the record.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asOSV && (lf.url != "" || asJSON) {
				return usageError{errors.New("--osv prints this repository's records as OSV: it goes without --url and --json")}
			}
			// A name that cannot be a package's is said before anything
			// is read (as a usage error, not as a file to fix).
			if name, _ := descriptor.SplitID(args[0]); descriptor.CheckName(name) != nil {
				return usageError{fmt.Errorf("%q is not a package name: want namespace/name (acme/fastjson) or a Go module path (example.com/greet), with @VERSION if you like", args[0])}
			}
			if lf.url != "" {
				name, version := descriptor.SplitID(args[0])
				return showLight(cmd.Context(), cmd, &lf, name, version, asJSON)
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				name, version := descriptor.SplitID(args[0])
				views, err := r.Show(ctx, name, version)
				if errors.Is(err, fs.ErrNotExist) {
					return showUpstream(ctx, cmd.OutOrStdout(), r, name, version, asJSON, err)
				}
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), views)
				}
				if asOSV {
					return printJSON(cmd.OutOrStdout(), osvOf(views))
				}
				for i, v := range views {
					if i > 0 {
						fmt.Fprintln(cmd.OutOrStdout())
					}
					printVersion(cmd.OutOrStdout(), v, "", "")
				}
				return nil
			})
		},
	}
	repoFlag(c, &repo)
	lf.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&asOSV, "osv", false, "print the active vulnerable records as OSV records (JSON)")
	return c
}

// osvOf is the OSV records of the views' active vulnerable records.
func osvOf(views []index.VersionView) []*osv.Entry {
	out := []*osv.Entry{}
	for _, v := range views {
		for _, rv := range v.Records {
			if rv.Record != nil && rv.Status.Active() {
				out = append(out, osv.ExportRecord(rv.Record, v.Name, v.Version)...)
			}
		}
	}
	return out
}

// printVersion prints a version; from, if set, says where it comes from,
// and refused why the server read refuses to serve it.
func printVersion(w io.Writer, v index.VersionView, from, refused string) {
	d := v.Descriptor
	fmt.Fprintf(w, "%s@%s\n", v.Name, v.Version)
	if from != "" {
		fmt.Fprintf(w, "  from        %s\n", from)
	}
	if refused != "" {
		fmt.Fprintf(w, "  server      %s\n", refused)
	}
	fmt.Fprintf(w, "  uuid        %s\n", d.UUID)
	// The publisher's words, on one line each: a summary's line break
	// would add lines that read as records.
	if d.Summary != "" {
		fmt.Fprintf(w, "  summary     %s\n", record.OneLine(d.Summary))
	}
	if d.License != "" {
		fmt.Fprintf(w, "  license     %s\n", record.OneLine(d.License))
	}
	fmt.Fprintf(w, "  descriptor  sha256:%s (%d bytes)\n", v.Ref.SHA256, v.Ref.Size)
	if g := d.Go; g != nil { // a Go module: its go.sum lines
		fmt.Fprintf(w, "  go.sum      %s %s %s\n", g.Module, g.Version, g.Sum)
		fmt.Fprintf(w, "              %s %s/go.mod %s\n", g.Module, g.Version, g.ModSum)
	}
	for _, dep := range d.Dependencies {
		fmt.Fprintf(w, "  depends on  %s %s\n", dep.Name, dep.Version)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  artifacts:")
	for _, a := range d.Artifacts {
		fmt.Fprintf(tw, "    %s\t%s\tsha256:%s\t%d bytes\n", a.Label(), a.File, a.SHA256, a.Size)
	}
	tw.Flush()
	fmt.Fprintln(w, "  records:")
	printRecords(w, v.Records)
}

// showUpstream shows a package that is not published in r but by an
// upstream it follows (index.Repo.ShowUpstreamPackage: internal names
// win); notHere is r's own answer, kept when r follows no upstream.
func showUpstream(ctx context.Context, w io.Writer, r *index.Repo, name, version string, asJSON bool, notHere error) error {
	if ups, err := r.Followed(ctx); err != nil {
		return err
	} else if len(ups) == 0 {
		return notHere
	}
	views, err := r.ShowUpstreamPackage(ctx, name, version)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, views)
	}
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printVersion(w, v.VersionView, fmt.Sprintf("upstream %s, verified at %s", v.Upstream, v.Head), "")
		if len(v.Local) == 0 {
			fmt.Fprintf(w, "  no record of %s about it\n", r.Dir)
		} else {
			fmt.Fprintf(w, "  records of %s about it:\n", r.Dir)
			printRecords(w, v.Local)
		}
	}
	return nil
}

// printRecords prints records as a table, one a line.
func printRecords(w io.Writer, recs []index.RecordView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range recs {
		kind := r.Kind
		if len(r.Artifacts) > 0 {
			kind += " [" + strings.Join(r.Artifacts, ",") + "]"
		}
		status := r.Status.String()
		if r.EndedBy != "" {
			status += " by " + r.EndedBy[:16]
		}
		issuer := r.Holder
		if r.Issuer != "root" {
			issuer += " (" + r.Issuer + ")"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", r.ID[:16], r.Time.Format(time.RFC3339), kind, issuer, status, r.Detail)
	}
	tw.Flush()
}

func newLogCmd() *cobra.Command {
	var (
		repo   string
		limit  int
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "log",
		Short: "Print the audit trail, newest first: every commit and the records it added",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				return printLog(ctx, cmd.OutOrStdout(), r, limit, asJSON)
			})
		},
	}
	repoFlag(c, &repo)
	c.Flags().IntVarP(&limit, "max-count", "n", 0, "show at most this many commits")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(newLogPublishCmd())
	return c
}

func printLog(ctx context.Context, w io.Writer, r *index.Repo, limit int, asJSON bool) error {
	var all []index.LogEntry
	err := r.Log(ctx, limit, func(e index.LogEntry) error {
		if asJSON {
			all = append(all, e)
			return nil
		}
		fmt.Fprintf(w, "commit %s  %s\n", e.Commit, e.Time.Format(time.RFC3339))
		// The records are the signed part; git's committer and message
		// are anyone's words: one quoted line, after them, so that no
		// message reads as a record line.
		if len(e.Records) == 0 {
			fmt.Fprintf(w, "    (adds no file)\n")
		}
		for _, rec := range e.Records {
			switch {
			case rec.ID == "":
				fmt.Fprintf(w, "    + %-13s %s\n", rec.Kind, rec.Subject)
			default:
				fmt.Fprintf(w, "    + %-13s %s  record %.16s  by %s\n", rec.Kind, rec.Subject, rec.ID, rec.Issuer)
			}
		}
		first, rest, more := strings.Cut(e.Message, "\n")
		fmt.Fprintf(w, "    git, unsigned: %s %s", strconv.Quote(e.Author), strconv.Quote(first))
		if more {
			fmt.Fprintf(w, " (and %d more lines)", strings.Count(rest, "\n")+1)
		}
		fmt.Fprintln(w)
		return nil
	})
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, all)
	}
	return nil
}

func newVerifyCmd() *cobra.Command {
	var (
		repo         string
		full, asJSON bool
	)
	c := &cobra.Command{
		Use:   "verify",
		Short: "Replay every rule over the index's history (only what is new, unless --full)",
		Long: `Verify the index: every commit after the last verified head is checked against
every rule (append-only, signatures by granted keys with the right scope,
versions published once, revocations by their issuer, root thresholds), with
signatures checked in parallel on all cores. The verified head is remembered;
a head that does not descend from it (history rewritten) is refused.
--full replays everything from the introduction.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Not withRepo: verifying is the command itself.
			r, err := openRepo(cmd.Context(), repo)
			if err != nil {
				return err
			}
			defer r.Close()
			return runVerify(cmd.Context(), cmd, r, full, asJSON)
		},
	}
	repoFlag(c, &repo)
	c.Flags().BoolVar(&full, "full", false, "replay everything from the introduction")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runVerify(ctx context.Context, cmd *cobra.Command, r *index.Repo, full, asJSON bool) error {
	l := r.Main()
	bar := newProgress(cmd.ErrOrStderr(), asJSON, false)
	if bar != nil {
		l.Progress = verifyProgress(bar)
	}
	res, err := r.VerifyLine(ctx, l, full)
	bar.done()
	if err != nil {
		return err
	}
	defer warnUnsaved(cmd.ErrOrStderr(), res)
	w := cmd.OutOrStdout()
	if asJSON {
		return printJSON(w, struct {
			*index.VerifyResult
			PeakRSS float64 `json:"peak_rss_mib"` // this process, not its git children
		}{res, peakRSS()})
	}
	from := "the introduction"
	if res.From != "" {
		from = res.From[:12]
	}
	if res.Commits == 0 && !full {
		fmt.Fprintf(w, "ok: head %s already verified (%d files)\n", res.Head, res.Total)
		return nil
	}
	fmt.Fprintf(w, "ok: verified %d commits, %d files from %s to head %s in %s\n", res.Commits, res.Records, from, res.Head, res.Duration.Round(time.Millisecond))
	return nil
}

func newRootCmd() *cobra.Command {
	c := &cobra.Command{Use: "root", Short: "Manage the repository's root of trust"}
	var (
		f         changeFlags
		af        actFlags
		next      []string
		threshold int
	)
	rotate := &cobra.Command{
		Use:   "rotate --key OLD... --new-root-key NEW... --threshold N",
		Short: "Replace the root keys: signed by a threshold of the old root keys and of the new",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(next) == 0:
				return usageError{fmt.Errorf("name the new root keys (--new-root-key, private key files: they sign too) and --threshold")}
			case threshold < 1:
				return usageError{fmt.Errorf("--threshold %d: the new threshold is at least 1 (and at most the %d new root key(s))", threshold, len(next))}
			case threshold > len(next):
				return usageError{fmt.Errorf("--threshold %d is more than the %d new root key(s) named (--new-root-key): no act could ever reach it", threshold, len(next))}
			}
			if af.unsigned {
				pubs, err := publicKeys(next)
				if err != nil {
					return err
				}
				_, err = af.prepare(cmd, &f, func(ctx context.Context, r *index.Repo) (*author.Act, error) {
					warnGrantedRootKeys(ctx, cmd, r, pubs, threshold)
					return author.PrepareRotateRoot(ctx, r, pubs, threshold, af.window)
				})
				return err
			}
			news, err := signers(next)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, olds []keys.Signer) (*changed, error) {
				pubs := make([]ed25519.PublicKey, len(news))
				for i, s := range news {
					pubs[i] = s.Public()
				}
				warnGrantedRootKeys(ctx, cmd, r, pubs, threshold)
				a, err := author.RotateRoot(ctx, r, olds, news, threshold)
				return &changed{added: a, headline: fmt.Sprintf("rotated the root: %d key(s), threshold %d", len(news), threshold)}, err
			})
		},
	}
	f.register(rotate, "a current root key file (repeat for the threshold)")
	af.register(rotate)
	rotate.Flags().StringArrayVar(&next, "new-root-key", nil, "a new root key file (repeatable)")
	rotate.Flags().IntVar(&threshold, "threshold", 0, "the new threshold")
	c.AddCommand(rotate, newRootSignCmd(), newRootApplyCmd())
	return c
}

// warnGrantedRootKeys warns of each new root key that the root has
// granted as a signing key too (a publisher's, a CI service's): a key
// used every day is exposed every day, and with a threshold it meets
// alone it could grant itself anything (publish:*).
func warnGrantedRootKeys(ctx context.Context, cmd *cobra.Command, r *index.Repo, pubs []ed25519.PublicKey, threshold int) {
	cat, err := r.Catalog(ctx, index.MainRef)
	if err != nil {
		return
	}
	for _, pub := range pubs {
		id := keys.ID(pub)
		k, err := cat.Key(id)
		if err != nil || k == nil || k.RevokedBy != "" || len(k.Grants) == 0 {
			continue
		}
		alone := ""
		if threshold == 1 {
			alone = "; with threshold 1 it alone could grant any key any scope"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: new root key %s is also granted as %s's signing key (%s): a key that signs every day is exposed every day%s; give the root a key of its own\n", id, k.Holder(), strings.Join(k.Grants[0].Raw, ", "), alone)
	}
}

// peakRSS is this process's peak resident set size in MiB. On Linux it
// is VmHWM: getrusage's maxrss keeps the high-water mark of the address
// space the process was forked with, which can be its parent's.
func peakRSS() float64 {
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				return kb / 1024
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
