package record

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Bounds on what a vulnerable result keeps of an OSV record: a record is
// a small statement (MaxSize), and an advisory's long lists are read
// where it is published.
const (
	MaxOSVAliases    = 32
	MaxOSVSummary    = 1024
	MaxOSVAffected   = 16
	MaxOSVRanges     = 16
	MaxOSVEvents     = 32
	MaxOSVVersions   = 256
	MaxOSVReferences = 32
	maxOSVString     = 512 // an alias, a package name, a version, a URL
)

// OSVRangeTypes are the range types OSV defines.
var OSVRangeTypes = []string{"SEMVER", "ECOSYSTEM", "GIT"}

// OSVReferenceTypes are the reference types OSV defines.
var OSVReferenceTypes = []string{"ADVISORY", "ARTICLE", "DETECTION", "DISCUSSION", "REPORT", "FIX", "INTRODUCED", "GIT", "PACKAGE", "EVIDENCE", "WEB"}

// Check is the form a vulnerable result's OSV data must have: bounded
// lists and strings, times in RFC 3339, ranges of OSV's types whose
// events each set one field and begin with an introduced one, and
// references of OSV's types with http(s) URLs. It is what OSV's schema
// asks of these fields, so that an OSV document written from a record is
// valid.
func (o *VulnOSV) Check() error {
	if len(o.Aliases) > MaxOSVAliases {
		return fmt.Errorf("%d aliases, over %d", len(o.Aliases), MaxOSVAliases)
	}
	for _, a := range o.Aliases {
		if err := checkOSVString("alias", a); err != nil {
			return err
		}
	}
	if len(o.Summary) > MaxOSVSummary {
		return fmt.Errorf("summary is %d bytes, over %d", len(o.Summary), MaxOSVSummary)
	}
	for _, t := range []struct{ name, v string }{{"modified", o.Modified}, {"published", o.Published}} {
		if t.v == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339, t.v); err != nil || !strings.HasSuffix(t.v, "Z") {
			return fmt.Errorf("%s %q: want an RFC 3339 UTC time (2024-01-02T03:04:05Z)", t.name, t.v)
		}
	}
	if len(o.Affected) > MaxOSVAffected {
		return fmt.Errorf("%d affected entries, over %d", len(o.Affected), MaxOSVAffected)
	}
	for i, a := range o.Affected {
		if err := a.check(); err != nil {
			return fmt.Errorf("affected[%d]: %w", i, err)
		}
	}
	if len(o.References) > MaxOSVReferences {
		return fmt.Errorf("%d references, over %d", len(o.References), MaxOSVReferences)
	}
	for i, r := range o.References {
		if !oneOf(r.Type, OSVReferenceTypes) {
			return fmt.Errorf("references[%d]: type %q, want one of %s", i, r.Type, strings.Join(OSVReferenceTypes, ", "))
		}
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(r.URL) > maxOSVString {
			return fmt.Errorf("references[%d]: url %q: want an http(s) URL of at most %d bytes", i, r.URL, maxOSVString)
		}
	}
	return nil
}

func (a *OSVAffected) check() error {
	if err := checkOSVString("package ecosystem", a.Package.Ecosystem); err != nil {
		return err
	}
	if err := checkOSVString("package name", a.Package.Name); err != nil {
		return err
	}
	if len(a.Package.PURL) > maxOSVString {
		return fmt.Errorf("package purl is %d bytes, over %d", len(a.Package.PURL), maxOSVString)
	}
	if len(a.Ranges) > MaxOSVRanges {
		return fmt.Errorf("%d ranges, over %d", len(a.Ranges), MaxOSVRanges)
	}
	for i, r := range a.Ranges {
		if err := r.check(); err != nil {
			return fmt.Errorf("ranges[%d]: %w", i, err)
		}
	}
	if len(a.Versions) > MaxOSVVersions {
		return fmt.Errorf("%d versions, over %d", len(a.Versions), MaxOSVVersions)
	}
	for _, v := range a.Versions {
		if err := checkOSVString("version", v); err != nil {
			return err
		}
	}
	return nil
}

func (r *OSVRange) check() error {
	if !oneOf(r.Type, OSVRangeTypes) {
		return fmt.Errorf("type %q, want SEMVER, ECOSYSTEM or GIT", r.Type)
	}
	if (r.Type == "GIT") != (r.Repo != "") {
		return fmt.Errorf("a GIT range, and only one, names its repo")
	}
	if len(r.Repo) > maxOSVString {
		return fmt.Errorf("repo is %d bytes, over %d", len(r.Repo), maxOSVString)
	}
	if len(r.Events) == 0 || len(r.Events) > MaxOSVEvents {
		return fmt.Errorf("%d events, want 1 to %d", len(r.Events), MaxOSVEvents)
	}
	introduced, fixed, last := false, false, false
	for i, e := range r.Events {
		set := 0
		for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
			if v != "" {
				set++
				if len(v) > maxOSVString {
					return fmt.Errorf("events[%d] is %d bytes, over %d", i, len(v), maxOSVString)
				}
			}
		}
		if set != 1 {
			return fmt.Errorf("events[%d] sets %d of introduced, fixed, last_affected, limit: want exactly one", i, set)
		}
		introduced = introduced || e.Introduced != ""
		fixed = fixed || e.Fixed != ""
		last = last || e.LastAffected != ""
	}
	if !introduced {
		return fmt.Errorf("no introduced event: OSV ranges begin with one (introduced \"0\": from the first version)")
	}
	if fixed && last {
		return fmt.Errorf("both fixed and last_affected events: OSV allows one or the other")
	}
	return nil
}

// Affects writes the range as a version range for people, as the
// "affects" annotation does: ">=1.0.0, <1.2.4", or "<1.2.4" from the
// first version, ranges joined by " || ". A GIT range, which names
// commits, is not written.
func (a OSVAffected) Affects() string {
	var out []string
	for _, r := range a.Ranges {
		if r.Type == "GIT" {
			continue
		}
		var cur []string
		open := false
		flush := func() {
			if open {
				if len(cur) == 0 {
					cur = []string{"*"}
				}
				out = append(out, strings.Join(cur, ", "))
			}
			cur, open = nil, false
		}
		for _, e := range r.Events {
			switch {
			case e.Introduced != "":
				flush()
				open = true
				if e.Introduced != "0" {
					cur = append(cur, ">="+e.Introduced)
				}
			case e.Fixed != "", e.Limit != "":
				cur = append(cur, "<"+e.Fixed+e.Limit)
				flush()
			case e.LastAffected != "":
				cur = append(cur, "<="+e.LastAffected)
				flush()
			}
		}
		flush()
	}
	if len(out) == 0 && len(a.Versions) > 0 {
		return strings.Join(a.Versions, " || ")
	}
	return strings.Join(out, " || ")
}

func checkOSVString(what, s string) error {
	if strings.TrimSpace(s) == "" || len(s) > maxOSVString {
		return fmt.Errorf("%s %q: want a non-empty string of at most %d bytes", what, s, maxOSVString)
	}
	return nil
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
