package plan

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/safefile"
)

// Options says where resolution and installs keep what they fetch, and
// whether they may use the network.
type Options struct {
	// Cache holds verified replicas of the project's repositories
	// (indexes/) and the content-addressed blob cache (blobs/), shared by
	// every project of the user.
	Cache string
	// Offline uses the replicas as last verified, and fetches nothing.
	Offline bool
	// Remote configures pulls (HTTP client, clock).
	Remote remote.Options
	// NoLightState keeps nothing of what a light client proved (no
	// checkpoint to be consistent with next time, no documents for reads
	// offline): a run that reads once, such as an evidence bundle's.
	NoLightState bool
	// Warn, if set, hears what was found wrong without failing (a light
	// client's static copy of a log that served a bad tile); default:
	// slog.Warn.
	Warn func(msg string)
}

// DefaultCache is $CAIRN_CACHE, else the user's cache directory + cairn.
func DefaultCache() (string, error) {
	if d := os.Getenv("CAIRN_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set CAIRN_CACHE): %w", err)
	}
	return filepath.Join(d, "cairn"), nil
}

// Source is one of the project's repositories, verified: its index read
// at the head verified last, and where its blobs come from.
type Source struct {
	Repository
	// Repo is the verified replica (or the index on disk); nil for a
	// repository read by the light client (View).
	Repo *index.Repo
	// View is what the light client proved of a server (Repository.IsLight);
	// nil for a replica.
	View    *light.View
	Catalog *index.Catalog
	Records int          // record files in the index at the head (0: not known, a light source)
	Blobs   []blob.Store // its own store or server, then its mirrors
	// Checkpoint is the server's signed checkpoint the replica was last
	// pulled under (nil for an index on disk, or a server that signs none).
	Checkpoint *checkpoint.Signed
	// Via is, for an upstream line that the repository follows, the
	// repository itself (whose certifications of the upstream's versions
	// count beside the upstream's own records), and Upstream the name it
	// gave the upstream. Such a source is named VIA/UPSTREAM.
	Via      *Source
	Upstream string

	client *light.Client // the light client of View
}

// Head is the verified head the source is read at.
func (s *Source) Head() string { return s.Catalog.Commit() }

// Sources are the project's repositories in the order cairn.yaml lists
// them: a package name is taken from the first that publishes it.
type Sources []*Source

// Close closes every repository, and waits for what the light client
// keeps in the cache of each view it opened (light.View.Kept: written
// after the views are returned, while the project is resolved; best
// effort, as every keep of the light client).
func (ss Sources) Close() {
	for _, s := range ss {
		if s.Via == nil && s.Repo != nil {
			s.Repo.Close()
		}
		if s.View != nil {
			s.View.Kept()
		}
	}
}

// Names are the sources' names, in order.
func (ss Sources) Names() []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// Get returns the source named name.
func (ss Sources) Get(name string) *Source {
	for _, s := range ss {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Publisher returns the first repository that publishes name — a name
// is never taken from two — and its versions there, oldest first;
// fs.ErrNotExist if none does. An upstream line never gives a name that
// is internal to the repository that follows it (Shadowed).
func (ss Sources) Publisher(name string) (*Source, []string, error) {
	var shadowed []string
	for _, s := range ss {
		vs, err := s.Catalog.Versions(name)
		if err != nil {
			return nil, nil, err
		}
		if len(vs) == 0 {
			continue
		}
		if in, err := s.Shadowed(name); err != nil {
			return nil, nil, err
		} else if in {
			shadowed = append(shadowed, s.Name)
			continue
		}
		if s.Via != nil {
			return ss.upstreamPublisher(name, s, vs)
		}
		return s, vs, nil
	}
	if len(shadowed) > 0 {
		return nil, nil, fmt.Errorf("%s is published in none of the repositories: it is an internal name of %s, whose upstream namesakes (%s) are never used: %w",
			name, ss.Get(shadowed[0]).Via.Name, strings.Join(shadowed, ", "), fs.ErrNotExist)
	}
	return nil, nil, fmt.Errorf("%s is published in none of the repositories: %w", name, fs.ErrNotExist)
}

// AlsoPublish lists the repositories after from that publish name too,
// as "REPOSITORY (VERSIONS…)": the first repository that publishes a name
// serves it, and a namesake elsewhere — an organisation's own package
// taken from a public index listed first, say — is dependency confusion
// the project should see. The upstreams a repository follows are left
// out when their follower is from: its internal names win over them by
// design.
func (ss Sources) AlsoPublish(name string, from *Source) ([]string, error) {
	var out []string
	after := false
	for _, s := range ss {
		if s == from {
			after = true
			continue
		}
		if !after || s.Via != nil && (s.Via == from || s.Via == from.Via) {
			continue
		}
		vs, err := s.Catalog.Versions(name)
		if err != nil {
			return nil, err
		}
		if len(vs) > 0 {
			out = append(out, fmt.Sprintf("%s (%s)", s.Name, strings.Join(vs, ", ")))
		}
	}
	return out, nil
}

// upstreamPublisher applies index's rule for a name that first
// publishes, an upstream line: the repository that follows it serves the
// name from the one upstream that publishes it, and from none when
// several do (index.ChooseUpstream: an *index.AmbiguousError), as its
// server's light reads and listing do.
func (ss Sources) upstreamPublisher(name string, first *Source, vs []string) (*Source, []string, error) {
	pubs := []string{first.Upstream}
	for _, s := range ss {
		if s == first || s.Via != first.Via {
			continue
		}
		svs, err := s.Catalog.Versions(name)
		if err != nil {
			return nil, nil, err
		}
		if len(svs) > 0 {
			pubs = append(pubs, s.Upstream)
		}
	}
	if _, err := index.ChooseUpstream(name, pubs); err != nil {
		return nil, nil, fmt.Errorf("repository %s: %w", first.Via.Name, err)
	}
	return first, vs, nil
}

// Shadowed reports whether s is an upstream line and name is internal to
// the repository that follows it (index.Names: published there, or
// inside one of its keys' publish grants): internal names win, so s's
// package of that name is never used.
func (s *Source) Shadowed(name string) (bool, error) {
	if s.Via == nil {
		return false, nil
	}
	in, err := s.Via.Catalog.Internal(name)
	if err != nil {
		return false, fmt.Errorf("repository %s: %w", s.Via.Name, err)
	}
	return in, nil
}

// Open opens and verifies every repository of the project. A server is
// read by the light client (openLight: no clone, every read proved
// against its signed checkpoint); with light: false its index is pulled
// into a replica in the cache — every new commit replayed against the
// repository's introduction and its signed checkpoint checked — unless
// o.Offline; an index on disk is verified where it is.
func Open(ctx context.Context, p *Project, o Options) (Sources, error) {
	var out Sources
	for _, r := range p.Repositories {
		s, err := openSource(ctx, p, r, o)
		if err == nil {
			out = append(out, s)
			var ups Sources
			ups, err = upstreamSources(ctx, p, s, o)
			out = append(out, ups...)
			for _, s := range append(Sources{s}, ups...) {
				if s.View != nil {
					// The packages cairn.yaml names, read at once rather
					// than as resolution reaches them (a view opened
					// online read them while its checkpoint was verified:
					// light.Client.OpenPrefetch).
					s.View.Prefetch(ctx, packageSubjects(p)...)
				}
			}
		}
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("repository %s: %w", r.Name, err)
		}
	}
	return out, nil
}

// upstreamSources are the upstream lines that s follows and has verified,
// each a source named S/UPSTREAM, read at its verified head, its blobs
// fetched through s (an organisation's server fetches an upstream's blobs
// for its clients), else from the upstream itself. They come after s: a
// name s publishes is never taken from its upstreams.
func upstreamSources(ctx context.Context, p *Project, s *Source, o Options) (Sources, error) {
	if s.View != nil {
		return lightUpstreamSources(ctx, p, s, o)
	}
	ups, err := s.Repo.Upstreams(ctx, s.Head())
	if err != nil {
		return nil, err
	}
	var out Sources
	for _, u := range ups {
		if u.RevokedBy != "" {
			continue
		}
		head, records, err := s.Repo.UpstreamLine(u).VerifiedHead()
		if err != nil {
			return nil, err
		}
		if head == "" {
			continue // never synced: nothing of it is verified here
		}
		c, err := s.Repo.Catalog(ctx, head)
		if err != nil {
			return nil, err
		}
		r := s.Repository
		r.Name, r.Introduction = s.Name+"/"+u.Name, u.Introduction
		blobs := append([]blob.Store(nil), s.Blobs...)
		if s.URL == "" {
			blobs = append(blobs, &blob.HTTP{URL: u.URL})
		}
		out = append(out, &Source{Repository: r, Repo: s.Repo, Catalog: c, Records: records, Blobs: blobs, Via: s, Upstream: u.Name})
	}
	return out, nil
}

// lightUpstreamSources are the upstream lines that the server s reads
// follows, read by the light client as the server serves them
// (light.Client.Line): the upstreams its index declares (proved: subject
// upstreams), each line pinned by the introduction its declaration names
// and checked by its own index, the upstream's signed checkpoint of the
// tree the server verified. Every declared, unrevoked line is required:
// one the server answers 404 for is refused, whether this client verified
// it before (light.GoneError) or never did (light.MissingError), since
// left out it would change which upstream a name is taken from; offline,
// a line never read online is refused.
func lightUpstreamSources(ctx context.Context, p *Project, s *Source, o Options) (Sources, error) {
	ups, err := s.View.Upstreams(ctx)
	if err != nil {
		return nil, err
	}
	var out Sources
	for _, u := range ups {
		c := s.client.Line(u)
		open := c.OpenOffline
		if !o.Offline {
			if err := c.Served(ctx); err != nil {
				return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
			}
			open = func(ctx context.Context) (*light.View, error) { return c.OpenPrefetch(ctx, packageSubjects(p)...) }
		}
		v, err := open(ctx)
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		cat, err := v.Catalog()
		if err != nil {
			v.Kept()
			out.Close()
			return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		r := s.Repository
		r.Name, r.Introduction = s.Name+"/"+u.Name, u.Introduction
		blobs := append([]blob.Store(nil), s.Blobs...)
		out = append(out, &Source{Repository: r, View: v, Catalog: cat, Blobs: blobs, // Records: not known (see openLight)
			Checkpoint: v.Checkpoint, Via: s, Upstream: u.Name, client: c})
	}
	return out, nil
}

func openSource(ctx context.Context, p *Project, r Repository, o Options) (*Source, error) {
	if r.Path != "" {
		dir := r.Path
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(p.Dir, dir)
		}
		if err := checkPathBlobs(dir); err != nil {
			return nil, err
		}
		repo, err := index.Open(ctx, dir)
		if err != nil {
			return nil, err
		}
		if repo.Config.Introduction != r.Introduction {
			repo.Close()
			return nil, fmt.Errorf("the index at %s starts with root record %s, not the introduction %s that %s pins: it is another repository", dir, repo.Config.Introduction, r.Introduction, ProjectFile)
		}
		res, err := repo.Verify(ctx, false)
		if err == nil {
			err = keptPathHead(ctx, repo, dir, o.Cache, res)
		}
		if err != nil {
			repo.Close()
			return nil, err
		}
		c, err := repo.Catalog(ctx, res.Head)
		if err != nil {
			repo.Close()
			return nil, err
		}
		return &Source{Repository: r, Repo: repo, Catalog: c, Records: res.Total, Blobs: withMirrors(repo.Blobs, r, o.Remote.Client)}, nil
	}
	if r.IsLight() {
		return openLight(ctx, r, o, append(packageSubjects(p), "upstreams"))
	}
	if o.Cache == "" {
		return nil, fmt.Errorf("%s: a full replica needs a cache directory, and none was given", cmp.Or(r.URL, r.Git))
	}
	sum := sha256.Sum256([]byte(strings.TrimPrefix(r.Where(), "git:")))
	dir := filepath.Join(o.Cache, "indexes", r.Introduction[:16]+"-"+hex.EncodeToString(sum[:4]))
	repo, err := index.Open(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		if o.Offline {
			return nil, fmt.Errorf("%s was never fetched into the cache %s: run once without --offline: %w", cmp.Or(r.URL, r.Git), o.Cache, fs.ErrNotExist)
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		if repo, err = index.InitReplica(ctx, dir, r.Introduction); err != nil {
			return nil, err
		}
		err = remote.Add(repo, remote.Remote{Name: "origin", URL: cmp.Or(r.URL, r.Git), Log: r.Log, Introduction: r.Introduction, Mirrors: r.Mirrors})
		if err != nil {
			repo.Close()
			os.RemoveAll(dir)
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	rm, err := remote.Get(repo, "origin")
	if err == nil && !o.Offline && (!slices.Equal(rm.Witnesses, r.Witnesses) || len(r.Witnesses) > 0 && rm.Quorum != quorumOf(r)) {
		rm.Witnesses, rm.Quorum = r.Witnesses, quorumOf(r)
		err = remote.Set(repo, *rm)
	}
	if err != nil {
		repo.Close()
		return nil, err
	}
	if !o.Offline {
		if _, err := remote.Pull(ctx, repo, "origin", o.Remote); err != nil {
			repo.Close()
			return nil, err
		}
	}
	head, records, err := rm.Line(repo).VerifiedHead()
	if err == nil && head == "" {
		err = fmt.Errorf("%s has never been verified into the cache: run once without --offline: %w", cmp.Or(r.URL, r.Git), fs.ErrNotExist)
	}
	if err != nil {
		repo.Close()
		return nil, err
	}
	var sc *checkpoint.Signed
	note, err := rm.LastCheckpoint(repo)
	if err == nil {
		if sc, err = remote.OpenCheckpoint(ctx, repo, head, r.Introduction, note); err != nil {
			err = fmt.Errorf("the checkpoint kept in the cache %s: %v: run again without --offline", dir, err)
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	var c *index.Catalog
	if err == nil {
		c, err = repo.Catalog(ctx, head)
	}
	if err != nil {
		repo.Close()
		return nil, err
	}
	client := o.Remote.Client // nil: the transport's, with its timeouts (blob.HTTP)
	var own blob.Store
	if r.URL != "" && !o.Offline { // a plain git host (git:) keeps its blobs on its mirrors only; offline asks no server
		own = &blob.HTTP{URL: r.URL, Client: client}
	}
	stores := withMirrors(own, r, client)
	return &Source{Repository: r, Repo: repo, Catalog: c, Records: records, Blobs: stores, Checkpoint: sc}, nil
}

// checkPathBlobs refuses a path: repository (made by cairn init, its
// cairn.json beside index.git) whose cairn.json names an object store a
// mirror may not be (blob.CheckMirror: a parameter that writes or
// creates, credentials sent in clear): the project's author may have
// written it, and opening the index opens its store with the user's
// credentials. It is checked before the index is opened.
func checkPathBlobs(dir string) error {
	if fi, err := os.Stat(filepath.Join(dir, "index.git")); err != nil || !fi.IsDir() {
		return nil // a git clone: its configuration is this machine's own
	}
	path := filepath.Join(dir, "cairn.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil // index.Open says what is wrong
	}
	var c struct {
		Blobs string `json:"blobs"`
	}
	if json.Unmarshal(data, &c) != nil || c.Blobs == "" {
		return nil
	}
	if err := blob.CheckMirror(c.Blobs); errors.Is(err, blob.ErrMirrorUnsafe) {
		return fmt.Errorf("%s names the repository's blob store, which a project's repository is not opened with: %w", path, err)
	}
	return nil
}

// withMirrors is a repository's blob stores: its own (its server, or its
// store on disk; nil for an index on a plain git host) first, then its mirrors in order, each an HTTP mirror or
// an object store read directly (blob.Mirror), every byte verified.
func withMirrors(own blob.Store, r Repository, client *http.Client) []blob.Store {
	var stores []blob.Store
	if own != nil {
		stores = append(stores, own)
	}
	for _, m := range r.Mirrors {
		stores = append(stores, blob.Mirror(m, client))
	}
	return stores
}

// quorumOf is the repository's witness quorum: all its witnesses unless
// it says.
func quorumOf(r Repository) int {
	if r.Quorum != nil {
		return *r.Quorum
	}
	return len(r.Witnesses)
}

// packageSubjects are the light subjects of the packages cairn.yaml names.
func packageSubjects(p *Project) []string {
	subjects := make([]string, 0, len(p.Packages))
	for _, w := range p.Packages {
		subjects = append(subjects, "package "+w.Name)
	}
	return subjects
}

// openLight reads a server with the light client: its checkpoint checked
// (the key the index grants, freshness, the witness quorum, consistency
// with the one verified last, kept in the cache), then every read proved
// against it as resolution asks. Offline, it reads what it proved last,
// kept in the cache, and checks it again. Online, prefetch (the
// project's packages, and its upstreams) are read while the checkpoint
// is verified (light.Client.OpenPrefetch).
func openLight(ctx context.Context, r Repository, o Options, prefetch []string) (*Source, error) {
	pol, err := r.Policy()
	if err != nil {
		return nil, err
	}
	c := &light.Client{BaseURL: r.URL, Introduction: r.Introduction, Witnesses: pol, StateDir: filepath.Join(o.Cache, "light"), HTTP: o.Remote.Client, Now: o.Remote.Now, TilesURL: r.Log, Warn: o.Warn}
	if o.NoLightState {
		c.StateDir = ""
	}
	open := func(ctx context.Context) (*light.View, error) { return c.OpenPrefetch(ctx, prefetch...) }
	if o.Offline {
		open = c.OpenOffline
	}
	v, err := open(ctx)
	if err != nil {
		return nil, err
	}
	cat, err := v.Catalog()
	if err != nil {
		v.Kept()
		return nil, err
	}
	var own blob.Store = &blob.HTTP{URL: r.URL, Client: o.Remote.Client}
	if o.Offline {
		own = nil // offline asks no server: blobs from the cache, or the mirrors named
	}
	stores := withMirrors(own, r, o.Remote.Client)
	// Records stays 0, not known: the checkpoint's size counts a map leaf
	// per commit beside the files, and a light client reads no commit count.
	return &Source{Repository: r, View: v, Catalog: cat, Blobs: stores, Checkpoint: v.Checkpoint, client: c}, nil
}

// keptPathHead holds an index on disk (path:) to the head this machine
// verified there before, kept in the cache (paths/), as a light client
// holds a server to its last checkpoint: main moved back to before some
// records, with the index's own verified.json removed beside it (by
// whoever may move main), verified again from the introduction and was
// taken, the records gone. A head that does not descend from the one
// kept is a *index.ForkError, unless the index dropped it as a local
// commit of its own clone (VerifyResult.DroppedLocal). The head kept
// moves on with main; without a cache, nothing is kept.
func keptPathHead(ctx context.Context, repo *index.Repo, dir, cache string, res *index.VerifyResult) error {
	if cache == "" || res.Head == "" {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(abs))
	file := filepath.Join(cache, "paths", repo.Config.Introduction[:16]+"-"+hex.EncodeToString(sum[:8])+".json")
	var kept struct {
		Path string `json:"path"`
		Head string `json:"head"`
	}
	if data, err := os.ReadFile(file); err == nil {
		if json.Unmarshal(data, &kept) != nil {
			kept.Head = "" // unreadable: kept again below
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if kept.Head != "" && kept.Head != res.Head && !slices.Contains(res.DroppedLocal, kept.Head) {
		ok, err := repo.IsAncestor(ctx, kept.Head, res.Head)
		if err != nil || !ok {
			return fmt.Errorf("%w (the index at %s; this machine verified %s there before, kept in %s whatever the index's own verified.json says; if it was moved back on purpose — a restore, a submodule at an older revision — remove that file)", &index.ForkError{Verified: kept.Head, Head: res.Head}, abs, kept.Head, file)
		}
	}
	if kept.Head == res.Head {
		return nil
	}
	kept.Path, kept.Head = abs, res.Head
	data, _ := json.Marshal(kept)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil // best effort, as the index's own marker: reads go on
	}
	safefile.Write(file, append(data, '\n'), safefile.Options{NoSync: true})
	return nil
}
