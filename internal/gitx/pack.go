package gitx

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"

	"cairn.dev/cairn/internal/safefile"
)

// Batch collects the objects of one append and writes them as a single
// packfile with its index: two files, however many objects, instead of
// one file per object. Objects in a batch are readable through Get before
// Flush; git sees them after.
type Batch struct {
	repo *Repo
	objs []pending
	byID map[string]int
}

type pending struct {
	id   string
	typ  string
	data []byte
}

// NewBatch starts an empty batch.
func (r *Repo) NewBatch() *Batch { return &Batch{repo: r, byID: map[string]int{}} }

// Len is the number of objects in the batch.
func (b *Batch) Len() int { return len(b.objs) }

// Write adds an object and returns its id.
func (b *Batch) Write(typ string, data []byte) string {
	h := b.repo.newHash()
	fmt.Fprintf(h, "%s %d\x00", typ, len(data))
	h.Write(data)
	id := hex.EncodeToString(h.Sum(nil))
	if _, dup := b.byID[id]; !dup {
		b.byID[id] = len(b.objs)
		b.objs = append(b.objs, pending{id, typ, data})
	}
	return id
}

// Get returns an object written to the batch.
func (b *Batch) Get(id string) (typ string, data []byte, ok bool) {
	i, ok := b.byID[id]
	if !ok {
		return "", nil, false
	}
	return b.objs[i].typ, b.objs[i].data, true
}

var packTypes = map[string]byte{"commit": 1, "tree": 2, "blob": 3, "tag": 4}

// Flush writes the batch as objects/pack/pack-X.pack and .idx (pack
// first, each to a temporary file, fsynced and renamed, so git never sees
// an index without its pack) and empties the batch.
func (b *Batch) Flush() error {
	if len(b.objs) == 0 {
		return nil
	}
	raw := b.repo.HexSize() / 2
	var pack bytes.Buffer
	pack.WriteString("PACK")
	binary.Write(&pack, binary.BigEndian, uint32(2))
	binary.Write(&pack, binary.BigEndian, uint32(len(b.objs)))
	type entry struct {
		id     []byte
		offset uint64
		crc    uint32
	}
	entries := make([]entry, len(b.objs))
	zw := zlibs.Get().(*zlib.Writer)
	defer zlibs.Put(zw)
	for i, o := range b.objs {
		start := pack.Len()
		// Type and size: 3 bits of type, then the size 4 bits first, 7 bits a byte.
		size := uint64(len(o.data))
		c := packTypes[o.typ]<<4 | byte(size&0x0f)
		size >>= 4
		for size > 0 {
			pack.WriteByte(c | 0x80)
			c = byte(size & 0x7f)
			size >>= 7
		}
		pack.WriteByte(c)
		zw.Reset(&pack)
		zw.Write(o.data)
		if err := zw.Close(); err != nil {
			return err
		}
		id, _ := hex.DecodeString(o.id)
		entries[i] = entry{id: id, offset: uint64(start), crc: crc32.ChecksumIEEE(pack.Bytes()[start:])}
	}
	h := b.repo.newHash()
	h.Write(pack.Bytes())
	packSum := h.Sum(nil)
	pack.Write(packSum)

	sort.Slice(entries, func(i, j int) bool { return bytes.Compare(entries[i].id, entries[j].id) < 0 })
	var idx bytes.Buffer
	idx.Write([]byte{0xff, 't', 'O', 'c'})
	binary.Write(&idx, binary.BigEndian, uint32(2))
	var fanout [256]uint32
	for _, e := range entries {
		fanout[e.id[0]]++
	}
	var total uint32
	for i := range fanout {
		total += fanout[i]
		binary.Write(&idx, binary.BigEndian, total)
	}
	for _, e := range entries {
		idx.Write(e.id[:raw])
	}
	for _, e := range entries {
		binary.Write(&idx, binary.BigEndian, e.crc)
	}
	var large []uint64
	for _, e := range entries {
		if e.offset < 1<<31 {
			binary.Write(&idx, binary.BigEndian, uint32(e.offset))
		} else {
			binary.Write(&idx, binary.BigEndian, uint32(1<<31|len(large)))
			large = append(large, e.offset)
		}
	}
	for _, off := range large {
		binary.Write(&idx, binary.BigEndian, off)
	}
	idx.Write(packSum)
	h = b.repo.newHash()
	h.Write(idx.Bytes())
	idx.Write(h.Sum(nil))

	dir := filepath.Join(b.repo.GitDir, "objects", "pack")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := filepath.Join(dir, "pack-"+hex.EncodeToString(packSum))
	// Both files are written and synced together (one journal commit, not
	// two), then renamed pack first, so that git never sees an index
	// without its pack (git also skips an index whose pack is absent),
	// and the directory synced once: the pack is durable before Flush
	// returns, so before any ref can name what it holds.
	pf, err := safefile.Create(name+".pack", pack.Bytes(), 0o444)
	if err != nil {
		return err
	}
	defer pf.Discard()
	xf, err := safefile.Create(name+".idx", idx.Bytes(), 0o444)
	if err != nil {
		return err
	}
	defer xf.Discard()
	if err := safefile.SyncAll(pf, xf); err != nil {
		return err
	}
	if err := pf.Install(); err != nil {
		return err
	}
	if err := xf.Install(); err != nil {
		return err
	}
	if err := safefile.SyncDir(dir); err != nil {
		return fmt.Errorf("%s is written but may not survive a crash: syncing its directory: %w", name+".pack", err)
	}
	b.objs, b.byID = nil, map[string]int{}
	return nil
}

// MaybeRepack consolidates packs once there are more than limit of them,
// with git's geometric repack: small packs are rolled into larger ones so
// that the work stays proportional to what was added since. A roll-up
// into one pack, which rewrote every object, is done again as a full
// repack (git repack -A -d, what git gc does), which writes the pack's
// reachability bitmap too: a geometric repack writes none and drops the
// one of a pack it rolls up, and without one every clone, fetch and slice
// a server answers (git pack-objects) walks the whole history to count
// what to send (1.4 s of CPU for a clone of 100,000 records, 0.3 s with a
// bitmap). A roll-up into one pack comes once each time the index about
// doubles, so the full repack costs little more than the roll-up did.
func (r *Repo) MaybeRepack(ctx context.Context, limit int) error {
	packs := filepath.Join(r.GitDir, "objects", "pack")
	idx, err := filepath.Glob(filepath.Join(packs, "*.idx"))
	if err != nil || len(idx) <= limit {
		return err
	}
	if _, err = r.run(ctx, nil, "repack", "--geometric=2", "-d", "-q"); err != nil {
		return err
	}
	idx, _ = filepath.Glob(filepath.Join(packs, "*.idx"))
	bitmaps, _ := filepath.Glob(filepath.Join(packs, "*.bitmap"))
	if len(idx) == 1 && len(bitmaps) == 0 {
		// -A, not -a: objects no ref reaches yet (an append's pack
		// written, its ref not moved yet) are kept, loose.
		if _, err := r.run(ctx, nil, "repack", "-A", "-d", "-q", "--write-bitmap-index"); err != nil {
			return err
		}
	}
	return r.writeCommitGraph(ctx)
}

// AutoGC lets git tidy the repository if it needs it (git gc --auto:
// loose objects past gc.auto, 6,700 by default, or packs past
// gc.autoPackLimit, 50), in the foreground; git writes the commit-graph
// with it.
func (r *Repo) AutoGC(ctx context.Context) error {
	_, err := r.run(ctx, nil, "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet")
	return err
}

// writeCommitGraph brings the repository's commit-graph up to its refs,
// in layers (git commit-graph write --split): git reads commits' parents
// and generations from it rather than from each commit, so that a walk
// of a long history (git log --topo-order --reverse, which a full
// verification starts with) begins in a fraction of the time.
func (r *Repo) writeCommitGraph(ctx context.Context) error {
	_, err := r.run(ctx, nil, "commit-graph", "write", "--reachable", "--split", "--no-progress")
	return err
}
