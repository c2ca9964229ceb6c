package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/transport"
)

func newServeCmd() *cobra.Command {
	var (
		repo, addr, ready, ckey string
		grace, every            time.Duration
		maxUpload, maxPush      int64
		minFree                 int64
		limits                  server.Limits
		skew                    time.Duration
		js                      bool
		witnesses               []string
		policyFile              string
		ckptEvery               time.Duration
		follow                  string
		followEvery             time.Duration
		logTo                   string
		logEvery                time.Duration
		trusted                 []string
		blobRedirect            bool
		sumdbs                  []string
	)
	c := &cobra.Command{
		Use:   "serve --repo DIR [--addr HOST:PORT]",
		Short: "Serve a repository: git clone/fetch/push of the index, blobs, light reads, checkpoints",
		Long: `Serve a repository over HTTP, until interrupted (SIGINT or SIGTERM: requests in
flight get 30 seconds to finish).

  /index.git            git smart HTTP (git's own http-backend): clone, fetch, push;
                        every push is checked by the index's rules before main moves
  /blobs/sha256/HEX     GET/HEAD a blob (Range, ETag, immutable); PUT an upload
                        signed by a key granted a publish or certify scope
  /blobs/batch          POST "sha256:HEX SIZE" lines: many blobs in one response
  /api/v1/packages/NAME  every version, descriptor and record of a package (ETag)
  /api/v1/records/ID    one record
  /api/v1/checkpoint    the checkpoint: the transparency log's tree at the verified
                        head, signed by --checkpoint-key, cosigned by the witnesses
  /log/checkpoint       the same bytes, where C2SP tlog-tiles clients look
  /log/tile/L/N[.p/W]   the log's hash tiles and entry bundles (tile/entries/N…),
                        C2SP tlog-tiles, immutable
  /api/v1/log/subject   ?s=SUBJECT: every file of a subject ("package NS/NAME",
                        "key ID", "root", …) with its map proof
  /api/v1/log/subjects  POST subjects one a line: many subjects' documents of one
                        tree in one response, each with its map proof
  /api/v1/log/record/ID a record's leaf in the log: index, entry, content
  /api/v1/head          ?after=COMMIT&wait=S: main's head once it is not COMMIT
                        (a wake-up when a push lands; followers verify as always)
  /go/MODULE/@v/list, /@v/VERSION.info|.mod|.zip, /@latest
                        a Go module proxy (GOPROXY=URL/go) of the Go module
                        versions the index holds; .mod and .zip checked
                        against their descriptor's sha256 and h1: first
  /go/sumdb/NAME/…      the Go checksum databases named by --go-sumdb,
                        relayed (the go command asks its proxy for them first
                        and verifies every answer itself)
  /healthz, /metrics    health and Prometheus metrics

With --policy FILE (as cairn policy check reads it) the server judges
each version it serves with that policy, once per index head: a version the
policy refuses is left out of /go/ lists and @latest, its .info, .mod and .zip,
and the blobs of artifacts only refused versions name, are answered 403 with a
text body naming the policy, the rule, the record and what to do (the go
command prints it under "server response:"), and light package documents list
the refusals; the checkpoint names the policy (header Cairn-Policy), so that
light clients (cairn lock, install, show --url) offer only the versions it
serves and say its rule and reason for the others. Each refusal is logged and counted in
cairn_policy_refusals_total{rule,via}. In the policy's issuers this repository
is "local" and each upstream it follows is named as declared.

With --policy index:NAME the policy is the index's own (cairn policy publish):
at each new head the server judges with the version then in force, and its
refusals name index:NAME and that version's sha256, which clients that name the
same policy in cairn.yaml share.

In an organisation's repository that follows upstreams (cairn upstream add), the
server syncs them every --sync interval (as 'cairn sync' does) and serves their
packages and blobs beside its own: an upstream blob is fetched when first asked
for, verified, and kept. When an upstream is unreachable, everything verified
before is still served.

Every request is bounded in time and the server in concurrency, so that slow
or many clients cannot hold it: headers must arrive within --header-timeout;
while the server waits on a client (for its request body, or for it to read
the response), the client must keep up with --min-rate bytes a second, and one
that falls --slow-timeout behind is cut (the connection closed, its git process
killed), but never for the server's own delays; no request lasts longer than
--request-timeout. At most --max-git git processes run at once
(more requests wait 2 s, then get 503 with Retry-After), and one client address
uploads (blob PUTs, pushes) at most --max-client-uploads at once (429); behind
a load balancer, or for a writer behind its replicas, name them with
--trusted-proxy so that the client their X-Forwarded-For names is counted,
not the proxy. A push over --max-push is refused, and git shows the limit and the flag.

With the index's blobs on an object store (cairn init --blobs), a large blob's
GET is redirected to a URL the store signs, which clients then read directly
(and verify); small blobs pass through the server. When the store's endpoint is
one only the server reaches (localhost, a private network), serve with
--blob-redirect=false: every blob then streams through the server, verified.

An upload that no record refers to after --grace is deleted from the blob
store, if this server wrote it: an upload of a blob the store held already
writes nothing, and is never collected. A blob store (cairn init --blobs)
should hold one index's blobs: a blob this server wrote and collects may be one
another index sharing the bucket uploaded since, and refers to.

The index is verified before it is served (what is new on main since the last
verified head): a rule broken or a history rewritten on disk, behind cairn's
back, stops the server from starting (exit 3), and while it runs /healthz
answers 503 with the line that fails (checked on each call and after each push).

With --checkpoint-key the server signs a checkpoint (docs/transparency.md) when
main moves and at least every --checkpoint-interval, each consistent with the one
before: a log that shrank or whose leaves changed is refused, loudly (the
checkpoint endpoints answer 503 with both checkpoints). Each new checkpoint is submitted to every --witness
(URL=VKEY: the witness's URL and its verifier key, as 'cairn witness vkey'
prints it; C2SP tlog-witness), and served with the cosignatures that verify; a
witness that fails is logged, not fatal.

Without --checkpoint-key the server signs no checkpoints: it warns at start, and
answers /api/v1/checkpoint with 404 and the header "Cairn-Checkpoint: none";
clients then refuse to pull from it unless the remote was added with
--insecure-no-checkpoint.

With --follow REMOTE the server is a read replica of a writer: a repository
made by 'cairn remote add REMOTE WRITER-URL --introduction ID --repo DIR' (the
writer being another cairn serve, with --checkpoint-key). The replica pulls from
the writer on its own (as soon as the writer's main moves, and at least every
--follow-interval), each pull verifying every new commit and the writer's signed
checkpoint as 'cairn pull' does, and serves only what it verified: the writer's
checkpoint of the head it verified (it signs none itself), the log's tiles and
light reads at that tree, pages, and git clone/fetch of main. A light read of a
newer tree (a client that read a newer checkpoint from another replica) waits up
to 5 s for the replica to catch up. A refused pull (a fork, a rollback, a broken
rule, a bad checkpoint) moves nothing: the replica keeps serving its verified
head and logs the refusal. Pushes (git receive-pack) and blob uploads are
forwarded to the writer, whose answers, a refused push's messages included,
reach the client unchanged; blobs the replica lacks are fetched from the writer,
verified, and kept. Several replicas behind a load balancer serve one writer.

With --log-to DIR|URL the server also publishes its log as static files, as
'cairn log publish' does, each time it signs a new checkpoint (looked for every
--log-interval): a CDN or an object store then serves light clients' tiles, and
the log of the index hosted on a plain git host.

Access logs are JSON lines on standard error.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("max-clock-skew") {
				if skew <= 0 {
					return usageError{fmt.Errorf("--max-clock-skew %s: want a positive duration such as 5m", skew)}
				}
				// The pre-receive hook is a process of its own: it reads
				// the bound from its environment.
				os.Setenv(server.SkewEnv, skew.String())
			}
			// Not withRepo: server.New verifies the index and refuses one that
			// does not verify (exit 3, naming the rule), so it is verified once.
			ctx := cmd.Context()
			if follow != "" && ckey != "" {
				return usageError{errors.New("--follow makes a read replica, which serves its writer's checkpoints and signs none: drop --checkpoint-key (or --follow)")}
			}
			if follow != "" && followEvery <= 0 {
				return usageError{fmt.Errorf("--follow-interval %s: want a positive duration", followEvery)}
			}
			for _, t := range trusted {
				p, err := parsePrefix(t)
				if err != nil {
					return usageError{fmt.Errorf("--trusted-proxy %q: want an address or a CIDR range (10.0.0.0/8)", t)}
				}
				limits.TrustedProxies = append(limits.TrustedProxies, p)
			}
			r, err := openRepo(ctx, repo)
			if err != nil {
				return err
			}
			defer r.Close()
			out := newLogBuffer(cmd.ErrOrStderr(), 100*time.Millisecond)
			defer out.Close()
			log := slog.New(slog.NewJSONHandler(out, nil))
			var fol *remote.Follower
			if follow != "" {
				if fol, err = newReplica(ctx, r, follow, followEvery, log); err != nil {
					return err
				}
				defer fol.Repo.Close()
				every = 0 // the writer syncs the upstreams; pulls bring their lines along
			}
			opts := server.Options{
				Logger:         log,
				AccessLog:      out,
				Grace:          grace,
				MaxUpload:      maxUpload,
				NoBlobRedirect: !blobRedirect,
				MaxPush:        maxPush,
				MinFree:        minFree,
				Limits:         limits,
				Fallback:       (&remote.UpstreamBlobs{Repo: r}).Fetch,
				UpstreamCheckpoint: func(ctx context.Context, u *index.Upstream) ([]byte, string, error) {
					return remote.UpstreamCheckpoint(ctx, r, u)
				},
			}
			for _, spec := range sumdbs {
				db, err := parseGoSumDB(spec)
				if err != nil {
					return usageError{err}
				}
				opts.GoSumDBs = append(opts.GoSumDBs, db)
			}
			if fol != nil {
				rm, err := remote.Get(r, follow)
				if err != nil {
					return err
				}
				writer, err := neturl.Parse(rm.URL)
				if err != nil {
					return fmt.Errorf("remote %s: %w", follow, err)
				}
				opts.Replica = &server.Replica{Writer: writer, Nudge: fol.Nudge, Refusing: fol.Refusing, Stalled: fol.Stalled, LastVerified: fol.LastVerified}
				opts.Fallback = (&remote.WriterBlobs{Repo: r, Remote: follow}).Fetch
			}
			if ckey != "" {
				s, err := keys.Resolve(ckey)
				if err != nil {
					return err
				}
				opts.CheckpointKey = s
			}
			if logTo != "" && (ckey == "" || logEvery <= 0) {
				return usageError{errors.New("--log-to publishes the checkpoints this server signs: it needs --checkpoint-key, and a positive --log-interval")}
			}
			if len(witnesses) > 0 && ckey == "" {
				return usageError{errors.New("--witness needs --checkpoint-key: witnesses cosign the checkpoints it signs")}
			}
			if opts.Witnesses, err = parseWitnesses(witnesses); err != nil {
				return err
			}
			if ckptEvery <= 0 {
				return usageError{fmt.Errorf("--checkpoint-interval %s: want a positive duration", ckptEvery)}
			}
			opts.CheckpointInterval = ckptEvery
			if name, inIndex := plan.IndexPolicy(policyFile); inIndex {
				opts.IndexPolicy = name
			} else if policyFile != "" {
				data, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("--policy: %w", err)
				}
				if opts.Policy, err = policy.Parse(filepath.Base(policyFile), data); err != nil {
					return err
				}
			}
			var pm *logPublishMetrics
			if logTo != "" {
				pm = newLogPublishMetrics()
				opts.Collectors = append(opts.Collectors, pm.published, pm.at, pm.failures)
			}
			srv, err := server.New(r, opts)
			if err != nil {
				return err
			}
			if fol != nil {
				fol.Verified = srv.Followed
				if err := fol.Kept(ctx); err != nil && !errors.Is(err, fs.ErrNotExist) {
					log.Warn("replica: the writer's checkpoint kept is not served; serving none until the next pull verifies one", "err", err)
				}
				fctx, stop := context.WithCancel(ctx)
				followed := make(chan struct{})
				go func() {
					defer close(followed)
					fol.Run(fctx)
				}()
				defer func() {
					stop()
					<-followed
				}()
			} else if opts.CheckpointKey == nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "cairn: warning: serving without --checkpoint-key: this server signs no checkpoints, so clients cannot tell it from a frozen mirror and refuse to pull from it unless the remote was added with --insecure-no-checkpoint")
			} else if head, err := r.Head(ctx, index.MainRef); err == nil && head != "" {
				// Said now, to the operator, rather than to every client
				// as a checkpoint it cannot trust: none is signed until the
				// key is granted.
				if err := server.MayCheckpoint(ctx, r, head, opts.CheckpointKey, time.Now()); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: %v; until then /log/checkpoint answers 503 and no client can read or pull\n", err)
				}
			}
			defer srv.Close()
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			url := "http://" + l.Addr().String()
			if js {
				type listening struct {
					Repo          string `json:"repo"`
					Addr          string `json:"addr"`
					URL           string `json:"url"`
					Clone         string `json:"clone"`
					CheckpointKey string `json:"checkpoint_key,omitempty"`
				}
				line := listening{Repo: r.Dir, Addr: l.Addr().String(), URL: url, Clone: url + "/index.git"}
				if opts.CheckpointKey != nil {
					line.CheckpointKey = keys.ID(opts.CheckpointKey.Public())
				}
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(line); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "serving %s at %s (clone %s/index.git)\n", r.Dir, url, url)
			}
			if ready != "" {
				if err := safefile.Write(ready, []byte(url+"\n"), safefile.Options{Perm: 0o644}); err != nil {
					return err
				}
			}
			if logTo != "" {
				pctx, stop := context.WithCancel(ctx)
				published := make(chan struct{})
				go func() {
					defer close(published)
					publishEvery(pctx, r.Dir, srv.Handler(), logTo, logEvery, log, pm)
				}()
				defer func() {
					stop()
					<-published
				}()
			}
			if every > 0 {
				// Stopped and waited for before the log is closed, so
				// that what the last sync did is logged.
				sctx, stop := context.WithCancel(ctx)
				synced := make(chan struct{})
				go func() {
					defer close(synced)
					syncEvery(sctx, r.Dir, every, log)
				}()
				defer func() {
					stop()
					<-synced
				}()
			}
			return srv.Serve(ctx, l)
		},
	}
	repoFlag(c, &repo)
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (port 0: any free port)")
	c.Flags().StringVar(&ready, "ready-file", "", "write the server's URL to this file once it listens")
	c.Flags().BoolVar(&js, "json", false, "print one JSON line once listening: the repository, address, URL and checkpoint key")
	c.Flags().StringVar(&ckey, "checkpoint-key", "", "sign checkpoints with this key (granted the checkpoint scope)")
	c.Flags().StringArrayVar(&witnesses, "witness", nil, "submit each checkpoint to this witness, URL=VKEY (repeatable)")
	c.Flags().DurationVar(&ckptEvery, "checkpoint-interval", checkpoint.DefaultMaxAge/4, "sign a new checkpoint this often when main has not moved (clients refuse one older than their --max-age, 24h by default)")
	c.Flags().StringVar(&policyFile, "policy", "", "enforce this policy file, or index:NAME (a policy of the index), on what the server serves (Go modules, blobs; light documents list the refusals)")
	c.Flags().DurationVar(&grace, "grace", 24*time.Hour, "keep uploads no record refers to this long (then delete those this server wrote, at the next hourly collection)")
	c.Flags().Int64Var(&maxUpload, "max-upload", 1<<30, "largest blob upload, in bytes")
	c.Flags().BoolVar(&blobRedirect, "blob-redirect", true, "send a large blob's GET to a URL the object store signs; =false streams it through the server, verified (a store only the server reaches)")
	c.Flags().Int64Var(&maxPush, "max-push", 256<<20, "largest git push, in bytes")
	c.Flags().Int64Var(&minFree, "min-free", 256<<20, "room to keep free on the index's file system, in bytes, for its log and checkpoints: a push that finds less is refused and /healthz answers 503 (0: keep none)")
	c.Flags().DurationVar(&skew, "max-clock-skew", index.MaxClockSkew, "accept pushed commits dated this close to the server's clock, either way (default $"+server.SkewEnv+", else 5m)")
	c.Flags().DurationVar(&every, "sync", 10*time.Minute, "sync the upstreams this often (0: never; see cairn sync)")
	c.Flags().DurationVar(&limits.HeaderTimeout, "header-timeout", 10*time.Second, "time for a request's headers to arrive")
	c.Flags().DurationVar(&limits.IdleTimeout, "idle-timeout", 2*time.Minute, "close a keep-alive connection idle this long")
	c.Flags().DurationVar(&limits.RequestTimeout, "request-timeout", time.Hour, "longest a request may last, body and response")
	c.Flags().DurationVar(&limits.SlowTimeout, "slow-timeout", 30*time.Second, "how far a request body or a response may lag behind --min-rate before the client is cut")
	c.Flags().Int64Var(&limits.MinRate, "min-rate", 16<<10, "slowest transfer kept, in bytes a second (after --slow-timeout)")
	c.Flags().IntVar(&limits.MaxGit, "max-git", 0, "git processes at once (0: 4 per CPU, at least 16)")
	c.Flags().StringVar(&follow, "follow", "", "serve as a read replica of this remote's server (the writer): pull and verify on its own, forward pushes and uploads to it")
	c.Flags().DurationVar(&followEvery, "follow-interval", 30*time.Second, "with --follow, pull at least this often (a push on the writer is pulled at once)")
	c.Flags().StringArrayVar(&trusted, "trusted-proxy", nil, "a proxy in front of this server (an address or CIDR range: the load balancer; for a writer, its replicas): its requests count against the client its X-Forwarded-For names (repeatable)")
	c.Flags().IntVar(&limits.MaxClientUploads, "max-client-uploads", 4, "uploads (blob PUTs, pushes) at once from one client address")
	c.Flags().StringArrayVar(&sumdbs, "go-sumdb", nil, "relay this Go checksum database under /go/sumdb/ for the go command: NAME (read at https://NAME) or NAME=URL (a mirror of it: sum.golang.org=https://proxy.golang.org/sumdb/sum.golang.org) (repeatable)")
	c.Flags().StringVar(&logTo, "log-to", "", "publish the log as static files (as cairn log publish) to this directory or object store URL after each checkpoint")
	c.Flags().DurationVar(&logEvery, "log-interval", 10*time.Second, "with --log-to, look for a new checkpoint to publish this often")
	return c
}

// logBuffer buffers log lines and writes them out at least every
// interval (as nginx's access_log buffer=… flush=… does): one write per
// batch instead of one per request.
type logBuffer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newLogBuffer(w io.Writer, every time.Duration) *logBuffer {
	b := &logBuffer{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.mu.Lock()
				b.w.Flush()
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Close writes out what is buffered and stops the flusher.
func (b *logBuffer) Close() error {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// syncEvery syncs the repository's upstreams now and then every interval,
// through its own handle on the repository (a sync moves refs and
// restarts readers, which the server's requests must not see).
func syncEvery(ctx context.Context, dir string, every time.Duration, log *slog.Logger) {
	r, err := index.Open(ctx, dir)
	if err != nil {
		log.Error("sync: opening the repository", "err", err)
		return
	}
	defer r.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	warnedUnwitnessed := map[string]bool{} // once per upstream, not every sync
	for {
		res, err := remote.Sync(ctx, r, remote.Options{})
		warned := 0
		for _, s := range res {
			switch {
			case s.Error != "":
				warned++
				log.Warn("upstream not synced; serving what was verified before", "upstream", s.Upstream, "err", s.Error)
			case s.Pulled.From != s.Pulled.Head:
				log.Info("upstream synced", "upstream", s.Upstream, "head", s.Pulled.Head, "commits", s.Pulled.Commits, "cosigned", s.Pulled.Cosigned)
			}
			if s.Pulled != nil && s.Pulled.Checkpoint != nil && s.Pulled.Unwitnessed && !warnedUnwitnessed[s.Upstream] {
				warnedUnwitnessed[s.Upstream] = true
				log.Warn("upstream names no witnesses: a split view cannot be detected (cairn upstream set NAME --witness VKEY)", "upstream", s.Upstream)
			}
			if len(s.Collisions) > 0 {
				log.Warn("upstream publishes internal package names; only the internal packages are served", "upstream", s.Upstream, "names", s.Collisions)
			}
		}
		// The upstreams not synced are warned of above; anything else
		// (a name check that failed, no upstream list) is logged here.
		var se *remote.SyncError
		if err != nil && (!errors.As(err, &se) || len(se.Errors) > warned) {
			log.Error("sync", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// newHookCmd is what git runs as the server's pre-receive hook.
func newHookCmd() *cobra.Command {
	var repo string
	c := &cobra.Command{
		Use:    "hook pre-receive --repo DIR",
		Short:  "Check a push (git runs this as the server's pre-receive hook)",
		Hidden: true,
		Args:   exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "pre-receive" {
				return usageError{fmt.Errorf("unknown hook %q", args[0])}
			}
			return server.PreReceive(cmd.Context(), repo, os.Stdin, cmd.ErrOrStderr())
		},
	}
	repoFlag(c, &repo)
	return c
}

// newReplica prepares the follower of a replica served with --follow:
// its own handle on the repository, and a first pull (bounded) so that a
// replica started while its writer runs serves the writer's head from
// its first request. A writer that cannot be reached is logged: the
// replica serves what it verified before and keeps trying.
func newReplica(ctx context.Context, r *index.Repo, name string, every time.Duration, log *slog.Logger) (*remote.Follower, error) {
	if _, err := remote.Get(r, name); err != nil {
		return nil, err
	}
	rm, err := remote.Followable(r, name)
	if err != nil {
		return nil, usageError{fmt.Errorf("--follow %s: %w", name, err)}
	}
	own, err := index.Open(ctx, r.Dir)
	if err != nil {
		return nil, err
	}
	f := &remote.Follower{Repo: own, Remote: name, Every: every, Log: log}
	first, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if p, err := f.Once(first); err != nil {
		log.Warn("replica: the first pull from the writer failed; serving what was verified before, and trying again", "writer", transport.RedactString(rm.URL), "err", err)
	} else {
		log.Info("replica: following the writer", "writer", transport.RedactString(rm.URL), "head", p.Head)
	}
	return f, nil
}

// parsePrefix parses an address (a prefix of its full length) or a CIDR
// range.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// parseGoSumDB reads --go-sumdb: NAME, read at https://NAME, or NAME=URL;
// NAME may be written as GOSUMDB writes a key (NAME+HASH+KEY): the go
// command asks its proxy for the database by NAME.
func parseGoSumDB(spec string) (server.GoSumDB, error) {
	name, u, ok := strings.Cut(spec, "=")
	name, _, _ = strings.Cut(name, "+")
	if !ok {
		u = "https://" + name
	}
	parsed, err := neturl.Parse(u)
	if name == "" || strings.ContainsAny(name, "/ ") || err != nil || (parsed.Scheme != "https" && parsed.Scheme != "http") || parsed.Host == "" || parsed.RawQuery != "" || parsed.Fragment != "" || strings.Contains(u, "#") {
		return server.GoSumDB{}, fmt.Errorf("--go-sumdb %q: want NAME or NAME=URL (sum.golang.org, or sum.golang.org=https://proxy.golang.org/sumdb/sum.golang.org)", spec)
	}
	return server.GoSumDB{Name: name, URL: u}, nil
}
