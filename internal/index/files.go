package index

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/record"
)

// Files is the index's tree at one commit, as the catalog and the state
// read it: a full replica's git tree, or the files a light client proved
// (MemFiles). Paths are slash-separated, relative to the tree's root ("" is
// the root). Implementations are safe for concurrent use; the tree they
// show never changes.
type Files interface {
	// List lists directory dir, in git's tree order (a directory's name
	// sorts as if it ended in "/"); fs.ErrNotExist if the tree has no
	// such directory.
	List(dir string) ([]DirEntry, error)
	// Read returns the bytes of the file at path; fs.ErrNotExist if the
	// tree has none.
	Read(path string) ([]byte, error)
	// Additions lists the files under dir with when each was appended, in
	// index order; none (and no error) if there are none.
	Additions(ctx context.Context, dir string) ([]Addition, error)
}

// DirEntry is one entry of a directory of Files.
type DirEntry struct {
	Name string
	Dir  bool // a subdirectory
}

// Addition says when a file was appended to the index: the commit that
// added it, that commit's time, and its rank in index order (a light
// client's is the file's leaf index; a full replica's counts from the
// start of the walk: only the order of ranks means anything).
type Addition struct {
	Path   string
	Commit string
	Time   time.Time
	Rank   int64
}

// gitFiles are the files of a commit of a git repository, read through
// the batch reader. It remembers the object ids of the entries it lists,
// so that a file or directory listed before is read by id, not by path.
type gitFiles struct {
	git    *gitx.Repo
	rd     *gitx.Reader
	commit string

	mu  sync.Mutex
	ids map[string]string // path → object id, for entries listed
}

var _ Files = (*gitFiles)(nil)

func newGitFiles(git *gitx.Repo, rd *gitx.Reader, commit string) *gitFiles {
	return &gitFiles{git: git, rd: rd, commit: commit}
}

// spec names path for the batch reader: by id when a listing gave it.
func (g *gitFiles) spec(path string) string {
	if path == "" {
		return g.commit + "^{tree}"
	}
	g.mu.Lock()
	id, ok := g.ids[path]
	g.mu.Unlock()
	if ok {
		return id
	}
	return g.commit + ":" + path
}

func (g *gitFiles) List(dir string) ([]DirEntry, error) {
	entries, err := g.rd.Tree(g.spec(dir))
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(entries))
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	g.mu.Lock()
	if g.ids == nil {
		g.ids = map[string]string{}
	}
	for i, e := range entries {
		out[i] = DirEntry{Name: e.Name, Dir: e.IsTree()}
		g.ids[prefix+e.Name] = e.ID
	}
	g.mu.Unlock()
	return out, nil
}

func (g *gitFiles) Read(path string) ([]byte, error) {
	o, err := g.rd.Read(g.spec(path))
	if err != nil {
		return nil, err
	}
	return o.Data, nil
}

func (g *gitFiles) Additions(ctx context.Context, dir string) ([]Addition, error) {
	var out []Addition
	err := g.git.Walk(ctx, gitx.WalkOptions{To: g.commit, Paths: []string{dir}}, func(e *gitx.LogEntry) error {
		for _, ch := range e.Changes {
			if ch.Status == 'A' {
				out = append(out, Addition{Path: ch.Path, Commit: e.ID, Time: time.Unix(e.Time, 0).UTC(), Rank: int64(len(out))})
			}
		}
		return nil
	})
	return out, err
}

// MemFile is a file of the index held in memory, with where it sits in
// the log: what a light client proved of it.
type MemFile struct {
	Path   string
	Data   []byte
	Index  int64     // its leaf index: its place in index order
	Commit string    // the commit that added it
	Time   time.Time // that commit's time

	parsed *File // Data parsed (ParseFiles), never changed after: shared by copies
}

// ErrUnlisted is the parent of the errors of a listing that a light
// client cannot prove complete: the map proves subjects, not directories
// that span several (labels/, policies/, snapshots/, packages/).
var ErrUnlisted = errors.New("directory spans several subjects: a light client cannot prove its listing complete")

// MemFiles are Files held in memory: the files of the subjects a light
// client proved. Without Load it holds what Add gave it; with Load, a
// read that touches a subject not loaded yet (SubjectOf) first asks Load
// for all of its files, once per subject, and a listing of a directory
// that spans several subjects fails with ErrUnlisted. It is safe for
// concurrent use.
type MemFiles struct {
	// Load returns every file of subject, proved complete; none if the
	// index holds none. It may be called concurrently for different
	// subjects. An error is returned to the read and Load asked again at
	// the next one.
	Load func(subject string) ([]MemFile, error)

	// mu guards the maps: reads share it (a light catalog's readers,
	// several at once once their subjects are loaded: evidence's checks
	// of a lock, each reading every locked version); Add, Loaded and a
	// load hold it alone.
	mu      sync.RWMutex
	files   map[string]*MemFile  // into copies of what was added, never changed
	dirs    map[string]*dirNames // dir → its entries
	loading map[string]*subjectLoad
	// subjects maps a path read to SubjectOf(path) (a catalog reads each
	// several times), without a lock for those read before.
	subjects sync.Map
}

// dirNames are a directory's entries (name → is a directory) in
// MemFiles: a list while they are few, as most are (a shard's, a
// package's, a version's), searched in turn; a map once they are many.
type dirNames struct {
	few  []DirEntry
	many map[string]bool
}

// fewNames is the most entries a dirNames keeps in its list.
const fewNames = 16

func (d *dirNames) get(name string) (isDir, ok bool) {
	if d.many != nil {
		isDir, ok = d.many[name]
		return isDir, ok
	}
	for _, e := range d.few {
		if e.Name == name {
			return e.Dir, true
		}
	}
	return false, false
}

// add adds an entry not there yet.
func (d *dirNames) add(name string, isDir bool) {
	if d.many == nil && len(d.few) < fewNames {
		d.few = append(d.few, DirEntry{Name: name, Dir: isDir})
		return
	}
	if d.many == nil {
		d.many = make(map[string]bool, 2*fewNames)
		for _, e := range d.few {
			d.many[e.Name] = e.Dir
		}
		d.few = nil
	}
	d.many[name] = isDir
}

// list returns the entries, in no order.
func (d *dirNames) list() []DirEntry {
	if d.many == nil {
		return slices.Clone(d.few)
	}
	out := make([]DirEntry, 0, len(d.many))
	for n, isDir := range d.many {
		out = append(out, DirEntry{Name: n, Dir: isDir})
	}
	return out
}

// subjectLoad is one Load of a subject, which concurrent readers wait for.
type subjectLoad struct {
	done chan struct{}
	err  error
}

var _ Files = (*MemFiles)(nil)

// Add adds files. A path added twice must hold the same bytes at the same
// leaf index.
func (m *MemFiles) Add(files ...MemFile) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.add(files)
}

func (m *MemFiles) add(files []MemFile) error {
	if m.files == nil {
		m.files, m.dirs = map[string]*MemFile{}, map[string]*dirNames{}
	}
	held := slices.Clone(files) // what the map points to: one copy, not one each
	for i := range held {
		f := &held[i]
		if f.Path == "" || strings.HasPrefix(f.Path, "/") || strings.HasSuffix(f.Path, "/") || strings.Contains(f.Path, "//") {
			return fmt.Errorf("in-memory index: %q is not a file path", f.Path)
		}
		if old, ok := m.files[f.Path]; ok {
			if old.Index != f.Index || string(old.Data) != string(f.Data) {
				return fmt.Errorf("in-memory index: %s added twice, at leaf %d and at leaf %d, or with other bytes", f.Path, old.Index, f.Index)
			}
			continue
		}
		m.files[f.Path] = f
		isDir := false
		for p := f.Path; p != ""; {
			dir, name := "", p
			if i := strings.LastIndexByte(p, '/'); i >= 0 {
				dir, name = p[:i], p[i+1:]
			}
			names := m.dirs[dir]
			if names == nil {
				names = &dirNames{}
				m.dirs[dir] = names
			}
			was, ok := names.get(name)
			if ok && was != isDir {
				return fmt.Errorf("in-memory index: %s is both a file and a directory", p)
			}
			if ok && isDir {
				break // a directory listed before: its parents were, too
			}
			if !ok {
				names.add(name, isDir)
			}
			p, isDir = dir, true
		}
	}
	return nil
}

// Loaded adds the files of subject, read by the caller as Load would
// return them, so that the reads under it find it loaded and do not ask
// Load: a light client fills in what it read ahead, on the cores that
// read it, not in the first read that asks. A subject loaded, or being
// loaded, already is left as it is.
func (m *MemFiles) Loaded(subject string, files []MemFile) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.loading[subject]; ok {
		return nil
	}
	if err := m.add(files); err != nil {
		return err
	}
	if m.loading == nil {
		m.loading = map[string]*subjectLoad{}
	}
	done := make(chan struct{})
	close(done)
	m.loading[subject] = &subjectLoad{done: done}
	return nil
}

// ensure loads the subject that holds path, if there is a Load. It fails
// with ErrUnlisted for a directory that spans several subjects.
func (m *MemFiles) ensure(path string) error {
	if m.Load == nil {
		return nil
	}
	var subject string
	if s, known := m.subjects.Load(path); known {
		subject = s.(string)
	} else if s, ok := SubjectOf(path); ok {
		subject = s
		m.subjects.Store(path, s)
	} else {
		return fmt.Errorf("%s: %w", path, ErrUnlisted)
	}
	// A subject loaded or being loaded: waited for beside the other
	// readers, not one after another.
	m.mu.RLock()
	l := m.loading[subject]
	m.mu.RUnlock()
	if l != nil {
		<-l.done
		return l.err
	}
	m.mu.Lock()
	if m.loading == nil {
		m.loading = map[string]*subjectLoad{}
	}
	l, ok := m.loading[subject]
	if !ok {
		l = &subjectLoad{done: make(chan struct{})}
		m.loading[subject] = l
		m.mu.Unlock()
		files, err := m.Load(subject)
		if errors.Is(err, fs.ErrNotExist) {
			// What failed to load is not known to be absent.
			err = fmt.Errorf("loading subject %q: %v", subject, err)
		}
		m.mu.Lock()
		if err == nil {
			err = m.add(files)
		}
		if l.err = err; err != nil {
			delete(m.loading, subject)
		}
		close(l.done)
		m.mu.Unlock()
		return err
	}
	m.mu.Unlock()
	<-l.done
	return l.err
}

func (m *MemFiles) List(dir string) ([]DirEntry, error) {
	if err := m.ensure(dir); err != nil {
		return nil, err
	}
	m.mu.RLock()
	names, ok := m.dirs[dir]
	var out []DirEntry
	if ok {
		out = names.list()
	}
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: no such directory in the index: %w", dir, fs.ErrNotExist)
	}
	sort.Slice(out, func(i, j int) bool { return treeKey(out[i]) < treeKey(out[j]) })
	return out, nil
}

// treeKey is what git sorts a tree's entries by.
func treeKey(e DirEntry) string {
	if e.Dir {
		return e.Name + "/"
	}
	return e.Name
}

func (m *MemFiles) Read(path string) ([]byte, error) {
	if err := m.ensure(path); err != nil {
		return nil, err
	}
	m.mu.RLock()
	f, ok := m.files[path]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: no such file in the index: %w", path, fs.ErrNotExist)
	}
	return f.Data, nil
}

func (m *MemFiles) Additions(ctx context.Context, dir string) ([]Addition, error) {
	if err := m.ensure(dir); err != nil {
		return nil, err
	}
	prefix := dir + "/"
	m.mu.RLock()
	var out []Addition
	for p, f := range m.files {
		if strings.HasPrefix(p, prefix) || dir == "" {
			out = append(out, Addition{Path: p, Commit: f.Commit, Time: f.Time.UTC(), Rank: f.Index})
		}
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Rank < out[j].Rank })
	return out, nil
}

// File returns a file held, with its place in the log, without loading
// anything.
func (m *MemFiles) File(path string) (MemFile, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if f, ok := m.files[path]; ok {
		return *f, true
	}
	return MemFile{}, false
}

// SubjectOf returns the subject of the transparency log's map
// (docs/transparency.md) whose files a path of the index holds or lies
// under: "root", "key KEY", "package NAME", "upstream UP", "upstream UP
// package NAME", "snapshot SHA", "label LABEL" or "policy NAME" (a
// package's NAME as written, of any number of elements: "package
// example.com/greet/v2"). A directory at or
// under a subject's directory has that subject (an upstream's directory
// is the subject "upstream UP", which holds its declarations; keys/ and
// keys/XX are the subject "keys", which holds every key's files;
// upstreams/ is the subject "upstreams", which holds every upstream's
// declarations and revocations); a
// directory that spans several subjects (packages/A/B, labels) has none:
// ok is false.
func SubjectOf(path string) (subject string, ok bool) {
	return subjectOf(path, nil)
}

// subjectOf is SubjectOf; if memo is not nil, a path under a version's
// directory leaves there that directory and its subject (see
// subjectMemo).
func subjectOf(path string, memo *subjectMemo) (subject string, ok bool) {
	var elems [16]string
	parts := layout.Split(elems[:0], path)
	switch parts[0] {
	case "root":
		return "root", true
	case "keys":
		if len(parts) >= 3 && len(parts[1]) == 2 && blob.IsDigest(parts[2]) && parts[2][:2] == parts[1] {
			return "key " + parts[2], true
		}
		if len(parts) == 1 || len(parts) == 2 && len(parts[1]) == 2 && strings.Trim(parts[1], "0123456789abcdef") == "" {
			return "keys", true
		}
	case "packages":
		if name, end, ok := packageOf(parts[1:]); ok {
			subject := "package " + name
			if memo != nil && end < len(parts)-1 {
				// Under a version's directory: every path under it has
				// this subject (its elements up to the version are this
				// path's, none of them a version before it).
				memo.dir, memo.subject = strings.Join(parts[:end+2], "/")+"/", subject
				memo.subjects = []string{subject}
			}
			return subject, true
		}
	case "upstreams":
		if len(parts) == 1 {
			return "upstreams", true
		}
		if record.CheckUpstreamName(parts[1]) != nil {
			return "", false
		}
		up := parts[1]
		if len(parts) == 2 || len(parts) == 3 && parts[2] != "packages" {
			return "upstream " + up, true
		}
		if parts[2] == "packages" {
			if name, _, ok := packageOf(parts[3:]); ok {
				return "upstream " + up + " package " + name, true
			}
		}
	case "snapshots":
		if len(parts) >= 3 && len(parts[1]) == 2 && blob.IsDigest(parts[2]) && parts[2][:2] == parts[1] {
			return "snapshot " + parts[2], true
		}
	case "labels":
		if len(parts) >= 2 && record.CheckLabel(parts[1]) == nil {
			return "label " + parts[1], true
		}
	case "policies":
		if len(parts) >= 2 && record.CheckPolicyName(parts[1]) == nil {
			return "policy " + parts[1], true
		}
	}
	return "", false
}

// SubjectsOf returns every subject of the log's map that the file at path
// is in: its SubjectOf, and for a key's file "keys" too, so that a light
// client can read every grant at once (internal names: every publish
// grant counts), and for an upstream's declaration or revocation
// "upstreams" too, so that it can list the upstreams followed. None for
// a path outside the layout's subjects.
func SubjectsOf(path string) []string {
	return (*subjectMemo)(nil).subjectsOf(path)
}

// subjectMemo remembers the version directory (packages/…/VERSION/) of
// the last package file it was asked about, with its subject: the files
// of one commit, which a replay asks about in turn, mostly sit in one
// version's directory. Each goroutine keeps its own (a nil one
// remembers nothing).
type subjectMemo struct {
	dir      string   // "packages/8/9/e/6/acme/fastjson/1.2.3/"
	subject  string   // "package acme/fastjson"
	subjects []string // {subject}, shared by the paths under dir: not to be changed
}

// subjectsOf is SubjectsOf, remembering (see subjectMemo).
func (c *subjectMemo) subjectsOf(path string) []string {
	if c != nil && c.dir != "" && strings.HasPrefix(path, c.dir) {
		return c.subjects
	}
	s, ok := subjectOf(path, c)
	switch {
	case !ok:
		return nil
	case strings.HasPrefix(s, "key "):
		return []string{s, "keys"}
	case strings.HasPrefix(s, "upstream ") && !strings.Contains(s, " package "):
		return []string{s, "upstreams"}
	}
	if c != nil && c.subject == s && len(c.subjects) == 1 {
		return c.subjects
	}
	return []string{s}
}

// packageOf reads the package name of a path under packages/ (parts
// begin at the shard): its four shard digits, then the name's elements up
// to its version (descriptor.CheckName keeps a name's third and later
// elements from reading as versions) or, for a package's directory, to
// the end; the shard checked against the name. end is the index in parts
// of the version, or len(parts).
func packageOf(parts []string) (name string, end int, ok bool) {
	if len(parts) < 6 {
		return "", 0, false
	}
	end = len(parts)
	for i := 6; i < len(parts); i++ {
		if descriptor.CheckVersion(parts[i]) == nil {
			end = i
			break
		}
	}
	name = strings.Join(parts[4:end], "/")
	if descriptor.CheckName(name) != nil {
		return "", 0, false
	}
	// The shard digits are layout.PackageDir's: the first four hex
	// digits of the folded name's SHA-256, one a directory (compared digit
	// by digit, as the log's replay asks this of every file).
	sum := sha256.Sum256([]byte(descriptor.FoldName(name)))
	const hexDigits = "0123456789abcdef"
	for i := 0; i < 4; i++ {
		if len(parts[i]) != 1 || parts[i][0] != hexDigits[sum[i/2]>>(4*(1-i%2))&0xf] {
			return "", 0, false
		}
	}
	return name, end, true
}
