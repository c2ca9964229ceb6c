package index

import (
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"time"

	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
)

// A light client holds no git history: it reads the files of a few
// subjects of the log's map (SubjectOf), each proved complete against a
// signed checkpoint, with each file's leaf index, commit and time. It
// judges them by the rules all the same: ReplayProved applies them in
// index order through Apply, the code a full replica's replay runs, so
// that what a full replica refuses (a record signed after its key was
// revoked, or after its grant expired, an end by a key that did not issue
// the record) a light client refuses too, and what it accepts the
// catalog then reads (NewCatalog over MemFiles) with the same code.

// Needs returns the subjects, beyond "root", whose files the rules read
// to judge files (the files of some subjects): the keys that signed the
// records about packages, snapshots and labels, the packages a snapshot
// names, the snapshots a label moves to, and, for this repository's
// records about an upstream's versions, the upstream's declaration, the
// package of the same name here and every key (internal names win: a
// name published here or inside any live publish grant is not the
// upstream's). Root and key
// files need nothing more (the root signs them), so needs never go round
// in a circle: a label needs snapshots, which need packages, which need
// keys. Judging files takes the files of their needs, and of their needs'
// needs. It ignores what does not parse: ReplayProved refuses it.
func Needs(files []MemFile) []string {
	seen := map[string]bool{}
	// The key ids read already: a subject's records are signed by a few
	// keys, each named once, not converted again for every record. The
	// first few are remembered, no more: a subject signed by many keys
	// converts the others each time rather than searching a long list.
	var idsArray [8]string
	ids := idsArray[:0]
	for i := range files {
		file := files[i].parsed
		if file == nil {
			file = files[i].file()
		}
		if file.Err != nil {
			continue
		}
		switch file.Loc.Place {
		case layout.PlaceRoot, layout.PlaceKey:
			continue
		case layout.PlaceSnapshotFile:
			for _, p := range file.Snap.Packages {
				seen["package "+p.Name] = true
			}
			continue
		case layout.PlaceUpstreamRecord:
			seen["upstream "+file.Loc.Upstream] = true
			seen["package "+file.Loc.Name] = true
			seen["keys"] = true // every publish grant: internal names win
		}
		rec := file.Rec
		if rec == nil {
			continue
		}
		for _, s := range rec.Signatures {
			if slices.Contains(ids, s.KeyID) {
				continue
			}
			if len(ids) < cap(ids) {
				ids = append(ids, s.KeyID)
			}
			if h, err := keys.HexFromID(s.KeyID); err == nil {
				seen["key "+h] = true
			}
		}
		if p, ok := rec.Predicate.(record.LabelPredicate); ok && file.Loc.Place == layout.PlaceLabel {
			seen["snapshot "+p.Snapshot.SHA256] = true
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// ReplayProved judges files — the files of some subjects of the index
// whose introduction is intro, as a light client proved them (paths,
// bytes, leaf indices, commits and times) — by the rules, as a full
// replica's replay judges the whole history: it applies them to the empty
// index in index order, one commit at a time, each commit holding the
// files of it that are among files. The first must be the introduction,
// the log's leaf 0: the root subject's files are always among files, and
// so must be those of every subject the others need (Needs). It returns
// the state after the last commit, which holds only what files say, or
// the first rule broken (a *RuleError, with the commit and path).
func ReplayProved(intro string, files []MemFile) (*Overlay, error) {
	sorted := append([]MemFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Index < sorted[j].Index })
	if len(sorted) == 0 || sorted[0].Index != 0 || sorted[0].Path != layout.RootPath(1) {
		return nil, &RuleError{Rule: RuleIntroduction, Detail: fmt.Sprintf("the files proved do not start with the introduction (%s at leaf 0)", layout.RootPath(1))}
	}
	// The leaves' structure first: commits whole, one time each, one
	// file per leaf.
	seen := map[string]bool{}
	for i, f := range sorted {
		if i > 0 && f.Commit == sorted[i-1].Commit {
			prev := sorted[i-1]
			if f.Index == prev.Index {
				return nil, &RuleError{Rule: RuleWellFormed, Commit: f.Commit, Path: f.Path, Detail: fmt.Sprintf("two files at leaf %d", f.Index)}
			}
			if !f.Time.Equal(prev.Time) {
				return nil, &RuleError{Rule: RuleWellFormed, Commit: f.Commit, Path: f.Path, Detail: fmt.Sprintf("leaf %d says its commit's time is %s, leaf %d of the same commit %s",
					f.Index, f.Time.UTC().Format(time.RFC3339), prev.Index, prev.Time.UTC().Format(time.RFC3339))}
			}
			continue
		}
		if seen[f.Commit] {
			return nil, &RuleError{Rule: RuleLinear, Commit: f.Commit, Path: f.Path,
				Detail: fmt.Sprintf("leaf %d is of a commit whose files were interleaved with another commit's: the log's leaves are in commit order", f.Index)}
		}
		if i > 0 && f.Index == sorted[i-1].Index {
			return nil, &RuleError{Rule: RuleWellFormed, Commit: f.Commit, Path: f.Path, Detail: fmt.Sprintf("two files at leaf %d", f.Index)}
		}
		seen[f.Commit] = true
	}
	// Every file parsed (once: ParseFiles), and every signature under a key
	// the files name checked at once, as a full replay checks them ahead
	// of the rules; whether the key may sign is the rules' business.
	parsed := make([]*File, len(sorted))
	for i := range sorted {
		parsed[i] = sorted[i].file()
	}
	verifyAhead(parsed)
	st := NewOverlay(nil)
	var prev *Commit
	for i := 0; i < len(sorted); {
		c := &Commit{ID: sorted[i].Commit, Time: sorted[i].Time}
		if prev != nil {
			c.Parents, c.ParentTime = []string{prev.ID}, prev.Time
		}
		for ; i < len(sorted) && sorted[i].Commit == c.ID; i++ {
			c.Files = append(c.Files, parsed[i])
		}
		if err := Apply(st, c, intro); err != nil {
			return nil, err
		}
		prev = c
	}
	return st, nil
}

// ParseFiles parses files (records, descriptors, snapshots) in place, so
// that Needs and ReplayProved, however often they are asked about them,
// do not parse them again: a light client parses a subject's files once,
// when it has proved them, and judges them with other subjects' several
// times. A file's parse is shared by the copies of its MemFile and never
// changed after (each replay judges its own copy of a record, whose
// signatures' answers the copies share: record.VerifySignature checks
// each once), so parsed files may be judged concurrently. Files must not
// be parsed while another goroutine reads them.
func ParseFiles(files []MemFile) {
	for i := range files {
		if files[i].parsed == nil {
			f := &File{Path: files[i].Path, Status: 'A', Mode: "100644", Data: files[i].Data}
			prepare(f)
			files[i].parsed = f
		}
	}
}

// file returns m as a commit's added file, parsed: a copy of what ParseFiles
// parsed, whose record is this caller's own (its signatures' answers
// shared with the other copies); else parsed now.
func (m *MemFile) file() *File {
	p := m.parsed
	if p == nil {
		f := &File{Path: m.Path, Status: 'A', Mode: "100644", Data: m.Data}
		prepare(f)
		return f
	}
	f := *p
	if p.Rec != nil {
		r := *p.Rec
		r.Signatures = slices.Clone(r.Signatures) // their answers shared
		f.Rec = &r
	}
	return &f
}

// verifyAhead checks at once (record.VerifyBatch) every signature of the
// files' records under a key that the files' grant and root records
// name, so that the rules find each answer known. A key id is the hash of
// its key: whichever record named it, it is the right one.
func verifyAhead(files []*File) {
	pubs := map[string]ed25519.PublicKey{}
	learn := func(id string, pub ed25519.PublicKey) { pubs[id] = pub }
	for _, f := range files {
		if f.Rec != nil {
			namedKeys(f.Rec, learn)
		}
	}
	lookup := func(id string) ed25519.PublicKey { return pubs[id] }
	var checks []record.Check
	for _, f := range files {
		if f.Rec != nil {
			checks = appendChecks(checks, f.Rec, lookup)
		}
	}
	record.VerifyBatch(checks)
}

// MayCheckpoint is the one check of a live checkpoint's signer (one read
// online, to be trusted from now on): the key is not revoked, and one of
// its grants live at at (the checkpoint's time) holds the checkpoint
// scope. It returns nil or a *SignError.
func (k *Key) MayCheckpoint(at time.Time) error {
	if k.RevokedBy != "" {
		return &SignError{Rule: RuleKeyRevoked, Key: k, Name: "a checkpoint", At: at}
	}
	return k.checkpointGrant(at)
}

// MayHaveCheckpointed is the one check of a past checkpoint's signer (an
// offline proof's), which a key revoked since may have signed: the
// record's place in the log decides, as the full replay decides what a
// revoked key signed before its revocation. A key not revoked is judged
// as MayCheckpoint judges it. A key revoked by leaf RevokedLeaf may have
// signed a checkpoint of size leaves if size <= RevokedLeaf (its tree
// ends before the revocation) and something other than the key vouches
// for that tree, since whoever holds the key now may sign any tree:
// held says the verifier's own verified log holds it (its root at size
// is the checkpoint's), witnessed that the witness quorum the verifier
// configured, of at least one witness, cosigned it (a witness never
// cosigns a tree smaller than one it saw, nor another tree of a size it
// saw). A grant of the checkpoint scope must have been live at at, the
// checkpoint's time. A revocation not placed in the log
// (PlaceRevocation) refuses every checkpoint. It returns nil or a
// *SignError whose Detail says why.
func (k *Key) MayHaveCheckpointed(at time.Time, size int64, held, witnessed bool) error {
	if k.RevokedBy == "" {
		return k.MayCheckpoint(at)
	}
	refuse := func(format string, args ...any) error {
		return &SignError{Rule: RuleKeyRevoked, Key: k, Name: "a checkpoint", At: at, Size: size, Detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case k.RevokedLeaf <= 0:
		return refuse("cannot be placed before the revocation: where the log holds it is not known (verify against a replica whose log holds it)")
	case size > k.RevokedLeaf:
		return refuse("is of a tree that holds the revocation (leaf %d < %d): the key signs nothing after its revocation", k.RevokedLeaf, size)
	case !held && !witnessed:
		return refuse("is of a tree that ends before the revocation, but the verifier's log does not hold that tree and no witness quorum cosigned it: a key revoked since may have signed any tree, so only the verifier's log or its witnesses vouch for an old one (give --witness keys, or verify in a replica of the index)")
	}
	return k.checkpointGrant(at)
}

// checkpointGrant checks that a grant of k live at at holds the
// checkpoint scope.
func (k *Key) checkpointGrant(at time.Time) error {
	active := k.Active(at)
	if len(active) == 0 {
		return &SignError{Rule: RuleKeyExpired, Key: k, Name: "a checkpoint", At: at}
	}
	var have []string
	for _, g := range active {
		for i, s := range g.Scopes {
			if s.Action == "checkpoint" {
				return nil
			}
			have = append(have, g.Raw[i])
		}
	}
	return &SignError{Rule: RuleScope, Key: k, Name: "a checkpoint", At: at, Have: have}
}

// revokedWhere says where the log holds k's revocation, when known:
// " at leaf R (commit time T)".
func (k *Key) revokedWhere() string {
	if k.RevokedLeaf <= 0 {
		return ""
	}
	return fmt.Sprintf(" at leaf %d (%s)", k.RevokedLeaf, k.RevokedTime.UTC().Format(time.RFC3339))
}

// PlaceRevocation places k's revocation (the record k.RevokedBy) in the
// log: it finds its file among files, the files of k's subject ("key
// <hex>") with their leaf indices and commit times (their Data is not
// read), as a light client proves them or a full replica's log holds
// them (PlaceRevocationInLog), and sets k.RevokedLeaf and RevokedTime.
// A key not revoked needs nothing; a revocation not among files is an
// error wrapping fs.ErrNotExist.
func (k *Key) PlaceRevocation(files []MemFile) error {
	if k.RevokedBy == "" {
		return nil
	}
	path := layout.RecordPath(layout.KeyDir(keys.IDHex(k.Pub)), k.RevokedBy)
	for _, f := range files {
		if f.Path == path {
			k.RevokedLeaf, k.RevokedTime = f.Index, f.Time
			return nil
		}
	}
	return fmt.Errorf("the revocation of key %s, %s, is not among the %d files of its subject in the log: %w", k.ID, path, len(files), fs.ErrNotExist)
}

// PlaceRevocationInLog places k's revocation (PlaceRevocation) in the log
// s of a full replica, by the leaves its map holds for k's subject.
func (k *Key) PlaceRevocationInLog(s *translog.Store) error {
	if k.RevokedBy == "" {
		return nil
	}
	m, err := s.Map()
	if err != nil {
		return err
	}
	_, leaves, _ := m.Map.Get("key " + keys.IDHex(k.Pub))
	files := make([]MemFile, 0, len(leaves))
	for _, i := range leaves {
		text, err := s.Entry(i)
		if err != nil {
			return err
		}
		e, err := translog.ParseEntry(text)
		if err != nil {
			return fmt.Errorf("%w: entry %d of %s: %w", translog.ErrCorrupt, i, s.Dir(), err)
		}
		files = append(files, MemFile{Path: e.Path, Index: i, Commit: e.Commit, Time: time.Unix(e.Time, 0).UTC()})
	}
	if err := k.PlaceRevocation(files); err != nil {
		return fmt.Errorf("%s: %w", s.Dir(), err)
	}
	return nil
}
