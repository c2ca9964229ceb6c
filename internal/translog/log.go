package translog

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/safefile"
)

// The log's directory holds the C2SP tlog-tiles tree and a few private
// files beside it:
//
//	tile/<L>/<N>[.p/<W>]          hash tiles, height 8
//	tile/entries/<N>[.p/<W>]      entry bundles
//	hashes                        every stored hash (tlog.StoredHashIndex order), 32 bytes each, append-only
//	state.json                    the committed size, the git head it covers, the root hash
//	lock                          held (flock) by the one process writing
//	staging/                      full entry bundles appended but not committed
//
// A commit appends the stored hashes (synced), writes the new tiles, makes
// them durable, and only then replaces state.json: what a reader or a
// static file server may rely on is what state.json covers. A crash
// before state.json leaves hashes past the committed size; opening the log
// derives from them which tiles that commit wrote, removes them and
// truncates the hashes, so the log is back at its committed size and
// re-appending the same entries re-derives the same bytes.
const (
	hashesFile  = "hashes"
	stateFile   = "state.json"
	lockFile    = "lock"
	stagingDir  = "staging"
	tileDir     = "tile"
	tileHeight  = torchwood.TileHeight
	tileWidth   = torchwood.TileWidth
	flushHashes = 1 << 16 // stored hashes kept in memory before they go to the hashes file
	// syncEach is how many files a commit fsyncs one by one; past it, one
	// syncfs of the file system is cheaper.
	syncEach = 32
)

// ErrCorrupt is the parent of the errors of a log directory whose files
// disagree with each other.
var ErrCorrupt = errors.New("transparency log corrupt")

// Log is a transparency log on disk (see the package doc). Its methods
// are safe for concurrent use; reads see the committed log only. One
// process at a time appends: Append takes the directory's write lock,
// which Commit and Rollback release.
type Log struct {
	dir    string
	hashes atomic.Pointer[os.File] // the hashes file, read and write (reload may open the directory's new one, under mu)
	// retired are hashes files of a directory another process replaced
	// whole (Replace), kept open for the reads begun on them until Close.
	retired []*os.File

	mu sync.RWMutex
	// Committed.
	size int64
	head string
	root tlog.Hash
	// Staged (by the one writer, under mu).
	lock    *os.File    // the write lock, held from the first Append to Commit or Rollback
	staged  int64       // leaves appended since the last commit
	pending []tlog.Hash // stored hashes not yet in the hashes file, from index flushed
	flushed int64       // stored hashes in the hashes file
	bundle  [][]byte    // the entries of the last, partial entry bundle (committed and staged)
	full    []int64     // staged full entry bundles, in staging/
	// stagingW writes them (in place: staging/ is emptied before and after a batch).
	stagingW tileWriter
	stamp    fs.FileInfo // of the state file last read (nil: read it again)
	next     *prepared   // what Prepare made durable ahead of Commit, if anything
	redo     *redo       // a recomputation of the committed leaves under way (beginRedo)
}

// redo is a recomputation of the committed log from its first leaf
// (Store.BeginRecompute): the leaves appended are checked against the
// log's files, not written, until they reach its committed size.
type redo struct {
	n       int64       // leaves recomputed
	pending []tlog.Hash // stored hashes recomputed and not yet compared, from stored index from
	from    int64
	bundle  [][]byte // the entries of the bundle being recomputed
	failed  error    // the first difference found
	// Buffers, reused: a bundle encoded, a tile file read.
	enc, file []byte
}

// ErrDiffers is the error of a recomputation of a log (Store.BeginRecompute)
// whose leaves, stored hashes or tiles are not the log's files.
var ErrDiffers = errors.New("transparency log differs from its recomputation")

// prepared is a commit made durable ahead of its Commit (Prepare): the
// hashes synced, and the next state written and synced but not in place.
type prepared struct {
	head  string
	size  int64
	root  tlog.Hash
	state *safefile.Pending
}

type state struct {
	Size int64     `json:"size"`
	Head string    `json:"head"`
	Root tlog.Hash `json:"root"`
	// Last holds the entries of the last, partial entry bundle
	// (Size mod 256 of them): with the hashes file, what a commit writes
	// without syncing, the partial tiles, can be written again after a
	// crash (see repair).
	Last []string `json:"last,omitempty"`
}

// testHookBeforeState, if set, runs in Commit after the tiles are written
// and durable and before the state file names them: where a crash test
// kills the process.
var testHookBeforeState func()

// OpenLog opens the log in dir, creating an empty log if dir is empty or
// does not exist. A directory with other files and no log is an error.
func OpenLog(dir string) (*Log, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating transparency log %s: %w", dir, err)
	}
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		ents, rerr := os.ReadDir(dir)
		if rerr != nil {
			return nil, rerr
		}
		for _, e := range ents {
			if e.Name() != hashesFile && e.Name() != lockFile {
				return nil, fmt.Errorf("%s is not a transparency log (it has %s and no %s): give an empty directory", dir, e.Name(), stateFile)
			}
		}
		empty, _ := tlog.TreeHash(0, nil) // RFC 6962: SHA-256 of nothing
		st = &state{Root: empty}
		if err := writeState(dir, st); err != nil {
			return nil, fmt.Errorf("creating transparency log %s: %w", dir, err)
		}
	} else if err != nil {
		return nil, err
	}
	hashes, err := openHashes(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir}
	l.hashes.Store(hashes)
	if err := l.setState(st); err != nil {
		hashes.Close()
		return nil, err
	}
	// Repair what a crashed writer left, unless a writer is at work now
	// (or this process may not write).
	if lock, err := tryLock(dir); err == nil && lock != nil {
		err := l.recover()
		if err == nil {
			err = l.repair()
		}
		unlock(lock)
		if err != nil {
			hashes.Close()
			return nil, err
		}
	}
	if err := l.check(); err != nil {
		hashes.Close()
		return nil, err
	}
	return l, nil
}

// openHashes opens the hashes file of the log in dir.
func openHashes(dir string) (*os.File, error) {
	hashes, err := os.OpenFile(filepath.Join(dir, hashesFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		// A log this process may not write (another user's, a read-only
		// mount) can still be read; appends fail to take the lock.
		hashes, err = os.Open(filepath.Join(dir, hashesFile))
	}
	if err != nil {
		return nil, fmt.Errorf("opening transparency log %s: %w", dir, err)
	}
	return hashes, nil
}

// Close releases the log's files (and drops staged leaves).
func (l *Log) Close() error {
	l.Rollback()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.retired {
		f.Close()
	}
	l.retired = nil
	return l.hashes.Load().Close()
}

// Replace installs the committed log in fresh as the log in dir, in one
// rename, under dir's write lock (no writer of another process is
// between its hashes and its state); the log dir held is removed. A Log
// open on dir in any process reads the new one after its next Reload.
func Replace(dir, fresh string) error {
	lock, err := tryLock(dir)
	if errors.Is(err, fs.ErrNotExist) {
		lock, err = nil, nil // no log there yet
	} else if err == nil && lock == nil {
		lock, err = takeLock(dir)
	}
	if err != nil {
		return err
	}
	if lock != nil {
		defer unlock(lock)
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	old := dir + ".old-" + hex.EncodeToString(suffix[:])
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(fresh, dir); err != nil {
		return err
	}
	os.RemoveAll(old)
	return nil
}

// Dir returns the log's directory: the root of its tlog-tiles tree.
func (l *Log) Dir() string { return l.dir }

// Size returns the number of committed leaves.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Head returns the git head the committed log covers ("" for an empty log
// never committed).
func (l *Log) Head() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.head
}

// Root returns the committed tree's root hash.
func (l *Log) Root() tlog.Hash {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.root
}

// Staged returns the number of leaves appended and not yet committed.
func (l *Log) Staged() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.staged
}

// Next returns the index the next leaf appended gets: the committed and
// staged leaves, or, during a recomputation (Store.BeginRecompute), the
// leaves recomputed so far.
func (l *Log) Next() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.nextIndex()
}

func (l *Log) nextIndex() int64 {
	if l.redo != nil {
		return l.redo.n
	}
	return l.size + l.staged
}

// redoFailed returns the difference a recomputation found, if any.
func (l *Log) redoFailed() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.redo != nil {
		return l.redo.failed
	}
	return nil
}

// beginRedo takes the write lock (see begin) and starts recomputing the
// committed leaves from the first (see redo); with no committed leaf,
// appends are appends from the start.
func (l *Log) beginRedo() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(); err != nil {
		return err
	}
	if l.staged != 0 || l.redo != nil {
		return fmt.Errorf("transparency log %s: leaves are staged already: commit or roll back before recomputing it", l.dir)
	}
	if l.size > 0 {
		l.redo = &redo{}
	}
	return nil
}

// redoText recomputes the next committed leaf from its entry line, and
// compares with the log's files what it completes: its stored hashes
// (by chunks), its entry bundle and level-0 hash tile when full, and,
// with the last committed leaf, the last partial bundle and every other
// hash tile. (Under the write lock.)
func (l *Log) redoText(text []byte, leaf tlog.Hash) (int64, tlog.Hash, error) {
	r := l.redo
	if r.failed != nil {
		return 0, tlog.Hash{}, r.failed
	}
	fail := func(err error) (int64, tlog.Hash, error) {
		if !errors.Is(err, ErrDiffers) {
			err = fmt.Errorf("%w: %s: %w", ErrDiffers, l.dir, err)
		}
		r.failed = err
		return 0, tlog.Hash{}, err
	}
	n := r.n
	pending, err := storedHashes(r.pending, n, leaf, l.readRedo1)
	if err != nil {
		return fail(err)
	}
	r.pending = pending
	r.bundle = append(r.bundle, text)
	r.n++
	if len(r.bundle) == tileWidth {
		N := n / tileWidth
		r.enc = appendBundle(r.enc[:0], r.bundle)
		if err := l.sameTile(tlog.Tile{H: tileHeight, L: -1, N: N, W: tileWidth}, r.enc); err != nil {
			return fail(err)
		}
		t := tlog.Tile{H: tileHeight, L: 0, N: N, W: tileWidth}
		data, err := tlog.ReadTileData(t, tlog.HashReaderFunc(l.readRedo))
		if err != nil {
			return fail(err)
		}
		if err := l.sameTile(t, data); err != nil {
			return fail(err)
		}
		r.bundle = nil
	}
	if len(r.pending) >= flushHashes || r.n == l.size {
		if err := l.sameHashes(); err != nil {
			return fail(err)
		}
	}
	if r.n == l.size {
		if len(r.bundle) != len(l.bundle) {
			return fail(fmt.Errorf("%w: %s holds %d entries of the last bundle, the recomputation %d", ErrDiffers, filepath.Join(l.dir, stateFile), len(l.bundle), len(r.bundle)))
		}
		for i := range r.bundle {
			if !bytes.Equal(r.bundle[i], l.bundle[i]) {
				return fail(fmt.Errorf("%w: entry %d in %s is %q, the recomputation gives %q", ErrDiffers, l.size/tileWidth*tileWidth+int64(i), filepath.Join(l.dir, stateFile), clip(l.bundle[i]), clip(r.bundle[i])))
			}
		}
		if w := l.size % tileWidth; w > 0 {
			if err := l.sameTile(tlog.Tile{H: tileHeight, L: -1, N: l.size / tileWidth, W: int(w)}, encodeBundle(r.bundle)); err != nil {
				return fail(err)
			}
		}
		// The hashes are the recomputed ones now: the other hash tiles
		// are read from them.
		for _, t := range tlog.NewTiles(tileHeight, 0, l.size) {
			if t.L == 0 && t.W == tileWidth {
				continue // compared with its bundle
			}
			data, err := tlog.ReadTileData(t, tlog.HashReaderFunc(l.readHashes))
			if err != nil {
				return fail(err)
			}
			if err := l.sameTile(t, data); err != nil {
				return fail(err)
			}
		}
		l.redo = nil
	}
	return n, leaf, nil
}

// storedHashes appends to dst the stored hashes that leaf n, of leaf hash
// leaf, adds to the tree (tlog.StoredHashesForRecordHash's, without its
// allocations): the leaf hash, then a node hash for each subtree it
// completes, whose left halves read returns.
func storedHashes(dst []tlog.Hash, n int64, leaf tlog.Hash, read func(int64) (tlog.Hash, error)) ([]tlog.Hash, error) {
	dst = append(dst, leaf)
	h := leaf
	for i := 0; i < bits.TrailingZeros64(uint64(n+1)); i++ {
		left, err := read(tlog.StoredHashIndex(i, n>>uint(i)-1))
		if err != nil {
			return dst, err
		}
		h = tlog.NodeHash(left, h)
		dst = append(dst, h)
	}
	return dst, nil
}

// readStaged1 reads one stored hash, staged ones included.
func (l *Log) readStaged1(x int64) (tlog.Hash, error) {
	if x >= l.flushed && x < l.flushed+int64(len(l.pending)) {
		return l.pending[x-l.flushed], nil
	}
	hs, err := l.readStaged([]int64{x})
	if err != nil {
		return tlog.Hash{}, err
	}
	return hs[0], nil
}

// readRedo1 reads one stored hash during a recomputation (see readRedo).
func (l *Log) readRedo1(x int64) (tlog.Hash, error) {
	r := l.redo
	if x >= r.from && x < r.from+int64(len(r.pending)) {
		return r.pending[x-r.from], nil
	}
	hs, err := l.readRedo([]int64{x})
	if err != nil {
		return tlog.Hash{}, err
	}
	return hs[0], nil
}

// readRedo reads stored hashes during a recomputation: the ones not yet
// compared from memory, the others from the hashes file, where they were
// found equal.
func (l *Log) readRedo(indexes []int64) ([]tlog.Hash, error) {
	r := l.redo
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		switch {
		case x >= r.from && x < r.from+int64(len(r.pending)):
			out[i] = r.pending[x-r.from]
		case x < r.from:
			hs, err := l.readHashes([]int64{x})
			if err != nil {
				return nil, err
			}
			out[i] = hs[0]
		default:
			return nil, fmt.Errorf("transparency log %s: stored hash %d is not recomputed yet", l.dir, x)
		}
	}
	return out, nil
}

// sameHashes compares the recomputed stored hashes not compared yet with
// the hashes file's, and drops them.
func (l *Log) sameHashes() error {
	r := l.redo
	if len(r.pending) == 0 {
		return nil
	}
	buf := make([]byte, len(r.pending)*tlog.HashSize)
	if _, err := l.hashes.Load().ReadAt(buf, r.from*tlog.HashSize); err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrDiffers, filepath.Join(l.dir, hashesFile), err)
	}
	for i, h := range r.pending {
		if !bytes.Equal(h[:], buf[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
			return fmt.Errorf("%w: stored hash %d in %s is %x, the recomputation gives %v", ErrDiffers, r.from+int64(i), filepath.Join(l.dir, hashesFile), buf[i*tlog.HashSize:(i+1)*tlog.HashSize], h)
		}
	}
	r.from += int64(len(r.pending))
	r.pending = r.pending[:0]
	return nil
}

// sameTile compares the tile file of t with the recomputed data (during
// a recomputation: its buffer holds the file).
func (l *Log) sameTile(t tlog.Tile, data []byte) error {
	p := filepath.Join(l.dir, torchwood.TilePath(t))
	// One byte more than data: a longer file differs too.
	r := l.redo
	if cap(r.file) < len(data)+1 {
		r.file = make([]byte, len(data)+1)
	}
	n, err := safefile.ReadInto(p, r.file[:len(data)+1])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDiffers, err)
	}
	if n != len(data) || !bytes.Equal(r.file[:n], data) {
		return fmt.Errorf("%w: %s is not the tile recomputed (%d recomputed bytes)", ErrDiffers, p, len(data))
	}
	return nil
}

// Reload re-reads the committed state, which another process may have
// moved, if this Log has nothing staged.
func (l *Log) Reload() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.staged > 0 || l.lock != nil || l.redo != nil {
		return nil
	}
	return l.reload()
}

func (l *Log) reload() error {
	for tries := 0; ; tries++ {
		// The state file is replaced, never changed in place: one that
		// is the same file as the one read last, of the same time and
		// size, was read already (one stat, the common case).
		fi, err := os.Stat(filepath.Join(l.dir, stateFile))
		if err == nil && l.stamp != nil && os.SameFile(fi, l.stamp) && fi.ModTime().Equal(l.stamp.ModTime()) && fi.Size() == l.stamp.Size() {
			return nil
		}
		// A new state, perhaps of a directory another process renamed
		// over this one (Replace: a recomputed log), which has its own
		// hashes file: the state is read with it, never with the file
		// this Log opened before.
		if _, err := l.reopenHashes(); err != nil {
			return err
		}
		st, err := readState(l.dir)
		if err != nil {
			return err
		}
		// Replaced again between the two reads: read both again.
		if again, err := l.hashesMoved(); err != nil {
			return err
		} else if again && tries < 3 {
			continue
		}
		if err := l.setState(st); err != nil {
			return err
		}
		l.stamp = fi
		return nil
	}
}

// hashesMoved reports whether the directory's hashes file is no longer
// the one this Log reads (under mu).
func (l *Log) hashesMoved() (bool, error) {
	fi, err := os.Stat(filepath.Join(l.dir, hashesFile))
	if err != nil {
		return false, fmt.Errorf("transparency log %s: %w", l.dir, err)
	}
	have, err := l.hashes.Load().Stat()
	if err != nil {
		return false, err
	}
	return !os.SameFile(fi, have), nil
}

// reopenHashes opens the directory's hashes file if it is no longer the
// one this Log reads (under mu), keeping the old one open for the reads
// begun on it.
func (l *Log) reopenHashes() (bool, error) {
	moved, err := l.hashesMoved()
	if err != nil || !moved {
		return false, err
	}
	f, err := openHashes(l.dir)
	if err != nil {
		return false, err
	}
	l.retired = append(l.retired, l.hashes.Load())
	l.hashes.Store(f)
	return true, nil
}

func (l *Log) setState(st *state) error {
	if int64(len(st.Last)) != st.Size%tileWidth {
		return fmt.Errorf("%w: %s holds %d entries of the last bundle, a log of %d leaves has %d", ErrCorrupt, filepath.Join(l.dir, stateFile), len(st.Last), st.Size, st.Size%tileWidth)
	}
	l.size, l.head, l.root = st.Size, st.Head, st.Root
	l.flushed = tlog.StoredHashCount(st.Size)
	l.bundle = nil
	for _, e := range st.Last {
		l.bundle = append(l.bundle, []byte(e))
	}
	return nil
}

// Append stages an entry as the next leaf and returns its index and leaf
// hash. Staged leaves are not visible (Size, reads, tiles) until Commit.
func (l *Log) Append(e Entry) (index int64, leaf tlog.Hash, err error) {
	if err := e.Check(); err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("appending to transparency log %s: %w", l.dir, err)
	}
	return l.appendLeaf(e.leaf())
}

// appendLeaf stages an entry line, already checked, with its leaf hash,
// as the next leaf.
func (l *Log) appendLeaf(text []byte, leaf tlog.Hash) (index int64, _ tlog.Hash, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(); err != nil {
		return 0, tlog.Hash{}, err
	}
	if l.redo != nil {
		return l.redoText(text, leaf)
	}
	n := l.size + l.staged
	pending, err := storedHashes(l.pending, n, leaf, l.readStaged1)
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("appending to transparency log %s: %w", l.dir, err)
	}
	l.pending = pending
	l.bundle = append(l.bundle, text)
	l.staged++
	if len(l.bundle) == tileWidth {
		// A full bundle goes to staging/ now, so memory holds one
		// bundle, and so does its level-0 hash tile, whose hashes are
		// all known: Commit renames them, rather than writing them all
		// at the end of a long batch.
		N := n / tileWidth
		data, err := tlog.ReadTileData(tlog.Tile{H: tileHeight, L: 0, N: N, W: tileWidth}, tlog.HashReaderFunc(l.readStaged))
		if err != nil {
			return 0, tlog.Hash{}, fmt.Errorf("appending to transparency log %s: %w", l.dir, err)
		}
		// Not synced: staging/ does not outlive a crash.
		l.stagingW.fresh = true
		name := filepath.Join(l.dir, stagingDir, strconv.FormatInt(N, 10))
		if err := l.stagingW.write(name, encodeBundle(l.bundle)); err != nil {
			return 0, tlog.Hash{}, fmt.Errorf("appending to transparency log %s: %w", l.dir, err)
		}
		if err := l.stagingW.write(name+".hashes", data); err != nil {
			return 0, tlog.Hash{}, fmt.Errorf("appending to transparency log %s: %w", l.dir, err)
		}
		l.full = append(l.full, N)
		l.bundle = nil
	}
	if len(l.pending) >= flushHashes {
		if err := l.flush(); err != nil {
			return 0, tlog.Hash{}, err
		}
	}
	return n, leaf, nil
}

// ErrMoved is Begin's error when another writer moved the log.
var ErrMoved = errors.New("transparency log moved by another writer")

// Begin takes the write lock for a batch of appends that continue the
// log committed at head, waiting for another writer to be done. If that
// writer moved the log's head elsewhere, Begin releases the lock and
// fails with ErrMoved: what the caller meant to append may be there
// already. (Append takes the lock itself, on whatever is committed.)
func (l *Log) Begin(head string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(); err != nil {
		return err
	}
	if l.head != head && l.staged == 0 {
		l.release()
		return fmt.Errorf("%w: %s is at %q, not %q", ErrMoved, l.dir, l.head, head)
	}
	return nil
}

// hold takes the write lock for a batch of appends, if not held (see begin).
func (l *Log) hold() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.begin()
}

// begin takes the write lock for a batch of appends, if not held: the
// state is re-read (another process may have committed) and what a
// crashed writer left is repaired.
func (l *Log) begin() error {
	if l.lock != nil {
		return nil
	}
	lock, err := l.takeCurrentLock()
	if err != nil {
		return err
	}
	l.lock = lock
	if err := l.reload(); err != nil {
		l.release()
		return err
	}
	if err := l.recover(); err != nil {
		l.release()
		return err
	}
	if err := l.repair(); err != nil {
		l.release()
		return err
	}
	return nil
}

// takeCurrentLock takes the directory's write lock, on the lock file
// that is the directory's once held: a writer that waited while another
// process replaced the directory (Replace) holds the old one's, which
// guards nothing now, and takes the new one's.
func (l *Log) takeCurrentLock() (*os.File, error) {
	for {
		lock, err := takeLock(l.dir)
		if err != nil {
			return nil, err
		}
		held, herr := lock.Stat()
		now, nerr := os.Stat(filepath.Join(l.dir, lockFile))
		if herr == nil && nerr == nil && os.SameFile(held, now) {
			return lock, nil
		}
		unlock(lock)
		if herr != nil {
			return nil, herr
		}
		if nerr != nil && !errors.Is(nerr, fs.ErrNotExist) {
			return nil, nerr
		}
	}
}

func (l *Log) release() {
	if l.lock != nil {
		unlock(l.lock)
		l.lock = nil
	}
}

// flush writes the pending stored hashes to the hashes file.
func (l *Log) flush() error {
	if len(l.pending) == 0 {
		return nil
	}
	buf := make([]byte, 0, len(l.pending)*tlog.HashSize)
	for _, h := range l.pending {
		buf = append(buf, h[:]...)
	}
	if _, err := l.hashes.Load().WriteAt(buf, l.flushed*tlog.HashSize); err != nil {
		return fmt.Errorf("writing transparency log %s: %w", l.dir, err)
	}
	l.flushed += int64(len(l.pending))
	l.pending = l.pending[:0]
	return nil
}

// Commit durably publishes the staged leaves as covering git commit head:
// the stored hashes are synced, the new tiles and entry bundles written
// (each to a temporary file, then renamed) and made durable, and then the
// state file names the new size, head and root. A Commit with nothing
// staged only moves the head.
func (l *Log) Commit(head string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.redo; r != nil {
		err := r.failed
		if err == nil {
			err = fmt.Errorf("%w: %s: %d of its %d leaves were recomputed", ErrDiffers, l.dir, r.n, l.size)
		}
		l.rollback()
		return fmt.Errorf("committing transparency log %s: %w", l.dir, err)
	}
	if l.staged == 0 && head == l.head {
		l.dropPrepared()
		l.release()
		return nil
	}
	if err := l.begin(); err != nil {
		return err
	}
	if err := l.commit(head); err != nil {
		l.rollback()
		return fmt.Errorf("committing transparency log %s: %w", l.dir, err)
	}
	return nil
}

// Prepare makes the staged leaves durable ahead of their Commit as
// covering head, so that Commit has only the tiles to write and the state
// file to rename: the hashes are synced, and the next state file written
// and synced beside the state file, not in place. A writer prepares while
// it waits for what decides the commit (its git ref moving), and rolls
// back if it does not happen; what a crash leaves of a prepared commit
// is removed by the next writer, as a crashed commit's (recover).
func (l *Log) Prepare(head string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock == nil {
		return fmt.Errorf("transparency log %s: nothing staged to prepare", l.dir)
	}
	if err := l.prepare(head); err != nil {
		return fmt.Errorf("preparing transparency log %s: %w", l.dir, err)
	}
	return nil
}

// prepare makes l.next the durable form of the staged leaves as covering
// head (under the write lock).
func (l *Log) prepare(head string) error {
	l.dropPrepared()
	size := l.size + l.staged
	if err := l.flush(); err != nil {
		return err
	}
	root, err := tlog.TreeHash(size, tlog.HashReaderFunc(l.readStaged))
	if err != nil {
		return err
	}
	// The new state is written to its temporary file now and synced
	// together with the hashes (one journal commit, not two); it is
	// renamed into place only once the tiles are written.
	st := &state{Size: size, Head: head, Root: root}
	for _, e := range l.bundle {
		st.Last = append(st.Last, string(e))
	}
	next, err := createState(l.dir, st)
	if err != nil {
		return err
	}
	synced := make(chan error, 1)
	go func() { synced <- next.Sync() }()
	herr := l.hashes.Load().Sync()
	if err := errors.Join(herr, <-synced); err != nil {
		next.Discard()
		return err
	}
	l.next = &prepared{head: head, size: size, root: root, state: next}
	return nil
}

// dropPrepared discards a prepared commit's state file.
func (l *Log) dropPrepared() {
	if l.next != nil {
		l.next.state.Discard()
		l.next = nil
	}
}

func (l *Log) commit(head string) error {
	old, size := l.size, l.size+l.staged
	if p := l.next; p == nil || p.head != head || p.size != size || len(l.pending) > 0 {
		if err := l.prepare(head); err != nil {
			return err
		}
	}
	root, next := l.next.root, l.next.state
	defer l.dropPrepared()
	read := tlog.HashReaderFunc(l.readStaged)
	// Every tile written here is past the committed tree until the state
	// file names it.
	w := tileWriter{fresh: true}
	staged := make(map[int64]bool, len(l.full)) // full level-0 tiles in staging/
	for _, n := range l.full {
		name := filepath.Join(l.dir, stagingDir, strconv.FormatInt(n, 10))
		if err := w.rename(name, filepath.Join(l.dir, torchwood.TilePath(tlog.Tile{H: tileHeight, L: -1, N: n, W: tileWidth}))); err != nil {
			return err
		}
		if err := w.rename(name+".hashes", filepath.Join(l.dir, torchwood.TilePath(tlog.Tile{H: tileHeight, L: 0, N: n, W: tileWidth}))); err != nil {
			return err
		}
		staged[n] = true
	}
	// Partial tiles are not synced: the hashes and the state file (which
	// holds the last bundle's entries) can write them again (repair).
	partial := tileWriter{fresh: true}
	if width := size % tileWidth; width > 0 && size > old {
		t := tlog.Tile{H: tileHeight, L: -1, N: size / tileWidth, W: int(width)}
		if err := partial.write(filepath.Join(l.dir, torchwood.TilePath(t)), encodeBundle(l.bundle)); err != nil {
			return err
		}
	}
	for _, t := range tlog.NewTiles(tileHeight, old, size) {
		if t.L == 0 && t.W == tileWidth && staged[t.N] {
			continue
		}
		data, err := tlog.ReadTileData(t, read)
		if err != nil {
			return err
		}
		tw := &w
		if t.W < tileWidth {
			tw = &partial
		}
		if err := tw.write(filepath.Join(l.dir, torchwood.TilePath(t)), data); err != nil {
			return err
		}
	}
	if err := w.sync(l.dir); err != nil {
		return err
	}
	if testHookBeforeState != nil {
		testHookBeforeState()
	}
	if err := next.Install(); err != nil {
		return err
	}
	if err := safefile.SyncDir(l.dir); err != nil {
		return err
	}
	l.size, l.head, l.root, l.staged, l.full, l.stamp = size, head, root, 0, nil, nil
	l.release()
	// A full tile makes its partial tiles redundant (C2SP tlog-tiles lets
	// them go); what a crash here leaves is still right.
	for _, t := range tlog.NewTiles(tileHeight, old, size) {
		if t.W == tileWidth {
			os.RemoveAll(filepath.Join(l.dir, torchwood.TilePath(t)+".p"))
			if t.L == 0 {
				os.RemoveAll(filepath.Join(l.dir, torchwood.TilePath(tlog.Tile{H: tileHeight, L: -1, N: t.N, W: tileWidth})+".p"))
			}
		}
	}
	l.stagingW = tileWriter{fresh: true}
	os.RemoveAll(filepath.Join(l.dir, stagingDir))
	return nil
}

// Rollback drops the staged leaves.
func (l *Log) Rollback() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollback()
}

func (l *Log) rollback() {
	l.dropPrepared()
	l.redo = nil
	if l.lock == nil {
		return
	}
	l.staged, l.full, l.pending = 0, nil, nil
	l.recover() // truncates the hashes, empties staging
	if st, err := readState(l.dir); err == nil {
		l.setState(st)
	}
	l.release()
}

// recover brings the files back to the committed state (under the write
// lock): it removes the tiles a crashed commit wrote past the committed
// size, truncates the hashes file, and empties staging.
func (l *Log) recover() error {
	fi, err := l.hashes.Load().Stat()
	if err != nil {
		return err
	}
	have, want := fi.Size()/tlog.HashSize, tlog.StoredHashCount(l.size)
	if have < want {
		return fmt.Errorf("%w: %s holds %d hashes, a log of %d leaves has %d: rebuild the log (cairn verify --full)", ErrCorrupt, filepath.Join(l.dir, hashesFile), have, l.size, want)
	}
	if fi.Size() > want*tlog.HashSize {
		// The hashes of a commit are synced before its tiles are written:
		// the tree size they reach bounds what it may have written.
		to := l.size + int64(sort.Search(int(have-want)+1, func(k int) bool {
			return tlog.StoredHashCount(l.size+int64(k)) > have
		})) - 1
		for _, t := range tlog.NewTiles(tileHeight, l.size, to) {
			if err := removeFile(filepath.Join(l.dir, torchwood.TilePath(t))); err != nil {
				return err
			}
			if t.L == 0 {
				if err := removeFile(filepath.Join(l.dir, torchwood.TilePath(tlog.Tile{H: tileHeight, L: -1, N: t.N, W: t.W}))); err != nil {
					return err
				}
			}
		}
		if err := l.hashes.Load().Truncate(want * tlog.HashSize); err != nil {
			return err
		}
		if err := l.hashes.Load().Sync(); err != nil {
			return err
		}
	}
	l.flushed = want
	// A commit's next state file, written before its tiles and renamed
	// after them: a crash between leaves it (the lock says no writer is
	// at work now).
	// So is a map snapshot or delta being written when the process died
	// (written after a commit, its lock let go: one a live process is
	// writing now loses its rename, and the cache is not written), and
	// the files and the nodes of a map being built (a replay's, under
	// the lock; the nodes' file is removed once made, left only by a
	// crash in between).
	for _, name := range []string{stateFile, snapshotFile, deltaFile, filesFile, nodesFile} {
		tmps, _ := filepath.Glob(filepath.Join(l.dir, ".tmp-"+name+"-*"))
		for _, p := range tmps {
			if err := removeFile(p); err != nil {
				return err
			}
		}
	}
	l.stagingW = tileWriter{fresh: true}
	return os.RemoveAll(filepath.Join(l.dir, stagingDir))
}

// check compares the root the hashes give with the one the state names.
func (l *Log) check() error {
	fi, err := l.hashes.Load().Stat()
	if err != nil {
		return err
	}
	if have, want := fi.Size()/tlog.HashSize, tlog.StoredHashCount(l.size); have < want {
		return fmt.Errorf("%w: %s holds %d hashes, a log of %d leaves has %d: rebuild the log (cairn verify --full)", ErrCorrupt, filepath.Join(l.dir, hashesFile), have, l.size, want)
	}
	root, err := tlog.TreeHash(l.size, tlog.HashReaderFunc(l.readHashes))
	if err != nil {
		return err
	}
	if root != l.root {
		return fmt.Errorf("%w: %s names root %s for size %d, its hashes give %s: rebuild the log (cairn verify --full)", ErrCorrupt, filepath.Join(l.dir, stateFile), l.root, l.size, root)
	}
	return nil
}

// repair writes again, under the write lock, the partial tiles of the
// committed size whose files a crash lost or tore (a commit does not sync
// them): hash tiles from the hashes, the entry bundle from the state.
func (l *Log) repair() error {
	var w tileWriter
	for level := 0; l.size>>(tileHeight*level) > 0; level++ {
		n := l.size >> (tileHeight * level)
		width := int(n % tileWidth)
		if width == 0 {
			continue
		}
		tiles := []tlog.Tile{{H: tileHeight, L: level, N: n / tileWidth, W: width}}
		if level == 0 {
			tiles = append(tiles, tlog.Tile{H: tileHeight, L: -1, N: n / tileWidth, W: width})
		}
		for _, t := range tiles {
			want := encodeBundle(l.bundle)
			if t.L >= 0 {
				var err error
				if want, err = tlog.ReadTileData(t, tlog.HashReaderFunc(l.readHashes)); err != nil {
					return err
				}
			}
			p := filepath.Join(l.dir, torchwood.TilePath(t))
			if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, want) {
				continue
			}
			if err := w.write(p, want); err != nil {
				return fmt.Errorf("repairing transparency log %s: %w", l.dir, err)
			}
		}
	}
	return w.sync(l.dir)
}

// readStaged reads stored hashes, staged ones included.
func (l *Log) readStaged(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var fromFile []int64
	var at []int
	for i, x := range indexes {
		switch {
		case x >= l.flushed && x < l.flushed+int64(len(l.pending)):
			out[i] = l.pending[x-l.flushed]
		case x < l.flushed:
			fromFile, at = append(fromFile, x), append(at, i)
		default:
			return nil, fmt.Errorf("transparency log %s: stored hash %d is not written yet", l.dir, x)
		}
	}
	if len(fromFile) > 0 {
		hs, err := l.readHashes(fromFile)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			out[i] = hs[k]
		}
	}
	return out, nil
}

// readHashes reads stored hashes from the hashes file: indexes close
// together in one read.
func (l *Log) readHashes(indexes []int64) ([]tlog.Hash, error) {
	return l.readHashesIn(l.hashes.Load(), indexes)
}

// readHashesIn is readHashes from the hashes file f.
func (l *Log) readHashesIn(f *os.File, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	const span = 1024 // hashes: one read of 32 KiB rather than several
	var buf []byte
	for i := 0; i < len(indexes); {
		lo, hi, j := indexes[i], indexes[i], i+1
		for j < len(indexes) && indexes[j] >= lo && indexes[j]-lo < span {
			hi = max(hi, indexes[j])
			j++
		}
		n := int(hi-lo+1) * tlog.HashSize
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := f.ReadAt(buf, lo*tlog.HashSize); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: stored hash %d is past the end of %s", ErrCorrupt, hi, filepath.Join(l.dir, hashesFile))
			}
			return nil, err
		}
		for ; i < j; i++ {
			copy(out[i][:], buf[(indexes[i]-lo)*tlog.HashSize:])
		}
	}
	return out, nil
}

// committed returns the committed size and a reader of its hashes.
func (l *Log) committed() (int64, tlog.HashReader) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f := l.hashes.Load() // the file of this size, should a Reload open another
	return l.size, tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return l.readHashesIn(f, indexes)
	})
}

// TreeHash returns the root hash of the tree of the first n leaves, for
// any n up to Size.
func (l *Log) TreeHash(n int64) (tlog.Hash, error) {
	size, r := l.committed()
	if n < 0 || n > size {
		return tlog.Hash{}, fmt.Errorf("tree hash of size %d: the log %s holds %d leaves", n, l.dir, size)
	}
	return tlog.TreeHash(n, r)
}

// ProveRecord returns the inclusion proof of leaf i in the tree of size n
// (n up to Size), as tlog.CheckRecord checks it.
func (l *Log) ProveRecord(i, n int64) (tlog.RecordProof, error) {
	size, r := l.committed()
	if n > size || i < 0 || i >= n {
		return nil, fmt.Errorf("inclusion proof of leaf %d in tree of size %d: the log %s holds %d leaves", i, n, l.dir, size)
	}
	return tlog.ProveRecord(n, i, r)
}

// ProveTree returns the consistency proof from the tree of size n1 to the
// tree of size n2 (n1 ≤ n2 ≤ Size), as tlog.CheckTree checks it.
func (l *Log) ProveTree(n1, n2 int64) (tlog.TreeProof, error) {
	size, r := l.committed()
	if n2 > size || n1 < 0 || n1 > n2 {
		return nil, fmt.Errorf("consistency proof from size %d to %d: the log %s holds %d leaves", n1, n2, l.dir, size)
	}
	return tlog.ProveTree(n2, n1, r)
}

// Entry returns the entry line of leaf i (i < Size).
func (l *Log) Entry(i int64) ([]byte, error) {
	size := l.Size()
	if i < 0 || i >= size {
		return nil, fmt.Errorf("entry %d: the log %s holds %d leaves: %w", i, l.dir, size, fs.ErrNotExist)
	}
	b, err := l.readBundle(i/tileWidth, size)
	if err != nil {
		return nil, err
	}
	return b[i%tileWidth], nil
}

// Range calls f with every committed leaf's index and entry line from
// leaf from to leaf to (excluded), in order, until f returns an error.
func (l *Log) Range(from, to int64, f func(i int64, entry []byte) error) error {
	size := l.Size()
	if from < 0 || to > size || from > to {
		return fmt.Errorf("entries %d to %d: the log %s holds %d leaves", from, to, l.dir, size)
	}
	for i := from; i < to; {
		n := i / tileWidth
		b, err := l.readBundle(n, size)
		if err != nil {
			return err
		}
		for ; i < to && i < (n+1)*tileWidth; i++ {
			if err := f(i, b[i-n*tileWidth]); err != nil {
				return err
			}
		}
	}
	return nil
}

// readBundle returns the entries of bundle n of the log of the given
// (committed) size.
func (l *Log) readBundle(n, size int64) ([][]byte, error) {
	w := min(size-n*tileWidth, tileWidth)
	t := tlog.Tile{H: tileHeight, L: -1, N: n, W: int(w)}
	data, err := l.readTile(t, size)
	if err != nil {
		return nil, err
	}
	b, err := decodeBundle(data, int(w))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, filepath.Join(l.dir, torchwood.TilePath(t)), err)
	}
	return b, nil
}

// ReadTile returns the tile or entry bundle at a C2SP tlog-tiles path
// relative to the log ("tile/0/000", "tile/1/000.p/5",
// "tile/entries/x001/234"). Only tiles the committed tree holds exist:
// any other path, or a malformed one, is fs.ErrNotExist.
func (l *Log) ReadTile(path string) ([]byte, error) {
	t, err := torchwood.ParseTilePath(path)
	if err != nil || t.H != tileHeight || torchwood.TilePath(t) != path {
		return nil, fmt.Errorf("%s is not a tile path of the log: %w", path, fs.ErrNotExist)
	}
	return l.readTile(t, l.Size())
}

func (l *Log) readTile(t tlog.Tile, size int64) ([]byte, error) {
	level := max(t.L, 0)
	end := t.N*tileWidth + int64(t.W) // in units of 256^level leaves
	if level > 7 || end > size>>(tileHeight*level) {
		return nil, fmt.Errorf("tile %s is past the log's %d leaves: %w", torchwood.TilePath(t), size, fs.ErrNotExist)
	}
	data, err := os.ReadFile(filepath.Join(l.dir, torchwood.TilePath(t)))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || t.W == tileWidth {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: tile %s is missing: %w", ErrCorrupt, torchwood.TilePath(t), err)
		}
		return data, err
	}
	// A partial tile whose full tile (or a wider partial one) replaced it.
	if t.L >= 0 {
		return tlog.ReadTileData(t, tlog.HashReaderFunc(l.readHashes))
	}
	wider := tlog.Tile{H: tileHeight, L: -1, N: t.N, W: int(min(size-t.N*tileWidth, tileWidth))}
	data, err = os.ReadFile(filepath.Join(l.dir, torchwood.TilePath(wider)))
	if err != nil {
		return nil, fmt.Errorf("%w: tile %s is missing: %w", ErrCorrupt, torchwood.TilePath(wider), err)
	}
	b, err := decodeBundle(data, wider.W)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, torchwood.TilePath(wider), err)
	}
	return encodeBundle(b[:t.W]), nil
}

func encodeBundle(entries [][]byte) []byte {
	n := 0
	for _, e := range entries {
		n += 2 + len(e)
	}
	return appendBundle(make([]byte, 0, n), entries)
}

// appendBundle appends the entry bundle of entries to b.
func appendBundle(b []byte, entries [][]byte) []byte {
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

// decodeBundle splits an entry bundle of w entries.
func decodeBundle(data []byte, w int) ([][]byte, error) {
	out := make([][]byte, 0, w)
	for len(data) > 0 {
		e, rest, err := torchwood.ReadTileEntry(data)
		if err != nil {
			return nil, err
		}
		out, data = append(out, e), rest
	}
	if len(out) != w {
		return nil, fmt.Errorf("entry bundle holds %d entries, want %d", len(out), w)
	}
	return out, nil
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// createState writes st to a temporary file beside the state file,
// neither synced nor in place (safefile.Pending).
func createState(dir string, st *state) (*safefile.Pending, error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return safefile.Create(filepath.Join(dir, stateFile), append(data, '\n'), 0o644)
}

func writeState(dir string, st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	// Synced, its directory not: a rename lost in a crash is the state
	// before, from which the log recovers (recover).
	return safefile.Write(filepath.Join(dir, stateFile), append(data, '\n'), safefile.Options{})
}

// tileWriter writes tiles (each to a temporary file, then renamed, unless
// fresh) and remembers what to sync to make them durable together: the
// files, the directories they were renamed into, and the parents of the
// directories it created.
type tileWriter struct {
	// fresh says the paths written are past the committed tree, where no
	// reader looks (Log.readTile refuses them) and a crash leaves nothing
	// that counts (recover removes them): written in place, with no
	// temporary file.
	fresh bool
	files []string
	dirs  map[string]bool
}

func (w *tileWriter) write(path string, data []byte) error {
	if err := w.mkdirs(filepath.Dir(path)); err != nil {
		return err
	}
	if w.fresh {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	} else if err := safefile.Write(path, data, safefile.Options{NoSync: true}); err != nil {
		return err
	}
	w.files = append(w.files, path)
	return nil
}

func (w *tileWriter) rename(from, to string) error {
	if err := w.mkdirs(filepath.Dir(to)); err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return err
	}
	w.files = append(w.files, to)
	return nil
}

// mkdirs makes dir and its missing parents, noting which directories
// gained an entry.
func (w *tileWriter) mkdirs(dir string) error {
	if w.dirs == nil {
		w.dirs = map[string]bool{}
	}
	if w.dirs[dir] {
		return nil // made, or found, for an earlier file
	}
	for d := dir; !w.dirs[d]; d = filepath.Dir(d) {
		w.dirs[d] = true
		if _, err := os.Stat(d); err == nil {
			break
		}
	}
	return os.MkdirAll(dir, 0o755)
}

// sync makes the files written durable: one by one if they are few, else
// with one sync of the file system.
func (w *tileWriter) sync(root string) error {
	if len(w.files) > syncEach {
		if ok, err := syncFS(root); ok || err != nil {
			return err
		}
	}
	for _, p := range w.files {
		if err := syncPath(p); err != nil {
			return err
		}
	}
	for d := range w.dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(d string) error {
	if err := syncPath(d); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
