package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/translog"
)

// proofLeaves is the size of the log the proof figures are taken at:
// the "at 1M records".
const proofLeaves = 1_000_000

// synthLog writes the entries of a log shaped like a generated index's
// (a commit per version: its descriptor and three signed records, under
// the layout's paths), whose files are real generated files with their
// first bytes made unique, so that any file's bytes can be made again
// from its place without keeping them.
type synthLog struct {
	template [][]byte // one generated version's files: descriptor, three records
}

func newSynthLog() (*synthLog, error) {
	files, err := gen.New().Version()
	if err != nil {
		return nil, err
	}
	s := &synthLog{}
	for _, f := range files {
		s.template = append(s.template, f.Data)
	}
	return s, nil
}

// version returns the paths, in index order, and the bytes of version p.
func (s *synthLog) version(p int) (commit string, paths []string, data [][]byte) {
	name := fmt.Sprintf("ns%d/pkg%d", p%1000, p)
	dir := layout.VersionDir(name, "1.0.0")
	var seed [16]byte
	binary.BigEndian.PutUint64(seed[:], uint64(p))
	c := sha256.Sum256(append([]byte("commit"), seed[:]...))
	commit = hex.EncodeToString(c[:20])
	type file struct {
		path string
		data []byte
	}
	var fs []file
	for j, t := range s.template {
		d := bytes.Clone(t)
		binary.BigEndian.PutUint64(seed[8:], uint64(j))
		copy(d, hex.EncodeToString(seed[:])) // 32 bytes, unique per file
		path := dir + "/" + layout.DescriptorFile
		if j > 0 {
			id := sha256.Sum256(d)
			path = layout.RecordPath(dir, hex.EncodeToString(id[:]))
		}
		fs = append(fs, file{path, d})
	}
	slices.SortFunc(fs, func(a, b file) int { return strings.Compare(a.path, b.path) })
	for _, f := range fs {
		paths, data = append(paths, f.path), append(data, f.data)
	}
	return commit, paths, data
}

// build writes a log of at least n leaves in dir: one commit (its files,
// then its map leaf) per version.
func (s *synthLog) build(dir string, n int) (*translog.Store, error) {
	st, err := translog.OpenStore(dir, index.SubjectsOf)
	if err != nil {
		return nil, err
	}
	t := time.Now().Unix()
	for p := 0; int(st.Size()+st.Staged()) < n; p++ {
		commit, paths, data := s.version(p)
		es := make([]translog.Entry, len(paths))
		for k := range paths {
			es[k] = translog.NewEntry(commit, t, paths[k], data[k])
		}
		if _, err := st.AppendCommit(commit, t, es); err != nil {
			return nil, err
		}
		if st.Staged() >= 1<<16 {
			if err := st.Commit(commit); err != nil {
				return nil, err
			}
		}
	}
	if err := st.Commit("synthetic"); err != nil {
		return nil, err
	}
	return st, nil
}

// threadCPU returns the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPer runs f over and over on one locked thread for about d of CPU and
// returns the CPU time per call.
func cpuPer(d time.Duration, f func(i int)) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := 0
	start := threadCPU()
	for threadCPU()-start < d {
		for k := 0; k < 100; k++ {
			f(n)
			n++
		}
	}
	return (threadCPU() - start) / time.Duration(n)
}

// subjectRead is what a light client holds for one record: the files of
// its package's subject (their leaf indices, entry lines and bytes), the
// map proof as it came in JSON, and the record's inclusion path.
type subjectRead struct {
	subject string
	indexes []int64
	entries [][]byte
	content [][]byte
	proof   []byte // the map proof's JSON
	record  int    // which file is the record
	path    tlog.RecordProof
	mapLeaf []byte           // the tree's last leaf: the map leaf of the head
	mapPath tlog.RecordProof // its inclusion path
}

// check is a light client's check of one record and the completeness of
// its package's files: every file's entry parsed and its bytes against
// the entry's sha256 and size, the leaf hashes chained into the subject's
// value, the map proof against the map root, the record's inclusion
// path against the log's root, and the map root's: the tree's last leaf
// is the map leaf naming it.
func (r *subjectRead) check(size int64, root, mapRoot tlog.Hash) error {
	ml, err := translog.ParseMapEntry(r.mapLeaf)
	if err != nil {
		return err
	}
	if ml.Root != mapRoot {
		return fmt.Errorf("the tree's last leaf names another map root")
	}
	if err := tlog.CheckRecord(r.mapPath, size, root, size-1, translog.LeafHash(r.mapLeaf)); err != nil {
		return err
	}
	var v translog.Value
	for k, text := range r.entries {
		e, err := translog.ParseEntry(text)
		if err != nil {
			return err
		}
		if int64(len(r.content[k])) != e.Size || sha256.Sum256(r.content[k]) != e.SHA256 {
			return fmt.Errorf("leaf %d: content does not match its entry", r.indexes[k])
		}
		leaf := translog.LeafHash(text)
		v = v.Extend(r.indexes[k], leaf)
		if k == r.record {
			if err := tlog.CheckRecord(r.path, size, root, r.indexes[k], leaf); err != nil {
				return err
			}
		}
	}
	var p translog.MapProof
	if err := json.Unmarshal(r.proof, &p); err != nil {
		return err
	}
	return translog.VerifyMap(mapRoot, r.subject, &v, p)
}

// benchProof: one record's inclusion and completeness check, and the size
// of its proofs, at a log of a million leaves.
func benchProof(work string) error {
	s, err := newSynthLog()
	if err != nil {
		return err
	}
	t0 := time.Now()
	st, err := s.build(filepath.Join(work, "prooflog"), proofLeaves)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := st.Map()
	if err != nil {
		return err
	}
	size, root, mapRoot := m.Size, m.Root, m.Map.Root()
	fmt.Printf("# proof: a log of %d leaves, %d subjects, written and mapped in %s\n", size, m.Map.Len(), time.Since(t0).Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(1, 2))
	versions := int(size) / (len(s.template) + 1) // each version: its files, then its commit's map leaf
	var reads []*subjectRead
	var wire, raw []int
	for len(reads) < 64 {
		p := rng.IntN(versions)
		_, paths, data := s.version(p)
		subject := index.SubjectsOf(paths[0])[0]
		_, leaves, ok := m.Map.Get(subject)
		if !ok || len(leaves) != len(paths) {
			return fmt.Errorf("synthetic log: subject %q has %d leaves, want %d", subject, len(leaves), len(paths))
		}
		r := &subjectRead{subject: subject, indexes: leaves, content: data, record: slices.IndexFunc(paths, func(p string) bool { return !strings.HasSuffix(p, "/"+layout.DescriptorFile) })}
		for _, i := range leaves {
			text, err := st.Entry(i)
			if err != nil {
				return err
			}
			r.entries = append(r.entries, text)
		}
		mp := m.Map.Prove(subject)
		if r.proof, err = json.Marshal(mp); err != nil {
			return err
		}
		if r.path, err = st.ProveRecord(leaves[r.record], size); err != nil {
			return err
		}
		if r.mapLeaf, err = st.Entry(size - 1); err != nil {
			return err
		}
		if r.mapPath, err = st.ProveRecord(size-1, size); err != nil {
			return err
		}
		if err := r.check(size, root, mapRoot); err != nil {
			return fmt.Errorf("the bench's own proof of %s does not check: %w", subject, err)
		}
		reads = append(reads, r)
		// On the wire: the inclusion path as a tlog-proof's lines (44
		// base64 characters and a newline each), the map proof as JSON,
		// the map leaf's path as one base64 string and its time (the
		// rest of the map leaf is the checkpoint's).
		mapPath := base64.StdEncoding.EncodedLen(32*len(r.mapPath)) + len(`,"map_time":1700000000,"map_path":""`)
		wire = append(wire, 45*len(r.path)+len(r.proof)+mapPath)
		raw = append(raw, 32*(len(r.path)+len(mp.Siblings)+len(r.mapPath)))
	}
	// A bad proof must fail, or the figure measures nothing.
	bad := *reads[0]
	bad.content = slices.Clone(bad.content)
	bad.content[0] = append([]byte("x"), bad.content[0][1:]...)
	if bad.check(size, root, mapRoot) == nil {
		return fmt.Errorf("the proof check accepted a changed file")
	}

	var floors, ours []time.Duration
	for round := 0; round < 5; round++ {
		floors = append(floors, cpuPer(200*time.Millisecond, func(i int) {
			r := reads[i%len(reads)]
			for k := range r.entries {
				sha256.Sum256(r.content[k])
				sha256.Sum256(r.entries[k])
			}
		}))
		var err error
		ours = append(ours, cpuPer(200*time.Millisecond, func(i int) {
			if e := reads[i%len(reads)].check(size, root, mapRoot); e != nil {
				err = e
			}
		}))
		if err != nil {
			return err
		}
	}
	f, o := median(floors), median(ours)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	line("floor_proof_sha256", us(f), "µs", 1, fmt.Sprintf("raw SHA-256 of the same bytes (%d files and their entries), CPU of one thread, median of 5", len(reads[0].entries)))
	line("proof_check", us(o), "µs", float64(f)/float64(o), fmt.Sprintf("one record's inclusion (tlog.CheckRecord) + its package's completeness (%d files' entries and bytes, chain, VerifyMap of the JSON map proof, the map leaf's inclusion) at %d leaves, CPU of one thread, median of 5 (goal ≤ 50 µs)", len(reads[0].entries), size))
	line("proof_bytes", float64(slices.Max(wire)), "bytes", float64(slices.Max(raw))/float64(slices.Max(wire)), fmt.Sprintf("largest of 64: inclusion path (%d hashes, tlog-proof lines) + map proof (JSON) + the map leaf's path; ratio: the raw 32-byte hashes they carry ÷ the bytes sent (goal ≤ 4096 bytes at %d leaves)", len(reads[0].path), size))
	return nil
}
