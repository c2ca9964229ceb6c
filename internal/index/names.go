package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"sync"
	"time"

	"cairn.dev/cairn/internal/keys"
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
// states. It is safe for concurrent use.
type Names struct {
	at time.Time

	mu     sync.Mutex // guards st, whose lookups cache
	st     State
	loaded bool
	claims []claim
}

// claim is a namespace the root granted a key to publish in.
type claim struct {
	pattern string // path.Match pattern over package names ("acme/*")
	key     string
	holder  string
}

// NewNames returns the internal names of the index in state st, judging
// grants live (not expired, key not revoked) at time at.
func NewNames(st State, at time.Time) *Names { return &Names{st: st, at: at} }

// Names returns the internal names of the index at commit (a commit id
// or a ref), judging grants at the present time.
func (r *Repo) Names(ctx context.Context, commit string) (*Names, error) {
	id, err := r.HeadOf(ctx, commit)
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
// Names), with grants judged at the present time.
func (c *Catalog) Internal(name string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	why, err := NewNames(c.st, time.Now()).why(name)
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
	return n.why(name)
}

func (n *Names) why(name string) (string, error) {
	uuid, err := n.st.UUID(name)
	if err != nil {
		return "", err
	}
	if uuid != "" {
		return name + " is published in this index", nil
	}
	if !n.loaded {
		if n.claims, err = liveClaims(n.st, n.at); err != nil {
			return "", err
		}
		n.loaded = true
	}
	for _, c := range n.claims {
		if ok, _ := path.Match(c.pattern, name); ok {
			return fmt.Sprintf("%s is inside publish:%s, granted to key %s (holder %s)", name, c.pattern, c.key, c.holder), nil
		}
	}
	return "", nil
}

// liveClaims lists the patterns of the publish grants live at t, in key
// order.
func liveClaims(st State, t time.Time) ([]claim, error) {
	kl, ok := st.(keyLister)
	if !ok {
		return nil, fmt.Errorf("internal names: a %T lists no keys", st)
	}
	ids, err := kl.keyIDs()
	if err != nil {
		return nil, fmt.Errorf("internal names: listing the granted keys: %w", err)
	}
	sort.Strings(ids)
	var out []claim
	for _, id := range ids {
		k, err := st.Key(id)
		if err != nil {
			return nil, err
		}
		if k == nil || k.RevokedBy != "" {
			continue
		}
		for _, g := range k.Active(t) {
			for _, s := range g.Scopes {
				if s.Action == "publish" {
					out = append(out, claim{pattern: s.Pattern, key: id, holder: g.Holder})
				}
			}
		}
	}
	return out, nil
}

// keyLister is a State that lists the ids of the keys granted in it.
type keyLister interface {
	keyIDs() ([]string, error)
}

// keyIDs lists the keys that have a directory under keys/.
func (t *treeState) keyIDs() ([]string, error) {
	shards, err := t.tree("keys")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sh := range shards {
		if !sh.IsTree() {
			continue
		}
		ks, err := t.rd.Tree(sh.ID)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			if id, err := keys.IDFromHex(k.Name); err == nil && k.IsTree() {
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// keyIDs lists the base's keys and those granted on top of it.
func (o *Overlay) keyIDs() ([]string, error) {
	var out []string
	seen := map[string]bool{}
	if o.base != nil {
		kl, ok := o.base.(keyLister)
		if !ok {
			return nil, fmt.Errorf("a %T lists no keys", o.base)
		}
		ids, err := kl.keyIDs()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, id := range ids {
			seen[id] = true
			out = append(out, id)
		}
	}
	for id, k := range o.keys {
		if k != nil && !seen[id] {
			out = append(out, id)
		}
	}
	return out, nil
}
