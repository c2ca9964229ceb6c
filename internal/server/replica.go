package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/transport"
)

// A read replica (cairn serve --follow) serves a copy of its writer's
// index that a follower (remote.Follower) keeps: the follower pulls from
// the writer, verifies every commit and the writer's signed checkpoint as
// any pull does, moves main, and hands the server the writer's checkpoint
// it checked (Server.Followed). The server serves that checkpoint only
// once main is verified at exactly the tree it signs, and its log reads
// at that tree: a replica never serves a head it has not verified, nor a
// checkpoint it did not check. It signs none of its own. Writes reach
// the writer unchanged: git pushes (receive-pack, its advertisement
// included) and blob uploads are forwarded to it, and its answers (a
// refused push's messages) reach the client as the writer wrote them.

// Replica makes a server a read replica of a writer.
type Replica struct {
	// Writer is the writer's base URL (as cairn serve serves it).
	Writer *url.URL
	// Nudge, if set, asks the follower to pull now, without waiting for
	// it: a push was forwarded, or a client asked for a tree newer than
	// the one served. It must not block.
	Nudge func()
	// Transport makes the forwarded requests (default
	// http.DefaultTransport's settings).
	Transport http.RoundTripper
	// Refusing, if set, says why the replica refuses its writer now
	// (nil while it follows it): /healthz then answers 503 with it, and
	// cairn_replica_refusing_writer is 1.
	Refusing func() error
	// Stalled, if set, says why the replica cannot follow its writer now
	// for a fault of its own machine (a full disk), nil otherwise:
	// /healthz then answers 503 with it, and cairn_replica_stalled is 1.
	Stalled func() error
	// LastVerified, if set, is when the replica last verified its
	// writer (cairn_replica_last_verified_timestamp_seconds).
	LastVerified func() time.Time
}

// treeWait bounds how long a replica holds a read of a tree newer than
// the one it serves (a client that read a newer checkpoint from another
// replica) while its follower catches up.
const treeWait = 5 * time.Second

// followed is what a replica serves: the writer's checkpoint the last
// pull checked, of the tree main was verified at, and the few trees
// before it (light reads at a stated size, as checkpointer.recent).
type followed struct {
	mu     sync.Mutex
	note   []byte
	key    string
	view   logView
	recent []logView // oldest first, at most keptTrees, view included

	// A read of a newer tree asks the writer once per treeWait, not once
	// per request (anyone may ask for any size): asked is when a read
	// last nudged the follower, checked when a pull last verified, and
	// pulls wakes the reads waiting for a pull, whether main moved or not.
	asked, checked time.Time
	pulls          changes
}

// ErrNotFollowed says a replica has verified no checkpoint of its writer
// yet (its first pull has not succeeded): it serves nothing of the log.
var ErrNotFollowed = errors.New("this replica has verified no checkpoint of its writer yet")

// ErrBehind says a replica was asked for a tree newer than the one it
// serves, and its follower did not bring it within treeWait: answered 503
// (Retry-After), which a load balancer tries on another replica.
var ErrBehind = errors.New("this replica is behind its writer")

// FollowedError says why a replica did not take its follower's
// checkpoint: it is not of the tree main is verified at. The replica
// keeps serving the checkpoint it took last.
type FollowedError struct {
	Checkpoint checkpoint.Checkpoint // what the note claims
	Head       string                // main's verified head
	Size       int64                 // and its log's size
}

func (e *FollowedError) Error() string {
	return fmt.Sprintf("the writer's checkpoint (size %d, head %s) is not of the tree main is verified at (size %d, head %s): still serving the checkpoint taken last", e.Checkpoint.Size, e.Checkpoint.Head, e.Size, e.Head)
}

// Followed tells a replica that its follower pulled: main may have moved,
// and note is the writer's signed checkpoint (signed by the key of id
// key) that the pull checked against main's new head. The server
// verifies main (what is new since it verified last), and serves note
// and its tree from now on if note signs exactly main's verified head,
// log and map; else it returns a *FollowedError and keeps serving what
// it served. Waiting readers (GET /api/v1/head, reads of a newer tree)
// are woken.
func (s *Server) Followed(ctx context.Context, note []byte, key string) error {
	if s.opts.Replica == nil {
		return errors.New("this server is not a replica: it signs its own checkpoints")
	}
	c, err := checkpoint.Claimed(note)
	if err != nil {
		return fmt.Errorf("the writer's checkpoint: %w", err)
	}
	v, err := s.view(ctx)
	if err != nil {
		return err
	}
	if c.Head != v.Head || c.Size != v.Size || c.Root != v.Root || c.Map != v.Map {
		return &FollowedError{Checkpoint: c, Head: v.Head, Size: v.Size}
	}
	f := &s.followed
	f.mu.Lock()
	moved := f.view.Head != v.Head
	f.note, f.key, f.view = note, key, v
	f.checked = time.Now()
	f.recent = append(slices.DeleteFunc(f.recent, func(r logView) bool { return r.Size >= v.Size }), v)
	if len(f.recent) > keptTrees {
		f.recent = slices.Delete(f.recent, 0, len(f.recent)-keptTrees)
	}
	f.mu.Unlock()
	f.pulls.notify()
	if moved {
		s.changes.notify()
	}
	return nil
}

// askWriter is what a read of a tree newer than the served one does: it
// nudges the follower if no read did within treeWait (many reads, one
// pull), and says whether a pull a read asked for has verified since,
// still short of the tree asked for: the writer was just asked and
// has none newer to give, so waiting longer brings nothing.
func (s *Server) askWriter() (answered bool) {
	f := &s.followed
	f.mu.Lock()
	now := time.Now()
	recent := !f.asked.IsZero() && now.Sub(f.asked) < treeWait
	if recent && f.checked.After(f.asked) {
		f.mu.Unlock()
		return true
	}
	nudge := !recent
	if nudge {
		f.asked = now
	}
	f.mu.Unlock()
	if nudge && s.opts.Replica.Nudge != nil {
		s.opts.Replica.Nudge()
	}
	return false
}

// followedNow returns the writer's checkpoint a replica serves, the key
// that signed it and its tree (ErrNotFollowed before the first).
func (s *Server) followedNow() ([]byte, string, logView, error) {
	f := &s.followed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.note == nil {
		return nil, "", logView{}, fmt.Errorf("%w: it serves nothing of the log until one verifies (see its log)", ErrNotFollowed)
	}
	return f.note, f.key, f.view, nil
}

// followedAt returns the tree of size leaves if a replica served it
// recently.
func (s *Server) followedAt(size int64) (logView, []int64, bool) {
	f := &s.followed
	f.mu.Lock()
	defer f.mu.Unlock()
	var sizes []int64
	for _, v := range f.recent {
		if v.Size == size {
			return v, nil, true
		}
		sizes = append(sizes, v.Size)
	}
	return logView{}, sizes, false
}

// awaitTree returns a replica's served tree once ok accepts it: at once
// if it does, else as soon as a pull brings one it accepts; the served
// one once a pull asked for since verified without it (askWriter: the
// writer has none newer), after treeWait, or at ctx's end.
func (s *Server) awaitTree(ctx context.Context, ok func(logView) bool) (logView, error) {
	deadline := time.NewTimer(treeWait)
	defer deadline.Stop()
	for {
		moved := s.changes.wait() // before the read: a pull after it closes it
		pulled := s.followed.pulls.wait()
		_, _, v, err := s.followedNow()
		if err != nil || ok(v) {
			return v, err
		}
		if s.askWriter() {
			return v, nil
		}
		select {
		case <-pulled:
		case <-moved:
		case <-deadline.C:
			return v, nil
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}

// replicaAt returns the tree of size leaves a replica answers light reads
// at (-1: the served one): the served one, one served recently, or a
// newer one its follower brings within treeWait; else a *GoneError.
func (s *Server) replicaAt(ctx context.Context, size int64) (logView, error) {
	v, err := s.awaitTree(ctx, func(v logView) bool { return v.Size >= size })
	if err != nil {
		return v, fmt.Errorf("index: %v", err) // 503, whatever it wraps
	}
	if size < 0 || size == v.Size {
		return v, nil
	}
	if size > v.Size {
		// 503, which a load balancer tries on another replica.
		return logView{}, fmt.Errorf("%w: it serves the tree of %d leaves, not yet one of %d (its writer's newer checkpoint was read from another replica): ask again shortly", ErrBehind, v.Size, size)
	}
	if kv, _, ok := s.followedAt(size); ok {
		return kv, nil
	}
	_, sizes, _ := s.followedAt(-1)
	return logView{}, &GoneError{Size: size, Served: sizes}
}

// replicaTile returns the tree a replica answers tile t from: the served
// one if it holds t, else a newer one its follower brings within
// treeWait (a client that read a newer checkpoint elsewhere).
func (s *Server) replicaTile(ctx context.Context, t tlog.Tile) (logView, error) {
	return s.awaitTree(ctx, func(v logView) bool { return tileWithin(t, v.Size) })
}

// replicaCheckpoint serves a replica's GET /api/v1/checkpoint and
// /log/checkpoint: the writer's checkpoint it took last, as the writer
// signed it (cosignatures included), and the key that signed it.
func (s *Server) replicaCheckpoint(w http.ResponseWriter, r *http.Request) {
	note, key, _, err := s.followedNow()
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(CheckpointKeyHeader, key)
	if s.gate != nil {
		w.Header().Set(PolicyHeader, s.gate.label())
	}
	w.Write(note)
}

// isWrite says whether a request is one a replica forwards to its writer:
// a git push (receive-pack and its advertisement) or a blob upload.
func isWrite(r *http.Request) bool {
	return isReceivePack(r) || r.URL.Query().Get("service") == "git-receive-pack" || r.Method == http.MethodPut
}

// newForwarder returns the handler that sends a replica's writes to its
// writer: the request as it came (path, query, body, the client's
// headers), the answer back as the writer wrote it, streamed (git's
// progress and a refusal's messages arrive as the writer sends them).
// A writer that cannot be reached is a 502 that says so.
func (s *Server) newForwarder() http.Handler {
	rep := s.opts.Replica
	writer := transport.Redact(rep.Writer) // its credentials are the replica's, not its clients'
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(rep.Writer)
			pr.SetXForwarded()
			// The chain as this replica received it, its own peer
			// appended (SetXForwarded alone keeps only the peer): the
			// writer counts an upload against the client its
			// --trusted-proxy lets it believe, right to left, not
			// against the balancer or the replica. What a client wrote
			// itself stays left of a hop the writer trusts, and is not
			// believed.
			if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
				pr.Out.Header.Set("X-Forwarded-For", strings.Join(append(prior, pr.Out.Header.Get("X-Forwarded-For")), ", "))
			}
		},
		Transport:     rep.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("a write could not be forwarded to the writer", "writer", writer, "method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", "5")
			httpError(w, http.StatusBadGateway, "this server is a read replica: pushes and uploads go to its writer, %s, which cannot be reached now (%v); try again shortly", writer, err)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.ServeHTTP(w, r)
		if isReceivePack(r) && rep.Nudge != nil {
			rep.Nudge() // the push landed, or was refused: catch up now either way
		}
	})
}
