package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/evidence"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/witness"
)

func newEvidenceCmd() *cobra.Command {
	var (
		dir, out  string
		withBlobs bool
	)
	c := &cobra.Command{
		Use:   "evidence [--dir PROJECT] [--with-blobs] -o FILE",
		Short: "Write one file that proves the locked build plan offline",
		Long: `Write an evidence bundle (docs/evidence.md): one file that proves, with no
network and no repository, which bytes cairn.lock pins and who vouched for each,
judged by the project's policy. Every repository is read as a light client reads
it (its checkpoint and witness cosignatures checked, every read proved), the
lock is checked against what that gives (as cairn install does), and the bundle
keeps those reads, cairn.yaml, cairn.lock and the policy, the descriptors and
snapshot the lock names (with --with-blobs every artifact too), each record's
offline proof, and the policy's verdicts.

A plan the policy refuses is written too, its verdicts saying so, and the command
exits 3. 'cairn evidence verify FILE' checks a bundle on any machine, offline.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("name the bundle's file with -o FILE (for example build.evidence)")}
			}
			var buf bytes.Buffer
			made, refused := evidence.Make(cmd.Context(), &buf, evidence.Options{Dir: dir, WithBlobs: withBlobs, MadeBy: "cairn " + currentVersion().Version})
			var re *policy.RefusedError
			if refused != nil && !errors.As(refused, &re) {
				return refused
			}
			if err := safefile.Write(out, buf.Bytes(), safefile.Options{Perm: 0o644}); err != nil {
				return err
			}
			m := made.Manifest
			allowed := 0
			for _, v := range m.Verdicts {
				if v.Allowed {
					allowed++
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s: %d packages, %s, judged at %s", out, len(m.Verdicts), bytesText(made.Size), m.JudgedAt.Format("2006-01-02T15:04:05Z"))
			if m.Policy != "" {
				fmt.Fprintf(w, " under %s: %d allowed, %d refused", m.Policy, allowed, len(m.Verdicts)-allowed)
			}
			fmt.Fprintln(w)
			return refused
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "the project directory (holding cairn.yaml and cairn.lock)")
	c.Flags().StringVarP(&out, "output", "o", "", "the bundle's file, written atomically")
	c.Flags().BoolVar(&withBlobs, "with-blobs", false, "put every locked artifact into the bundle too")
	c.AddCommand(newEvidenceVerifyCmd(false), newEvidenceVerifyCmd(true))
	return c
}

// newEvidenceVerifyCmd is 'cairn evidence verify' or, with show, 'cairn
// evidence show': the same checks, the whole report.
func newEvidenceVerifyCmd(show bool) *cobra.Command {
	var (
		pol     string
		js      bool
		maxSize int64
		atText  string
		intros  []string
		wits    []string
		quorum  int
		trustIt bool
	)
	use, short := "verify FILE --introduction ID... [--witness VKEY... [--quorum K]] [--policy FILE] [--at TIME] [--json]", "Check an evidence bundle with no network: every verdict derived again"
	if show {
		use, short = "show FILE --introduction ID... [--witness VKEY... [--quorum K]] [--json]", "Check an evidence bundle, then show every package, artifact, record and proof"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long: `Check an evidence bundle that 'cairn evidence' wrote, with no network and no
repository (docs/evidence.md, Verifying): the file (every member listed, sized and
hashed), the lock (its digest, made from the bundle's cairn.yaml and policy), each
repository's checkpoint as a light client checks a server's (its key granted by the
root history, the witness quorum cairn.yaml names, its map leaf), each locked
package's document proved complete, the lock resolved again from them, each
descriptor's bytes, each record's offline proof, and the policy's verdicts, which
must be the ones the bundle claims. --policy judges the plan under another policy
instead; --at TIME (RFC 3339, or a date: its first second, UTC) judges it as the
indexes stood then (only what was appended by then counts; no later than the
bundle's newest checkpoint).

The bundle's cairn.yaml names the indexes and witnesses it was made from, and
whoever made the bundle wrote it: name those you trust. --introduction ID (one
per repository, as its owner publishes it) pins each index by the id of its
first root record, which names its root keys; a bundle of any other index is
refused. --witness VKEY (with --quorum K, default all) requires every checkpoint
cosigned by your witnesses too. --insecure-trust-bundle takes the bundle's word
for the indexes: the report then shows only that the bundle agrees with itself.

verify prints each package's verdict and the records that decided it; show prints
every artifact and record too. Exit status: 0 when the bundle is sound and every
package allowed; 3 when it is not sound, or the policy refuses a package.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			shortGC()     // reads a few MiB of documents and proofs, then ends
			f := os.Stdin // "-": the bundle on stdin, as cairn proof verify reads a proof
			var err error
			if args[0] != "-" {
				if f, err = os.Open(args[0]); err != nil {
					return err
				}
				defer f.Close()
			}
			o := evidence.VerifyOptions{Policy: pol, MaxSize: maxSize, Introductions: intros, TrustBundle: trustIt}
			if len(wits) > 0 {
				if quorum, err = witnessQuorum(len(wits), quorum, cmd.Flags().Changed("quorum")); err != nil {
					return err
				}
				if o.Witnesses, err = witness.NewPolicy(wits, quorum); err != nil {
					return usageError{err}
				}
			}
			if atText != "" {
				if o.At, err = parseAt(atText); err != nil {
					return usageError{err}
				}
			}
			rep, err := evidence.Verify(cmd.Context(), f, o)
			var re *policy.RefusedError
			if err != nil && !errors.As(err, &re) {
				return err
			}
			w := cmd.OutOrStdout()
			if !rep.Pinned {
				fmt.Fprintln(cmd.ErrOrStderr(), "cairn: warning: the indexes were named by the bundle itself (--insecure-trust-bundle): this shows only that the bundle agrees with itself; pin them with --introduction ID")
			}
			if len(wits) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "cairn: warning: the witnesses counted are those the bundle's cairn.yaml names, its maker's word: name those you trust with --witness VKEY")
			}
			if js {
				if perr := printJSON(w, rep); perr != nil {
					return perr
				}
				return err
			}
			printEvidence(w, args[0], rep, show)
			return err
		},
	}
	if !show {
		c.Flags().StringVar(&pol, "policy", "", "judge the plan under this policy file instead of the bundle's")
		c.Flags().StringVar(&atText, "at", "", "judge the plan as the indexes stood at this time (RFC 3339, or YYYY-MM-DD)")
	}
	c.Flags().StringArrayVar(&intros, "introduction", nil, "an index you trust, by its introduction (repeatable: one per repository of the bundle)")
	c.Flags().StringArrayVar(&wits, "witness", nil, "the verifier key of a witness you trust to have cosigned every checkpoint (repeatable)")
	c.Flags().IntVar(&quorum, "quorum", 0, "how many of the --witness keys must have cosigned (default: all)")
	c.Flags().BoolVar(&trustIt, "insecure-trust-bundle", false, "take the bundle's cairn.yaml for which indexes to trust (it then proves only that it agrees with itself)")
	c.Flags().BoolVar(&js, "json", false, "print the report as JSON")
	c.Flags().Int64Var(&maxSize, "max-size", evidence.DefaultMaxSize, "refuse a bundle whose members add up to more bytes")
	return c
}

// parseAt reads --at: an RFC 3339 time, or a date (its first second, UTC).
func parseAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse("2006-01-02", s)
	}
	if err == nil && t.IsZero() {
		// The zero time is no --at at all to the verifier.
		return time.Time{}, fmt.Errorf("--at %q: the first instant of year 1 is before any index began", s)
	}
	if err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--at %q: want an RFC 3339 time (2026-11-29T12:00:00Z) or a date (2026-11-29)", s)
}

// printEvidence writes a bundle's report as people read it.
func printEvidence(w io.Writer, file string, rep *evidence.Report, all bool) {
	fmt.Fprintf(w, "%s: sound: %d packages, judged at %s", file, len(rep.Packages), rep.JudgedAt.Format("2006-01-02T15:04:05Z"))
	if rep.Policy != "" {
		fmt.Fprintf(w, " under %s", rep.Policy)
		if rep.PolicySHA256 != "" {
			fmt.Fprintf(w, " (sha256:%s)", rep.PolicySHA256)
		}
	}
	fmt.Fprintln(w)
	if !rep.At.IsZero() {
		fmt.Fprintf(w, "judged as of %s: only what the indexes held then counts\n", rep.At.Format("2006-01-02T15:04:05Z"))
	}
	for _, r := range rep.Repositories {
		if r.Line != "" {
			fmt.Fprintf(w, "upstream line %s (through %s): introduction %s, checkpoint of %d leaves, head %.12s, signed %s by the upstream's key %s, witnessed by none\n", r.Name, r.Line, r.Introduction, r.Size, r.Head, r.Time, r.Key)
			continue
		}
		fmt.Fprintf(w, "repository %s (%s) introduction %s: checkpoint of %d leaves, head %.12s, signed %s by %s", r.Name, r.URL, r.Introduction, r.Size, r.Head, r.Time, r.Key)
		switch {
		case r.WitnessesPinned:
			fmt.Fprintf(w, ", cosigned by %s (your quorum %d)\n", strings.Join(r.Cosigners, ", "), r.Quorum)
		case r.Unwitnessed:
			fmt.Fprintln(w, ", cosigned by no witness the project trusts (a split view could not be detected)")
		default:
			fmt.Fprintf(w, ", cosigned by %s (the project's quorum %d)\n", strings.Join(r.Cosigners, ", "), r.Quorum)
		}
		if r.LockedProved {
			fmt.Fprintf(w, "  the lock's head %.12s is proved in that history\n", r.LockedHead)
		}
	}
	for _, p := range rep.Packages {
		word := "allowed"
		if p.Verdict != nil && !p.Verdict.Allowed {
			word = "REFUSED"
		} else if p.Verdict == nil {
			word = "no policy"
		}
		fmt.Fprintf(w, "%s  %s  descriptor sha256:%s (%d bytes)\n", p.ID, word, p.Descriptor.SHA256, p.Descriptor.Size)
		if all {
			for _, a := range p.Artifacts {
				fmt.Fprintf(w, "  artifact %s %s %s  sha256:%s (%d bytes)\n", a.Platform, a.Kind, a.File, a.SHA256, a.Size)
			}
		}
		if p.Verdict != nil {
			for _, r := range p.Verdict.Rules {
				if !r.Applies && !all {
					continue
				}
				mark := "pass"
				switch {
				case r.Warning:
					mark = "warning"
				case !r.Pass:
					mark = "FAIL"
				}
				fmt.Fprintf(w, "  %s %s %s: %s\n", r.Mode, r.Rule, mark, r.Reason)
			}
		}
		for _, r := range p.Records {
			if !all && !decided(p, r.ID) {
				continue
			}
			fmt.Fprintf(w, "    record %.16s  %s by %s", r.ID, r.Kind, r.Issuer)
			if r.Holder != "" {
				fmt.Fprintf(w, " (%s)", r.Holder)
			}
			fmt.Fprintf(w, ", %s, %s, leaf %d of %d\n", r.Status, r.Time.UTC().Format("2006-01-02T15:04:05Z"), r.Leaf, r.Tree)
			if k := r.Key; k != nil {
				for _, g := range k.Grants {
					fmt.Fprintf(w, "      key granted %s (leaf %d, record %.16s): %s", g.Time.Format("2006-01-02T15:04:05Z"), g.Leaf, g.Record, strings.Join(g.Scopes, " "))
					if g.Expires != nil {
						fmt.Fprintf(w, ", until %s", g.Expires.UTC().Format("2006-01-02T15:04:05Z"))
					}
					fmt.Fprintln(w)
				}
				if k.RevokedBy != "" {
					fmt.Fprintf(w, "      key revoked at leaf %d (record %.16s: %s), after this record\n", k.RevokedLeaf, k.RevokedBy, record.OneLine(k.Reason))
				}
			}
			if r.Source != nil {
				fmt.Fprintf(w, "      binds %s to the source sha256:%s (%d bytes), which the bundle need not hold\n", strings.Join(r.Artifacts, ", "), r.Source.SHA256, r.Source.Size)
			}
		}
	}
	if rep.Blobs {
		fmt.Fprintln(w, "the bundle holds every locked artifact, each checked against the lock")
	}
	if rep.SBOMSHA512 {
		fmt.Fprintf(w, "%s: the lock's CycloneDX SBOM, derived again, each SHA-512 checked against its artifact\n", evidence.SBOMName)
	} else {
		fmt.Fprintf(w, "%s: the lock's CycloneDX SBOM, derived again; its SHA-512s are not checked (the bundle holds no artifacts: make it with --with-blobs)\n", evidence.SBOMName)
	}
}

// decided reports whether a record decided a rule of the package's verdict.
func decided(p evidence.PackageProof, id string) bool {
	if p.Verdict == nil {
		return false
	}
	for _, r := range p.Verdict.Rules {
		for _, rid := range r.Records {
			if rid == id {
				return true
			}
		}
	}
	return false
}

// witnessQuorum is how many of a verifier's n --witness keys must have
// cosigned: all of them unless --quorum says (changed); --quorum 0 with
// --witness names witnesses and counts none, and is refused.
func witnessQuorum(n, quorum int, changed bool) (int, error) {
	if !changed {
		return n, nil
	}
	if quorum == 0 && n > 0 {
		return 0, usageError{fmt.Errorf("--quorum 0 counts none of the %d --witness key(s): give 1 to %d (default: all of them), or name no witness", n, n)}
	}
	return quorum, nil
}
