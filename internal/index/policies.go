package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
)

// A policy in the index is named (org-default) and versioned: each
// version is a record holding the policy's whole text, signed by the root
// or by a key granted policy:PATTERN, naming the version it follows, at
// policies/NAME/ID.json. The versions form one chain (rule policy-chain),
// and each was appended at a commit whose time says from when it was in
// force, so that "which policy was in force on 3 March" has one answer.

// Policy returns a policy's latest version; fs.ErrNotExist if it has
// none.
func (c *Catalog) Policy(name string) (*PolicyVersion, error) {
	if err := record.CheckPolicyName(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	v, err := c.st.Policy(name)
	c.mu.Unlock()
	if err == nil && v == nil {
		err = fmt.Errorf("no policy %s in the index at %.12s (cairn policy publish adds one): %w", name, c.commit, fs.ErrNotExist)
	}
	return v, err
}

// PolicyView is one version of a policy: its text and digest, who signed
// it, and when it was appended (from when it was in force).
type PolicyView struct {
	Name     string    `json:"name"`
	SHA256   string    `json:"sha256"` // of the text
	Policy   string    `json:"policy"` // the text
	Record   string    `json:"record"`
	Previous string    `json:"previous,omitempty"`
	Issuer   string    `json:"issuer"` // the signing key's id, or "root" for a threshold of root keys
	Holder   string    `json:"holder,omitempty"`
	Time     time.Time `json:"time"` // when it was appended: in force from then
	Commit   string    `json:"commit"`
	Issued   time.Time `json:"issued"` // the signer's own claim
}

// PolicyHistory returns every version of a policy at main's head, oldest
// first.
func (r *Repo) PolicyHistory(ctx context.Context, name string) ([]PolicyView, error) {
	c, err := r.Catalog(ctx, MainRef)
	if err != nil {
		return nil, err
	}
	return c.PolicyHistory(ctx, name)
}

// PolicyHistory returns every version of a policy at the catalog's
// commit, oldest first (index order, which the chain follows);
// fs.ErrNotExist if it has none.
func (c *Catalog) PolicyHistory(ctx context.Context, name string) ([]PolicyView, error) {
	if _, err := c.Policy(name); err != nil {
		return nil, err
	}
	var out []PolicyView
	var verr error // the first record whose issuer's key could not be read
	err := c.eachAdded(ctx, layout.PolicyDir(name), func(a Addition, rec *record.Record) {
		p, ok := rec.Predicate.(record.PolicyPredicate)
		if !ok || verr != nil {
			return
		}
		rv, err := c.view(rec, a.Path)
		if err != nil {
			verr = err
			return
		}
		out = append(out, PolicyView{Name: name, SHA256: record.PolicyDigest(p.Policy), Policy: p.Policy, Record: rec.ID,
			Previous: p.Previous, Issuer: rv.Issuer, Holder: rv.Holder, Time: a.Time, Commit: a.Commit, Issued: p.Issued})
	})
	if err == nil {
		err = verr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PolicyAt returns the version of a policy in force at t: the last one
// appended at or before t (the zero t: the latest). fs.ErrNotExist if
// the policy has no version then.
func (c *Catalog) PolicyAt(ctx context.Context, name string, t time.Time) (*PolicyView, error) {
	versions, err := c.PolicyHistory(ctx, name)
	if err != nil {
		return nil, err
	}
	var in *PolicyView
	for i := range versions {
		if t.IsZero() || !versions[i].Time.After(t) {
			in = &versions[i]
		}
	}
	if in == nil {
		return nil, fmt.Errorf("policy %s had no version at %s (its first was appended at %s): %w",
			name, t.UTC().Format(time.RFC3339), versions[0].Time.UTC().Format(time.RFC3339), fs.ErrNotExist)
	}
	return in, nil
}

// PolicyText returns the text of a policy's latest version and its
// sha256: what a project (policy: index:NAME) or a server
// (--policy index:NAME) judges with at the catalog's commit.
// fs.ErrNotExist if the policy has no version.
func (c *Catalog) PolicyText(name string) (text []byte, v *PolicyVersion, err error) {
	v, err = c.Policy(name)
	if err != nil {
		return nil, nil, err
	}
	path := layout.RecordPath(layout.PolicyDir(name), v.RecordID)
	data, err := c.files.Read(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	rec, err := record.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	p, ok := rec.Predicate.(record.PolicyPredicate)
	if !ok {
		return nil, nil, fmt.Errorf("%s is a %s record, not a policy's version", path, rec.Kind)
	}
	return []byte(p.Policy), v, nil
}

// Policies lists the policies of the index at the catalog's commit, by
// name, each at its latest version. A light client cannot prove the
// listing complete (policies/ spans every policy's subject):
// ErrUnlisted.
func (c *Catalog) Policies() ([]PolicyVersion, error) {
	dirs, err := c.files.List("policies")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []PolicyVersion
	for _, d := range dirs {
		if !d.Dir {
			continue
		}
		v, err := c.Policy(d.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LocalRepository is the name a policy the index's server judges by
// gives the index itself in HOLDER@REPOSITORY issuers; each upstream it
// follows is named by its declared name. With no upstream, a bare holder
// name is the index's own.
const LocalRepository = "local"

// BindPolicy binds pol to the repositories a server of this index judges
// records of (LocalRepository and the upstreams it follows now:
// policy.Bind) and checks the issuers it names against what their roots
// have granted at their heads now (policy.CheckIssuers: an issuer no root
// granted is an error in a forbid rule's by, and warn hears of it
// elsewhere).
func (r *Repo) BindPolicy(ctx context.Context, pol *policy.Policy, warn func(string)) error {
	return r.BindPolicyAt(ctx, pol, MainRef, warn)
}

// BindPolicyAt is BindPolicy with the index's own grants read at commit
// (a commit id or a ref): a push's new head, before main moves to it.
func (r *Repo) BindPolicyAt(ctx context.Context, pol *policy.Policy, commit string, warn func(string)) error {
	names, err := r.policyNames(ctx)
	if err != nil {
		return err
	}
	if err := pol.Bind(names); err != nil {
		return err
	}
	return r.checkIssuers(ctx, pol, names, commit, warn)
}

// CheckPolicyIssuers checks the issuers pol names that this index (and
// the upstreams it follows) can tell about, as BindPolicy does, without
// binding it: a policy published here is also read by projects, which
// name their repositories as they like (HOLDER@THEIRNAME), so only the
// issuers named as a server of the index names them are checked.
func (r *Repo) CheckPolicyIssuers(ctx context.Context, pol *policy.Policy, warn func(string)) error {
	names, err := r.policyNames(ctx)
	if err != nil {
		return err
	}
	return r.checkIssuers(ctx, pol, names, MainRef, warn)
}

// policyNames are the repositories a policy the index's server judges
// by binds to: LocalRepository and each upstream it follows now.
func (r *Repo) policyNames(ctx context.Context) ([]string, error) {
	ups, err := r.Followed(ctx)
	if err != nil {
		return nil, err
	}
	names := []string{LocalRepository}
	for _, u := range ups {
		names = append(names, u.Name)
	}
	return names, nil
}

// checkIssuers checks pol's issuers against the grants of the
// repositories names: the index's own at local (a commit or a ref), each
// upstream's at its line.
func (r *Repo) checkIssuers(ctx context.Context, pol *policy.Policy, names []string, local string, warn func(string)) error {
	return pol.CheckIssuers(names, func(name string) (names, ids map[string]bool, err error) {
		ref := local
		if name != LocalRepository {
			ref = UpstreamRef(name)
		}
		c, err := r.Catalog(ctx, ref)
		if err != nil {
			return nil, nil, err
		}
		return c.Holders()
	}, warn)
}
