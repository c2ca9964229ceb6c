package gomod

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/mod/module"
)

// Upstream is where public modules come from: a GOPROXY, and the
// checksum database that vouches for what it serves.
type Upstream struct {
	Client   *http.Client
	Proxy    string // the GOPROXY's URL
	SumDB    SumDB
	CacheDir string // the checksum database's latest tree, tiles and lookups (.cairn/sumdb)
}

// Import fetches path@version (version a Go version, or "latest") from
// the upstream's GOPROXY and checks it against its checksum database:
// the zip and go.mod must hash to the h1 hashes the database's signed log
// holds for them (a *SumError carrying both hashes if not), exactly as
// the go command would refuse them. It returns the version ready to
// publish (Close it) and the database's evidence.
func Import(ctx context.Context, u Upstream, path, version string) (_ *Module, _ *Vouched, err error) {
	f, err := Fetch(ctx, u.Client, u.Proxy, path, version)
	if err != nil {
		return nil, nil, err
	}
	m := &Module{Zip: f.Zip, Mod: f.Mod, Released: f.Time, tmp: f.tmp}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	mv := module.Version{Path: f.Path, Version: f.Version}
	v, err := u.SumDB.Lookup(ctx, u.Client, u.CacheDir, mv.Path, mv.Version)
	if err != nil {
		return nil, nil, err
	}
	if m.Descriptor, err = newDescriptor(mv, f.Zip, f.Mod); err != nil {
		return nil, nil, err
	}
	// What the database says, as a descriptor would say it: the one check.
	said := *m.Descriptor
	goCopy := *m.Descriptor.Go
	goCopy.Sum, goCopy.ModSum = v.Sum("zip"), v.Sum("go.mod")
	said.Go = &goCopy
	if goCopy.Sum == "" || goCopy.ModSum == "" {
		return nil, nil, fmt.Errorf("checksum database %s has no h1 hash of %s's zip and go.mod (it answered: %q)", u.SumDB.Name, mv, v.Lines)
	}
	if err := checkSums(&said, f.Zip, f.Mod, "checksum database "+u.SumDB.Name); err != nil {
		return nil, nil, fmt.Errorf("%s from %s: %w", mv, u.Proxy, err)
	}
	return m, v, nil
}
