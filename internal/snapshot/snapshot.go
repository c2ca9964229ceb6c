// Package snapshot holds the snapshot format: an immutable package set.
//
// A snapshot lists packages, each by name, version and the digest and
// size of its descriptor, with optional build flags, plus an optional
// toolchain. It is stored as a blob (and beside its record in the
// index); it is referenced by sha256 and size, and its name is for
// display only. Marshal is deterministic, and Parse accepts only what
// Marshal writes, so one package set has one digest.
package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
)

// Schema is the snapshot's schema id.
const Schema = "https://cairn.dev/snapshot/v1"

// MaxSize caps a snapshot blob.
const MaxSize = 8 << 20

// ErrInvalid is the parent of every snapshot format error.
var ErrInvalid = errors.New("invalid snapshot")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Snapshot is an immutable package set.
type Snapshot struct {
	Schema    string            `json:"schema"`
	Name      string            `json:"name"`
	Toolchain *Toolchain        `json:"toolchain,omitempty"`
	Flags     map[string]string `json:"flags,omitempty"`
	Packages  []Entry           `json:"packages"`
}

// Toolchain names the compiler or runtime the set was built and tested
// with; a digest pins its bytes when the curator gives one.
type Toolchain struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Ref     *blob.Ref `json:"ref,omitempty"`
}

// Entry is one package of the set.
type Entry struct {
	Name       string            `json:"name"`
	Version    string            `json:"version"`
	Descriptor blob.Ref          `json:"descriptor"`
	Flags      map[string]string `json:"flags,omitempty"`
}

var flagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`) }) // compiled when first used (not as every command starts); at most 64: checked apart, as a bounded repetition compiles into 63 copies

func checkFlags(where string, flags map[string]string) error {
	for k, v := range flags {
		if len(k) > 64 || !flagRE().MatchString(k) || len(v) > 256 {
			return invalid("%s: flag %q: want a name of letters, digits, '.', '_', '-' and a value of at most 256 bytes", where, k)
		}
	}
	return nil
}

// Check checks every field: names and versions well-formed, every
// descriptor reference well-formed, each package once, sorted by name.
func (s *Snapshot) Check() error {
	if s.Schema != Schema {
		return invalid("schema %q, want %q", s.Schema, Schema)
	}
	if len(s.Name) > 128 {
		return invalid("name is %d bytes, over 128", len(s.Name))
	}
	if t := s.Toolchain; t != nil {
		if t.Name == "" || t.Version == "" || len(t.Name) > 64 || len(t.Version) > 64 {
			return invalid("toolchain needs a name and a version (at most 64 bytes each)")
		}
		if t.Ref != nil {
			if err := t.Ref.Check(); err != nil {
				return invalid("toolchain: %v", err)
			}
		}
	}
	if err := checkFlags("snapshot", s.Flags); err != nil {
		return err
	}
	for i, e := range s.Packages {
		if err := descriptor.CheckName(e.Name); err != nil {
			return invalid("entry %d: %v", i+1, err)
		}
		if err := descriptor.CheckVersion(e.Version); err != nil {
			return invalid("entry %s: %v", e.Name, err)
		}
		if err := e.Descriptor.Check(); err != nil {
			return invalid("entry %s@%s: descriptor %v", e.Name, e.Version, err)
		}
		if err := checkFlags(e.Name, e.Flags); err != nil {
			return err
		}
		if i > 0 && s.Packages[i-1].Name >= e.Name {
			return invalid("entry %s: packages are listed once each, sorted by name", e.Name)
		}
	}
	return nil
}

// Sort orders the entries by name, as Check wants them.
func (s *Snapshot) Sort() {
	sort.Slice(s.Packages, func(i, j int) bool { return s.Packages[i].Name < s.Packages[j].Name })
}

// Marshal encodes the snapshot deterministically.
func (s *Snapshot) Marshal() ([]byte, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if len(b) >= MaxSize {
		return nil, invalid("snapshot is %d bytes, over the %d-byte cap", len(b), MaxSize)
	}
	return append(b, '\n'), nil
}

// Parse decodes and checks a snapshot; it must be exactly the bytes
// Marshal writes.
func Parse(data []byte) (*Snapshot, error) {
	if len(data) > MaxSize {
		return nil, invalid("snapshot is %d bytes, over the %d-byte cap", len(data), MaxSize)
	}
	var s Snapshot
	if err := jsonv2.Unmarshal(data, &s, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, invalid("not a snapshot: %v", err)
	}
	again, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, data) {
		return nil, invalid("snapshot %q is not in canonical form", s.Name)
	}
	return &s, nil
}

// Entry returns the entry for a package name.
func (s *Snapshot) Entry(name string) (Entry, bool) {
	i := sort.Search(len(s.Packages), func(i int) bool { return s.Packages[i].Name >= name })
	if i < len(s.Packages) && s.Packages[i].Name == name {
		return s.Packages[i], true
	}
	return Entry{}, false
}
