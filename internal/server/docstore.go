package server

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/safefile"
)

// storesDir is the directory, in the repository's local state, of the
// package document stores of the servers on the repository: one each,
// named PID-NANOSECONDS (docStore).
const storesDir = "package-docs"

// storeLock is the file in a store that its server holds locked while
// it runs: a store whose lock nobody holds is of a server that ended.
const storeLock = "lock"

// unstoredDocs is what a server says, once, when its store cannot be
// made or written.
const unstoredDocs = "package documents cannot be kept on disk: each is rendered from git on a read the memory cache misses"

// maxStoredDoc is the largest package document a store keeps: a larger
// one is rendered from git on each read that misses the memory cache.
const maxStoredDoc = 8 << 20

// docStore keeps each package's rendered document (GET
// /api/v1/packages/NAME) as a file, the way a static host keeps a
// sparse index: a read that the memory cache misses reads one file
// instead of asking git for the package's trees and files (two round
// trips to git's processes, after the one that finds the package).
//
// A file holds one document per package name, with the key it was
// rendered for (packageKey: the package's trees and where it comes
// from): a key that moved (a push changed the package) is a miss, and
// the document is rendered again and replaces it. So a store holds at
// most a document per package the server has been asked for, about as
// large as the index's own files of those packages, and needs no
// eviction.
//
// Each server has a store of its own, made empty when it starts (a
// document depends on the cairn that rendered it: two servers on one
// repository, as in a rolling upgrade, never read each other's), and
// locked while it runs; a server removes the stores of the servers that
// ended, in the background. A server with a policy (--policy) keeps
// none: its documents hold the verdicts of the policy it was started
// with.
//
// A file is "KEY\nSHA256\n" then the document; one whose document's
// SHA-256 is not the one it names (a write cut short) is a miss. Files
// are written to tmp/ and renamed into place, never synced: they are
// derived from the index, which stays the truth.
type docStore struct {
	dir  string   // this server's store
	lock *os.File // its lock, held while the server runs
	log  *slog.Logger
	// warned makes a store that cannot be written (a read-only or full
	// disk) say so once, not at every render.
	warned sync.Once

	stop     chan struct{} // closed by close: the sweep stops
	sweeping sync.WaitGroup
	closed   sync.Once
}

// openDocStore makes a new store under local, the repository's local
// state directory, and starts removing the stores of servers that ended.
// It returns nil (no store: every document is rendered) if local is ""
// or the store cannot be made.
func openDocStore(local string, log *slog.Logger) *docStore {
	if local == "" {
		return nil
	}
	root := filepath.Join(local, storesDir)
	d := &docStore{dir: filepath.Join(root, fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())), log: log, stop: make(chan struct{})}
	if err := d.make(); err != nil {
		log.Warn(unstoredDocs, "dir", d.dir, "err", err)
		os.RemoveAll(d.dir)
		return nil
	}
	d.sweeping.Go(func() { d.sweep(root) })
	return d
}

// make makes the store's directory and takes its lock.
func (d *docStore) make() error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(d.dir, storeLock))
	if err != nil {
		return err
	}
	if held, err := lockStore(f); err != nil || !held {
		f.Close()
		return cmp.Or(err, fmt.Errorf("%s is locked by another process", f.Name()))
	}
	d.lock = f
	return nil
}

// close stops the sweep and releases the store's lock (once; a nil
// store does nothing). The store stays: the next server on the
// repository removes it.
func (d *docStore) close() {
	if d == nil {
		return
	}
	d.closed.Do(func() {
		close(d.stop)
		d.sweeping.Wait()
		d.lock.Close()
	})
}

// sweep removes, under root, the stores of the servers that ended (their
// lock free, or made a day ago without one), until close.
func (d *docStore) sweep(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() || dir == d.dir {
			continue
		}
		f, err := os.Open(filepath.Join(dir, storeLock))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Made, but its lock not yet (or never): a day is long enough.
			if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < 24*time.Hour {
				continue
			}
		case err != nil:
			continue
		default:
			ended, err := storeEnded(f)
			if err != nil || !ended {
				f.Close()
				continue
			}
		}
		done := d.remove(dir)
		if f != nil {
			f.Close()
		}
		if !done {
			return
		}
	}
}

// remove removes the store dir a shard directory at a time, and reports
// false if close stopped it first.
func (d *docStore) remove(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		select {
		case <-d.stop:
			return false
		default:
		}
		if e.Name() != storeLock {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(filepath.Join(dir, storeLock))
	os.Remove(dir)
	return true
}

// path is the file of name's document: its SHA-256 in hex, under a
// directory named by the first two digits (a file name of fixed length
// whatever the package's name, a directory of at most a few thousand
// files at a million packages).
func (d *docStore) path(name string) string {
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(d.dir, h[:2], h[2:])
}

// get returns name's document if the store holds it for key, else nil
// (a nil store holds nothing).
func (d *docStore) get(name, key string) []byte {
	if d == nil {
		return nil
	}
	path := d.path(name)
	bp := docBufs.Get().(*[]byte)
	defer docBufs.Put(bp)
	data := *bp
	n, err := safefile.ReadInto(path, data)
	if err != nil {
		return nil
	}
	pooled := true
	if data = data[:n]; n == len(*bp) {
		// Larger than most: read as large files are, into memory of its own.
		if data, err = os.ReadFile(path); err != nil {
			return nil
		}
		pooled = false
	}
	k, rest, ok := bytes.Cut(data, []byte{'\n'})
	if !ok || string(k) != key {
		return nil
	}
	digest, body, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok || len(digest) != 2*sha256.Size {
		return nil
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], digest); err != nil || sha256.Sum256(body) != want {
		return nil
	}
	if pooled {
		return bytes.Clone(body) // the pooled buffer is read into again
	}
	return body
}

// docBufs are the buffers get reads files into: one read of a document
// of the usual size (a few KiB), a second only for a larger one.
var docBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// put keeps body as name's document for key. A document that cannot be
// kept is not an error: the next read renders it again.
func (d *docStore) put(name, key string, body []byte) {
	if d == nil || len(body) > maxStoredDoc || strings.ContainsRune(key, '\n') {
		return
	}
	sum := sha256.Sum256(body)
	data := make([]byte, 0, len(key)+2*sha256.Size+2+len(body))
	data = append(data, key...)
	data = append(data, '\n')
	data = hex.AppendEncode(data, sum[:])
	data = append(data, '\n')
	data = append(data, body...)
	if err := d.write(d.path(name), data); err != nil {
		d.warned.Do(func() {
			d.log.Warn(unstoredDocs, "dir", d.dir, "err", err)
		})
	}
}

// write puts data at path by a temporary file in tmp/ renamed.
func (d *docStore) write(path string, data []byte) error {
	tmpDir := filepath.Join(d.dir, "tmp")
	f, err := os.CreateTemp(tmpDir, "doc-")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(tmpDir, 0o755); err == nil {
			f, err = os.CreateTemp(tmpDir, "doc-")
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
		if errors.Is(err, fs.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				err = os.Rename(f.Name(), path)
			}
		}
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
