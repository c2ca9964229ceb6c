package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/install"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
)

// projectFlags are the flags of the commands that work on a project.
type projectFlags struct {
	dir      string
	cache    string
	offline  bool
	verified bool
	json     bool
	cmd      *cobra.Command // for warnings
	// server, for the commands that may read a server instead of a
	// project (--url), and wants, the packages they ask about then.
	server *lightFlags
	wants  []plan.Want
}

// registerServer adds --url, --introduction, --witness and --quorum:
// the command reads one server as a light client instead of cairn.yaml.
func (f *projectFlags) registerServer(c *cobra.Command) {
	f.server = &lightFlags{}
	f.server.registerServer(c, "instead of cairn.yaml")
}

// viaServer reports whether the command reads a server (--url) rather
// than a project.
func (f *projectFlags) viaServer() bool { return f.server != nil && f.server.url != "" }

func (f *projectFlags) register(c *cobra.Command) {
	f.cmd = c
	fl := c.Flags()
	fl.StringVar(&f.dir, "dir", ".", "the project directory (holding cairn.yaml)")
	fl.StringVar(&f.cache, "cache", "", "the cache of verified indexes and blobs (default $CAIRN_CACHE, else the user cache directory)")
	fl.BoolVar(&f.offline, "offline", false, "use the cache as last verified; ask no repository's server (install reads a blob the cache lacks from the mirrors cairn.yaml names, or fails)")
	fl.BoolVar(&f.json, "json", false, "print JSON")
}

// project is a project opened: its file, its verified sources, its policy.
type project struct {
	*plan.Project
	srcs  plan.Sources
	pol   *policy.Policy
	cache string
	at    time.Time // the judgment time: when the command started
}

func (f *projectFlags) open(ctx context.Context, policyFile string) (*project, error) {
	at := time.Now()
	var p *plan.Project
	var err error
	if f.viaServer() {
		r, err := f.server.repository()
		if err != nil {
			return nil, err
		}
		if p, err = plan.ServerProject(".", r, f.wants, policyFile); err != nil {
			return nil, usageError{err}
		}
		policyFile = ""
	} else if p, err = plan.ReadProject(f.dir); err != nil {
		return nil, err
	}
	if f.verified || p.Verified {
		if err := p.CheckVerified(); err != nil {
			return nil, err
		}
		p.Verified = true // resolution pins the whole closure too
	}
	cache := f.cache
	if cache == "" {
		if cache, err = plan.DefaultCache(); err != nil {
			return nil, err
		}
	}
	o := plan.Options{Cache: cache, Offline: f.offline}
	if f.cmd != nil {
		var mu sync.Mutex
		stderr := f.cmd.ErrOrStderr()
		o.Warn = func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stderr, "cairn: warning: %s\n", msg)
		}
	}
	srcs, err := plan.Open(ctx, p, o)
	if err != nil {
		return nil, err
	}
	for _, s := range srcs {
		if s.View != nil && s.View.Unwitnessed && s.Via == nil && f.cmd != nil {
			where := "in " + plan.ProjectFile + ": witnesses: [VKEY, …] and quorum: K"
			if f.server != nil && f.server.url != "" {
				where = "with --witness VKEY (once each) and --quorum K"
			}
			fmt.Fprintf(f.cmd.ErrOrStderr(), "cairn: warning: repository %s names no witnesses: a split view (the server showing others another history) cannot be detected\ncairn: hint: name the witnesses you trust %s\n", s.Name, where)
		}
	}
	pol, err := plan.LoadPolicy(p, policyFile, srcs)
	if err == nil {
		err = plan.CheckIssuers(pol, srcs, o.Warn)
	}
	if err != nil {
		srcs.Close()
		return nil, err
	}
	return &project{Project: p, srcs: srcs, pol: pol, cache: cache, at: at}, nil
}

// checked reads the project's lock and checks it against the project and
// the verified indexes (fs.ErrNotExist when there is none).
func (pr *project) checked(ctx context.Context) (*plan.Lock, error) {
	l, perr := plan.ReadLock(pr.Dir)
	if l == nil {
		return nil, perr
	}
	return l, plan.Check(ctx, pr.Project, l, perr, pr.srcs)
}

// errVerifiedNoLock refuses, in verified mode, a project with no lock:
// a refusal (exit 3), as verified mode's others are.
var errVerifiedNoLock = errors.New("verified mode installs a lock only")

// lock returns the project's lock, checked; with none (and not in
// verified mode), a fresh resolution, which fresh reports.
func (pr *project) lock(ctx context.Context, f *projectFlags) (l *plan.Lock, fresh bool, err error) {
	if f.viaServer() {
		// A server's project has no lock: it is resolved now.
		l, err = plan.Resolve(ctx, pr.Project, pr.srcs)
		return l, true, err
	}
	l, err = pr.checked(ctx)
	if !errors.Is(err, fs.ErrNotExist) {
		return l, false, err
	}
	if f.verified || pr.Verified {
		return nil, false, fmt.Errorf("%w, and %s has no %s", errVerifiedNoLock, pr.Dir, plan.LockFile)
	}
	l, err = plan.Resolve(ctx, pr.Project, pr.srcs)
	return l, true, err
}

// shortGC sets the garbage collector of a command that reads much and
// ends soon (a lock reading hundreds of documents with their proofs):
// the heap may grow to five times what is live before a collection
// (GOGC=400), not twice, unless GOGC or GOMEMLIMIT says otherwise. A quarter less CPU
// in a light lock of 200 packages, for a few MiB more.
func shortGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(400)
	}
}

// evaluate judges every package of l by the project's policy, at the
// command's start.
func (pr *project) evaluate(l *plan.Lock) ([]*policy.Verdict, error) {
	return plan.Evaluate(l, pr.srcs, pr.pol, pr.at)
}

// enforce judges every package of l, as evaluate, and prints each
// failing warn rule as a warning: it refuses nothing.
func (pr *project) enforce(w io.Writer, l *plan.Lock) error {
	verdicts, err := pr.evaluate(l)
	for _, v := range verdicts {
		for _, r := range v.Warnings() {
			fmt.Fprintf(w, "cairn: warning: %s: %s %s (%s:%d, enforcement warn): %s\n", v.Package, r.Mode, r.Rule, pr.pol.File, r.Line, r.Reason)
		}
	}
	return err
}

func newLockCmd() *cobra.Command {
	var f projectFlags
	var check bool
	cmd := &cobra.Command{
		Use:   "lock [--check]",
		Short: "Resolve cairn.yaml into cairn.lock: every package by digest and size",
		Long: `Read cairn.yaml, verify each repository (a server is read as a light client:
its signed checkpoint checked, every read proved against it, no clone and no git
binary needed; with light: false its index is pulled into the cache and
replayed from its introduction, its checkpoint checked), resolve the
snapshot and the extra packages to the transitive closure, check the policy, and
write cairn.lock: for each package its version, repository, descriptor sha256 and
size and the artifact chosen for each platform; the snapshot, the index heads and
each server's signed checkpoint it was resolved against; and a digest of the
lock's own content. The same inputs give the same bytes: a checkpoint of a head
that has not moved is kept from the previous lock.

cairn.yaml:

  repositories:
    - {name: acme, url: https://cairn.acme.example, introduction: 64-HEX}   # or path: DIR
      light: false                     # a full replica in the cache (default: read with proofs, no clone;
                                       # offline: what was proved last)
      witnesses: [VKEY, …]             # witnesses trusted to cosign its checkpoints
      quorum: 1                        # how many must have (default: all)
  snapshot: lts-1.0                    # a label, or {name, sha256, size}
  packages:
    acme/extra: ^1.2                   # a semver range, or {version, sha256, size}
  policy: policy.yaml
  platforms: [linux-amd64]
  verified: false                      # true: refuse whatever is not pinned by hash

A repository's mirrors: (and a path: repository's cairn.json blobs:) that name
an object store (s3://, gs://, azblob://) are read with the credentials in your
environment: read a cairn.yaml from elsewhere before you use it. A mirror is
opened read only: a URL with a parameter that writes or creates (create_dir=,
dir_file_mode=, …) is refused, and so is an object store endpoint over plain
http on another machine unless anonymous=true.

--check writes nothing: it resolves cairn.yaml again at exactly the index heads
cairn.lock pins (descriptors only, never archives; with --offline, from the
cache) and exits non-zero if cairn.lock is missing, stale (cairn.yaml or the
policy changed), edited (its digest), or says anything but what that resolution
gives — a package missing or extra, another version, descriptor or artifact, the
snapshot — naming each entry. A pinned head must be in the verified history of
the cached replica; for a light repository, the lock's checkpoint must be the
server's or one its log extends (a consistency proof), and a lock the server has
moved past is checked entry by entry at its latest head.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			shortGC()
			ctx := cmd.Context()
			pr, err := f.open(ctx, "")
			if err != nil {
				return err
			}
			defer pr.srcs.Close()
			// A line a package: written at once, not a write each.
			bw := bufio.NewWriter(cmd.OutOrStdout())
			defer func() {
				if ferr := bw.Flush(); err == nil && ferr != nil {
					err = fmt.Errorf("writing the output: %w", ferr)
				}
			}()
			w := io.Writer(bw)
			if check {
				l, err := pr.checked(ctx)
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%s is missing in %s: run cairn lock: %w", plan.LockFile, pr.Dir, err)
				}
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(w, l)
				}
				fmt.Fprintf(w, "%s is current: %d packages, %s\n", plan.LockFile, len(l.Packages), l.Digest)
				return nil
			}
			// The lock there is read (and its digest checked) while
			// the project is resolved, on another core.
			var prev *plan.Lock
			var prevErr error
			var reading sync.WaitGroup
			reading.Go(func() { prev, prevErr = plan.ReadLock(pr.Dir) })
			l, err := plan.ResolveToWrite(ctx, pr.Project, pr.srcs)
			reading.Wait()
			if err != nil {
				return err
			}
			if err := pr.enforce(cmd.ErrOrStderr(), l); err != nil {
				return err
			}
			for _, pkg := range l.Packages {
				// A name several repositories publish is the first's:
				// said, so that a namesake is not taken unseen.
				if s := pr.srcs.Get(pkg.Repository); s != nil {
					if also, err := pr.srcs.AlsoPublish(pkg.Name, s); err == nil && len(also) > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: %s is taken from repository %s, the first in %s that publishes it; %s publish(es) it too\ncairn: hint: if the package is another repository's, list that repository first in %s, or pin it by hash in %s (a namesake cannot meet the pin)\n", pkg.ID(), pkg.Repository, plan.ProjectFile, strings.Join(also, ", "), plan.ProjectFile, plan.ProjectFile)
					}
				}
			}
			if prevErr == nil {
				l.KeepCheckpoints(ctx, prev, pr.srcs)
			}
			written, err := plan.WriteLock(pr.Dir, l)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(w, l)
			}
			fmt.Fprintf(w, "locked %d packages", len(l.Packages))
			if s := l.Snapshot; s != nil {
				fmt.Fprintf(w, " (snapshot %s sha256:%.16s", s.Name, s.SHA256)
				if s.Label != "" {
					fmt.Fprintf(w, " via label %s", s.Label)
				}
				fmt.Fprint(w, ")")
			}
			if written {
				fmt.Fprintf(w, "\nwrote %s %s\n", filepath.Join(f.dir, plan.LockFile), l.Digest)
			} else {
				fmt.Fprintf(w, "\n%s unchanged %s\n", filepath.Join(f.dir, plan.LockFile), l.Digest)
			}
			for _, p := range l.Packages {
				fmt.Fprintf(w, "  %s  sha256:%.16s  %s\n", p.ID(), p.Descriptor.SHA256, strings.Join(p.ChosenBy, "; "))
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "only check that cairn.lock is present, current and unedited")
	cmd.Flags().BoolVar(&f.verified, "verified", false, "refuse any input not pinned by hash (a label, a range, a dependency that cairn.yaml and its snapshot do not pin)")
	return cmd
}

func newInstallCmd() *cobra.Command {
	var f projectFlags
	var into, platform string
	var jobs int
	cmd := &cobra.Command{
		Use:   "install [--verified] [--into DIR]",
		Short: "Fetch, verify, check policy and materialise the locked plan",
		Long: `Install cairn.lock's packages (resolving cairn.yaml first if there is no lock).
The lock is checked as lock --check does (cairn.yaml resolved again at the
index heads it pins, every entry compared), then every package against the policy as the index says now — a vulnerability certified
after the lock was written refuses the install. Blobs are fetched in parallel
into the shared cache from each repository's server, then its mirrors, each
verified by sha256 and size as it streams; archives are unpacked into a
staging directory (no path or link may leave it; no devices; size limits),
with a manifest of every file's origin, which then replaces DIR atomically.
With everything in the cache, nothing is fetched. --offline asks no repository's
server, not even for the index: a blob the cache lacks comes from the mirrors
cairn.yaml names (a bucket, a directory, another server's copy), or, with none,
fails the install at once.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pr, err := f.open(ctx, "")
			if err != nil {
				return err
			}
			defer pr.srcs.Close()
			w := cmd.OutOrStdout()
			l, fresh, err := pr.lock(ctx, &f)
			if err != nil {
				return err
			}
			if err := pr.enforce(cmd.ErrOrStderr(), l); err != nil {
				return err
			}
			if fresh {
				if _, err := plan.WriteLock(pr.Dir, l); err != nil {
					return err
				}
				if !f.json {
					fmt.Fprintf(w, "wrote %s: %d packages, %s\n", plan.LockFile, len(l.Packages), l.Digest)
				}
			}
			// A version the server refuses by its policy is said in its
			// words, not left to a 403 at the blob's fetch.
			if err := plan.CheckServed(ctx, l, pr.srcs); err != nil {
				return err
			}
			cache, err := blob.NewFS(filepath.Join(pr.cache, "blobs"))
			if err != nil {
				return err
			}
			if into == "" {
				into = filepath.Join(pr.Dir, "cairn_packages")
			}
			o := install.Options{Into: into, Cache: cache, Platform: platform, Jobs: jobs, Offline: f.offline}
			o.Waiting = func(lock string) {
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: waiting for another cairn install into %s to end (it holds %s)\n", into, lock)
			}
			bar := newProgress(cmd.ErrOrStderr(), f.json, true)
			if bar != nil {
				o.Progress = installProgress(bar)
			}
			res, err := install.Install(ctx, l, pr.srcs, o)
			bar.done()
			if err != nil {
				return err
			}
			for _, r := range res.Repaired {
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: %v: removed it and fetched it again\n", r)
			}
			for _, t := range res.Tampered {
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: SECURITY: %s served other bytes than blob %s: %s; skipped for the next source (take it out of service, or ask its operator why)\n", t.Source, t.Blob, t.Error)
			}
			if f.json {
				return printJSON(w, res)
			}
			fmt.Fprintf(w, "installed %d packages for %s into %s: %d files, %s (fetched %d, from cache %d)\n",
				res.Packages, res.Platform, res.Into, res.Files, bytesText(res.Bytes), res.Fetched, res.Cached)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.verified, "verified", false, "install only a lock whose every input is pinned by hash")
	cmd.Flags().StringVar(&into, "into", "", "the directory to install into (default DIR/cairn_packages)")
	cmd.Flags().StringVar(&platform, "platform", "", "which locked platform (default this machine's, else the first)")
	cmd.Flags().IntVar(&jobs, "jobs", 8, "parallel downloads")
	return cmd
}

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Check packages against a policy; publish and read the index's policies"}
	var f projectFlags
	var file string
	var useLock bool
	check := &cobra.Command{
		Use:   "check [--policy FILE] [NAME@VERSION … | --lock]",
		Short: "Every verdict, rule by rule",
		Long: `Evaluate the policy (cairn.yaml's, or --policy FILE) on the named versions, or
on every package of cairn.lock, against the project's verified indexes, and
print every rule's verdict and the records that decided it. Exits 3 if any
package is refused.

A policy:

  issuers:
    security: [acme-security]          # holder names (as the root granted them) or key ids (SHA256:…)
  require:
    - {name: audited, property: audited, by: security, packages: "acme/*"}
    - {name: ci, property: tested, where: 'record.result == "PASSED"'}
    - {name: two-ci, property: tested, by: [ci-a, ci-b, ci-c], count: 2}   # 2 distinct certifiers
    - {name: fresh-scan, property: scanned, max_age: 7d, enforcement: warn}
  forbid:
    - {name: high-vulns, property: vulnerable, severity: high}   # unless a fixed record answers it
    - {name: team-vulns, property: vulnerable, by: security, answered_by: security}   # answered by the team's fixed records alone
    - {name: deprecated, property: deprecated}
    - {name: no-gpl, expr: 'pkg.license.startsWith("GPL")'}

A holder name is the name a repository's root granted, so when cairn.yaml lists
more than one repository a bare holder name is refused: write HOLDER@REPOSITORY
(acme-security@acme, the repository as cairn.yaml names it) or the key id.

count: K (require) asks for K distinct certifiers, each with an active matching
record: a holder counts once however many keys it signs with; a key without a
holder counts by its id. max_age: DURATION (require; units s, m, h, d: 7d, 36h)
counts only records issued no earlier than the judgment time (when the command
started; cairn evidence verify: the bundle's, or --at) minus it, and not
after it by more than 5 minutes (a record issued in the future is not fresh); a
test result's time is its run's (tested records signed before cairn named runs
have none, and are never fresh). enforcement: warn (per rule, or
at the top as the file's default; deny is the default) reports a failing rule
as a warning and refuses nothing.

where and expr are CEL, type-checked when the policy loads (a field that does
not exist is an error of the file, and every error is named at once). A where
reads 'record', 'pkg' and 'now' (the judgment time); an expr reads 'records'
(every active record), 'pkg' and 'now'. A record has id, kind, issuer, holder, repository, status, issued
(a timestamp), note, result, severity (none, low, medium, high or critical,
however the certifier wrote it: a CVSS score is its band), severity_rank (1 low
… 4 critical), score (the severity as the record gives it), vulnerabilities
(id, severity, score, aliases), fixes, artifacts; 'pkg' has name, version,
license, uuid, summary, descriptor, artifacts (kind, platform, file, sha256,
size), dependencies (name, version). Only active records count: not revoked,
not superseded.

With --url (and --introduction), a server is read as a light client instead of
cairn.yaml: the named versions' records proved against its signed checkpoint,
judged by --policy FILE.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if f.viaServer() {
				if useLock || len(args) == 0 {
					return usageError{errors.New("with --url, name the versions to check, NAME@VERSION …: a server has no cairn.lock")}
				}
				if file == "" {
					return usageError{errors.New("with --url, give the policy: --policy FILE")}
				}
				for _, a := range args {
					if name, version := descriptor.SplitID(a); version != "" {
						f.wants = append(f.wants, plan.Want{Name: name, Range: "=" + version})
					}
				}
			}
			pr, err := f.open(ctx, file)
			if err != nil {
				return err
			}
			defer pr.srcs.Close()
			if pr.pol == nil {
				return usageError{errors.New("no policy: give --policy FILE or set policy: in cairn.yaml")}
			}
			var verdicts []*policy.Verdict
			if useLock || len(args) == 0 {
				l, fresh, err := pr.lock(ctx, &f)
				if err != nil {
					return err
				}
				if fresh && useLock {
					// --lock judges the lock committed: a gate in CI
					// must not pass on a resolution of today's heads.
					return fmt.Errorf("--lock: %s has no %s: %w; run cairn lock (and commit it), or leave out --lock to judge what cairn.yaml resolves to now", pr.Dir, plan.LockFile, fs.ErrNotExist)
				}
				verdicts, _ = pr.evaluate(l)
			}
			for _, a := range args {
				name, version := descriptor.SplitID(a)
				if err := descriptor.CheckName(name); err != nil {
					return usageError{fmt.Errorf("%q: %v", a, err)} // an argument, not a file to fix
				}
				s, _, err := pr.srcs.Publisher(name)
				if err != nil {
					return err
				}
				if version == "" {
					return usageError{fmt.Errorf("%q: name the version, NAME@VERSION", a)}
				}
				v, err := plan.Verdict(s, pr.pol, name, version, pr.Platforms, pr.at)
				if err != nil {
					return err
				}
				verdicts = append(verdicts, v)
			}
			w := cmd.OutOrStdout()
			refused := &policy.RefusedError{}
			for _, v := range verdicts {
				if !v.Allowed {
					refused.Verdicts = append(refused.Verdicts, v)
				}
			}
			if f.json {
				if err := printJSON(w, verdicts); err != nil {
					return err
				}
			} else {
				for _, v := range verdicts {
					printVerdict(w, pr.pol, v)
				}
			}
			if len(refused.Verdicts) > 0 {
				return refused
			}
			return nil
		},
	}
	f.register(check)
	f.registerServer(check)
	check.Flags().StringVar(&file, "policy", "", "the policy file (default cairn.yaml's policy)")
	check.Flags().BoolVar(&useLock, "lock", false, "check every package of cairn.lock")
	cmd.AddCommand(check, newPolicyPublishCmd(), newPolicyShowCmd(), newPolicyLogCmd())
	return cmd
}

func printVerdict(w io.Writer, pol *policy.Policy, v *policy.Verdict) {
	state := "allowed"
	if !v.Allowed {
		state = "REFUSED"
	}
	if n := len(v.Warnings()); n > 0 {
		state += fmt.Sprintf(", %d warning(s)", n)
	}
	fmt.Fprintf(w, "%s: %s\n", v.Package, state)
	for _, r := range v.Rules {
		mark := r.Mark()
		if r.Applies && r.Warning {
			mark += ":"
		}
		fmt.Fprintf(w, "  %s  %s %s (%s:%d): %s\n", mark, r.Mode, r.Rule, pol.File, r.Line, r.Reason)
	}
}

func newWhyCmd() *cobra.Command {
	var f projectFlags
	var policyFile string
	cmd := &cobra.Command{
		Use:   "why NAME",
		Short: "Why this version: what chose it, its records, its verdict",
		Long: `Explain the version of NAME that cairn.lock holds (or that cairn.yaml resolves
to, with no lock): what chose it, every record about it and their status, and
the policy's verdict rule by rule.

With --url (and --introduction), a server is read as a light client instead of
cairn.yaml, every read proved against its signed checkpoint: NAME[@VERSION]
resolves there (the highest version, with its dependencies), judged by --policy
FILE if given.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			if f.viaServer() {
				w := plan.Want{Name: name}
				if n, version := descriptor.SplitID(name); version != "" {
					name, w.Name, w.Range = n, n, "="+version
				}
				f.wants = []plan.Want{w}
			}
			pr, err := f.open(ctx, policyFile)
			if err != nil {
				return err
			}
			defer pr.srcs.Close()
			l, _, err := pr.lock(ctx, &f)
			if err != nil {
				return err
			}
			e, err := plan.Why(ctx, l, pr.srcs, pr.pol, name, pr.at)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return printJSON(w, e)
			}
			p := e.Package
			fmt.Fprintf(w, "%s from repository %s (index head %.12s)\n", p.ID(), p.Repository, e.Head)
			fmt.Fprintf(w, "descriptor sha256:%s (%d bytes)\n", p.Descriptor.SHA256, p.Descriptor.Size)
			for _, a := range p.Artifacts {
				fmt.Fprintf(w, "artifact %s: %s %s sha256:%s (%d bytes)\n", a.Platform, a.Kind, a.File, a.SHA256, a.Size)
			}
			fmt.Fprintln(w, "chosen by:")
			for _, c := range p.ChosenBy {
				fmt.Fprintf(w, "  %s\n", c)
			}
			printRecords := func(heading string, recs []index.RecordView) {
				fmt.Fprintln(w, heading)
				for _, r := range recs {
					who := r.Issuer
					if r.Holder != "" && r.Holder != r.Issuer {
						who = r.Holder
					}
					kind := r.Kind
					if len(r.Artifacts) > 0 {
						kind += " (" + strings.Join(r.Artifacts, ", ") + ")" // narrowed: of these files only
					}
					fmt.Fprintf(w, "  %-10s %-16s %s  %-10s %.16s  %s\n", kind, who, r.Time.Format("2006-01-02T15:04:05Z"), r.Status, r.ID, r.Detail)
				}
			}
			printRecords("records:", e.Records)
			if e.Via != "" {
				printRecords("records of "+e.Via+" about it:", e.Certifications)
			}
			if e.Verdict != nil {
				fmt.Fprint(w, "verdict: ")
				printVerdict(w, pr.pol, e.Verdict)
			}
			return nil
		},
	}
	f.register(cmd)
	f.registerServer(cmd)
	cmd.Flags().StringVar(&policyFile, "policy", "", "the policy file (default cairn.yaml's policy)")
	return cmd
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
