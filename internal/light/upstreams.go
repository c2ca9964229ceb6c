package light

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"

	"cairn.dev/cairn/internal/index"
)

// Upstreams returns the upstreams the repository follows at the view's
// checkpoint: declared by its root and not revoked, read from subject
// "upstreams" (every upstream's declarations and revocations, proved
// complete) and judged by the index's rules; by name.
func (v *View) Upstreams(ctx context.Context) ([]*index.Upstream, error) {
	st, err := v.judged(ctx, "upstreams")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*index.Upstream
	for _, f := range v.subjectFiles("upstreams") {
		s, ok := index.SubjectOf(f.Path)
		name, isUp := strings.CutPrefix(s, "upstream ")
		if !ok || !isUp || seen[name] {
			continue
		}
		seen[name] = true
		u, err := st.Upstream(name)
		if err != nil {
			return nil, fmt.Errorf("%s: upstream %s: %w", v.client.base(), name, err)
		}
		if u != nil && u.RevokedBy == "" {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LinePath is where a server serves the log of an upstream line it
// follows, under its own URL: the tlog-tiles layout and the light reads
// of the upstream's log as the server verified it, with the upstream's
// own signed checkpoint (docs/transparency.md, "Upstream lines").
func LinePath(upstream string) string { return "/upstreams/" + upstream }

// Line returns a client of upstream u's line as the server c reads
// serves it (LinePath): pinned by the introduction that u's declaration
// names (read from c's view, proved), the checkpoint's key judged by the
// upstream's own index, as any light client of the upstream. Its state
// is kept apart from a client of the upstream's own server (under
// StateDir/lines/<c's introduction>), since the server's copy may lag
// the upstream. It trusts no witness: the server's copy of an upstream
// is checked as the server checked it (see Served, and the doc).
func (c *Client) Line(u *index.Upstream) *Client {
	l := &Client{BaseURL: c.base() + LinePath(u.Name), Introduction: u.Introduction, HTTP: c.HTTP, Now: c.Now, MaxAge: c.MaxAge}
	if c.StateDir != "" {
		l.StateDir = filepath.Join(c.StateDir, "lines", c.Introduction)
	}
	return l
}

// Served checks that the server serves a checkpoint of the client's
// log, as it must for every upstream line its root declares and has not
// revoked: a *MissingError if it answers 404 and this client never
// verified one (a line the server never synced, or one it hides: left
// out, it would change which upstream a name is taken from, for every
// client without state, as every CI job); a *GoneError if it answers 404
// after this client verified one (the log disappeared); an error if it
// cannot be asked.
func (c *Client) Served(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base()+"/log/checkpoint", nil)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("%s: fetching the checkpoint: %w", c.base(), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		s, err := c.stored()
		if err != nil {
			return err
		}
		if s != nil {
			return &GoneError{URL: c.base(), Stored: []byte(s.Checkpoint)}
		}
		return &MissingError{URL: c.base()}
	}
	return fmt.Errorf("%s: fetching the checkpoint: %s", c.base(), resp.Status)
}

// MissingError is a security error: a server answers 404 for the
// checkpoint of an upstream line its root declares and has not revoked,
// and this client never verified one. Left out, the line would change
// which upstream a name is taken from (a name two upstreams publish is
// ambiguous, not the other's), so every declared line is required.
type MissingError struct {
	URL string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: the server at %s answers that it serves no log (404) of an upstream line its root declares: left out, the line would change where names are taken from; the organisation's server has not synced this upstream yet, or hides it: run `cairn sync` on the server (an upstream that signs no checkpoints cannot be read by a light client)", e.URL)
}

// GoneError is a security error: a server answers 404 for the
// checkpoint of a log this client verified before (an upstream line the
// organisation's server, or a mirror in front of it, stopped serving).
// Left out, the line would change which upstream a name is taken from,
// or hide its records; a replica keeps a line it verified. Stored is the
// signed checkpoint verified last, the evidence.
type GoneError struct {
	URL    string
	Stored []byte
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: the server at %s answers that it serves no log (404), after this client verified it at:\n%s\na log that disappears would change where names are taken from; if it was removed on purpose, delete the state kept for it", e.URL, e.Stored)
}

// Client returns the client that opened the view.
func (v *View) Client() *Client { return v.client }
