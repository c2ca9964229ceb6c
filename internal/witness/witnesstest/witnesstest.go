// Package witnesstest runs litewitness (filippo.io/torchwood/cmd/litewitness,
// a go tool of this module), a C2SP tlog-witness written elsewhere, for
// the tests that check cairn against it: its key in a real ssh-agent of
// its own, the logs it witnesses added to its sqlite database as its
// companion witnessctl would add them (witnessctl does not build here).
package witnesstest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
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

// emptyTreeHash is the RFC 6962 hash of the empty tree, SHA-256(""):
// the tree litewitness starts a log at.
const emptyTreeHash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

// ErrNoCompiler is the error of Build when the go command cannot build
// litewitness for want of a C compiler (cgo): a test may skip on it, and
// on nothing else.
var ErrNoCompiler = errors.New("no C compiler to build litewitness with")

// Build builds litewitness into dir and returns its path.
func Build(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	path := filepath.Join(dir, "litewitness")
	out, err := exec.Command(goBin, "build", "-o", path, "filippo.io/torchwood/cmd/litewitness").CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("C compiler")) && bytes.Contains(out, []byte("not found")) {
			return "", fmt.Errorf("%w: go build filippo.io/torchwood/cmd/litewitness: %v\n%s", ErrNoCompiler, err, out)
		}
		return "", fmt.Errorf("go build filippo.io/torchwood/cmd/litewitness: %v\n%s", err, out)
	}
	return path, nil
}

// Litewitness is a running litewitness.
type Litewitness struct {
	URL  string // its submission prefix: add-checkpoint is URL/add-checkpoint
	Name string
	// VKey is its cosignature verifier key, as it prints it when it
	// starts (name+hash+base64(0x04 || key)): the line a reader or a
	// server names it by.
	VKey string
	Key  ed25519.PublicKey // the ed25519 key it cosigns with
	DB   string            // its sqlite database
	Logs *Buffer           // its stderr
}

// Buffer is a bytes.Buffer that a process writes while a test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var vkeyRE = regexp.MustCompile(`vkey=(\S+)`)

// Start builds litewitness (skipping t only when the build fails for
// want of a C compiler), runs it under name on a loopback port, and
// stops it when t ends.
func Start(t testing.TB, name string) *Litewitness {
	t.Helper()
	// A unix socket's path must be short: not under t.TempDir().
	dir, err := os.MkdirTemp("", "lw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := Build(dir)
	if errors.Is(err, ErrNoCompiler) {
		t.Skipf("litewitness, the witness written elsewhere, cannot be built here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
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
	stderr := &Buffer{}
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
	m := vkeyRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("litewitness printed no vkey when it started:\n%s", stderr.String())
	}
	return &Litewitness{URL: "http://" + addr, Name: name, VKey: m[1], Key: pub, DB: db, Logs: stderr}
}

// AddLog makes lw witness the log of origin, whose checkpoints are signed
// by the key of vkey (a signed-note verifier key), from the empty tree:
// rows in its database's log and key tables (it made them before it
// listened), as witnessctl add-log and add-key would write them.
func (lw *Litewitness) AddLog(t testing.TB, origin, vkey string) {
	t.Helper()
	conn, err := sqlite.OpenConn(lw.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.Execute(conn, "INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)",
		&sqlitex.ExecOptions{Args: []any{origin, emptyTreeHash}}); err != nil {
		t.Fatalf("litewitness's log table: %v", err)
	}
	if err := sqlitex.Execute(conn, "INSERT INTO key (origin, key) VALUES (?, ?)",
		&sqlitex.ExecOptions{Args: []any{origin, vkey}}); err != nil {
		t.Fatalf("litewitness's key table: %v", err)
	}
}

// Size returns the tree size lw holds for origin (-1: none).
func (lw *Litewitness) Size(t testing.TB, origin string) int64 {
	t.Helper()
	conn, err := sqlite.OpenConn(lw.DB, sqlite.OpenReadOnly)
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

func waitFor(t testing.TB, ready func() bool, what string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if ready() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
