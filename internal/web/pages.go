package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/verdict"
)

// Page sizes: how many entries a page of each list shows.
const (
	PackagesPerPage = 50   // the home page's package list
	VersionsPerPage = 50   // a package's versions
	ActivityLeaves  = 40   // the home page's recent activity: the last leaves of main's log
	ActivityCommits = 10   // the same without a log: the last commits of main
	ActivityFiles   = 8    // files shown of one commit of the activity
	KeyScanLeaves   = 2000 // leaves of the log a key page scans at most for what the key signed, per page
	KeyScanChunk    = 250  // leaves it reads at a time
	KeySignedRows   = 100  // records it shows at most, per page
	KeyScanCommits  = 200  // the same without a log: commits of main
)

// homeData is the repository's page.
type homeData struct {
	Query    string
	Packages []index.PackageEntry
	Total    int    // packages in the repository
	Matched  int    // packages matching Query (Total without one)
	Next     string // the after= of the next page ("": none)
	Activity []activity
	Error    string // what could not be shown of the activity
}

// activity is a commit of the home page's recent activity.
type activity struct {
	index.LogEntry
	Files   []activityFile
	More    int  // files of the commit not shown
	Partial bool // the commit has older files than the leaves read
}

// activityFile is one file a commit added, linked where it can be.
type activityFile struct {
	index.LogRecord
	Package, Version string    // the version it is about, if any
	Holder           string    // the issuer's holder
	Key              string    // the key a grant or revoke-key record is about
	Time             time.Time // when it was appended (a key's page)
}

// home serves GET /: the packages (a page of them, or of a search), the
// search form, and main's last commits.
func (p *Pages) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	head, err := p.src.Verified(ctx)
	if err != nil {
		p.failErr(w, r, "the index", fmt.Errorf("%w: %w", errUnverified, err))
		return
	}
	if p.cachedPage(w, r, head) {
		return
	}
	all, err := p.src.Packages(ctx, head)
	if err != nil {
		p.failErr(w, r, "listing packages", err)
		return
	}
	q := r.URL.Query()
	d := homeData{Query: strings.TrimSpace(q.Get("q")), Total: len(all)}
	after := q.Get("after")
	start, _ := slices.BinarySearchFunc(all, after, func(e index.PackageEntry, t string) int { return strings.Compare(e.Name, t) })
	if start < len(all) && all[start].Name == after {
		start++
	}
	if d.Query == "" {
		d.Matched = len(all)
		end := min(start+PackagesPerPage, len(all))
		d.Packages = all[start:end]
		if end < len(all) {
			d.Next = all[end-1].Name
		}
	} else {
		for _, e := range all[start:] {
			if !index.MatchPackage(d.Query, e.Name) {
				continue
			}
			if len(d.Packages) == PackagesPerPage {
				d.Next = d.Packages[len(d.Packages)-1].Name
				break
			}
			d.Packages = append(d.Packages, e)
		}
	}
	c, err := p.catalogAt(ctx, head)
	if err == nil {
		d.Activity, err = p.activity(ctx, c)
	}
	if err != nil {
		d.Error = err.Error()
	}
	p.render(w, r, http.StatusOK, "home", page{Title: "Packages", Nav: "home", Head: head, Data: d})
}

// activity reads the last ActivityLeaves leaves of main's log (or, with
// no log, main's last ActivityCommits commits), newest first, grouped by
// commit.
func (p *Pages) activity(ctx context.Context, c *index.Catalog) ([]activity, error) {
	if p.src.Leaves == nil {
		return p.activityFromGit(ctx)
	}
	leaves, _, err := p.src.Leaves(ctx, -ActivityLeaves, -1, true)
	if err != nil {
		return nil, err
	}
	var out []activity
	var cur *activity
	for i := len(leaves) - 1; i >= 0; i-- {
		l := leaves[i]
		if l.Map || cur == nil {
			out = append(out, activity{LogEntry: index.LogEntry{Commit: l.Commit, Time: l.Time}})
			cur = &out[len(out)-1]
			if l.Map {
				continue
			}
		}
		if len(cur.Files) == ActivityFiles {
			cur.More++
			continue
		}
		cur.Files = append(cur.Files, p.describeCached(c, l))
	}
	if n := len(out); n > 0 && len(leaves) > 0 && leaves[0].Index > 0 && !leaves[0].Map {
		out[n-1].Partial = true // its older files are before the leaves read
	}
	return out, nil
}

// describe says what a file of the log is: a record (its kind, what it
// is about, who signed it), a descriptor, or another file of the index.
func (p *Pages) describe(c *index.Catalog, l Leaf) activityFile {
	f := activityFile{LogRecord: index.LogRecord{Path: l.Path}}
	if rec, err := record.Parse(l.Data); err == nil {
		f.ID, f.Kind, f.Issuer = rec.ID, string(rec.Kind), rec.Issuer()
		if sub := rec.Statement.Subject; len(sub) > 0 {
			f.Subject = sub[0].Name
			if f.Subject == "record" {
				f.Subject = fmt.Sprintf("record %.16s", sub[0].SHA256())
			}
		}
		if k, err := c.Key(f.Issuer); err == nil && k != nil {
			f.Holder = k.Holder()
		}
		if rec.Kind == record.Grant || rec.Kind == record.RevokeKey {
			f.Key = f.Subject // the key granted or revoked
		}
	} else if d, err := descriptor.Parse(l.Data); err == nil {
		f.Kind, f.Subject = "descriptor", d.ID()
	} else {
		f.Kind = "file"
		f.Subject, _ = index.SubjectOf(l.Path)
	}
	f.Package, f.Version = versionOf(f.Subject)
	return f
}

// activityFromGit reads main's last ActivityCommits commits from git.
func (p *Pages) activityFromGit(ctx context.Context) ([]activity, error) {
	var out []activity
	err := p.src.Repo.Log(ctx, ActivityCommits, func(e index.LogEntry) error {
		a := activity{LogEntry: e}
		for i, f := range e.Records {
			if i == ActivityFiles {
				a.More = len(e.Records) - i
				break
			}
			af := activityFile{LogRecord: f}
			af.Package, af.Version = versionOf(f.Subject)
			a.Files = append(a.Files, af)
		}
		a.Records = nil
		out = append(out, a)
		return nil
	})
	return out, err
}

// versionOf splits NAME@VERSION as a record's subject names a version;
// "" when it names none.
func versionOf(subject string) (name, version string) {
	name, version = descriptor.SplitID(subject)
	if version == "" || descriptor.CheckName(name) != nil || descriptor.CheckVersion(version) != nil {
		return "", ""
	}
	return name, version
}

// packageOrVersion serves GET /packages/NAME and /packages/NAME@VERSION
// (a name never holds '@': descriptor.CheckName).
func (p *Pages) packageOrVersion(w http.ResponseWriter, r *http.Request) {
	name, version := descriptor.SplitID(r.PathValue("id"))
	if err := descriptor.CheckName(name); err != nil {
		p.fail(w, r, http.StatusNotFound, "%v", err)
		return
	}
	if version != "" {
		if err := descriptor.CheckVersion(version); err != nil {
			p.fail(w, r, http.StatusNotFound, "%v", err)
			return
		}
		p.version(w, r, name, version)
		return
	}
	p.pkg(w, r, name)
}

// packageData is a package's page.
type packageData struct {
	Name     string
	Upstream string // the upstream that publishes it ("": this repository)
	UUID     string
	Summary  string
	License  string
	Count    int
	Versions []versionRow
	Page     int // from 1
	Pages    int
}

// versionRow is one version of the package page.
type versionRow struct {
	Version    string
	Descriptor string // sha256
	Size       int64
	Artifacts  []descriptor.Artifact
}

// pkg serves a package's page: its versions, newest first, a page at a
// time, with their artifacts.
func (p *Pages) pkg(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	c, err := p.catalog(ctx)
	if err != nil {
		p.failErr(w, r, name, err)
		return
	}
	if p.cachedPage(w, r, c.Commit()) {
		return
	}
	versions, err := c.Versions(name)
	if err != nil {
		p.failErr(w, r, name, err)
		return
	}
	if len(versions) == 0 {
		p.upstreamPackage(w, r, c, name)
		return
	}
	slices.Reverse(versions)
	d := packageData{Name: name, Count: len(versions), Pages: (len(versions) + VersionsPerPage - 1) / VersionsPerPage}
	d.Page, err = pageNumber(r, d.Pages)
	if err != nil {
		p.fail(w, r, http.StatusBadRequest, "%v", err)
		return
	}
	for i, v := range versions[(d.Page-1)*VersionsPerPage : min(d.Page*VersionsPerPage, len(versions))] {
		desc, ref, err := c.Descriptor(name, v)
		if err != nil {
			p.failErr(w, r, name+"@"+v, err)
			return
		}
		if i == 0 && d.Page == 1 {
			d.UUID, d.Summary, d.License = desc.UUID, desc.Summary, desc.License
		}
		d.Versions = append(d.Versions, versionRow{Version: v, Descriptor: ref.SHA256, Size: ref.Size, Artifacts: desc.Artifacts})
	}
	if d.UUID == "" { // a later page: the package's uuid is every version's
		desc, _, err := c.Descriptor(name, versions[0])
		if err != nil {
			p.failErr(w, r, name, err)
			return
		}
		d.UUID, d.Summary, d.License = desc.UUID, desc.Summary, desc.License
	}
	p.render(w, r, http.StatusOK, "package", page{Title: name, Head: c.Commit(), Data: d})
}

// upstreamPackage serves the page of a package an upstream this
// repository follows publishes (internal names win: only a name this
// repository does not publish), or the 404 page.
func (p *Pages) upstreamPackage(w http.ResponseWriter, r *http.Request, c *index.Catalog, name string) {
	notHere := fmt.Errorf("%s is not published in this repository: %w", name, fs.ErrNotExist)
	ups, err := p.src.Repo.Followed(r.Context())
	if err != nil || len(ups) == 0 {
		p.failErr(w, r, name, notHere)
		return
	}
	views, err := p.src.Repo.ShowUpstreamPackage(r.Context(), name, "")
	if err != nil {
		p.failErr(w, r, name, err)
		return
	}
	slices.Reverse(views)
	d := packageData{Name: name, Count: len(views), Page: 1, Pages: 1}
	for _, v := range views {
		if d.UUID == "" {
			d.UUID, d.Summary, d.License, d.Upstream = v.Descriptor.UUID, v.Descriptor.Summary, v.Descriptor.License, v.Upstream
		}
		d.Versions = append(d.Versions, versionRow{Version: v.Version, Descriptor: v.Ref.SHA256, Size: v.Ref.Size, Artifacts: v.Descriptor.Artifacts})
	}
	p.render(w, r, http.StatusOK, "package", page{Title: name, Head: c.Commit(), Data: d})
}

// pageNumber reads ?page=N (1 when absent), from 1 to pages.
func pageNumber(r *http.Request, pages int) (int, error) {
	s := r.URL.Query().Get("page")
	if s == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max(pages, 1) {
		return 0, fmt.Errorf("page %q: want a number from 1 to %d", s, max(pages, 1))
	}
	return n, nil
}

// versionData is a version's page.
type versionData struct {
	Name, Version string
	Descriptor    *descriptor.Descriptor
	Ref           string
	Size          int64
	Records       []recordRow

	Policies []string // the index's policies, by name
	Chosen   string   // the policy judged by: an index policy's name, "" for the server's
	Server   string   // the server's policy's label ("": it enforces none)
	Label    string   // the label of the policy judged by
	Verdict  *policy.Verdict
	Rules    []ruleRow
	Error    string // why there is no verdict
}

// views returns the page's records as the index read them.
func (d *versionData) views() []index.RecordView {
	out := make([]index.RecordView, len(d.Records))
	for i, r := range d.Records {
		out[i] = r.RecordView
	}
	return out
}

// recordRow is a record as the version page shows it.
type recordRow struct {
	index.RecordView
	Answers []string // the records (ids) whose vulnerabilities this fixed record answers
}

// ruleRow is one rule's verdict, as `cairn why` prints it.
type ruleRow struct {
	policy.RuleVerdict
	Mark string // pass, skip, FAIL, warning
	File string
}

// version serves a version's page.
func (p *Pages) version(w http.ResponseWriter, r *http.Request, name, version string) {
	ctx := r.Context()
	c, err := p.catalog(ctx)
	if err != nil {
		p.failErr(w, r, name+"@"+version, err)
		return
	}
	if p.cachedPage(w, r, c.Commit()) {
		return
	}
	v, err := p.versionView(ctx, c, name, version)
	if err != nil {
		p.failErr(w, r, name+"@"+version, err)
		return
	}
	d := versionData{Name: name, Version: version, Descriptor: v.Descriptor, Ref: v.Ref.SHA256, Size: v.Ref.Size}
	vulns := map[string][]string{} // vulnerability id → the records that declare it
	for _, rv := range v.Records {
		if rv.Record == nil {
			continue
		}
		if vp, ok := rv.Record.Predicate.(record.VulnsPredicate); ok {
			for _, res := range vp.Scanner.Result {
				vulns[res.ID] = append(vulns[res.ID], rv.ID)
				for _, a := range res.Aliases() {
					vulns[a] = append(vulns[a], rv.ID)
				}
			}
		}
	}
	for _, rv := range v.Records {
		row := recordRow{RecordView: rv}
		if rv.Record != nil {
			if fp, ok := rv.Record.Predicate.(record.FixedPredicate); ok {
				for _, id := range fp.Vulnerabilities {
					for _, rec := range vulns[id] {
						if !slices.Contains(row.Answers, rec) {
							row.Answers = append(row.Answers, rec)
						}
					}
				}
			}
		}
		d.Records = append(d.Records, row)
	}
	code := http.StatusOK
	if err := p.judge(ctx, r, c, &d); err != nil {
		if errors.Is(err, errBadPolicy) {
			code = http.StatusBadRequest
		}
		d.Error = err.Error()
	}
	p.render(w, r, code, "version", page{Title: name + "@" + version, Head: c.Commit(), Data: d})
}

var errBadPolicy = errors.New("no such policy")

// judge fills d's verdict: of the index's policy ?policy=NAME, else of
// the server's own policy, if any.
func (p *Pages) judge(ctx context.Context, r *http.Request, c *index.Catalog, d *versionData) error {
	pvs, err := c.Policies()
	if err != nil {
		return err
	}
	for _, pv := range pvs {
		d.Policies = append(d.Policies, pv.Name)
	}
	var server *policy.Policy
	if p.src.Policy != nil {
		if server, d.Server, err = p.src.Policy(ctx); err != nil {
			return fmt.Errorf("the server's policy: %w", err)
		}
	}
	d.Chosen = r.URL.Query().Get("policy")
	var pol *policy.Policy
	switch {
	case d.Chosen != "":
		if !slices.Contains(d.Policies, d.Chosen) {
			return fmt.Errorf("%w: the index holds no policy %q (it holds: %s)", errBadPolicy, d.Chosen, strings.Join(d.Policies, ", "))
		}
		if pol, err = p.indexPolicy(ctx, c, d.Chosen); err != nil {
			return err
		}
		d.Label = "index:" + d.Chosen
	case server != nil:
		pol, d.Label = server, d.Server
	default:
		return nil
	}
	// What verdict.Subject reads, from the records the page read already.
	sub := &policy.Subject{Descriptor: d.Descriptor, Ref: blob.Ref{SHA256: d.Ref, Size: d.Size}, Records: verdict.Records(d.views(), p.src.Repository)}
	d.Verdict = pol.Evaluate(sub, time.Now())
	for _, rv := range d.Verdict.Rules {
		d.Rules = append(d.Rules, ruleRow{RuleVerdict: rv, Mark: rv.Mark(), File: pol.File})
	}
	return nil
}

// indexPolicy returns the latest version of the index's policy name at
// c, parsed and bound (once per version) as the server binds its own:
// this repository and the upstreams it follows.
func (p *Pages) indexPolicy(ctx context.Context, c *index.Catalog, name string) (*policy.Policy, error) {
	pv, err := c.Policy(name)
	if err != nil {
		return nil, err
	}
	if pol, ok := p.policies.Load(pv.RecordID); ok {
		return pol.(*policy.Policy), nil
	}
	text, pv, err := c.PolicyText(name)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Parse("index:"+name, text)
	if err != nil {
		return nil, fmt.Errorf("policy index:%s, version %.16s: %w", name, pv.RecordID, err)
	}
	ups, err := p.src.Repo.Followed(ctx)
	if err != nil {
		return nil, err
	}
	repos := []string{p.src.Repository}
	for _, u := range ups {
		repos = append(repos, u.Name)
	}
	if err := pol.Bind(repos); err != nil {
		return nil, fmt.Errorf("policy index:%s, version %.16s: %w", name, pv.RecordID, err)
	}
	p.policies.Store(pv.RecordID, pol)
	return pol, nil
}

// versionView reads a version and its records in the order they were
// appended, each with its time: from the log's leaves of the package (the
// light reads' map), or, when the log does not hold them all yet (the
// served tree is behind the verified head), from git's history.
func (p *Pages) versionView(ctx context.Context, c *index.Catalog, name, version string) (*index.VersionView, error) {
	d, ref, recs, err := c.Version(name, version)
	if err != nil {
		return nil, err
	}
	if p.src.Subject != nil && len(recs) > 0 {
		if subject, ok := index.SubjectOf(recs[0].Path); ok {
			leaves, err := p.src.Subject(ctx, subject)
			if err != nil {
				return nil, err
			}
			at := make(map[string]Leaf, len(leaves))
			for _, l := range leaves {
				at[l.Path] = l
			}
			all := true
			for i := range recs {
				l, ok := at[recs[i].Path]
				all = all && ok
				recs[i].Time = l.Time
			}
			if all {
				sort.SliceStable(recs, func(i, j int) bool { return at[recs[i].Path].Index < at[recs[j].Path].Index })
				return &index.VersionView{Name: name, Version: version, Ref: ref, Descriptor: d, Records: recs}, nil
			}
		}
	}
	views, err := c.Show(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return &views[0], nil
}
