package server

import (
	"bytes"
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
)

// docsDir is the directory, in the repository's local state, where the
// server keeps the package documents it rendered (docStore).
const docsDir = "docs"

// maxStoredDoc is the largest package document the store keeps: a
// larger one is rendered from git on each read that misses the memory
// cache.
const maxStoredDoc = 8 << 20

// docStore keeps each package's rendered document (GET
// /api/v1/packages/NAME) as a file, the way a static host keeps a
// sparse index: a read that the memory cache misses reads one file
// instead of asking git for the package's trees and files (three round
// trips to git's processes). A file holds one document per package name,
// for the key it was rendered for (the package's trees): a key that
// moved (a push changed the package) is a miss, and the document is
// rendered again and replaces it. So the store holds at most a document
// per package the server has been asked for, about as large as the
// index's own files of those packages, and needs no eviction. It lives
// as long as the server: each server starts with an empty one (a
// document depends on the cairn that rendered it and the upstreams it
// was configured with), and the one before it is removed in the
// background. A server policy's documents are not kept here (their
// verdicts change with time as well).
//
// A file is "KEY\nSHA256\n" then the document; one whose document's
// SHA-256 is not the one it names (a write cut short) is a miss. Files
// are written to tmp/ and renamed into place, never synced: they are
// derived from the index, which stays the truth.
type docStore struct {
	dir string
	log *slog.Logger
	// warned makes a store that cannot be written (a read-only or full
	// disk) say so once, not at every render.
	warned sync.Once
}

// newDocStore opens an empty store under local, the repository's local
// state directory (nil if local is ""), and returns the directories of
// stores before it, moved aside, for the caller to remove.
func newDocStore(local string, log *slog.Logger) (*docStore, []string) {
	if local == "" {
		return nil, nil
	}
	d := &docStore{dir: filepath.Join(local, docsDir), log: log}
	var old []string
	if _, err := os.Lstat(d.dir); err == nil {
		aside := fmt.Sprintf("%s.old-%d-%d", d.dir, os.Getpid(), time.Now().UnixNano())
		if err := os.Rename(d.dir, aside); err != nil {
			log.Warn("the package documents of the server before cannot be moved aside: none are kept on disk", "dir", d.dir, "err", err)
			return nil, nil
		}
	}
	// This store's and a removal cut short before.
	old, _ = filepath.Glob(d.dir + ".old-*")
	return d, old
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
	data, err := os.ReadFile(d.path(name))
	if err != nil {
		return nil
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
	return body
}

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
			d.log.Warn("package documents cannot be kept on disk: each is rendered from git on a read the memory cache misses", "dir", d.dir, "err", err)
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
