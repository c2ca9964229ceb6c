package index

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// Internal names win. A repository that follows upstreams serves their
// packages beside its own, but never under a name that is its own: one
// it publishes, and also one it has not published yet but that lies in a
// namespace its root granted one of its keys to publish in (a live
// publish:acme/* grant makes every acme/ name internal). Otherwise an
// upstream could publish acme/newthing first and be served where the
// organisation's own acme/newthing is expected (dependency confusion).
//
// The rule lives here, in Names; the server's light reads, resolution
// through an organisation, sync's clash report and the rules for this
// repository's records about upstream versions all ask it.

// Names says which package names are internal to an index at one of its
// states. It is safe for concurrent use. The publish grants it matches
// names against are listed once per state and kept there (see
// publishClaims), so a Names is cheap to make and to ask.
type Names struct {
	at time.Time

	mu sync.Mutex // guards st, whose lookups cache
	st State
}

// claim is a publish grant: a namespace the root granted a key to publish
// in, live until the grant expires (the key is not revoked: a revoked
// key claims nothing).
type claim struct {
	scope  record.Scope
	key    string
	holder string
	grant  Grant
}

// claimLister is a State that lists the publish grants of its keys,
// whatever their expiry, in key order. Each State lists them once and
// keeps the list until a key changes (a grant, a key revocation); expiry
// is judged when a name is looked up, so time moving on changes nothing.
type claimLister interface {
	publishClaims() ([]claim, error)
}

// NewNames returns the internal names of the index in state st, judging
// grants live (not expired, key not revoked) at time at.
func NewNames(st State, at time.Time) *Names { return &Names{st: st, at: at} }

// Names returns the internal names of the index at commit (a commit id
// or a ref), judging grants at the present time.
func (r *Repo) Names(ctx context.Context, commit string) (*Names, error) {
	id, err := r.Head(ctx, commit)
	if err != nil {
		return nil, err
	}
	st, err := r.State(ctx, id)
	if err != nil {
		return nil, err
	}
	return NewNames(st, time.Now()), nil
}

// Internal reports whether name is internal to the catalog's index (see
// Names), with grants judged at the present time. The catalog's state
// keeps the publish grants it listed for the first name.
func (c *Catalog) Internal(name string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	why, err := internalWhy(c.st, time.Now(), name)
	return why != "", err
}

// Internal reports whether name is internal: published in the index, or
// inside the pattern of a live publish grant.
func (n *Names) Internal(name string) (bool, error) {
	why, err := n.Why(name)
	return why != "", err
}

// Why says why name is internal ("acme/x is inside publish:acme/*,
// granted to key … (holder …)"), or "" if it is not.
func (n *Names) Why(name string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return internalWhy(n.st, n.at, name)
}

// Everything says which live publish grant makes every package name
// internal ("publish:*/*, granted to key … (holder …)"), or "" if none
// does. Such a grant (publish:* is publish:*/*) shadows every package of
// every upstream: none of them is ever served or certified here.
func (n *Names) Everything() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	claims, err := claimsOf(n.st)
	if err != nil {
		return "", err
	}
	for _, c := range claims {
		if c.scope.Pattern == "*/*" && c.grant.live(n.at) {
			return fmt.Sprintf("publish:%s, granted to key %s (holder %s)", c.scope.Pattern, c.key, c.holder), nil
		}
	}
	return "", nil
}

// internalWhy is the rule: name is internal to the index in state st at
// time at if it, or a name it case-folds onto (descriptor.FoldName), is
// published there, or lies beneath such a name (corp.example/greet/sub
// beneath corp.example/greet, as record.MatchName covers names), or if a live publish grant allows its key to publish
// it (record.Scope.Allows, the rule every signature is checked by, which
// folds case too): an upstream's Corp.example/greet is as internal as
// the corp.example/greet published here.
func internalWhy(st State, at time.Time, name string) (string, error) {
	own, err := st.Folded(name)
	if err != nil {
		return "", err
	}
	switch {
	case own == name:
		return name + " is published in this index", nil
	case own != "":
		return fmt.Sprintf("%s differs only in case from %s, published in this index", name, own), nil
	}
	// A name beneath a published one is the publisher's too: in Go the
	// module with the longest path that provides a package wins, so an
	// upstream's corp.example/greet/sub would replace the package sub of
	// the corp.example/greet published here (nested-module dependency
	// confusion). Names have at least two elements; so have their parents.
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		parent := name[:i]
		if !strings.Contains(parent, "/") {
			break
		}
		own, err := st.Folded(parent)
		if err != nil {
			return "", err
		}
		if own != "" {
			return fmt.Sprintf("%s lies beneath %s, published in this index", name, own), nil
		}
	}
	claims, err := claimsOf(st)
	if err != nil {
		return "", err
	}
	for _, c := range claims {
		if c.grant.live(at) && c.scope.Allows(record.Authored, name) {
			return fmt.Sprintf("%s is inside publish:%s, granted to key %s (holder %s)", name, c.scope.Pattern, c.key, c.holder), nil
		}
	}
	return "", nil
}

func claimsOf(st State) ([]claim, error) {
	cl, ok := st.(claimLister)
	if !ok {
		return nil, fmt.Errorf("internal names: a %T lists no keys", st)
	}
	return cl.publishClaims()
}

// live reports whether the grant has not expired at t.
func (g *Grant) live(t time.Time) bool { return g.Expires == nil || t.Before(*g.Expires) }

// keyClaims lists the publish grants of k, none if it is revoked.
func keyClaims(k *Key) []claim {
	if k == nil || k.RevokedBy != "" {
		return nil
	}
	var out []claim
	for _, g := range k.Grants {
		for _, s := range g.Scopes {
			if s.Action == "publish" {
				out = append(out, claim{scope: s, key: k.ID, holder: g.Holder, grant: g})
			}
		}
	}
	return out
}

// publishClaims lists the publish grants of the tree's keys, reading the
// keys once per tree.
func (t *treeState) publishClaims() ([]claim, error) {
	t.claimsMu.Lock()
	defer t.claimsMu.Unlock()
	if t.claimsOK {
		return t.claims, nil
	}
	ids, err := t.keyIDs()
	if err != nil {
		return nil, fmt.Errorf("internal names: listing the granted keys: %w", err)
	}
	sort.Strings(ids)
	var out []claim
	for _, id := range ids {
		k, err := t.Key(id)
		if err != nil {
			return nil, err
		}
		out = append(out, keyClaims(k)...)
	}
	t.claims, t.claimsOK = out, true
	return out, nil
}

// publishClaims lists the publish grants of the base's keys, with those
// of the keys this overlay changed (granted, re-granted, revoked) in
// their place. The list is kept until a key changes (updateKey), so a
// replay lists the keys once, not once per upstream certification.
func (o *Overlay) publishClaims() ([]claim, error) {
	if o.claimsOK {
		return o.claims, nil
	}
	var base []claim
	if o.base != nil {
		var err error
		if base, err = claimsOf(o.base); err != nil {
			return nil, err
		}
	}
	out := base
	if len(o.changed) > 0 {
		out = make([]claim, 0, len(base)+len(o.changed))
		for _, c := range base {
			if !o.changed[c.key] {
				out = append(out, c)
			}
		}
		ids := make([]string, 0, len(o.changed))
		for id := range o.changed {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			out = append(out, keyClaims(o.keys[id])...)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].key < out[j].key })
	}
	o.claims, o.claimsOK = out, true
	return out, nil
}

// keyChanged drops the overlay's list of publish grants: key id was
// granted, re-granted or revoked in it.
func (o *Overlay) keyChanged(id string) {
	if o.changed == nil {
		o.changed = map[string]bool{}
	}
	o.changed[id] = true
	o.claims, o.claimsOK = nil, false
}

// mergeClaims carries a child's key changes, and its list of publish
// grants if it made one after them, into o.
func (o *Overlay) mergeClaims(c *Overlay) {
	if len(c.changed) == 0 {
		return
	}
	for id := range c.changed {
		o.keyChanged(id)
	}
	if c.claimsOK {
		o.claims, o.claimsOK = c.claims, true
	}
}

// keyIDs lists the keys that have a directory under keys/.
func (t *treeState) keyIDs() ([]string, error) {
	shards, err := t.tree("keys")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sh := range shards {
		if !sh.Dir {
			continue
		}
		ks, err := t.files.List("keys/" + sh.Name)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			if id, err := keys.IDFromHex(k.Name); err == nil && k.Dir {
				out = append(out, id)
			}
		}
	}
	return out, nil
}
