package gomod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/safefile"
)

// knownSumDB holds the verifier keys the go command knows by name.
var knownSumDB = map[string]string{
	"sum.golang.org": "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
}

// SumDB is a checksum database, as GOSUMDB names it.
type SumDB struct {
	Name string // the database's name, its key's name (sum.golang.org)
	Key  string // its note verifier key ("name+hash+key")
	URL  string // where its lookups and tiles are read
}

// ParseSumDB reads a checksum database as the go command reads GOSUMDB:
// "sum.golang.org" (a name whose key the go command knows), "KEY" or
// "KEY URL", KEY a note verifier key whose name is the database's, URL
// where it is read (default https://NAME). "off" is refused: an import
// is vouched for, or not made.
func ParseSumDB(gosumdb string) (SumDB, error) {
	if gosumdb == "sum.golang.google.cn" {
		gosumdb = "sum.golang.org https://sum.golang.google.cn"
	}
	if gosumdb == "off" {
		return SumDB{}, fmt.Errorf("GOSUMDB=off: an import is checked against a checksum database (give one: sum.golang.org, or NAME+KEY [URL])")
	}
	f := strings.Fields(gosumdb)
	if len(f) == 0 || len(f) > 2 {
		return SumDB{}, fmt.Errorf("GOSUMDB %q: want a key and an optional URL (sum.golang.org, or NAME+HASH+KEY [URL])", gosumdb)
	}
	if k := knownSumDB[f[0]]; k != "" {
		f[0] = k
	}
	v, err := note.NewVerifier(f[0])
	if err != nil {
		return SumDB{}, fmt.Errorf("GOSUMDB %q: the key: %w (want NAME+HASH+KEY, as note.GenerateKey makes it)", gosumdb, err)
	}
	db := SumDB{Name: v.Name(), Key: f[0], URL: "https://" + v.Name()}
	if len(f) == 2 {
		db.URL = f[1]
	}
	if u, err := url.Parse(db.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return SumDB{}, fmt.Errorf("GOSUMDB %q: URL %q: want http:// or https://", gosumdb, db.URL)
	}
	db.URL = strings.TrimSuffix(db.URL, "/")
	return db, nil
}

// String is the database as GOSUMDB would name it.
func (db SumDB) String() string { return db.Key + " " + db.URL }

// ErrSecurity is the parent of SecurityError.
var ErrSecurity = errors.New("checksum database misbehaved")

// SecurityError is a checksum database that contradicts what it signed
// before (a fork of its log, a record its tree does not hold): the
// sumdb client's message, which carries the evidence.
type SecurityError struct {
	DB  string
	Msg string
}

func (e *SecurityError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: checksum database %s: %s", e.DB, strings.TrimSpace(e.Msg))
}

func (e *SecurityError) Unwrap() error { return ErrSecurity }

// Vouched is what a checksum database said of a module version, kept as
// evidence: its go.sum lines (the zip's and go.mod's), the record that
// holds them and the signed tree note whose tree includes that record.
type Vouched struct {
	DB     SumDB
	Lines  []string // "path version h1:…" and "path version/go.mod h1:…"
	Record int64    // the record's index in the database's log
	Tree   []byte   // the signed tree note that includes the record
}

// Sum returns the h1 hash the lines give for file ("zip" or "go.mod").
func (v *Vouched) Sum(file string) string {
	for _, l := range v.Lines {
		f := strings.Fields(l)
		if len(f) == 3 && strings.HasSuffix(f[1], "/go.mod") == (file == "go.mod") {
			return f[2]
		}
	}
	return ""
}

// Lookup asks db for path@version's go.sum lines with the go command's
// own client (golang.org/x/mod/sumdb), which checks the record against
// the database's signed tree, and that tree against the latest one it
// saw before (kept in cacheDir with the tiles and lookups it read): a
// database that shows two histories is a *SecurityError.
func (db SumDB) Lookup(ctx context.Context, client *http.Client, cacheDir, path, version string) (*Vouched, error) {
	ops := &sumOps{ctx: ctx, client: client, db: db, dir: cacheDir, lookups: map[string][]byte{}}
	c := sumdb.NewClient(ops)
	var lines []string
	for _, v := range []string{version, version + "/go.mod"} {
		l, err := c.Lookup(path, v)
		if ops.security != "" {
			return nil, &SecurityError{DB: db.Name, Msg: ops.security}
		}
		if err != nil {
			return nil, fmt.Errorf("checksum database %s (%s): %w", db.Name, db.URL, err)
		}
		lines = append(lines, l...)
	}
	out := &Vouched{DB: db, Lines: lines}
	ops.mu.Lock()
	defer ops.mu.Unlock()
	for _, data := range ops.lookups {
		id, _, tree, err := tlog.ParseRecord(data)
		if err != nil {
			return nil, fmt.Errorf("checksum database %s: the lookup of %s@%s: %w", db.Name, path, version, err)
		}
		out.Record, out.Tree = id, tree
	}
	if out.Tree == nil {
		return nil, fmt.Errorf("checksum database %s: no lookup of %s@%s was read", db.Name, path, version)
	}
	return out, nil
}

// sumOps is sumdb.ClientOps over HTTP, with its configuration (the
// latest signed tree) and cache in a directory. It keeps the lookups it
// read, for the evidence.
type sumOps struct {
	ctx    context.Context
	client *http.Client
	db     SumDB
	dir    string

	mu       sync.Mutex
	lookups  map[string][]byte
	security string
}

var _ sumdb.ClientOps = (*sumOps)(nil)

// configMu serializes the read-compare-write of the latest tree among
// the lookups of this process.
var configMu sync.Mutex

func (o *sumOps) ReadRemote(path string) ([]byte, error) {
	data, err := getBytes(o.ctx, o.client, o.db.URL+path, maxInfo)
	if err != nil {
		return nil, err
	}
	o.keep(path, data)
	return data, nil
}

func (o *sumOps) keep(file string, data []byte) {
	if i := strings.Index(file, "/lookup/"); i >= 0 {
		o.mu.Lock()
		o.lookups[file[i:]] = data
		o.mu.Unlock()
	}
}

// file is where a config or cache file lives in the directory.
func (o *sumOps) file(kind, name string) (string, error) {
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", fmt.Errorf("checksum database file %q: not a local name", name)
	}
	return filepath.Join(o.dir, kind, filepath.FromSlash(name)), nil
}

func (o *sumOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.db.Key), nil
	}
	p, err := o.file("config", file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return []byte{}, nil
	}
	return data, err
}

func (o *sumOps) WriteConfig(file string, old, new []byte) error {
	p, err := o.file("config", file)
	if err != nil {
		return err
	}
	configMu.Lock()
	defer configMu.Unlock()
	cur, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !bytes.Equal(cur, old) {
		return sumdb.ErrWriteConflict
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return safefile.Write(p, new, safefile.Options{})
}

func (o *sumOps) ReadCache(file string) ([]byte, error) {
	p, err := o.file("cache", file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err == nil {
		o.keep(file, data)
	}
	return data, err
}

func (o *sumOps) WriteCache(file string, data []byte) {
	p, err := o.file("cache", file)
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		safefile.Write(p, data, safefile.Options{NoSync: true}) // a lost cache file is read again
	}
}

func (o *sumOps) Log(string) {}

func (o *sumOps) SecurityError(msg string) {
	o.mu.Lock()
	o.security += msg
	o.mu.Unlock()
}
