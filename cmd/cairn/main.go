// Command cairn is the package and trust manager's command line.
//
// Each command group lives in its own file and only parses flags, calls
// the domain packages and prints. Errors are printed once, here, in one
// voice ("cairn: error: …", then "cairn: hint: …"), and mapped to exit
// codes from one table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/evidence"
	"cairn.dev/cairn/internal/gomod"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/install"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/osv"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/proof"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/witness"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1 // bad input, I/O, anything else
	exitUsage    = 2 // bad flags or arguments
	exitRefused  = 3 // an index rule or a security check refused it
	exitNotFound = 4 // no such repository, package, record or key
)

func main() { os.Exit(Main()) }

// Main runs cairn with os.Args and returns its exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels the command, which stops what it is doing
	// and cleans up; a second one ends the process as if it were not
	// caught, whatever the command is doing.
	go func() {
		<-ctx.Done()
		stop()
	}()
	return run(ctx, os.Args[1:], newTermSafe(os.Stdout), newTermSafe(os.Stderr))
}

type usageError struct{ error }

// exactArgs is cobra.ExactArgs whose complaint is a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootFor(stdout, args)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code, hint := classify(err)
	if code == exitUsage && hint == "" && !strings.Contains(err.Error(), "unknown command") {
		hint = "see '" + strings.TrimSpace("cairn "+commandPath(root, args)) + " --help'"
	}
	fmt.Fprintf(stderr, "cairn: error: %s\n", errorText(err))
	if hint != "" {
		fmt.Fprintf(stderr, "cairn: hint: %s\n", hint)
	}
	return code
}

func commandPath(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == root {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), "cairn ")
}

// classify maps an error to its exit code and a hint.
func classify(err error) (int, string) {
	var (
		ue usageError
		re *index.RuleError
		fe *index.ForkError
		me *blob.MismatchError
		ce *remote.CheckpointError
		pe *remote.PushError
		de *remote.DivergedError
		rb *remote.RollbackError
		up *remote.UncertainPushError
		rf *remote.ForkError
		sl *remote.SliceError
		bp *remote.BadPushError
		nc *remote.NoCheckpointError
		cs certifierStopped
		nr *noRepoError
		im *introMismatchError
		rp *remote.ReplayError
		no *notOwnedError
		se *author.SignatureError
		kd *keys.NoDirError
		qe *witness.QuorumError
		li *light.InconsistentError
		lp *light.ProofError
		sr *plan.ServerRefusedError
		bs *blob.StatusError
		dr *blob.DriverError
	)
	switch {
	case errors.As(err, &nr):
		return exitNotFound, nr.hint()
	case errors.As(err, &im):
		return exitRefused, "check --introduction against what the upstream's owner published (the server's /log/checkpoint names its index as cairn.dev/index/ID); a wrong one would take the name for good"
	case errors.As(err, &no):
		return exitRefused, no.hint()
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"):
		return exitUsage, ""
	case errors.As(err, &dr):
		return exitError, driverHint(dr.Scheme)
	case errors.As(err, &cs):
		return exitRefused, "a certifier signs only with a key granted certify:KIND for each kind it signs: ask the index's root (cairn key grant --key ROOT.key KEY.pub --holder NAME --scope certify:KIND), or use a key it granted"
	case errors.As(err, &bp):
		return exitRefused, "this copy is intact at the head verified before: the git host at " + bp.URL + " holds a commit nothing there checked; keep its id as evidence and tell the repository's owner, who puts the host's main back at its checkpoint's head (git push --force) and removes write access from whoever pushed it"
	case errors.As(err, &up):
		return exitError, up.Hint()
	case errors.As(err, &rb) && rb.Log != "":
		return exitRefused, "the log at " + rb.Log + " (a static copy, a CDN in front of it) serves an older checkpoint than one read from it before; this copy is intact: tell whoever publishes the log (cairn log publish), and check the cache in front of it"
	case errors.As(err, &rb):
		return exitRefused, "the server at " + rb.URL + ", or a mirror in front of it, went back to an older head; this copy is intact: try another mirror, and tell the server's operator"
	case errors.As(err, &rf):
		return exitRefused, "this copy is intact and keeps the history verified before: do not trust the server at " + rf.URL + "; keep both heads as evidence and tell the repository's owner"
	case errors.As(err, &sl):
		return exitRefused, "this copy is intact: the server at " + sl.URL + " listed commits outside the history it serves to cut it at; keep the error as evidence and tell its operator"
	case errors.As(err, &nc):
		return exitRefused, "ask the operator of " + nc.URL + " to run cairn serve with --checkpoint-key KEY, a key the root granted the checkpoint scope; to follow it anyway, knowing a frozen mirror would go unnoticed, add the remote with --insecure-no-checkpoint"
	case errors.As(err, &fe):
		return exitRefused, "do not use this copy of the index: restore main to a descendant of the verified head, or fetch the index again from a source you trust"
	case errors.As(err, &se):
		return exitRefused, "apply only signatures that root key holders made over this act (cairn root sign --key ROOT.key ACT-FILE); cairn key list shows the root keys"
	case errors.As(err, &li):
		return exitRefused, "do not trust the server at " + li.URL + ": its log does not follow the one this machine verified before; keep both checkpoints as evidence and tell the repository's owner"
	case errors.Is(err, evidence.ErrAtOutOfRange):
		return exitUsage, "give --at between the first root record of each index and the bundle's newest checkpoint (cairn evidence show lists them)"
	case errors.Is(err, evidence.ErrMalformed):
		return exitRefused, "this file is not a sound evidence bundle (damaged, cut short or altered): nothing in it was trusted; get it again from whoever made it"
	case errors.Is(err, evidence.ErrUntrusted):
		return exitRefused, "get each index's introduction from its owner through a channel you trust (its site, a signed letter) and pass --introduction ID; --insecure-trust-bundle proves only that the bundle agrees with itself"
	case errors.Is(err, evidence.ErrRefused):
		return exitRefused, "do not rely on this bundle: what it holds does not prove the build plan it claims; keep it as evidence and tell whoever made it"
	case errors.Is(err, evidence.ErrNotServed):
		return exitError, "serve the index (cairn serve --checkpoint-key KEY) and name it in cairn.yaml by url:, then lock and run cairn evidence again"
	case errors.As(err, &lp) && !errors.As(err, &qe):
		return exitRefused, "do not trust what the server at " + lp.URL + " serves: it does not prove itself against the server's own signed checkpoint; keep the checkpoint as evidence and tell the repository's owner"
	case errors.Is(err, light.ErrMoved):
		return exitError, "the server signed a new checkpoint during the read; nothing was refused: run the command again"
	case errors.As(err, &rp) && errors.As(err, &re) && re.Rule == index.RulePublishOnce:
		// main's own commit, replayed onto the remote, publishes a
		// version the remote holds already: another publish won.
		return exitRefused, "the remote holds this version with other bytes (another publish landed first): give up what the remote refuses with 'cairn pull --discard-local " + rp.Remote + "' (main's other unpushed commits are kept), then publish another version and push"
	case errors.As(err, &re):
		return exitRefused, re.Hint()
	case errors.Is(err, proof.ErrRefused):
		return exitRefused, "do not rely on this proof: it does not show that the index's log holds the record; check that the log keys, --introduction and witnesses given are the index's, and get the proof again from a replica you trust"
	case errors.Is(err, proof.ErrNoCheckpoint):
		return exitNotFound, "serve the repository with --checkpoint-key KEY, or pull from a remote whose server signs checkpoints, then run cairn proof again"
	case errors.As(err, &qe):
		return exitRefused, "too few of the witnesses you trust cosigned this checkpoint, so the server may be showing you a history others do not see: do not trust it, keep the checkpoint as evidence, and ask the server's operator which witnesses it submits to"
	case errors.As(err, &ce):
		return exitRefused, "do not trust this server's copy: compare its checkpoint with other clients' and tell the repository's owner"
	case errors.As(err, &pe):
		if h := pe.Hint(); h != "" {
			return exitRefused, h
		}
		return exitRefused, "the server checked your records and refused them: fix what it names and publish again"
	case errors.Is(err, remote.ErrRaceLost):
		return exitError, "other pushes kept landing first; nothing was refused: push again"
	case errors.Is(err, blob.ErrBusy):
		return exitError, "the server is busy with other clients; nothing was refused: run the command again in a moment"
	case errors.As(err, &de):
		return exitError, "run 'cairn push " + de.Remote + "' to replay main's own commits onto the remote's head; if the remote refuses one (another holds a version it publishes), 'cairn pull --discard-local " + de.Remote + "' gives up what it refuses and keeps the rest"
	case errors.As(err, &bs) && bs.Method == http.MethodGet && bs.Code == http.StatusForbidden && strings.HasPrefix(bs.Body, "cairn: refused by policy "):
		return exitRefused, "the server refuses this artifact by its policy (its answer names the rule and the record): pick a version it serves in cairn.yaml (read as a light client, without light: false, cairn lock skips those it refuses), or ask the server's operator about the rule"
	case errors.Is(err, blob.ErrRefused):
		return exitRefused, "uploads are signed with your key, which the repository's root must grant a publish or certify scope (cairn key list shows the grants)"
	case errors.As(err, &me):
		return exitRefused, "the bytes are not what the index names: fetch the blob again from another mirror"
	case errors.Is(err, gomod.ErrSumMismatch):
		return exitRefused, "do not use these bytes: they are not the module version its h1 hash names; for an import, try another GOPROXY (--goproxy) and tell the proxy's operator; nothing was added"
	case errors.Is(err, gomod.ErrSecurity):
		return exitRefused, "do not trust this checksum database: it contradicts the history it showed this repository before (kept under sumdb/ in the repository's local directory); keep its message as evidence and tell its operator"
	case errors.Is(err, errVerifiedNoLock):
		return exitRefused, "run cairn lock where its inputs may be resolved, review cairn.lock and commit it: verified mode installs nothing else"
	case errors.Is(err, plan.ErrUnpinned):
		return exitRefused, "pin each input by hash: snapshot: {name, sha256, size} (cairn label history shows a label's digest), packages: {version, sha256, size} (cairn.lock has them)"
	case errors.Is(err, policy.ErrRefused):
		return exitRefused, "install only what the policy allows: pick another version, get the missing certification, or change the policy (cairn why NAME explains a package)"
	case errors.Is(err, light.ErrUnavailable) && !errors.As(err, &li) && !errors.As(err, &lp):
		return exitError, "the server did not serve its log's tiles (nothing was proved wrong): try again later, or ask its operator"
	case errors.Is(err, light.ErrNotKept):
		return exitError, "this machine has not read it from the server at the checkpoint it verified last: run the command once online (without --offline), then offline works again"
	case errors.Is(err, plan.ErrLockMismatch):
		var le *plan.LockError
		if errors.As(err, &le) && le.OnlyStale() {
			return exitRefused, "run cairn lock to write the lock again"
		}
		return exitRefused, "do not trust this lock: restore cairn.lock from version control, or run cairn lock to resolve it again"
	case errors.Is(err, install.ErrUnsafe):
		return exitRefused, "the package's archive holds an entry cairn never unpacks (named above: one that would land outside its directory, a device, a fifo): nothing was installed; tell the package's publisher"
	case errors.As(err, &sr):
		return exitRefused, sr.Hint()
	case errors.As(err, new(*index.AmbiguousError)):
		// Nothing in cairn.yaml chooses between an organisation's upstreams.
		return exitError, "the repository follows several upstreams that publish this name: its root must stop following all but one (cairn upstream list shows them), or publish the name itself; cairn.yaml cannot choose"
	case errors.Is(err, plan.ErrUnresolvable) && errors.Is(err, fs.ErrNotExist):
		return exitNotFound, "check the name in cairn.yaml: no repository it names holds that package (cairn search TERM lists a repository's packages)"
	case errors.Is(err, plan.ErrUnresolvable):
		return exitError, "change the ranges or the snapshot in cairn.yaml so that one version of each package fits every range"
	case errors.Is(err, plan.ErrInvalid), errors.Is(err, policy.ErrInvalid):
		return exitError, "fix the file at the line named and run the command again"
	case errors.Is(err, keys.ErrNoKey) && strings.Contains(err.Error(), "is a public key"):
		return exitError, "give the private key's file (the one without .pub), or add the private key to a running ssh-agent (ssh-add FILE)"
	case errors.Is(err, keys.ErrNoKey):
		return exitError, "pass --key FILE, set CAIRN_KEY, or add an ed25519 key to ssh-agent; make one with 'cairn key new FILE'"
	case errors.Is(err, osv.ErrMalformed):
		return exitError, "give an OSV record as its database publishes it (https://ossf.github.io/osv-schema/; osv.dev/vulnerability/ID serves each as JSON), or fix the field named"
	case errors.Is(err, descriptor.ErrInvalid), errors.Is(err, record.ErrMalformed):
		return exitError, "fix the file and run the command again; see 'cairn publish --help' for the manifest format"
	case isTimeout(err):
		return exitError, timeoutHint
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return exitError, "the disk is full: free space on the disk of the path named (or point --cache or --into elsewhere) and run the command again"
	case errors.As(err, &kd):
		return exitNotFound, "make the directory first (mkdir -p " + kd.Dir + "; cairn key new makes none, as ssh-keygen makes none), then run the command again"
	case errors.Is(err, fs.ErrNotExist):
		return exitNotFound, ""
	case errors.As(err, new(*url.Error)):
		return exitError, "the server could not be read (its URL, the network, a proxy, or the server itself): nothing was verified or changed; check the URL and try again"
	}
	return exitError, ""
}

// commands returns cairn's commands, each by its name and the function
// that builds it, in the order newRoot adds them. (A function, not a
// table: cairn demo's commands run cairn's.)
func commands() []namedCommand {
	return []namedCommand{
		{"key", newKeyCmd}, {"init", newInitCmd}, {"serve", newServeCmd}, {"certifier", newCertifierCmd}, {"hook", newHookCmd},
		{"remote", newRemoteCmd}, {"pull", newPullCmd}, {"push", newPushCmd}, {"publish", newPublishCmd}, {"certify", newCertifyCmd},
		{"revoke", newRevokeCmd}, {"show", newShowCmd}, {"log", newLogCmd}, {"verify", newVerifyCmd}, {"root", newRootCmd},
		{"demo", newDemoCmd}, {"upstream", newUpstreamCmd}, {"sync", newSyncCmd}, {"promote", newPromoteCmd}, {"upload", newUploadCmd},
		{"snapshot", newSnapshotCmd}, {"label", newLabelCmd}, {"lock", newLockCmd}, {"install", newInstallCmd}, {"policy", newPolicyCmd},
		{"why", newWhyCmd}, {"version", newVersionCmd}, {"search", newSearchCmd}, {"witness", newWitnessCmd}, {"proof", newProofCmd},
		{"evidence", newEvidenceCmd}, {"import", newImportCmd}, {"package", newPackageCmd}, {"sbom", newSBOMCmd}, {"vex", newVEXCmd},
	}
}

// namedCommand is one of cairn's commands: its name and what builds it.
type namedCommand struct {
	name  string
	build func() *cobra.Command
}

// newRootFor is the root command that runs args: with only the command
// args[0] names, if it is one of cairn's (its flags and subcommands, not
// every other command's, which cost a few milliseconds at every start),
// else with all of them (help, completion, a flag first, a mistyped name
// and its suggestions: newRoot).
func newRootFor(stdout io.Writer, args []string) *cobra.Command {
	if len(args) > 0 {
		for _, c := range commands() {
			if c.name == args[0] {
				return buildRoot(stdout, c.name)
			}
		}
	}
	return newRoot(stdout)
}

// newRoot is the root command with every command.
func newRoot(stdout io.Writer) *cobra.Command { return buildRoot(stdout, "") }

// buildRoot is the root command with the command named only, or with
// every command ("").
func buildRoot(stdout io.Writer, only string) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "cairn: a package and trust manager whose every claim can be checked",
		Long: `cairn keeps a repository of packages whose index is a git repository of signed,
append-only records: who published each version, who audited and tested it,
which vulnerabilities it has. The repository's root keys grant scoped keys to
publishers, auditors and CI services; every command checks every rule.

Environment:
  CAIRN_REPO     the repository, when --repo is not given (with neither, the
                 current directory or the nearest parent that is a repository)
  CAIRN_KEY      the signing key file, when --key is not given
  SSH_AUTH_SOCK  an ssh-agent holding an ed25519 key signs when no key file is given
                 (then ~/.ssh/id_ed25519 is tried)
  CAIRN_CONNECT_TIMEOUT, CAIRN_STALL_TIMEOUT
                 the defaults of --connect-timeout (10s) and --stall-timeout (30s)

Exit codes: 0 ok, 1 error, 2 usage, 3 refused by a rule or a security check, 4 not found.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range commands() {
		if only == "" || c.name == only {
			root.AddCommand(c.build())
		}
	}
	timeoutFlags(root)
	versionFlag(root)
	root.InitDefaultCompletionCmd()
	setExamples(root)
	setCompletions(root)
	return root
}

// repoFlag adds --repo (default $CAIRN_REPO).
func repoFlag(c *cobra.Command, dst *string) {
	c.Flags().StringVar(dst, "repo", "", "the repository directory (default $CAIRN_REPO, else the current directory or the nearest parent that is one)")
}

// withRepo opens the repository, verifies what is new on its main (see
// verifyRead: no command reads, shows or serves what breaks a rule), runs
// fn on it, and closes it.
func withRepo(cmd *cobra.Command, dir string, fn func(ctx context.Context, r *index.Repo) error) error {
	r, err := openRepo(cmd.Context(), dir)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := verifyRead(cmd, r); err != nil {
		return err
	}
	return fn(cmd.Context(), r)
}

func openRepo(ctx context.Context, dir string) (*index.Repo, error) {
	dir, err := repoDir(dir)
	if err != nil {
		return nil, err
	}
	return index.Open(ctx, dir)
}

// signers resolves each --key given (at least one), for threshold signing.
func signers(paths []string) ([]keys.Signer, error) {
	if len(paths) == 0 {
		s, err := keys.Resolve("")
		if err != nil {
			return nil, err
		}
		return []keys.Signer{s}, nil
	}
	var out []keys.Signer
	for _, p := range paths {
		s, err := keys.Resolve(p)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// errorText is err's message as cairn prints it. The messages of missing
// things already say what is missing ("no remote origin", "acme/x is not
// published"), so fs.ErrNotExist's own text, which %w appends, is taken
// out, or turned into "not found" after a bare name ("blob sha256:…").
func errorText(err error) string {
	msg := err.Error()
	if !errors.Is(err, fs.ErrNotExist) {
		return msg
	}
	const sentinel = ": " + "file does not exist"
	var b strings.Builder
	for {
		before, after, ok := strings.Cut(msg, sentinel)
		if !ok {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(before)
		last := before[strings.LastIndex(before, ": ")+1:]
		if !saysMissing().MatchString(last) {
			b.WriteString(" not found")
		}
		msg = after
	}
}

// saysMissing matches a message that already says something is missing
// (compiled when an error is printed, not at every start).
var saysMissing = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\b(no|not|never|none|neither|nor)\b`) })
