package certifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/transport"
)

// OnFailureTested is the failure record a certifier can sign: a tested
// record whose result is FAILED.
const OnFailureTested = "tested-failed"

// Options configure a certifier.
type Options struct {
	Property  record.Kind // signed when the command passes
	OnFailure string      // "" (sign nothing) or OnFailureTested
	// Findings reads the command's standard output as a scanner's
	// findings (see ParseFindings): each scan that finds something also
	// signs a vulnerable record listing them.
	Findings bool
	Command  string
	Filter   []string // package name patterns (record.MatchName, as a scope's); none: every package
	// Artifact chooses what is fetched for the command: "source",
	// "binary:PLATFORM", a platform, a file name, "all" or "none".
	Artifact    string
	Jobs        int           // commands run at once (default 1)
	Timeout     time.Duration // of one run (default 20 minutes)
	MaxOutput   int           // output kept as evidence (default 1 MiB)
	MaxFileSize int64         // of each file a run writes (default 4 GiB)
	Poll        time.Duration // between polls (default 10 s)
	MaxBackoff  time.Duration // the longest wait after errors (default 5 minutes)
	Once        bool          // deal with what is new once, then return
	Signer      keys.Signer
	Client      *http.Client
	Log         *slog.Logger
	Metrics     *Metrics // default: registered nowhere
	Now         func() time.Time
	// Result, if set, hears each version dealt with, once its outcome is
	// saved; it is called from several goroutines (one per remote).
	Result func(Result)
}

// Result is what a certifier did with one version.
type Result struct {
	Remote  string `json:"remote"`
	Package string `json:"package"`
	Version string `json:"version"`
	// Outcome is certified, failed (the command failed: nothing signed,
	// or a FAILED record), refused (the server refused the record),
	// already (certified before) or skipped.
	Outcome string `json:"outcome"`
	Detail  string `json:"detail"` // the record's id, or why
}

// FatalError stops a certifier: retrying cannot help (its key is not, or
// no longer, granted what it signs).
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Certifier follows remotes and certifies their new versions.
type Certifier struct {
	o       Options
	keyID   string
	follows []*follow
}

// follow is one remote followed: the certifier's own replica of its
// index, and its progress.
type follow struct {
	name string
	url  string
	repo *index.Repo // certifies and pushes
	// view reads the catalog of a poll's head while repo moves main: a
	// push restarts repo's reader, which would end the catalog's.
	view     *index.Repo
	mirrors  []blob.Store // the remote, then its mirrors
	progress *progress
	path     string // of the progress file

	mu    sync.Mutex // guards progress, and serialises certify + push on repo
	first map[string]time.Time
	head  string // the head of the last poll
	// noWait: the server does not answer GET /api/v1/head (an older
	// one, or a mirror); the certifier only polls it.
	noWait bool
}

// New prepares a certifier of the remotes that the repository config
// names (cairn remote add), keeping a replica of each remote's index and
// its progress under stateDir/REMOTE.
func New(ctx context.Context, config *index.Repo, remotes []string, stateDir string, o Options) (*Certifier, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	c := &Certifier{o: o.withDefaults(), keyID: keys.ID(o.Signer.Public())}
	// The command runs elsewhere: its paths must not be relative.
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	for _, name := range remotes {
		f, err := c.open(ctx, config, name, stateDir)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.follows = append(c.follows, f)
	}
	return c, nil
}

func (o *Options) check() error {
	switch {
	case o.Signer == nil:
		return errors.New("a certifier needs a key")
	case o.Command == "":
		return errors.New("a certifier needs a command to run (--run)")
	case o.OnFailure != "" && o.OnFailure != OnFailureTested:
		return fmt.Errorf("on failure %q: the failure record a certifier signs is %s (a tested record whose result is FAILED)", o.OnFailure, OnFailureTested)
	}
	switch o.Property {
	case record.Tested, record.Scanned, record.Audited, record.Reviewed, record.Reproduced, record.ProofChecked:
	default:
		return fmt.Errorf("property %q: a certifier signs tested, scanned, audited, reviewed, reproduced or proof-checked (a scan's findings become vulnerable records with --findings-as vulnerable)", o.Property)
	}
	for _, p := range o.Filter {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("filter %q: %v", p, err)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Jobs <= 0 {
		o.Jobs = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Minute
	}
	if o.MaxOutput <= 0 {
		o.MaxOutput = 1 << 20
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 4 << 30
	}
	if o.Poll <= 0 {
		o.Poll = 10 * time.Second
	}
	if o.MaxBackoff < o.Poll {
		o.MaxBackoff = max(o.Poll, 5*time.Minute)
	}
	if o.Artifact == "" {
		o.Artifact = "source"
	}
	if o.Client == nil {
		o.Client = transport.Client()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (c *Certifier) open(ctx context.Context, config *index.Repo, name, stateDir string) (*follow, error) {
	rm, err := remote.Get(config, name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(stateDir, name)
	r, err := index.Open(ctx, filepath.Join(dir, "index"))
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		r, err = index.InitReplica(ctx, filepath.Join(dir, "index"), rm.Introduction)
	}
	if err != nil {
		return nil, err
	}
	if r.Config.Introduction != rm.Introduction {
		r.Close()
		return nil, fmt.Errorf("%s holds a replica of another index (introduction %.16s, remote %s has %.16s): give this certifier another --state", dir, r.Config.Introduction, name, rm.Introduction)
	}
	// The replica follows the remote as configured now (its URL or
	// mirrors may have changed).
	if err := remote.Set(r, *rm); err != nil {
		r.Close()
		return nil, err
	}
	view, err := index.Open(ctx, r.Dir)
	if err != nil {
		r.Close()
		return nil, err
	}
	f := &follow{name: name, url: rm.URL, repo: r, view: view, mirrors: rm.Blobs(r, c.o.Client).Mirrors, path: filepath.Join(dir, "progress.json"), first: map[string]time.Time{}}
	f.progress, err = loadProgress(f.path, progress{Remote: name, Introduction: rm.Introduction, Key: c.keyID, Property: c.property()})
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *follow) close() {
	f.repo.Close()
	f.view.Close()
}

// property names what the certifier signs, for its state.
func (c *Certifier) property() string {
	p := string(c.o.Property)
	if c.o.Findings {
		p += "+findings"
	}
	return p
}

// Close closes the replicas.
func (c *Certifier) Close() error {
	for _, f := range c.follows {
		f.close()
	}
	return nil
}

// Run follows the remotes until ctx ends (or, with Once, after one pass):
// each poll pulls and verifies each remote, then runs the command on
// every new version and signs what passes. Errors that retrying may mend
// are logged and waited out, longer each time; a FatalError (the key not
// granted what it signs, or revoked) is returned.
func (c *Certifier) Run(ctx context.Context) error {
	wait := time.Duration(0) // after errors; 0 while all is well
	for {
		var failed error
		for _, f := range c.follows {
			err := c.poll(ctx, f)
			var fe *FatalError
			if errors.As(err, &fe) {
				c.o.Log.Error("certifier stopped", "remote", f.name, "err", err)
				return err
			}
			if err != nil && ctx.Err() == nil {
				c.o.Metrics.errors.WithLabelValues(f.name).Inc()
				c.o.Log.Warn("will retry", "remote", f.name, "err", err)
				failed = err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if c.o.Once {
			return failed
		}
		if failed == nil {
			wait = 0
			c.await(ctx, c.o.Poll)
			continue
		}
		wait = backoff(wait, c.o.Poll, c.o.MaxBackoff)
		c.o.Log.Info("retrying", "in_seconds", wait.Seconds())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// backoff is the wait after a failed poll, the last wait having been
// prev (0 after a poll that went well): poll, then twice the last, up to
// most, less up to a tenth so that replicas do not retry in step.
func backoff(prev, poll, most time.Duration) time.Duration {
	next := poll
	if prev > 0 {
		next = min(prev*2, most)
	}
	return next - time.Duration(rand.Int64N(int64(next)/10+1))
}

// await waits up to d for a remote's main to move: the servers are asked
// to answer as soon as a push lands (GET /api/v1/head), so that a new
// version is seen at once rather than at the next poll.
func (c *Certifier) await(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	var wg sync.WaitGroup
	defer wg.Wait() // the waits end before the next poll moves their heads
	defer cancel()
	woke := make(chan struct{}, len(c.follows))
	for _, f := range c.follows {
		wg.Go(func() {
			if f.awaitHead(ctx, c.o.Client, d) {
				woke <- struct{}{}
			}
		})
	}
	select {
	case <-ctx.Done():
	case <-woke:
	}
}

// awaitHead reports whether the remote says its main moved from the head
// of the last poll within d. It only wakes the certifier, which then
// pulls and verifies as always.
func (f *follow) awaitHead(ctx context.Context, client *http.Client, d time.Duration) bool {
	if f.noWait || f.head == "" {
		<-ctx.Done()
		return false
	}
	u := fmt.Sprintf("%s/api/v1/head?after=%s&wait=%.3f", f.url, f.head, d.Seconds())
	// A long poll: the server may hold its answer for d.
	req, err := http.NewRequestWithContext(transport.WithHeaderWait(ctx, d), http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		<-ctx.Done()
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		f.noWait = true
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 128))
	if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) != f.head {
		return true
	}
	<-ctx.Done()
	return false
}

// poll pulls one remote and deals with every version new since the
// progress's base.
func (c *Certifier) poll(ctx context.Context, f *follow) error {
	// Nothing unpushed may linger: it would be pushed beside a second
	// certification of the same version.
	if n, err := remote.Discard(ctx, f.repo, f.name); err != nil {
		return err
	} else if n > 0 {
		c.o.Log.Warn("dropped commits that did not land", "remote", f.name, "commits", n)
	}
	p, err := remote.Pull(ctx, f.repo, f.name, remote.Options{Client: c.o.Client})
	if err != nil {
		return err
	}
	c.o.Metrics.lastCycle.WithLabelValues(f.name).SetToCurrentTime()
	f.head = p.Head
	f.view.Close() // a fresh reader, which sees what the pull brought
	cat, err := f.view.Catalog(ctx, p.Head)
	if err != nil {
		return err
	}
	if err := c.checkKey(cat, f.name); err != nil {
		return &FatalError{err}
	}
	vs, err := NewVersions(ctx, f.view, f.progress.Base, p.Head)
	if err != nil {
		return fmt.Errorf("listing what is new on %s since %.12s: %w", f.name, f.progress.Base, err)
	}
	var todo []Version
	for _, v := range vs {
		if _, done := f.progress.Done[v.ID()]; done {
			continue
		}
		if !c.matches(v.Name) {
			continue
		}
		if _, ok := f.first[v.ID()]; !ok {
			f.first[v.ID()] = c.o.Now()
			c.o.Metrics.seen.WithLabelValues(f.name).Inc()
		}
		todo = append(todo, v)
	}
	if len(todo) > 0 {
		c.o.Log.Info("new versions", "remote", f.name, "head", p.Head, "versions", len(todo))
	}
	queue := c.o.Metrics.queue.WithLabelValues(f.name)
	queue.Set(float64(len(todo)))
	jobs := make(chan Version)
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		lastErr error
	)
	for range min(c.o.Jobs, max(1, len(todo))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range jobs {
				queue.Dec()
				if err := c.version(ctx, f, cat, v); err != nil {
					if ctx.Err() == nil {
						c.o.Log.Warn("not dealt with; will retry", "remote", f.name, "package", v.Name, "version", v.Version, "err", err)
					}
					errMu.Lock()
					if lastErr == nil || errors.As(err, new(*FatalError)) {
						lastErr = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	for _, v := range todo {
		errMu.Lock()
		stop := lastErr != nil && errors.As(lastErr, new(*FatalError))
		errMu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		jobs <- v
	}
	close(jobs)
	wg.Wait()
	queue.Set(0)
	if lastErr != nil {
		return lastErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Every version up to the head is dealt with.
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.progress.Base == p.Head && len(f.progress.Done) == 0 {
		return nil
	}
	f.progress.Base, f.progress.Done = p.Head, map[string]string{}
	return f.progress.save(f.path)
}

func (c *Certifier) matches(name string) bool {
	if len(c.o.Filter) == 0 {
		return true
	}
	for _, p := range c.o.Filter {
		if record.MatchName(p, name) {
			return true
		}
	}
	return false
}

// kinds are the record kinds the certifier may sign.
func (c *Certifier) kinds() []record.Kind {
	ks := []record.Kind{c.o.Property}
	if c.o.Findings {
		ks = append(ks, record.Vulnerable)
	}
	if c.o.OnFailure != "" && c.o.Property != record.Tested {
		ks = append(ks, record.Tested)
	}
	return ks
}

// checkKey checks, at the catalog's commit, that the certifier's key is
// granted, not revoked, and holds an unexpired certify scope for every
// kind it signs.
func (c *Certifier) checkKey(cat *index.Catalog, remoteName string) error {
	k, err := cat.Key(c.keyID)
	if err != nil {
		return err
	}
	var wanted []string
	for _, kind := range c.kinds() {
		wanted = append(wanted, "certify:"+string(kind))
	}
	if k == nil {
		return fmt.Errorf("key %s is not granted in %s's index: its root must grant it %s (cairn key grant KEY.pub --holder NAME --scope %s)",
			c.keyID, remoteName, strings.Join(wanted, " "), strings.Join(wanted, " --scope "))
	}
	if k.RevokedBy != "" {
		return fmt.Errorf("key %s (holder %s) was revoked in %s's index by record %.16s (%s): the certifier signs nothing with it; stopping",
			c.keyID, k.Holder(), remoteName, k.RevokedBy, k.Reason)
	}
	// The rules' one key-may-sign check, for some name of each kind.
	var have, missing []string
	for _, kind := range c.kinds() {
		var se *index.SignError
		err := k.MaySign(c.o.Now(), kind, "", true)
		switch {
		case err == nil:
		case !errors.As(err, &se):
			return err
		case se.Rule == index.RuleKeyExpired:
			return fmt.Errorf("every grant of key %s (holder %s) in %s's index has expired: it needs %s", c.keyID, k.Holder(), remoteName, strings.Join(wanted, " "))
		case se.Rule == index.RuleScope:
			have = se.Have
			missing = append(missing, "certify:"+string(kind))
		default:
			return fmt.Errorf("key %s in %s's index: %w", c.keyID, remoteName, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("key %s (holder %s) has scopes [%s] in %s's index; the certifier signs %s records and is missing the grant of %s",
			c.keyID, k.Holder(), strings.Join(have, " "), remoteName, strings.Join(kindNames(c.kinds()), " and "), strings.Join(missing, " "))
	}
	return nil
}

func kindNames(ks []record.Kind) []string {
	var out []string
	for _, k := range ks {
		out = append(out, string(k))
	}
	return out
}

// inScope reports whether the key may sign the certifier's property on
// the package now: the rules' own check (index.Key.MaySign), with a
// certify scope, as the certifier certifies and never publishes.
func (c *Certifier) inScope(k *index.Key, name string) bool {
	return k.MaySign(c.o.Now(), c.o.Property, name, true) == nil
}

// mine returns the record by which this certifier (its key's holder)
// already certified the version, if any: what it signs on success, or
// on failure.
func (c *Certifier) mine(cat *index.Catalog, v Version, holder string) (string, error) {
	_, _, recs, err := cat.Version(v.Name, v.Version)
	if err != nil {
		return "", err
	}
	for _, rv := range recs {
		if rv.Kind != string(c.o.Property) && !(c.o.OnFailure != "" && rv.Kind == string(record.Tested)) {
			continue
		}
		if rv.Issuer == c.keyID || (holder != "" && rv.Holder == holder) {
			return rv.ID, nil
		}
	}
	return "", nil
}

// CommandError is a run whose shell said the command could not run:
// exit 127 (not found) or 126 (found, not executable), the shell's
// codes. It is an error of the certifier's setup (--run, the machine's
// tools), not a result of the package's: the version is not counted
// and is run again once the setup is mended.
type CommandError struct {
	Command  string
	ExitCode int
	Output   []byte // how the output ended
}

func (e *CommandError) Error() string {
	what := "the command was not found"
	if e.ExitCode == 126 {
		what = "the command is not executable"
	}
	return fmt.Sprintf("the certifier's command %q could not run (exit %d: %s): mend --run or the machine's tools; the version is not counted as tested or failed and is run again: %s", e.Command, e.ExitCode, what, strings.TrimSpace(string(e.Output)))
}

// errAlready is a push that found the version certified first (by a
// replica of this certifier).
type errAlready struct{ record string }

func (e *errAlready) Error() string { return "certified first by record " + e.record }

// version deals with one version: the command run, the records signed
// and pushed, the progress written. An error leaves the version to be
// dealt with again.
func (c *Certifier) version(ctx context.Context, f *follow, cat *index.Catalog, v Version) error {
	log := c.o.Log.With("remote", f.name, "package", v.Name, "version", v.Version)
	k, err := cat.Key(c.keyID) // granted: checkKey passed at this commit
	if err != nil {
		return err
	}
	holder := k.Holder()
	if id, err := c.mine(cat, v, holder); err != nil {
		return err
	} else if id != "" {
		log.Info("already certified", "record", id)
		return c.done(f, v, "already", "record "+id)
	}
	if !c.inScope(k, v.Name) {
		log.Warn("skipped: the key's grants do not cover this package", "needs", record.Needed(c.o.Property, v.Name))
		return c.done(f, v, "skipped", "out of the key's scope")
	}
	d, ref, err := cat.Descriptor(v.Name, v.Version)
	if err != nil {
		return err
	}
	arts, err := pick(d, c.o.Artifact)
	if err != nil {
		log.Warn("skipped", "why", err.Error())
		return c.done(f, v, "skipped", err.Error())
	}
	work, err := os.MkdirTemp(filepath.Dir(f.path), "run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "work")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	env, err := c.prepare(ctx, f, d, ref, arts, dir)
	if err != nil && notOnServer(err) {
		// Every mirror said it has not got an artifact: the version was
		// promoted without it, or the server lost it. Only now ask which
		// of the version's artifacts it holds, to say what to choose.
		if why, werr := f.withheld(ctx, d, arts); werr != nil {
			return fmt.Errorf("%s: %w (and asking the server which artifacts it holds: %w)", v.ID(), err, werr)
		} else if why != "" {
			log.Warn("skipped", "why", why)
			return c.done(f, v, "skipped", why)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", v.ID(), err)
	}
	log.Info("running", "command", c.o.Command, "artifacts", len(arts))
	job := Job{Command: c.o.Command, Dir: dir, Env: env, Timeout: c.o.Timeout, MaxOutput: c.o.MaxOutput, MaxFileSize: c.o.MaxFileSize}
	if c.o.Findings {
		job.KeepStdout = 4 << 20
	}
	out, err := Run(ctx, job)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err() // stopped, not failed: run again next time
	}
	if !out.TimedOut && (out.ExitCode == 126 || out.ExitCode == 127) {
		// The shell's own word that the command is not there or cannot
		// be executed: the certifier's setup, not the package, failed.
		// The version is run again, not counted as tested or failed.
		return &CommandError{Command: c.o.Command, ExitCode: out.ExitCode, Output: out.Output[max(0, len(out.Output)-512):]}
	}
	result := "passed"
	switch {
	case out.TimedOut:
		result = "timeout"
	case !out.Passed():
		result = "failed"
	}
	var findings *Findings
	if c.o.Findings && (result == "passed" || out.ExitCode > 0) {
		// Scanners often exit non-zero when they find something
		// (trivy --exit-code, grype --fail-on): a report that reads
		// whole and lists findings is a scan done all the same.
		if out.StdoutOver {
			err = fmt.Errorf("the scanner printed more than %d bytes of findings", job.KeepStdout)
		} else {
			findings, err = ParseFindings(out.Stdout, v.Name)
		}
		switch {
		case result == "failed" && err == nil && len(findings.Results) > 0:
			result = "passed"
		case result == "failed":
			findings = nil
		case err != nil:
			result = "failed"
			log = log.With("findings_error", err.Error())
		}
	}
	c.o.Metrics.runs.WithLabelValues(result).Observe(out.Duration.Seconds())
	log = log.With("result", result, "exit_code", out.ExitCode, "seconds", out.Duration.Seconds(), "output_bytes", len(out.Output)+int(out.Dropped))
	evidence := filepath.Join(work, "output.log")
	if err := os.WriteFile(evidence, out.Output, 0o644); err != nil {
		return err
	}
	certs := c.certifications(v, arts, out, result, findings, evidence, f.url)
	if result != "passed" {
		// What the operator needs to see first: how the output ended.
		tail := out.Output[max(0, len(out.Output)-512):]
		log = log.With("output_tail", string(tail))
	}
	if len(certs) == 0 {
		log.Warn("not certified")
		c.o.Metrics.outcomes.WithLabelValues(f.name, "failed").Inc()
		return c.done(f, v, "failed", result)
	}
	id, err := c.push(ctx, f, v, holder, certs)
	var already *errAlready
	switch {
	case errors.As(err, &already):
		log.Info("certified first by another replica", "record", already.record)
		return c.done(f, v, "already", "record "+already.record)
	case err != nil:
		var pe *remote.PushError
		if errors.As(err, &pe) {
			log.Error("the server refused the record", "err", err)
			c.o.Metrics.outcomes.WithLabelValues(f.name, "refused").Inc()
			return c.done(f, v, "refused", pe.Output)
		}
		return err
	}
	// The evidence is the server's now; the replica keeps no copy. Only
	// files of its own are removed: an object store the replica names may
	// be the server's own.
	if store, ok := f.repo.Blobs.(*blob.FS); ok {
		store.Remove(blob.DigestBytes(out.Output).SHA256)
	}
	outcome := "certified"
	if result != "passed" {
		outcome = "failed"
	}
	overhead := c.o.Now().Sub(f.firstSeen(v)) - out.Duration
	c.o.Metrics.latency.WithLabelValues(f.name).Observe(overhead.Seconds())
	log.Info(outcome, "record", id, "findings", len(findingIDs(findings)), "overhead_seconds", overhead.Seconds())
	c.o.Metrics.outcomes.WithLabelValues(f.name, outcome).Inc()
	return c.done(f, v, outcome, "record "+id)
}

func findingIDs(f *Findings) []string {
	if f == nil {
		return nil
	}
	return f.IDs()
}

func (f *follow) firstSeen(v Version) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first[v.ID()]
}

// done records that a version is dealt with.
func (c *Certifier) done(f *follow, v Version, outcome, detail string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if outcome == "already" || outcome == "skipped" {
		c.o.Metrics.outcomes.WithLabelValues(f.name, outcome).Inc()
	}
	f.progress.Done[v.ID()] = outcome + ": " + detail
	delete(f.first, v.ID())
	if err := f.progress.save(f.path); err != nil {
		return err
	}
	if c.o.Result != nil {
		c.o.Result(Result{Remote: f.name, Package: v.Name, Version: v.Version, Outcome: outcome, Detail: detail})
	}
	return nil
}

// pick chooses the artifacts the command gets.
func pick(d *descriptor.Descriptor, sel string) ([]descriptor.Artifact, error) {
	switch {
	case sel == "none":
		return nil, nil
	case sel == "all":
		return d.Artifacts, nil
	case strings.HasPrefix(sel, "binary:"):
		for _, a := range d.Artifacts {
			if a.Kind == "binary" && a.Platform == strings.TrimPrefix(sel, "binary:") {
				return []descriptor.Artifact{a}, nil
			}
		}
	default:
		if a, ok := d.Artifact(sel); ok {
			return []descriptor.Artifact{a}, nil
		}
	}
	var have []string
	for _, a := range d.Artifacts {
		have = append(have, a.Label())
	}
	return nil, fmt.Errorf("%s has no %s artifact (it has: %s)", d.ID(), sel, strings.Join(have, ", "))
}

// notOnServer reports whether a fetch failed because every mirror
// answered that it has not got the blob (and none failed otherwise).
func notOnServer(err error) bool {
	var fe *blob.FetchError
	if !errors.As(err, &fe) || len(fe.Errors) == 0 {
		return false
	}
	for _, e := range fe.Errors {
		if !errors.Is(e, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// withheld says why the command cannot have the chosen artifacts when
// the server holds no blob of one of them — a version promoted
// binary-only (cairn promote --artifacts binary) has its source in the
// descriptor but never on the server — naming the --artifact choices
// whose blobs it does hold; "" when every chosen blob is there. A blob
// counts as absent only when every mirror answers that it has not got
// it: an error (the server unreachable) is returned, to be retried. It
// asks each mirror about each artifact (a HEAD request each), so it is
// called only after a fetch found an artifact on no mirror.
func (f *follow) withheld(ctx context.Context, d *descriptor.Descriptor, arts []descriptor.Artifact) (string, error) {
	held := map[string]bool{}
	for _, a := range d.Artifacts {
		ok, err := f.holds(ctx, a.Ref)
		if err != nil {
			return "", fmt.Errorf("artifact %s: %w", a.File, err)
		}
		held[a.SHA256] = ok
	}
	var missing []string
	for _, a := range arts {
		if !held[a.SHA256] {
			missing = append(missing, fmt.Sprintf("%s (%s, sha256:%.12s)", a.File, a.Label(), a.SHA256))
		}
	}
	if len(missing) == 0 {
		return "", nil
	}
	var choices []string
	for _, a := range d.Artifacts {
		if !held[a.SHA256] {
			continue
		}
		if a.Kind == "binary" {
			choices = append(choices, "--artifact binary:"+a.Platform)
		} else {
			choices = append(choices, "--artifact source")
		}
	}
	choices = append(choices, "--artifact none")
	return fmt.Sprintf("%s: %s not on the server (promoted without it: cairn promote --artifacts); a certifier of this version needs %s",
		d.ID(), strings.Join(missing, ", "), strings.Join(choices, " or ")), nil
}

// holds reports whether the remote or one of its mirrors holds a blob:
// false only when each answers that it has not got it. (A Chain fetches;
// it has no such question to ask its mirrors without the bytes.)
func (f *follow) holds(ctx context.Context, ref blob.Ref) (bool, error) {
	var errs []error
	for _, m := range f.mirrors {
		ok, err := m.Stat(ctx, ref)
		if ok {
			return true, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return false, errors.Join(errs...)
}

// prepare fetches and verifies the artifacts into dir, writes the
// descriptor beside them, and returns the command's environment.
func (c *Certifier) prepare(ctx context.Context, f *follow, d *descriptor.Descriptor, ref blob.Ref, arts []descriptor.Artifact, dir string) ([]string, error) {
	store, err := blob.NewFS(filepath.Join(filepath.Dir(dir), "blobs"))
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, a := range arts {
		p := filepath.Join(dir, filepath.Base(a.File))
		if err := f.fetch(ctx, store, a.Ref, p); err != nil {
			return nil, fmt.Errorf("artifact %s: %w", a.File, err)
		}
		paths = append(paths, p)
	}
	dpath := filepath.Join(filepath.Dir(dir), "descriptor.json") // the work directory's, not the index's
	raw, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(dpath, raw, 0o644); err != nil {
		return nil, err
	}
	env := []string{
		"CAIRN_PACKAGE=" + d.Name,
		"CAIRN_VERSION=" + d.Version,
		"CAIRN_DESCRIPTOR=sha256:" + ref.SHA256,
		"CAIRN_DESCRIPTOR_FILE=" + dpath,
		"CAIRN_ARTIFACTS=" + strings.Join(paths, " "),
		"CAIRN_REMOTE=" + f.name,
		"CAIRN_REMOTE_URL=" + f.url,
	}
	if len(paths) > 0 {
		env = append(env, "CAIRN_ARTIFACT="+paths[0])
	}
	return env, nil
}

// fetch brings one verified blob to path: from the remote or its
// mirrors into a store of the run's own (each byte checked against the
// digest as it is written), then renamed into place. The replica's store
// never holds artifacts, and each is written once.
func (f *follow) fetch(ctx context.Context, store *blob.FS, ref blob.Ref, to string) error {
	c := &blob.Chain{Local: store, Mirrors: f.mirrors}
	if err := c.Fetch(ctx, ref); err != nil {
		return err
	}
	p, err := store.Path(ref)
	if err != nil {
		return err
	}
	return os.Rename(p, to)
}

// certifications are the records a run signs.
func (c *Certifier) certifications(v Version, arts []descriptor.Artifact, out *Outcome, result string, findings *Findings, evidence, url string) []author.Certification {
	passed := result == "passed"
	if !passed && c.o.OnFailure == "" {
		return nil
	}
	var scope []string
	if c.o.Artifact != "all" && c.o.Artifact != "none" {
		for _, a := range arts {
			scope = append(scope, a.File)
		}
	}
	cert := author.Certification{Name: v.Name, Version: v.Version, Kind: c.o.Property, Artifacts: scope, Evidence: []string{evidence}}
	if !passed {
		cert.Kind, cert.Result = record.Tested, "FAILED"
	}
	if cert.Kind == record.Tested {
		if passed {
			cert.Result = "PASSED"
		}
		run := map[string]any{
			"command": c.o.Command, "exit_code": out.ExitCode, "timed_out": out.TimedOut,
			"duration_seconds": out.Duration.Seconds(), "output_dropped_bytes": out.Dropped,
			"remote": url, "timeout_seconds": c.o.Timeout.Seconds(),
		}
		cert.Configuration = append(cert.Configuration, record.ResourceDescriptor{Name: "command", Annotations: run})
		for _, a := range arts {
			cert.Configuration = append(cert.Configuration, record.ResourceDescriptor{Name: a.File, Digest: map[string]string{"sha256": a.SHA256}})
		}
	} else {
		cert.Note = fmt.Sprintf("%s passed in %s: %s", c.o.Property, out.Duration.Round(time.Millisecond), c.o.Command)
		if ids := findingIDs(findings); len(ids) > 0 {
			cert.Note += fmt.Sprintf("; %d finding(s): %s", len(ids), strings.Join(ids, ", "))
		}
		if len(cert.Note) > 4000 {
			cert.Note = cert.Note[:4000] + "…"
		}
	}
	certs := []author.Certification{cert}
	if findings != nil && len(findings.Results) > 0 {
		scanner := findings.Scanner
		if scanner == "" {
			scanner = "https://cairn.dev/certifier"
		}
		for _, part := range split(findings.Results, maxFindingsBytes) {
			certs = append(certs, author.Certification{Name: v.Name, Version: v.Version, Kind: record.Vulnerable, Artifacts: scope, Findings: part, Scanner: scanner})
		}
	}
	return certs
}

// maxFindingsBytes is how many bytes of findings (as JSON) one vulnerable
// record carries: a scan whose findings keep their OSV data may hold more
// than a record does (record.MaxSize, the payload in base64), and then
// signs several vulnerable records, all in the same commit.
const maxFindingsBytes = 32 << 10

// split cuts results, in order, into parts of at most max bytes of JSON
// each (a result larger alone is a part alone).
func split(results []record.VulnResult, max int) [][]record.VulnResult {
	var parts [][]record.VulnResult
	var cur []record.VulnResult
	size := 0
	for _, r := range results {
		b, _ := json.Marshal(r)
		if len(cur) > 0 && size+len(b) > max {
			parts, cur, size = append(parts, cur), nil, 0
		}
		cur = append(cur, r)
		size += len(b) + 1
	}
	if len(cur) > 0 {
		parts = append(parts, cur)
	}
	return parts
}

// push signs the certifications on the replica's main and pushes them.
// Pushes are one at a time; when the remote moved, the version is looked
// for in what landed first, so that two replicas with one key sign it
// once: the push that finds it there stops (errAlready) and nothing of
// it stays behind.
func (c *Certifier) push(ctx context.Context, f *follow, v Version, holder string, certs []author.Certification) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := remote.Discard(ctx, f.repo, f.name); err != nil {
		return "", err
	}
	added, err := author.CertifyAll(ctx, f.repo, certs, c.o.Signer)
	if err != nil {
		return "", err
	}
	check := func(ctx context.Context, head string) error {
		cat, err := f.repo.Catalog(ctx, head)
		if err != nil {
			return err
		}
		if id, err := c.mine(cat, v, holder); err != nil {
			return err
		} else if id != "" {
			return &errAlready{record: id}
		}
		return nil
	}
	_, err = remote.Push(ctx, f.repo, f.name, c.o.Signer, remote.Options{Client: c.o.Client, BeforeRebase: check, Fresh: true})
	if err != nil {
		// Nothing unpushed stays: the version is run again, or it was
		// certified first.
		if _, derr := remote.Discard(context.WithoutCancel(ctx), f.repo, f.name); derr != nil {
			return "", errors.Join(err, derr)
		}
		return "", err
	}
	return added.Records[0], nil
}
