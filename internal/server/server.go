// Package server is cairn's HTTP server: the index over git's own smart
// HTTP (`git http-backend`) with every push checked by the index's rules
// in a pre-receive hook; blobs by digest, in batches, and uploads signed
// by the uploader's granted key; light per-package reads and records by
// id; signed checkpoints of the head; health, metrics and access logs.
//
// Clients trust none of it: every byte they receive is checked against
// digests and signatures they verify themselves. The server's checks only
// keep bad data out of the repository it serves.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/web"
)

// Options tune a server; the zero value of each field means its default.
type Options struct {
	// Exe is the cairn executable the pre-receive hook runs (default:
	// this one).
	Exe string
	// Collectors are served in /metrics beside the server's own (those
	// of work the command runs beside the server: cairn serve --log-to).
	Collectors []prometheus.Collector
	// Logger receives access logs and events (default: JSON on stderr).
	Logger *slog.Logger
	// AccessLog, if set, is where Logger's JSON handler writes (Logger
	// is slog.New(slog.NewJSONHandler(AccessLog, nil))): the access
	// lines are written there directly, the same bytes slog would write,
	// at a fraction of its cost (while Logger is enabled at Info), one
	// Write a line, from many requests at once: the writer must be safe
	// for concurrent use, as slog's handler is (an *os.File is).
	AccessLog io.Writer
	// MaxUpload bounds one blob upload, in bytes (default 1 GiB).
	MaxUpload int64
	// MaxPush bounds one git push, in bytes (default 256 MiB).
	MaxPush int64
	// MinFree is the room, in bytes, the server keeps free on the file
	// system of the index (0: none kept): a push that finds less is
	// refused before its ref moves, and /healthz answers 503 while there
	// is less. A push landed on a full disk is in the history while its
	// transparency log cannot be brought to it: no checkpoint is signed
	// until room is made.
	MinFree int64
	// SliceEvery is how many commits apart GET /api/v1/slices cuts a
	// long history for a pull (default 1,024).
	SliceEvery int
	// Grace is how long an upload that no record refers to is kept
	// (default 24 h).
	Grace time.Duration
	// NoBlobRedirect streams every blob of an object store through this
	// server, verified, instead of redirecting a large one's GET to a
	// URL the store signs: for a store that only this server reaches
	// (an endpoint on localhost or a private network).
	NoBlobRedirect bool
	// CheckpointKey signs checkpoints; the root must have granted it the
	// checkpoint scope. Nil: no checkpoints are served.
	CheckpointKey keys.Signer
	// CheckpointInterval is how often a checkpoint is signed when main
	// has not moved (default a quarter of checkpoint.DefaultMaxAge, the
	// age clients accept by default); one is signed whenever it moves.
	CheckpointInterval time.Duration
	// Witnesses are submitted every new checkpoint (C2SP tlog-witness),
	// and their cosignatures served with it; one that fails is logged.
	Witnesses []Witness
	// Client makes the requests to witnesses (default transport.Client()).
	Client *http.Client
	// Limits bound requests in time and the server in concurrency.
	Limits Limits
	// Fallback, if set, fetches a blob the store lacks (from upstream
	// mirrors) into the store, verified; size is -1 when unknown.
	Fallback func(ctx context.Context, sha256 string, size int64) error
	// UpstreamCheckpoint, if set, returns the upstream's signed checkpoint
	// that the last sync of upstream u checked and kept, and the id of the
	// key that signed it (fs.ErrNotExist if none): the server then serves
	// the upstream line's log under /upstreams/UP/ (lines.go).
	UpstreamCheckpoint func(ctx context.Context, u *index.Upstream) (note []byte, key string, err error)
	// Policy, if set, is the organisation's policy the server enforces
	// on what it serves (gate.go): a version it refuses is left out of
	// the Go module lists, its Go module files and the blobs of
	// artifacts only refused versions name are answered 403 with the
	// rule and record, and light package documents list the refusals.
	// Its issuers name this repository PolicyRepository and each
	// followed upstream by its name.
	Policy *policy.Policy
	// IndexPolicy, if set instead of Policy, names a policy of the index
	// (cairn policy publish) that the server enforces as it would
	// Policy: at each head of main it judges with the version in force
	// there, and its refusals name the policy (index:NAME) and that
	// version's digest.
	IndexPolicy string
	// GoSumDBs are the Go checksum databases the GOPROXY adapter relays
	// (gosumdb.go), read with Client.
	GoSumDBs []GoSumDB
	// Replica, if set, makes the server a read replica of a writer
	// (replica.go): it serves the checkpoints its follower hands it
	// (Followed) and signs none (CheckpointKey must be nil), and
	// forwards pushes and uploads to the writer.
	Replica *Replica
}

// Server serves one repository.
type Server struct {
	repo    *index.Repo
	blobs   blob.Store
	fsBlobs *blob.FS // blobs, when they are files (sendfile, their stored files checked once); nil otherwise
	opts    Options
	log     *slog.Logger
	hooks   string
	handler http.Handler
	metrics *metrics
	reg     *prometheus.Registry

	mu    sync.Mutex  // one verification of main at a time (s.verify)
	cache *lightCache // rendered package documents, by packageKey
	docs  *docStore   // the same on disk, by name (nil: none, as with a policy)
	small *lightCache // small blobs, by sha256

	fastAnswers atomic.Int64 // requests answered on the fast path (fastpath.go)
	tiles       *lightCache  // the log's hash tiles, by path (tileCache)
	bundles     *lightCache  // the log's entry bundles, by path (tileCache)
	subjects    *lightCache  // light reads' subject documents, by tree and subject
	leaves      *lightCache  // the log's files (the small ones), by entry
	slices      sliceCache   // GET /api/v1/slices answers, by head and from

	upMu     sync.Mutex // guards the followed upstreams, kept by main's upstreams/ tree id
	upTree   string
	ups      []*index.Upstream
	resolved resolutions
	listing  listing // GET /api/v1/packages's whole listing, by the heads it was read at

	ckpt  *checkpointer // signs the checkpoints (nil without a checkpoint key)
	views viewCache     // main's log, as view found it last
	gate  *gate         // the server's policy (nil: none)
	// artifacts knows which versions name each artifact: a blob only
	// versions the server does not serve name is not served (gate.go).
	artifacts artifactIndex
	goMods    goModules // the Go modules' versions, by package tree (goproxy.go)

	followed followed // a replica's served checkpoint and trees (replica.go)

	changes changes // main may have moved (a push landed)
	// shutdown is closed when Serve starts shutting down: held requests
	// (GET /api/v1/head, a replica's follower among them) answer then,
	// rather than hold the shutdown for its grace period.
	shutdown     chan struct{}
	shutdownOnce sync.Once
	uploads      clients // uploads in progress, by client address

	bg sync.WaitGroup // verifications after pushes
}

// New prepares a server for repo, a repository made by `cairn init` (a
// directory with index.git and blobs/, or its blobs on an object store:
// cairn init --blobs). It refuses an index that does
// not verify: what is new on main since the last verified head (a
// commit put there behind cairn's back, a rewritten history) is checked
// first, and an error is an *index.RuleError or *index.ForkError that
// names the rule and the commit. Close releases what it made.
func New(repo *index.Repo, opts Options) (*Server, error) {
	if repo.Blobs == nil {
		return nil, fmt.Errorf("%s: the repository has no blob store", repo.Dir)
	}
	fsStore, _ := repo.Blobs.(*blob.FS)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if fsStore == nil {
		opts.Logger.Info("blobs on an object store: large blobs redirected to it where it signs URLs, the rest streamed through verification", "store", fmt.Sprint(repo.Blobs))
	}
	res, err := repo.Verified(context.Background())
	if err != nil {
		return nil, fmt.Errorf("the index at %s does not verify, so it is not served: %w", repo.Dir, err)
	}
	if res.Unsaved != nil {
		opts.Logger.Warn("the verified head could not be remembered: the next start verifies these commits again", "err", res.Unsaved)
	}
	if opts.Replica != nil && opts.CheckpointKey != nil {
		return nil, errors.New("a read replica serves its writer's checkpoints and signs none: drop the checkpoint key")
	}
	if opts.Replica != nil && opts.Replica.Writer == nil {
		return nil, errors.New("a read replica needs its writer's URL")
	}
	if opts.MaxUpload == 0 {
		opts.MaxUpload = 1 << 30
	}
	if opts.MaxPush == 0 {
		opts.MaxPush = 256 << 20
	}
	if opts.Grace == 0 {
		opts.Grace = 24 * time.Hour
	}
	if err := opts.Limits.check(); err != nil {
		return nil, err
	}
	opts.Limits = opts.Limits.withDefaults()
	if opts.Exe == "" {
		exe, err := Executable()
		if err != nil {
			return nil, err
		}
		opts.Exe = exe
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("git is needed to serve the index: %w", err)
	}
	dir, err := filepath.Abs(repo.Dir)
	if err != nil {
		return nil, err
	}
	hooks, err := writeHooks(opts.Exe, dir)
	if err != nil {
		return nil, err
	}
	s := &Server{repo: repo, blobs: repo.Blobs, fsBlobs: fsStore, opts: opts, log: opts.Logger, hooks: hooks, cache: newLightCache(4096, budgetDocs), small: newLightCache(4096, budgetSmall), tiles: newLightCache(2048, budgetTiles), bundles: newLightCache(1024, budgetBundles), subjects: newLightCache(4096, budgetSubjects), leaves: newLightCache(16384, budgetLeaves)}
	s.shutdown = make(chan struct{})
	if opts.Client == nil && len(opts.GoSumDBs) > 0 {
		opts.Client = transport.Client()
		s.opts = opts
	}
	if opts.CheckpointKey != nil {
		if opts.CheckpointInterval <= 0 {
			opts.CheckpointInterval = checkpoint.DefaultMaxAge / 4
		}
		if opts.Client == nil {
			opts.Client = transport.Client()
		}
		s.opts = opts
		if s.ckpt, err = newCheckpointer(opts.CheckpointKey, checkpoint.Origin(repo.Config.Introduction), opts.CheckpointInterval,
			opts.Witnesses, opts.Client, opts.Logger, filepath.Join(repo.LocalDir(), "checkpoint"), filepath.Join(repo.Main().LogDir(), "checkpoint")); err != nil {
			os.RemoveAll(hooks)
			return nil, err
		}
		s.ckpt.mayCheckpoint = func(ctx context.Context, head string, at time.Time) error {
			return MayCheckpoint(ctx, repo, head, opts.CheckpointKey, at)
		}
	}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if rp := s.opts.Replica; rp != nil && rp.Refusing != nil {
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_replica_refusing_writer", Help: "1 while the replica refuses its writer (a rollback, a fork, a broken rule: see the log), serving the head it verified before; 0 while it follows it."}, func() float64 {
			if rp.Refusing() != nil {
				return 1
			}
			return 0
		}))
	}
	if rp := s.opts.Replica; rp != nil && rp.Stalled != nil {
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_replica_stalled", Help: "1 while the replica cannot follow its writer for a fault of its own machine (a full disk: see the log), serving the head it verified before; 0 otherwise."}, func() float64 {
			if rp.Stalled() != nil {
				return 1
			}
			return 0
		}))
	}
	if rp := s.opts.Replica; rp != nil && rp.LastVerified != nil {
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_replica_last_verified_timestamp_seconds", Help: "When the replica last verified its writer's head (main moved or not), in Unix seconds; 0 before the first time. Its age is how far behind the replica may be."}, func() float64 {
			if t := rp.LastVerified(); !t.IsZero() {
				return float64(t.Unix())
			}
			return 0
		}))
	}
	s.reg.MustRegister(opts.Collectors...)
	s.metrics = newMetrics(s.reg)
	if opts.Policy != nil || opts.IndexPolicy != "" {
		g, err := newGate(context.Background(), repo, opts.Policy, opts.IndexPolicy, s.reg)
		if err != nil {
			os.RemoveAll(hooks)
			return nil, fmt.Errorf("the server's policy: %w", err)
		}
		s.gate = g
	} else {
		s.docs = openDocStore(repo.LocalDir(), opts.Logger)
	}
	s.handler = s.routes()
	return s, nil
}

// Close waits for the verifications in progress, ends the witnesses'
// retries (Serve's end does too), and removes the server's hook
// directory.
func (s *Server) Close() error {
	s.bg.Wait()
	s.docs.close()
	if s.ckpt != nil {
		s.ckpt.close()
	}
	return os.RemoveAll(s.hooks)
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	git := &gitProcess{start: s.gitBackend(s.hooks), root: "/index.git", inherit: gitInheritEnv, slots: make(slots, s.opts.Limits.MaxGit), wait: s.opts.Limits.GitWait, maxPush: s.opts.MaxPush, log: s.log}
	git.inheritPrefixes = s.gitInheritPrefixes()
	var forward http.Handler
	if s.opts.Replica != nil {
		forward = s.newForwarder()
	}
	mux.Handle("/index.git/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if forward != nil && isWrite(r) {
			forward.ServeHTTP(w, r) // a replica's push goes to the writer
			return
		}
		if isReceivePack(r) {
			defer s.bg.Go(s.verifyAfterPush) // not in the push's own time
			defer s.awaitCheckpoint(r.Context())
			defer s.changes.notify()
		}
		git.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /blobs/sha256/{hex}", s.blobGet) // GET also answers HEAD
	if forward != nil {
		mux.Handle("PUT /blobs/sha256/{hex}", forward) // a replica's upload goes to the writer
	} else {
		mux.HandleFunc("PUT /blobs/sha256/{hex}", s.blobPut)
	}
	mux.HandleFunc("POST /blobs/batch", s.blobBatch)
	mux.HandleFunc("GET /api/v1/packages", s.packageList)
	mux.HandleFunc("GET /api/v1/packages/{name...}", s.packageGet) // NS/NAME, or a Go module path
	mux.HandleFunc("GET /api/v1/records/{id}", s.recordGet)
	mux.HandleFunc("GET /api/v1/vex/{name...}", s.vexGet)
	mux.HandleFunc("GET /api/v1/checkpoint", s.checkpoint)
	mux.HandleFunc("GET /log/checkpoint", s.checkpoint)
	mux.HandleFunc("GET /log/tile/{path...}", s.logTile)
	mux.HandleFunc("GET /api/v1/log/subject", s.logSubject)
	mux.HandleFunc("POST /api/v1/log/subjects", s.logSubjects)
	mux.HandleFunc("GET /api/v1/log/record/{id}", s.logRecord)
	mux.HandleFunc("GET /upstreams/{up}/log/checkpoint", s.lineCheckpoint)
	mux.HandleFunc("GET /upstreams/{up}/log/tile/{path...}", s.lineTile)
	mux.HandleFunc("GET /upstreams/{up}/api/v1/log/subject", s.lineSubject)
	mux.HandleFunc("POST /upstreams/{up}/api/v1/log/subjects", s.lineSubjects)
	mux.HandleFunc("GET /api/v1/head", s.headGet)
	mux.HandleFunc("GET /api/v1/slices", s.sliceList)
	mux.HandleFunc("GET /go/{path...}", s.goGet)
	mux.HandleFunc("GET /go/sumdb/{path...}", s.goSumDB)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	pages, err := web.New(s.pageSource())
	if err != nil {
		panic(err) // the embedded templates do not parse: a build defect, which every test catches
	}
	pages.Mount(mux) // GET /, /packages/…, /keys/…, /log: pages for people
	return s.limit(s.accessLog(s.tileRoute(pages.NotFound(mux))))
}

// healthz serves GET /healthz: "ok HEAD" when main verifies, else 503
// with the line that fails (main changed on disk behind the server's
// back). It checks only what is new since the last verified head.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	res, err := s.verify(r.Context())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
		return
	}
	if _, err := s.view(r.Context()); err != nil {
		// The history verifies, but its log cannot be brought to it (a
		// full disk, say): no checkpoint is signed of what was pushed.
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index verified at %s, but no checkpoint can be signed of it: %v", res.Head, err)
		return
	}
	if low := lowOnRoom(s.repo.Dir, s.opts.MinFree); low != "" && s.opts.Replica == nil { // a replica takes no push
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "%s: pushes are refused until there is room", low)
		return
	}
	if rp := s.opts.Replica; rp != nil && rp.Refusing != nil {
		if err := rp.Refusing(); err != nil {
			// It serves the head it verified before, and will not
			// follow its writer past it: an operator must look.
			w.Header().Set("Cache-Control", "no-store")
			httpError(w, http.StatusServiceUnavailable, "replica at %s, refusing its writer: %v", res.Head, err)
			return
		}
	}
	if rp := s.opts.Replica; rp != nil && rp.Stalled != nil {
		if err := rp.Stalled(); err != nil {
			// It serves an ever older head until the fault is mended.
			w.Header().Set("Cache-Control", "no-store")
			httpError(w, http.StatusServiceUnavailable, "replica at %s, cannot follow its writer for a fault of this machine's (mend it, make room, and it follows again by itself): %v", res.Head, err)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "ok %s\n", res.Head)
}

// verify verifies what is new on main since the last verified head (the
// server's checks of pushes remember nothing: this is where main's new
// head is remembered), one verification at a time.
func (s *Server) verify(ctx context.Context) (*index.VerifyResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.repo.Verified(ctx)
	if err != nil {
		s.views.verifiedAt("")
		return nil, fmt.Errorf("main does not verify: %w", err)
	}
	s.views.verifiedAt(res.Head)
	if res.Head == "" {
		return nil, fmt.Errorf("no main yet: %w", fs.ErrNotExist)
	}
	return res, nil
}

// verifyAfterPush verifies main once a push has landed, and logs loudly
// if it does not verify (then /healthz fails too).
// awaitCheckpoint holds the end of a push's response until the served
// checkpoint is of main's verified head: signed, and cosigned by the
// witnesses that answer in their time (witnessTimeout). Whoever reads
// the checkpoint once the push returned (the pusher's other machine, a
// follower it woke) finds the push in the log, rather than the tree
// before it while the checkpoint loop asks the witnesses.
func (s *Server) awaitCheckpoint(ctx context.Context) {
	if s.ckpt == nil {
		return
	}
	for range 3 {
		_, _, signed, err := s.signed(ctx)
		if err != nil || ctx.Err() != nil {
			return // the checkpoint loop logs why; the push itself stands
		}
		now, err := s.view(ctx)
		if err != nil || now.Head == signed.Head {
			return
		}
		s.ckpt.waitSigner() // another round is signing: its end, then again
	}
}

func (s *Server) verifyAfterPush() {
	if _, err := s.verify(context.Background()); err != nil {
		s.log.Error("the index does not verify: it was changed behind the server's back", "err", err)
	}
}

// Serve serves on l until ctx is done, then shuts down gracefully:
// requests in flight (a push, a large download) get up to 30 s to finish.
// It also collects stale uploads every hour.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	keepHeapFloor()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.opts.Limits.HeaderTimeout,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       s.opts.Limits.IdleTimeout,
		ConnContext:       withConn,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	fl := newFastListener(s, l)
	srv.RegisterOnShutdown(func() {
		s.shutdownOnce.Do(func() { close(s.shutdown) })
		fl.shutdown()
	})
	go s.collectLoop(ctx, time.Hour)
	if s.gate != nil {
		go s.warmGate(ctx) // the first blob request does not wait for it
	}
	if s.ckpt != nil {
		defer s.ckpt.close() // the witnesses' retries end with the server (after stop, below)
		lctx, stop := context.WithCancel(ctx)
		defer stop() // however Serve returns
		s.bg.Go(func() { s.checkpointLoop(lctx) })
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(fl) }()
	select {
	case err := <-errc:
		fl.Close()
		fl.shutdown()
		fl.wait(context.Background())
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "reason", context.Cause(ctx))
	shut, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	fl.wait(shut) // the fast path's connections too
	if err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// heapFloor is what the garbage collector counts as live besides the
// live heap, while a server serves. A server's requests each allocate a
// few KiB; with a live heap of a few MiB (a server whose caches are
// cold), the collector would run every few MiB allocated, dozens of
// times a second under load, for a tenth of the server's CPU. The floor
// is one block that nothing writes, allocated as the server starts: from
// fresh pages, which Go need not zero, it costs address space rather than
// memory (from reused pages, which Go zeroes, it costs its size), and lets the garbage between collections grow to
// about its size (at the default GOGC), not more. GOGC or GOMEMLIMIT set
// in the environment, the collector is left as they say.
const heapFloor = 32 << 20

var floor struct {
	once  sync.Once
	bytes []byte // never read or written: the collector only counts it
}

// keepHeapFloor keeps heapFloor bytes live for the process's life (once,
// however many servers it runs).
func keepHeapFloor() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	floor.once.Do(func() { floor.bytes = make([]byte, heapFloor) })
}

// checkpointLoop signs a checkpoint (and submits it to the witnesses)
// now, whenever main moves, and every CheckpointInterval, until ctx is
// done: witnesses and clients see each new head without waiting for a
// client to ask.
func (s *Server) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.CheckpointInterval)
	defer t.Stop()
	for {
		moved := s.changes.wait()
		if _, _, _, err := s.signed(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("no checkpoint signed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-moved:
		case <-t.C:
		}
	}
}

func (s *Server) collectLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if removed, err := s.CollectUploads(ctx, time.Now()); err != nil {
				s.log.Error("collecting uploads", "err", err)
			} else if len(removed) > 0 {
				s.log.Info("collected unreferenced uploads", "count", len(removed))
			}
		}
	}
}

// CollectUploads removes the blobs uploaded more than the grace period
// before now that no record of the index refers to, and forgets uploads
// that records refer to. It returns the digests it removed.
func (s *Server) CollectUploads(ctx context.Context, now time.Time) ([]string, error) {
	entries, err := os.ReadDir(s.uploadsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var refs map[string]int64
	var removed []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < s.opts.Grace || !blob.IsDigest(e.Name()) {
			continue
		}
		if refs == nil {
			head, err := s.repo.Head(ctx, index.MainRef)
			if err != nil {
				return nil, err
			}
			if refs, err = s.repo.ReferencedBlobs(ctx, head); err != nil {
				return nil, err
			}
		}
		if _, ok := refs[e.Name()]; !ok {
			s.small.remove(e.Name())
			rm, ok := s.blobs.(interface{ Remove(hex string) error })
			if !ok {
				return removed, fmt.Errorf("the blob store %v cannot remove blobs", s.blobs)
			}
			if err := rm.Remove(e.Name()); err != nil {
				return removed, err
			}
			removed = append(removed, e.Name())
		}
		os.Remove(filepath.Join(s.uploadsDir(), e.Name()))
	}
	return removed, nil
}

// gitInheritPrefixes are the prefixes of the variables of the server's
// environment that git http-backend takes beyond gitInheritEnv: an
// object store's credentials when the blobs are on one (the hook reads
// them), none otherwise.
func (s *Server) gitInheritPrefixes() []string {
	if s.fsBlobs == nil {
		return storeInheritEnv
	}
	return nil
}

// httpError writes a plain-text error: what was wrong and what to do.
func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	// A client's path repeated in full (a 60 KiB module path, say)
	// would bury what the answer says.
	io.WriteString(w, clip(fmt.Sprintf(format, args...), 4*maxEcho)+"\n")
}
