package light

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"cairn.dev/cairn/internal/safefile"
)

// PolicyHeader is the response header with which a server that enforces
// a policy on what it serves (cairn serve --policy) names that policy on
// its checkpoint (a file's name, or index:NAME). A view opened from such
// a checkpoint reads the server's refusals of a package (View.Refusals);
// one without it reads none.
const PolicyHeader = "Cairn-Policy"

// Refusal is a version the server's policy refuses, and why, as a light
// package document (GET /api/v1/packages/NAME) lists it: the first rule
// it fails, that rule's mode, the records that decided it and the
// policy's reason.
type Refusal struct {
	Version string   `json:"version"`
	Rule    string   `json:"rule"`
	Mode    string   `json:"mode"`
	Records []string `json:"records,omitempty"`
	Reason  string   `json:"reason"`
}

// Refusals are the versions of one package that a server's policy
// refuses to serve, in the server's words.
//
// They are the server's word, not proved: nothing in the log commits to
// them. Honouring them is safe all the same, because a refusal can only
// withhold a version (a server can always refuse to serve a blob, and
// the client then fails at the fetch); it never adds a version, a record
// or a grant, nor changes one — every version offered is still one the
// view proved, judged by the project's own policy.
type Refusals struct {
	URL    string // the server that said so
	Name   string // the package
	Source string // where the server serves it from: "" its own index, else the upstream's name
	Policy string // the policy's name (PolicyHeader)
	Digest string // the policy's digest, "sha256:HEX", as the document names it
	List   []Refusal
}

// Of returns the refusal of version, or nil if the server offers it.
func (r *Refusals) Of(version string) *Refusal {
	if r == nil {
		return nil
	}
	for i := range r.List {
		if r.List[i].Version == version {
			return &r.List[i]
		}
	}
	return nil
}

// Policy returns the name of the policy the server said it enforces on
// its checkpoint (PolicyHeader); "" if it enforces none, or the view is
// offline and read no refusals.
func (v *View) Policy() string { return v.policy }

// refusalsLoad is one package's refusals read, which concurrent readers
// wait for.
type refusalsLoad struct {
	done chan struct{}
	r    *Refusals
	err  error
}

// Refusals returns what the server's policy refuses of package name
// (nil: nothing), read once per view from its light package document
// (GET /api/v1/packages/NAME: only its policy and refusals members are
// read). A server whose checkpoint names no policy (PolicyHeader) is not
// asked. Offline, the refusals read online at the view's checkpoint are
// read again (none if there were none). See Refusals for why a client
// may honour them though they are not proved.
func (v *View) Refusals(ctx context.Context, name string) (*Refusals, error) {
	v.refMu.Lock()
	if v.refusals == nil {
		v.refusals = map[string]*refusalsLoad{}
	}
	l, ok := v.refusals[name]
	if !ok {
		l = &refusalsLoad{done: make(chan struct{})}
		v.refusals[name] = l
	}
	v.refMu.Unlock()
	if !ok {
		l.r, l.err = v.readRefusals(ctx, name)
		if l.err != nil && ctx.Err() != nil {
			v.refMu.Lock()
			delete(v.refusals, name) // cut short: the next reader asks again
			v.refMu.Unlock()
		}
		close(l.done)
	}
	select {
	case <-l.done:
		return l.r, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// prefetchRefusals reads the refusals of the packages among subjects, a
// few at once.
func (v *View) prefetchRefusals(ctx context.Context, subjects []string) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, s := range subjects {
		name, ok := strings.CutPrefix(s, "package ")
		if !ok {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v.Refusals(ctx, name)
		})
	}
	wg.Wait()
}

// wireRefusals is what a light package document holds that Refusals reads.
type wireRefusals struct {
	Name     string    `json:"name"`
	Source   string    `json:"source"`
	Policy   string    `json:"policy"`
	Refusals []Refusal `json:"refusals"`
}

// refusalsPath is where the refusals of name read at a checkpoint's tree
// are kept, for reads offline.
func (v *View) refusalsPath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(v.client.StateDir, v.client.Introduction+".subjects", treeDir(v.Checkpoint.Checkpoint), "refusals-"+hex.EncodeToString(sum[:16])+".json")
}

func (v *View) readRefusals(ctx context.Context, name string) (*Refusals, error) {
	if v.offline {
		if v.client.StateDir == "" {
			return nil, nil
		}
		data, err := os.ReadFile(v.refusalsPath(name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var r Refusals
		if err := json.Unmarshal(data, &r); err != nil || r.Name != name {
			return nil, nil // kept by another cairn, or damaged: read online again
		}
		return &r, nil
	}
	if v.policy == "" {
		return nil, nil
	}
	u := v.client.base() + "/api/v1/packages/" + name
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.client.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the server's refusals of %s: %w", v.client.base(), name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusConflict {
		// Not served (or from several upstreams at once): no version of
		// it is offered, which the proved reads say for themselves.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: reading the server's refusals of %s: GET /api/v1/packages/%s: %s: %s", v.client.base(), name, name, resp.Status, strings.TrimSpace(string(msg)))
	}
	var doc wireRefusals
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: reading the server's refusals of %s: the answer is not a package document: %w", v.client.base(), name, err)
	}
	if doc.Name != name {
		return nil, fmt.Errorf("%s: reading the server's refusals of %s: the answer is about package %q", v.client.base(), name, doc.Name)
	}
	r := &Refusals{URL: v.client.base(), Name: name, Source: doc.Source, Policy: v.policy, Digest: doc.Policy, List: doc.Refusals}
	if v.client.StateDir != "" {
		v.keepLater(func() {
			if data, err := json.Marshal(r); err == nil {
				p := v.refusalsPath(name)
				if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
					safefile.Write(p, data, safefile.Options{Perm: 0o644, NoSync: true})
				}
			}
		})
	}
	return r, nil
}
