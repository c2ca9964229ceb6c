package gomod

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

// The caps on what a GOPROXY may send, the go command's own: a module
// zip of at most 500 MiB, a go.mod of at most 16 MiB. An .info is small.
var (
	maxZip  int64 = modzip.MaxZipFile
	maxMod  int64 = modzip.MaxGoMod
	maxInfo int64 = 1 << 20
)

// ErrNotFound is the parent of what a GOPROXY answers 404 or 410 to.
var ErrNotFound = errors.New("not found")

// Info is a GOPROXY's .info of a version.
type Info struct {
	Version string    `json:"Version"`
	Time    time.Time `json:"Time"`
}

// Fetched is a module version as a GOPROXY served it: its .info, go.mod
// and zip (in a temporary file Close removes). Nothing in it is vouched
// for yet: Import checks it against a checksum database.
type Fetched struct {
	Proxy   string // the GOPROXY's base URL
	Path    string // the module path
	Version string // the Go version
	Time    time.Time
	Mod     []byte
	Zip     string // the zip's path
	tmp     string
}

// Close removes the fetched zip.
func (f *Fetched) Close() error {
	if f == nil || f.tmp == "" {
		return nil
	}
	err := os.RemoveAll(f.tmp)
	f.tmp = ""
	return err
}

// Fetch asks the GOPROXY at proxyURL (http or https; "…/go" for a cairn
// server) for path@version — version a Go version, or "latest" for what
// the go command takes as latest (latestVersion) — as the go command does: .info, then .mod, then
// .zip, under module.EscapePath and EscapeVersion, each read up to the go
// command's cap. The .info must name the version asked for, go.mod must
// declare the module's path, and the zip must be a module zip of
// path@version (golang.org/x/mod/zip.CheckZip).
func Fetch(ctx context.Context, client *http.Client, proxyURL, path, version string) (_ *Fetched, err error) {
	base, err := proxyBase(proxyURL)
	if err != nil {
		return nil, err
	}
	if err := module.CheckPath(path); err != nil {
		return nil, err
	}
	epath, err := module.EscapePath(path)
	if err != nil {
		return nil, err
	}
	var info Info
	if version == "latest" {
		if version, err = latestVersion(ctx, client, base, path, epath); err != nil {
			return nil, err
		}
	}
	if err := module.Check(path, version); err != nil {
		return nil, err
	}
	if _, err := GoVersion(version); err != nil || !strings.HasPrefix(version, "v") {
		return nil, fmt.Errorf("%s@%s: not a canonical Go version (want v1.2.3)", path, version)
	}
	evers, err := module.EscapeVersion(version)
	if err != nil {
		return nil, err
	}
	at := base + "/" + epath + "/@v/" + evers
	if err := getJSON(ctx, client, at+".info", &info); err != nil {
		return nil, err
	}
	if info.Version != version {
		return nil, fmt.Errorf("%s.info: the proxy answers for version %q, not %s (a proxy must answer for the version asked)", at, info.Version, version)
	}
	f := &Fetched{Proxy: base, Path: path, Version: version, Time: info.Time}
	if f.Mod, err = getBytes(ctx, client, at+".mod", maxMod); err != nil {
		return nil, err
	}
	if mp := modfile.ModulePath(f.Mod); mp != path {
		return nil, fmt.Errorf("%s.mod: go.mod declares module %q, not %s (the go command refuses such a module)", at, mp, path)
	}
	if f.tmp, err = os.MkdirTemp("", "cairn-gomod-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	f.Zip = filepath.Join(f.tmp, version+".zip")
	if err := getFile(ctx, client, at+".zip", f.Zip, maxZip); err != nil {
		return nil, err
	}
	if _, err := modzip.CheckZip(module.Version{Path: path, Version: version}, f.Zip); err != nil {
		return nil, fmt.Errorf("%s.zip: not a module zip of %s@%s: %w", at, path, version, err)
	}
	return f, nil
}

// maxList caps a proxy's version list.
const maxList = 1 << 20

// latestVersion is what the go command takes for path@latest from a
// proxy: the highest release its list names, else the highest
// pre-release, passing over those the go.mod of the highest retracts;
// the proxy's @latest (optional in the protocol) only when the list names
// none, as for a module with pseudo-versions alone.
func latestVersion(ctx context.Context, client *http.Client, base, path, epath string) (string, error) {
	list, err := getBytes(ctx, client, base+"/"+epath+"/@v/list", maxList)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	var releases, pre []string
	for _, v := range strings.Fields(string(list)) {
		if semver.Canonical(v) != v && semver.Canonical(v)+"+incompatible" != v || module.Check(path, v) != nil || module.IsPseudoVersion(v) {
			continue
		}
		if semver.Prerelease(v) == "" {
			releases = append(releases, v)
		} else {
			pre = append(pre, v)
		}
	}
	if len(releases) == 0 && len(pre) == 0 {
		var info Info
		if err := getJSON(ctx, client, base+"/"+epath+"/@latest", &info); err != nil {
			return "", err
		}
		return info.Version, nil
	}
	semver.Sort(releases)
	semver.Sort(pre)
	// The go.mod retractions are read from is the latest's: the highest
	// release, else the highest pre-release.
	var highest string
	if len(releases) > 0 {
		highest = releases[len(releases)-1]
	} else {
		highest = pre[len(pre)-1]
	}
	ev, err := module.EscapeVersion(highest)
	if err != nil {
		return "", err
	}
	mod, err := getBytes(ctx, client, base+"/"+epath+"/@v/"+ev+".mod", maxMod)
	if err != nil {
		return "", err
	}
	f, err := modfile.ParseLax("go.mod", mod, nil)
	if err != nil {
		return "", fmt.Errorf("%s@%s: go.mod: %w", path, highest, err)
	}
	// Retracted versions out first, then the highest release left, else
	// the highest pre-release left, as the go command takes them.
	for _, vs := range [][]string{releases, pre} {
		for i := len(vs) - 1; i >= 0; i-- {
			if !Retracted(f.Retract, vs[i]) {
				return vs[i], nil
			}
		}
	}
	return "", fmt.Errorf("%s: every version the proxy lists is retracted by its author (the go.mod of %s): name a version", path, highest)
}

// Retracted says whether version is in one of the intervals a go.mod
// retracts.
func Retracted(retract []*modfile.Retract, version string) bool {
	for _, r := range retract {
		if semver.Compare(r.Low, version) <= 0 && semver.Compare(version, r.High) <= 0 {
			return true
		}
	}
	return false
}

// proxyBase checks a GOPROXY URL and returns it without a trailing "/".
func proxyBase(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("GOPROXY %q: want an http:// or https:// URL", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}

// get asks for u and returns the body of a 200 answer; any other status
// is an error quoting the first line of a text/plain body, as the go
// command shows it.
func get(ctx context.Context, client *http.Client, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	msg := ""
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		line, _ := bufio.NewReader(io.LimitReader(resp.Body, 1024)).ReadString('\n')
		if line = strings.TrimSpace(line); line != "" {
			msg = ": server response: " + line
		}
	}
	err = fmt.Errorf("GET %s: %s%s", u, resp.Status, msg)
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		err = fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return nil, err
}

// getBytes reads a 200 answer of at most max bytes.
func getBytes(ctx context.Context, client *http.Client, u string, max int64) ([]byte, error) {
	body, err := get(ctx, client, u)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("GET %s: over %d bytes, the go command's cap", u, max)
	}
	return data, nil
}

func getJSON(ctx context.Context, client *http.Client, u string, v *Info) error {
	data, err := getBytes(ctx, client, u, maxInfo)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("GET %s: not a version's info: %w", u, err)
	}
	return nil
}

// getFile writes a 200 answer of at most max bytes to path.
func getFile(ctx context.Context, client *http.Client, u, path string, max int64) error {
	body, err := get(ctx, client, u)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(body, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if n > max {
		return fmt.Errorf("GET %s: over %d bytes, the go command's cap", u, max)
	}
	return nil
}
