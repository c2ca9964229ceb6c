package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/vex"
)

// vexGet serves GET /api/v1/vex/{name...}[?version=V] (NS/NAME, or a Go
// module path): the OpenVEX
// document (package vex) of every version of the package, or of version
// V, from the records at main's verified head — this repository's own,
// and, for a package an upstream it follows publishes, the upstream's
// and this repository's records about it. The server names itself (the
// purl's repository_url, the repository in status notes) by the URL it
// was asked at: scheme and host, then /upstreams/UP for an upstream's
// package, as a lock of that URL names it. 404 when the package, the
// version or any vulnerability record is missing (an OpenVEX document
// needs a statement).
func (s *Server) vexGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := descriptor.CheckName(name); err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	version := r.URL.Query().Get("version")
	if version != "" {
		// Checked before it names a file: "1.0.0/" or "1.0.0\x00…"
		// read as 1.0.0's records, under a version never published.
		if err := descriptor.CheckVersion(version); err != nil {
			httpError(w, http.StatusBadRequest, "version %q: %v", version, err)
			return
		}
	}
	res, err := s.verify(r.Context())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + r.Host
	products, err := s.vexProducts(r, res.Head, base, name, version)
	var amb *index.AmbiguousError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		httpError(w, http.StatusNotFound, "%v", err)
		return
	case errors.As(err, &amb):
		httpError(w, http.StatusConflict, "%v", err)
		return
	case err != nil:
		httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
		return
	}
	doc, err := vex.Make(products, vex.Options{Author: "cairn: the signed records of " + base})
	if errors.Is(err, vex.ErrNoStatements) {
		httpError(w, http.StatusNotFound, "%s: %v", name, err)
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(doc.JSON)
}

// vexProducts reads the versions of name (or version) and their records
// at head, from this repository or the upstream that publishes name.
func (s *Server) vexProducts(r *http.Request, head, base, name, version string) ([]vex.Product, error) {
	c, err := s.repo.Catalog(r.Context(), head)
	if err != nil {
		return nil, err
	}
	versions, err := c.Versions(name)
	if err != nil {
		return nil, err
	}
	if len(versions) > 0 {
		if version != "" {
			if !slices.Contains(versions, version) {
				return nil, fmt.Errorf("%s@%s is not published in this repository (its versions: %s): %w", name, version, strings.Join(versions, ", "), fs.ErrNotExist)
			}
			versions = []string{version}
		}
		var out []vex.Product
		for _, v := range versions {
			d, _, views, err := c.Version(name, v)
			if err != nil {
				return nil, err
			}
			out = append(out, vex.Product{Name: name, Version: v, PURL: descriptor.PURL(name, v, base), Descriptor: d, Records: vex.Records(views, base)})
		}
		return out, nil
	}
	ups, err := s.repo.ShowUpstreamPackage(r.Context(), name, version)
	if err != nil {
		return nil, err
	}
	var out []vex.Product
	for _, u := range ups {
		line := base + "/upstreams/" + u.Upstream
		recs := append(vex.Records(u.Records, line), vex.Records(u.Local, base)...)
		out = append(out, vex.Product{Name: u.Name, Version: u.Version, PURL: descriptor.PURL(u.Name, u.Version, line), Descriptor: u.Descriptor, Records: recs})
	}
	return out, nil
}
