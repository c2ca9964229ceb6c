package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/certifier"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/safefile"
)

func newCertifierCmd() *cobra.Command {
	var (
		repo, key, property, findingsAs, state, metricsAddr, ready string
		remotes                                                    []string
		o                                                          certifier.Options
		maxOutput                                                  int
		js                                                         bool
	)
	c := &cobra.Command{
		Use:   "certifier --remote NAME --key KEY --property KIND --run COMMAND",
		Short: "Follow remotes; run a command (tests, a scanner) on every new version and certify what passes",
		Long: `Run the CI certifier: a service that follows one or more remotes (added with
'cairn remote add' to --repo), pulls and verifies each like any client, and for
every version published there that matches --filter:

  1. fetches the --artifact it names into a fresh directory, each byte checked
     against the descriptor; a version without that artifact, or whose blob
     the server does not hold (promoted binary-only: its source withheld), is
     skipped, logged with the --artifact choices it does have, and counted
     skipped: the versions after it are dealt with as always;
  2. runs --run there with sh -c, under --timeout (the command and everything
     it started are killed then), each file it writes bounded by
     --max-file-size, with the version in its environment:
       CAIRN_PACKAGE, CAIRN_VERSION, CAIRN_DESCRIPTOR (sha256:HEX),
       CAIRN_DESCRIPTOR_FILE, CAIRN_ARTIFACT (the first), CAIRN_ARTIFACTS
       (space-separated paths), CAIRN_REMOTE, CAIRN_REMOTE_URL;
  3. when it exits 0, signs a --property record with its key and pushes it:
     tested is an in-toto test-result (result, command, exit code, duration,
     the artifacts' digests, the output's digest); the others are cairn
     certifications whose note says what ran. The output (its first and last
     --max-output/2 bytes) is uploaded as the record's evidence. A failed or
     timed-out run signs nothing, or with --property-on-failure tested-failed
     a tested record whose result is FAILED.

With --findings-as vulnerable the command is a scanner: its standard output is
read as findings — osv-scanner's JSON report (osv-scanner --format json), an OSV
record or a list of them, an in-toto vulns predicate or statement, or a JSON
list of {"id", "severity", "affects", "note"} (severities low/medium/high/critical
or CVSS scores) — and, beside the --property record (scanned), a vulnerable
record lists them, signed by the same key: a policy then refuses the version.
A finding from OSV keeps its aliases, the affected ranges of the package it was
found in, its CVSS vectors (its severity is the highest vector's score) and its
references; findings too many for one record are signed as several, in one
commit. A scanner that exits non-zero with a report listing findings
(osv-scanner, trivy --exit-code 1) counts as a scan done.

The key must be granted certify:KIND for every kind it signs; the certifier
refuses to start otherwise, and stops (exit 3) when its key is revoked. Its
progress is kept under --state (a replica of each remote's index, and what it
has done): it is written only after a record has landed, so a certifier
killed at any point resumes where it stopped and certifies each version once.
Before it signs, and again when its push finds the remote moved, it looks for
a record of its own about the version: several replicas with one key sign it
once. Between polls it waits on each server's GET /api/v1/head, answered the
moment a push lands, so a new version is seen at once. Errors that retrying
may mend (the remote down) are logged and retried after --poll, doubling up to
--max-backoff.

Logs are JSON lines on standard error; --metrics serves /metrics (versions seen
and dealt with by outcome, queue length, run durations, the time from first
sight to the record landing, less the run) and /healthz.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(remotes) == 0 {
				return usageError{errors.New("name the remote(s) to follow: --remote NAME")}
			}
			if property == "" || o.Command == "" {
				return usageError{errors.New("say what is certified (--property KIND) and what runs (--run COMMAND)")}
			}
			kind, err := record.ParseKind(property)
			if err != nil {
				return usageError{err}
			}
			o.Property = kind
			switch findingsAs {
			case "":
			case "vulnerable":
				o.Findings = true
			default:
				return usageError{fmt.Errorf("--findings-as %q: findings become vulnerable records", findingsAs)}
			}
			o.MaxOutput = maxOutput
			ss, err := signers(nonEmpty(key))
			if err != nil {
				return err
			}
			if o.Signer, err = oneKey(ss); err != nil {
				return err
			}
			return withRepo(cmd, repo, func(ctx context.Context, r *index.Repo) error {
				out := newLogBuffer(cmd.ErrOrStderr(), 100*time.Millisecond)
				defer out.Close()
				o.Log = slog.New(slog.NewJSONHandler(out, nil))
				if js {
					var mu sync.Mutex
					enc := json.NewEncoder(cmd.OutOrStdout())
					o.Result = func(res certifier.Result) {
						mu.Lock()
						defer mu.Unlock()
						enc.Encode(res)
					}
				}
				reg := prometheus.NewRegistry()
				reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
				o.Metrics = certifier.NewMetrics(reg)
				dir := state
				if dir == "" {
					// One state per key and property: certifiers of one
					// configuration do not share theirs.
					dir = filepath.Join(r.LocalDir(), "certifier", property+"-"+keys.IDHex(o.Signer.Public())[:16])
				}
				cf, err := certifier.New(ctx, r, remotes, dir, o)
				if err != nil {
					return err
				}
				defer cf.Close()
				if metricsAddr != "" {
					says := cmd.OutOrStdout()
					if js {
						says = cmd.ErrOrStderr() // standard output is the results' JSON lines
					}
					stop, err := serveMetrics(metricsAddr, reg, ready, says)
					if err != nil {
						return err
					}
					defer stop()
				}
				o.Log.Info("certifier started", "remotes", strings.Join(remotes, ","), "property", property, "key", keys.ID(o.Signer.Public()), "state", dir)
				err = cf.Run(ctx)
				var fe *certifier.FatalError
				if errors.As(err, &fe) {
					return certifierStopped{err}
				}
				return err
			})
		},
	}
	repoFlag(c, &repo)
	fl := c.Flags()
	fl.StringArrayVar(&remotes, "remote", nil, "a remote to follow, as added with cairn remote add (repeatable)")
	fl.StringVar(&key, "key", "", "the certifier's signing key (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	fl.StringVar(&property, "property", "", "what a passing run certifies: tested, scanned, audited, reviewed, reproduced, proof-checked")
	fl.StringVar(&o.OnFailure, "property-on-failure", "", "what a failing run signs: tested-failed (a tested record, result FAILED); default nothing")
	fl.StringVar(&o.Command, "run", "", "the command, run by sh -c in the version's fresh directory")
	fl.StringVar(&findingsAs, "findings-as", "", "read the command's standard output as findings and sign them as vulnerable records")
	fl.StringArrayVar(&o.Filter, "filter", nil, "only packages matching this pattern, e.g. 'acme/*' (repeatable; default all)")
	fl.StringVar(&o.Artifact, "artifact", "source", "what the command gets: source, binary:PLATFORM, a platform, a file name, all or none")
	fl.IntVar(&o.Jobs, "jobs", 1, "commands run at once")
	fl.DurationVar(&o.Timeout, "timeout", 20*time.Minute, "a run is killed (with everything it started) after this")
	fl.IntVar(&maxOutput, "max-output", 1<<20, "bytes of output kept as evidence (the first and last halves)")
	fl.Int64Var(&o.MaxFileSize, "max-file-size", 4<<30, "the largest file a run may write, in bytes")
	fl.StringVar(&state, "state", "", "where the certifier keeps its replicas and progress (default: in --repo's local state, by property and key)")
	fl.DurationVar(&o.Poll, "poll", 10*time.Second, "how often the remotes are polled")
	fl.DurationVar(&o.MaxBackoff, "max-backoff", 5*time.Minute, "the longest wait between retries after errors")
	fl.BoolVar(&o.Once, "once", false, "deal with what is new once, then exit (as a cron job)")
	fl.StringVar(&metricsAddr, "metrics", "", "serve /metrics and /healthz at this address (port 0: any free port)")
	fl.BoolVar(&js, "json", false, "print each version dealt with as a JSON line: remote, package, version, outcome, detail")
	fl.StringVar(&ready, "ready-file", "", "with --metrics: write the metrics URL to this file once it listens")
	return c
}

// certifierStopped is a certifier stopped because its key may not sign.
type certifierStopped struct{ error }

func (e certifierStopped) Unwrap() error { return e.error }

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// serveMetrics serves /metrics and /healthz until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, ready string, says io.Writer) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	url := "http://" + l.Addr().String()
	fmt.Fprintf(says, "certifier metrics at %s/metrics\n", url)
	if ready != "" {
		if err := safefile.Write(ready, []byte(url+"\n"), safefile.Options{Perm: 0o644}); err != nil {
			srv.Close()
			return nil, err
		}
	}
	return func() { srv.Close() }, nil
}
