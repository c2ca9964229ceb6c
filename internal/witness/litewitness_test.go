package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"cairn.dev/cairn/internal/keys"
)

// litewitnessBuild is litewitness (filippo.io/torchwood/cmd/litewitness,
// a go tool of this module), built once for the package's tests.
var litewitnessBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if litewitnessBuild.dir != "" {
		os.RemoveAll(litewitnessBuild.dir)
	}
	os.Exit(code)
}

// buildLitewitness returns the path of a litewitness binary.
func buildLitewitness(t *testing.T) string {
	t.Helper()
	b := &litewitnessBuild
	b.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if b.dir, b.err = os.MkdirTemp("", "cairn-litewitness-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "litewitness")
		out, err := exec.Command(goBin, "build", "-o", b.path, "filippo.io/torchwood/cmd/litewitness").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build litewitness: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// liteWitness is a running litewitness.
type liteWitness struct {
	url  string
	name string
	pub  ed25519.PublicKey
	db   string
	logs *syncBuffer // its stderr
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLitewitness runs litewitness with its key in a real ssh-agent of
// its own, and makes it witness the logs: rows in its database's log and
// key tables, as its companion witnessctl would add them.
func startLitewitness(t *testing.T, name string, logs ...testLog) *liteWitness {
	t.Helper()
	bin := buildLitewitness(t)
	// A unix socket's path must be short: not under t.TempDir().
	dir, err := os.MkdirTemp("", "lw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("ssh-agent (openssh-client): %v", err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	waitFor(t, func() bool { _, err := os.Stat(sock); return err == nil }, "ssh-agent's socket")
	keyFile := filepath.Join(dir, "witness.key")
	pub, err := keys.Generate(keyFile, "litewitness")
	if err != nil {
		t.Fatal(err)
	}
	add := exec.Command("ssh-add", "-q", keyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	db := filepath.Join(dir, "litewitness.db")
	stderr := &syncBuffer{}
	cmd := exec.Command(bin, "-ssh-agent", sock, "-name", name, "-key", keys.ID(pub), "-db", db, "-listen", addr)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	waitFor(t, func() bool {
		select {
		case <-exited:
			t.Fatalf("litewitness exited:\n%s", stderr.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "litewitness to listen")

	// It made its database's tables before it listened.
	conn, err := sqlite.OpenConn(db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, lg := range logs {
		if err := sqlitex.Execute(conn, "INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)",
			&sqlitex.ExecOptions{Args: []any{lg.origin, base64.StdEncoding.EncodeToString(emptyTreeHash[:])}}); err != nil {
			t.Fatal(err)
		}
		if err := sqlitex.Execute(conn, "INSERT INTO key (origin, key) VALUES (?, ?)",
			&sqlitex.ExecOptions{Args: []any{lg.origin, lg.vkey}}); err != nil {
			t.Fatal(err)
		}
	}
	return &liteWitness{url: "http://" + addr, name: name, pub: pub, db: db, logs: stderr}
}

// size returns the tree size litewitness holds for origin.
func (lw *liteWitness) size(t *testing.T, origin string) int64 {
	t.Helper()
	conn, err := sqlite.OpenConn(lw.db, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var size int64 = -1
	err = sqlitex.Execute(conn, "SELECT tree_size FROM log WHERE origin = ?", &sqlitex.ExecOptions{
		Args:       []any{origin},
		ResultFunc: func(stmt *sqlite.Stmt) error { size = stmt.ColumnInt64(0); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return size
}

func waitFor(t *testing.T, ready func() bool, what string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if ready() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestLitewitness: litewitness, a witness written elsewhere, cosigns a
// cairn log's checkpoints submitted with Submit and Cosign; cairn's
// Policy verifies its cosignatures beside cairn's own witness's; and a
// second tree of the log, inconsistent with the first, is refused by
// both witnesses, so that a reader requiring them refuses it: the split
// view is caught.
func TestLitewitness(t *testing.T) {
	ctx := context.Background()
	hc := &http.Client{Timeout: 10 * time.Second}
	l := newTestLog(t, origin)
	lw := startLitewitness(t, "witness.example.org/lite", l)
	own := newTestWitness(t, "witness.example.com/cairn", l)

	lite, err := VerifierKey(lw.name, lw.pub)
	if err != nil {
		t.Fatal(err)
	}
	// litewitness prints its vkey when it starts: cairn computes the same.
	if m := regexp.MustCompile(`vkey=(\S+)`).FindStringSubmatch(lw.logs.String()); m == nil || m[1] != lite {
		t.Errorf("litewitness's vkey %v, cairn computes %s", m, lite)
	}
	policy, err := NewPolicy([]string{lite, own.VerifierKey()}, 2)
	if err != nil {
		t.Fatal(err)
	}

	honest := newTree(t, 40, 40, "")
	first := l.checkpoint(t, honest.root(t, 5))
	cosigs, err := Submit(ctx, hc, lw.url, 0, nil, first)
	if err != nil {
		t.Fatalf("litewitness refused the first checkpoint: %v\n%s", err, lw.logs)
	}
	cosigned, err := AppendCosignatures(first, cosigs)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := policy.Check(cosigned, origin); n != 1 || err == nil {
		t.Errorf("litewitness's cosignature alone, of a quorum of 2: %d, %v", n, err)
	}
	if n, err := (Policy{Witnesses: policy.Witnesses, Quorum: 1}).Check(cosigned, origin); n != 1 || err != nil {
		t.Fatalf("cairn does not verify litewitness's cosignature: %d, %v\n%s", n, err, cosigned)
	}

	// The log grows; the server does not know where litewitness is
	// (last 0): Cosign learns it from the 409 and proves from size 5.
	grown := l.checkpoint(t, honest.root(t, 17))
	signed := grown
	for _, url := range []string{lw.url, own.url} {
		cosigs, err := Cosign(ctx, hc, url, 0, grown, honest.prover(17))
		if err != nil {
			t.Fatalf("witness %s refused a consistent checkpoint: %v\n%s", url, err, lw.logs)
		}
		if signed, err = AppendCosignatures(signed, cosigs); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := policy.Check(signed, origin); n != 2 || err != nil {
		t.Fatalf("both witnesses' cosignatures: %d, %v\n%s", n, err, signed)
	}
	if got := lw.size(t, origin); got != 17 {
		t.Errorf("litewitness holds size %d, want 17", got)
	}

	// Split view: the log shows someone else a tree that forks at leaf
	// 10. Neither witness cosigns it, at a larger size or at the same one.
	forked := newTree(t, 40, 10, "hidden")
	for _, w := range []struct{ name, url string }{{"litewitness", lw.url}, {"cairn", own.url}} {
		_, err := Submit(ctx, hc, w.url, 17, forked.proof(t, 20, 17), l.checkpoint(t, forked.root(t, 20)))
		if !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: a forked tree of size 20: %v, want a 422", w.name, err)
		}
		_, err = Submit(ctx, hc, w.url, 17, nil, l.checkpoint(t, forked.root(t, 17)))
		var ce *ConflictError
		if !errors.Is(err, ErrBadProof) && !(errors.As(err, &ce) && ce.Fork()) {
			t.Errorf("%s: a forked tree of size 17: %v, want a 409 or 422", w.name, err)
		}
		// Nor an old size it did not cosign (a rollback to 5).
		if _, err = Cosign(ctx, hc, w.url, 5, l.checkpoint(t, honest.root(t, 5)), honest.prover(5)); err == nil {
			t.Errorf("%s cosigned a rollback to size 5", w.name)
		}
	}
	if got := lw.size(t, origin); got != 17 {
		t.Errorf("litewitness holds size %d after the refusals, want 17", got)
	}
	var qe *QuorumError
	if n, err := policy.Check(l.checkpoint(t, forked.root(t, 20)), origin); n != 0 || !errors.As(err, &qe) {
		t.Errorf("a reader shown the forked tree: %d, %v; want refused for want of cosignatures", n, err)
	}

	// litewitness's refusals of a log it does not witness, and of a key
	// it does not trust (it answers 403 to both), reach the caller typed.
	stranger := newTestLog(t, origin)
	_, err = Submit(ctx, hc, lw.url, 17, honest.proof(t, 20, 17), stranger.checkpoint(t, honest.root(t, 20)))
	var re *ResponseError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a checkpoint signed by a key litewitness does not trust: %v", err)
	}
}
