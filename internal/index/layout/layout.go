package layout

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/record"
)

// The index's fixed layout. Every path is implied by the content of the
// file at it; no tree grows with the number of packages or keys, because
// both are sharded by a hash prefix:
//
//	root/00000001.json                                   root records, by version (1 = the introduction)
//	keys/ab/abcd…(64 hex)/ID.json                        grants and revocations of one key (its fingerprint's digest)
//	packages/a/b/c/d/NAMESPACE/NAME/VERSION/descriptor.json
//	packages/a/b/c/d/NAMESPACE/NAME/VERSION/ID.json      records about that version (abcd… = sha256 of "NAMESPACE/NAME", case-folded)
//	packages/a/b/c/d/example.com/greet/v2/VERSION/…      a Go module path: one directory per element
//	                                                     (the name is what lies between the shard and the last two)
//	upstreams/UP/ID.json                                 the root's declaration of upstream UP (and its revocation)
//	upstreams/UP/packages/a/b/c/d/NAMESPACE/NAME/VERSION/ID.json
//	                                                     this repository's records about a version upstream UP publishes
//	snapshots/ab/abcd…(64 hex)/snapshot.json             a snapshot (also a blob), by its sha256
//	snapshots/ab/abcd…(64 hex)/ID.json                   the curator's record creating it
//	labels/LABEL/ID.json                                 every move of a label, each naming the move before
//	policies/NAME/ID.json                                every version of a named policy, each naming the one before
//
// Packages are sharded four levels deep by one hex digit each: 65,536
// leaves (about 15 names each at a million packages) under trees of at most
// 16 entries, so that each commit's path through the trees — what an append
// rewrites and what a verifier diffs — stays a few hundred bytes a level.
// A revoke or supersede record lives beside the record it ends.
const (
	DescriptorFile = "descriptor.json"
	SnapshotFile   = "snapshot.json"
)

// SnapshotDir is the directory of a snapshot, by its sha256.
func SnapshotDir(hex string) string { return "snapshots/" + hex[:2] + "/" + hex }

// LabelDir is the directory of a label's moves.
func LabelDir(name string) string { return "labels/" + name }

// PolicyDir is the directory of a policy's versions.
func PolicyDir(name string) string { return "policies/" + name }

// RootPath is the path of root record version v.
func RootPath(v int) string { return fmt.Sprintf("root/%08d.json", v) }

// KeyDir is the directory of a key's records, by its fingerprint digest.
func KeyDir(keyHex string) string { return "keys/" + keyHex[:2] + "/" + keyHex }

// PackageDir is the directory of a package's versions, sharded by the
// sha256 of the case-folded name (descriptor.FoldName), so that names
// differing only in case ("Corp.example/greet", "corp.example/greet") lie
// in one shard, where the rule that refuses the second finds the first;
// the directories below the shard are the name's elements as written.
// A cairn name is lowercase: its shard is the sha256 of the name itself.
// Beside the versions a package directory may hold the first element of
// a longer name of the same shard ("v2" beside "1.0.0"); descriptor.CheckName
// keeps such an element from reading as a version.
func PackageDir(name string) string {
	return ShardDir(name) + "/" + name
}

// ShardDir is the shard directory of a package name, packages/A/B/C/D:
// the first four hex digits of the sha256 of descriptor.FoldName(name).
func ShardDir(name string) string {
	sum := sha256.Sum256([]byte(descriptor.FoldName(name)))
	h := hex.EncodeToString(sum[:2])
	return "packages/" + h[0:1] + "/" + h[1:2] + "/" + h[2:3] + "/" + h[3:4]
}

// VersionDir is the directory of one version.
func VersionDir(name, version string) string { return PackageDir(name) + "/" + version }

// UpstreamDir is the directory of an upstream's declaration.
func UpstreamDir(name string) string { return "upstreams/" + name }

// UpstreamVersionDir is the directory of this repository's records about
// a version that upstream up publishes.
func UpstreamVersionDir(up, name, version string) string {
	return UpstreamDir(up) + "/" + VersionDir(name, version)
}

// ParseVersionDir parses the directory of a version,
// packages/A/B/C/D/NAME…/VERSION, as a listing of the packages tree gives
// it; ok is false for any other directory (a shard, a name's element, a
// package directory).
func ParseVersionDir(dir string) (name, version string, ok bool) {
	parts := strings.Split(dir, "/")
	if len(parts) < 8 || parts[0] != "packages" {
		return "", "", false
	}
	name, version = strings.Join(parts[5:len(parts)-1], "/"), parts[len(parts)-1]
	if descriptor.CheckVersion(version) != nil || descriptor.CheckName(name) != nil || VersionDir(name, version) != dir {
		return "", "", false
	}
	return name, version, true
}

// RecordPath is the path of record id in dir.
func RecordPath(dir, id string) string { return dir + "/" + id + ".json" }

// Place says what a path of the layout holds.
type Place int

// The places of the layout.
const (
	PlaceRoot           Place = iota + 1 // root/NNNNNNNN.json
	PlaceKey                             // keys/…/ID.json
	PlaceDescriptor                      // packages/…/VERSION/descriptor.json
	PlaceRecord                          // packages/…/VERSION/ID.json
	PlaceUpstream                        // upstreams/UP/ID.json
	PlaceUpstreamRecord                  // upstreams/UP/packages/…/VERSION/ID.json
	PlaceSnapshotFile                    // snapshots/XX/HEX/snapshot.json
	PlaceSnapshot                        // snapshots/XX/HEX/ID.json
	PlaceLabel                           // labels/LABEL/ID.json
	PlacePolicy                          // policies/NAME/ID.json
)

// Location is a parsed index path.
type Location struct {
	Place       Place
	Dir         string
	RecordID    string // PlaceKey, PlaceRecord, PlaceUpstream, PlaceUpstreamRecord
	KeyHex      string // PlaceKey
	Name        string // PlaceDescriptor, PlaceRecord, PlaceUpstreamRecord
	Version     string // PlaceDescriptor, PlaceRecord, PlaceUpstreamRecord
	RootVersion int    // PlaceRoot
	Upstream    string // PlaceUpstream, PlaceUpstreamRecord
	Snapshot    string // PlaceSnapshotFile, PlaceSnapshot: the snapshot's sha256
	Label       string // PlaceLabel
	Policy      string // PlacePolicy: the policy's name
}

func isRecordFile(s string) bool {
	id, ok := strings.CutSuffix(s, ".json")
	return ok && blob.IsDigest(id)
}

func isRootFile(s string) bool {
	n, ok := strings.CutSuffix(s, ".json")
	if !ok || len(n) != 8 {
		return false
	}
	for i := 0; i < 8; i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// Split returns the elements of a slash-separated path, as
// strings.Split(p, "/") does, appended to dst: a caller that gives an
// array of its own (var a [16]string; Split(a[:0], p)) allocates nothing
// for a path of up to its length (a parser asked about every file).
func Split(dst []string, p string) []string {
	for {
		i := strings.IndexByte(p, '/')
		if i < 0 {
			return append(dst, p)
		}
		dst, p = append(dst, p[:i]), p[i+1:]
	}
}

// ParsePath parses a path of the layout, checking its shards.
func ParsePath(p string) (Location, error) {
	var elems [16]string
	parts := Split(elems[:0], p)
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("path %s is not in the index layout: %s", p, why)
	}
	switch parts[0] {
	case "root":
		if len(parts) != 2 || !isRootFile(parts[1]) {
			return bad("want root/NNNNNNNN.json")
		}
		v, _ := strconv.Atoi(strings.TrimSuffix(parts[1], ".json"))
		return Location{Place: PlaceRoot, Dir: "root", RootVersion: v}, nil
	case "keys":
		if len(parts) != 4 || !blob.IsDigest(parts[2]) || parts[1] != parts[2][:2] || !isRecordFile(parts[3]) {
			return bad("want keys/XX/KEYDIGEST/RECORDID.json")
		}
		return Location{Place: PlaceKey, Dir: strings.Join(parts[:3], "/"), KeyHex: parts[2], RecordID: strings.TrimSuffix(parts[3], ".json")}, nil
	case "snapshots":
		if len(parts) != 4 || !blob.IsDigest(parts[2]) || parts[1] != parts[2][:2] {
			return bad("want snapshots/XX/SHA256/snapshot.json or snapshots/XX/SHA256/RECORDID.json")
		}
		loc := Location{Dir: strings.Join(parts[:3], "/"), Snapshot: parts[2]}
		switch {
		case parts[3] == SnapshotFile:
			loc.Place = PlaceSnapshotFile
		case isRecordFile(parts[3]):
			loc.Place, loc.RecordID = PlaceSnapshot, strings.TrimSuffix(parts[3], ".json")
		default:
			return bad("want snapshot.json or RECORDID.json")
		}
		return loc, nil
	case "labels":
		if len(parts) != 3 || record.CheckLabel(parts[1]) != nil || !isRecordFile(parts[2]) {
			return bad("want labels/LABEL/RECORDID.json")
		}
		return Location{Place: PlaceLabel, Dir: LabelDir(parts[1]), Label: parts[1], RecordID: strings.TrimSuffix(parts[2], ".json")}, nil
	case "policies":
		if len(parts) != 3 || record.CheckPolicyName(parts[1]) != nil || !isRecordFile(parts[2]) {
			return bad("want policies/NAME/RECORDID.json")
		}
		return Location{Place: PlacePolicy, Dir: PolicyDir(parts[1]), Policy: parts[1], RecordID: strings.TrimSuffix(parts[2], ".json")}, nil
	case "upstreams":
		if len(parts) < 3 || record.CheckUpstreamName(parts[1]) != nil {
			return bad("want upstreams/NAME/…")
		}
		if len(parts) == 3 && isRecordFile(parts[2]) {
			return Location{Place: PlaceUpstream, Dir: UpstreamDir(parts[1]), Upstream: parts[1], RecordID: strings.TrimSuffix(parts[2], ".json")}, nil
		}
		if parts[2] != "packages" {
			return bad("want upstreams/NAME/RECORDID.json or upstreams/NAME/packages/…/VERSION/RECORDID.json")
		}
		loc, err := ParsePath(strings.Join(parts[2:], "/"))
		if err != nil {
			return bad(err.Error())
		}
		if loc.Place != PlaceRecord {
			return bad("only records about an upstream's versions live under upstreams/NAME/packages; descriptors stay upstream")
		}
		loc.Place, loc.Upstream, loc.Dir = PlaceUpstreamRecord, parts[1], UpstreamDir(parts[1])+"/"+loc.Dir
		return loc, nil
	case "packages":
		// packages/A/B/C/D/<every element of the name>/VERSION/FILE: the
		// name is what lies between the shard and the last two.
		if len(parts) < 9 {
			return bad("want packages/A/B/C/D/NAME…/VERSION/FILE")
		}
		name := strings.Join(parts[5:len(parts)-2], "/")
		version, file := parts[len(parts)-2], parts[len(parts)-1]
		if err := descriptor.CheckName(name); err != nil {
			return bad(err.Error())
		}
		if err := descriptor.CheckVersion(version); err != nil {
			return bad(err.Error())
		}
		dir := strings.Join(parts[:len(parts)-1], "/")
		if dir != VersionDir(name, version) {
			return bad("wrong shard for " + name)
		}
		loc := Location{Dir: dir, Name: name, Version: version}
		switch {
		case file == DescriptorFile:
			loc.Place = PlaceDescriptor
		case isRecordFile(file):
			loc.Place, loc.RecordID = PlaceRecord, strings.TrimSuffix(file, ".json")
		default:
			return bad("want descriptor.json or RECORDID.json")
		}
		return loc, nil
	}
	return bad("unknown top-level directory")
}
