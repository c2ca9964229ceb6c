package index

import (
	"errors"
	"io/fs"
	"testing"
)

// servedBy is the one rule: an internal name is nobody's, one upstream's
// name is its, two upstreams' name is refused with both named, a name
// nobody publishes is fs.ErrNotExist; ChooseUpstream (plan) agrees.
func TestServedBy(t *testing.T) {
	mir, pub := &Upstream{Name: "mirror"}, &Upstream{Name: "public"}
	for _, c := range []struct {
		name      string
		why       string
		pubs      []*Upstream
		want      *Upstream
		notExist  bool
		ambiguous []string
	}{
		{name: "one upstream", pubs: []*Upstream{pub}, want: pub},
		{name: "two upstreams", pubs: []*Upstream{mir, pub}, ambiguous: []string{"mirror", "public"}},
		{name: "internal and upstream", why: "acme/x is inside publish:acme/*", pubs: []*Upstream{mir}, notExist: true},
		{name: "internal and two upstreams", why: "acme/x is published in this index", pubs: []*Upstream{mir, pub}, notExist: true},
		{name: "nobody", notExist: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := servedBy("acme/x", c.why, c.pubs)
			var amb *AmbiguousError
			switch {
			case c.notExist:
				if !errors.Is(err, fs.ErrNotExist) || u != nil {
					t.Fatalf("servedBy = %v, %v; want fs.ErrNotExist", u, err)
				}
			case c.ambiguous != nil:
				if !errors.As(err, &amb) || u != nil || len(amb.Upstreams) != 2 || amb.Upstreams[0] != c.ambiguous[0] || amb.Upstreams[1] != c.ambiguous[1] {
					t.Fatalf("servedBy = %v, %v; want an AmbiguousError naming %v", u, err, c.ambiguous)
				}
			default:
				if err != nil || u != c.want {
					t.Fatalf("servedBy = %v, %v; want %v", u, err, c.want)
				}
			}
			if c.why != "" {
				return
			}
			var names []string
			for _, p := range c.pubs {
				names = append(names, p.Name)
			}
			got, err := ChooseUpstream("acme/x", names)
			if (err == nil) != (c.want != nil) || (c.want != nil && got != c.want.Name) {
				t.Fatalf("ChooseUpstream(%v) = %q, %v; servedBy chose %v", names, got, err, c.want)
			}
		})
	}
}
