package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/witness"
)

// lightFlags name a server to read as a light client: no clone, every
// read proved against its signed checkpoint.
type lightFlags struct {
	url, introduction, cache string
	witnesses                []string
	quorum                   int
}

func (f *lightFlags) register(c *cobra.Command) {
	f.registerServer(c, "instead of a repository")
	c.Flags().StringVar(&f.cache, "cache", "", "with --url: where the last checkpoint verified is kept (default $CAIRN_CACHE, else the user cache directory)")
}

// registerServer registers the flags that name the server, but --cache
// (a project command has its own); instead says what --url replaces.
func (f *lightFlags) registerServer(c *cobra.Command, instead string) {
	fl := c.Flags()
	fl.StringVar(&f.url, "url", "", "read a server as a light client "+instead+": every read proved against its signed checkpoint, no clone")
	fl.StringVar(&f.introduction, "introduction", "", "with --url: the introduction the repository's owner published (cairn init prints it)")
	fl.StringArrayVar(&f.witnesses, "witness", nil, "with --url: the verifier key of a witness trusted to cosign the server's checkpoints (repeatable)")
	fl.IntVar(&f.quorum, "quorum", -1, "with --url: how many of the --witness keys must have cosigned (default: all)")
}

// repository is the server the flags name, as a project's repository
// read by the light client; its name is the URL's host (letters outside
// a repository name's turned to '-').
func (f *lightFlags) repository() (plan.Repository, error) {
	if f.introduction == "" {
		return plan.Repository{}, usageError{fmt.Errorf("--url needs --introduction: a server is trusted only for the repository it is pinned to")}
	}
	r := plan.Repository{Name: serverName(f.url), URL: f.url, Introduction: f.introduction, Witnesses: f.witnesses}
	if f.quorum >= 0 {
		q := f.quorum
		r.Quorum = &q
	}
	return r, nil
}

// serverName names a server's repository by its URL's host.
func serverName(raw string) string {
	name := "server"
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		name = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
				return r
			case r >= 'A' && r <= 'Z':
				return r - 'A' + 'a'
			}
			return '-'
		}, u.Host)
	}
	name = strings.Trim(strings.ReplaceAll(name, "..", "."), ".-_")
	if record.CheckUpstreamName(name) != nil {
		return "server"
	}
	return name
}

// open opens the server's latest checkpoint, verified, warning when no
// witness is trusted.
func (f *lightFlags) open(cmd *cobra.Command) (*light.View, error) {
	if f.introduction == "" {
		return nil, usageError{fmt.Errorf("--url needs --introduction: a server is trusted only for the repository it is pinned to")}
	}
	q, err := witnessQuorum(len(f.witnesses), f.quorum, f.quorum >= 0)
	if err != nil {
		return nil, err
	}
	pol, err := witness.NewPolicy(f.witnesses, q)
	if err != nil {
		return nil, usageError{err}
	}
	cache := f.cache
	if cache == "" {
		if cache, err = plan.DefaultCache(); err != nil {
			return nil, err
		}
	}
	c := &light.Client{BaseURL: f.url, Introduction: f.introduction, Witnesses: pol, StateDir: filepath.Join(cache, "light")}
	v, err := c.Open(cmd.Context())
	if err != nil {
		return nil, err
	}
	if v.Unwitnessed {
		fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: %s: no witnesses named: a split view (the server showing others another history) cannot be detected\ncairn: hint: name the witnesses you trust: --witness VKEY [--quorum K]\n", f.url)
	}
	return v, nil
}

// showLight is cairn show --url.
func showLight(ctx context.Context, cmd *cobra.Command, f *lightFlags, name, version string, asJSON bool) error {
	v, err := f.open(cmd)
	if err != nil {
		return err
	}
	c, err := v.Catalog()
	if err != nil {
		return err
	}
	views, err := c.Show(ctx, name, version)
	if errors.Is(err, fs.ErrNotExist) {
		return showLightUpstream(ctx, cmd.OutOrStdout(), v, c, name, version, asJSON, err)
	}
	if err != nil {
		return err
	}
	rf, err := v.Refusals(ctx, name)
	if err != nil {
		return err
	}
	if rf != nil && rf.Source != "" {
		rf = nil // served from an upstream's line: not these versions
	}
	if asJSON {
		out := make([]lightVersionView, len(views))
		for i, vv := range views {
			out[i] = lightVersionView{VersionView: vv, RefusedByServer: refusedJSON(rf, vv.Version)}
		}
		return printJSON(cmd.OutOrStdout(), out)
	}
	for i, vv := range views {
		if i > 0 {
			fmt.Fprintln(cmd.OutOrStdout())
		}
		printVersion(cmd.OutOrStdout(), vv, fmt.Sprintf("%s at %.12s (checkpoint of %d files)", f.url, v.Checkpoint.Head, v.Checkpoint.Size), refusedText(rf, vv.Version))
	}
	return nil
}

// lightVersionView is a version read by the light client, and the
// server's refusal of it, if its policy refuses it.
type lightVersionView struct {
	index.VersionView
	RefusedByServer *serverRefusal `json:"refused_by_server,omitempty"`
}

// lightUpstreamVersionView is lightVersionView of an upstream's version.
type lightUpstreamVersionView struct {
	index.UpstreamVersionView
	RefusedByServer *serverRefusal `json:"refused_by_server,omitempty"`
}

// serverRefusal is a server's refusal of a version (light.Refusal), with
// the policy that refused it: its word, not proved.
type serverRefusal struct {
	Policy       string `json:"policy"`
	PolicyDigest string `json:"policy_digest"`
	light.Refusal
}

func refusedJSON(rf *light.Refusals, version string) *serverRefusal {
	if r := rf.Of(version); r != nil {
		return &serverRefusal{Policy: rf.Policy, PolicyDigest: rf.Digest, Refusal: *r}
	}
	return nil
}

// refusedText says why the server refuses version; "" if it serves it.
func refusedText(rf *light.Refusals, version string) string {
	if r := rf.Of(version); r != nil {
		return plan.Refused(rf, r)
	}
	return ""
}

// showLightUpstream is cairn show --url for a package the server does not
// publish itself: taken from the upstream line that publishes it (never
// one of the server's internal names; refused when several do), read
// under /upstreams/UP/ and proved against the upstream's own checkpoint,
// with the server's own records about it. notHere is the error when no
// line has it.
func showLightUpstream(ctx context.Context, w io.Writer, v *light.View, here *index.Catalog, name, version string, asJSON bool, notHere error) error {
	ups, err := v.Upstreams(ctx)
	if err != nil || len(ups) == 0 {
		return cmp.Or(err, notHere)
	}
	if in, err := here.Internal(name); err != nil || in {
		return cmp.Or(err, notHere)
	}
	type line struct {
		u     *index.Upstream
		v     *light.View
		views []index.VersionView
	}
	var found []line
	for _, u := range ups {
		lc := v.Client().Line(u)
		if err := lc.Served(ctx); err != nil {
			return fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		lv, err := lc.Open(ctx)
		if err != nil {
			return fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		cat, err := lv.Catalog()
		if err != nil {
			return fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		views, err := cat.Show(ctx, name, version)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		found = append(found, line{u, lv, views})
	}
	if len(found) == 0 {
		return notHere
	}
	var names []string
	for _, l := range found {
		names = append(names, l.u.Name)
	}
	if _, err := index.ChooseUpstream(name, names); err != nil {
		return err
	}
	l := found[0]
	var out []index.UpstreamVersionView
	for _, vv := range l.views {
		local, err := here.ShowUpstream(ctx, l.u.Name, vv.Name, vv.Version)
		if err != nil {
			return err
		}
		out = append(out, index.UpstreamVersionView{VersionView: vv, Upstream: l.u.Name, Head: l.v.Checkpoint.Head, Local: local})
	}
	rf, err := v.Refusals(ctx, name)
	if err != nil {
		return err
	}
	if rf != nil && rf.Source != l.u.Name {
		rf = nil // the server serves it from elsewhere
	}
	if asJSON {
		js := make([]lightUpstreamVersionView, len(out))
		for i, uv := range out {
			js[i] = lightUpstreamVersionView{UpstreamVersionView: uv, RefusedByServer: refusedJSON(rf, uv.Version)}
		}
		return printJSON(w, js)
	}
	for i, uv := range out {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printVersion(w, uv.VersionView, fmt.Sprintf("upstream %s through %s, at %.12s (checkpoint of %d files)", uv.Upstream, v.Client().BaseURL, uv.Head, l.v.Checkpoint.Size), refusedText(rf, uv.Version))
		if len(uv.Local) == 0 {
			fmt.Fprintf(w, "  no record of %s about it\n", v.Client().BaseURL)
		} else {
			fmt.Fprintf(w, "  records of %s about it:\n", v.Client().BaseURL)
			printRecords(w, uv.Local)
		}
	}
	return nil
}
