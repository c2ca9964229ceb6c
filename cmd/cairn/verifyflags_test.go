package main

import (
	"errors"
	"strings"
	"testing"
)

// A verifier's --witness keys with --quorum 0 count none: refused, not a
// check that passes with the bundle's own witnesses; --at of the zero
// time is no --at to the verifier: refused, not ignored.
func TestVerifierFlags(t *testing.T) {
	var ue usageError
	if _, err := witnessQuorum(1, 0, true); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--quorum 0 counts none") {
		t.Errorf("--witness with --quorum 0: %v, want a usage error", err)
	}
	for _, tc := range []struct {
		n, q    int
		changed bool
		want    int
	}{{2, 0, false, 2}, {2, 1, true, 1}, {0, 0, true, 0}} {
		if got, err := witnessQuorum(tc.n, tc.q, tc.changed); err != nil || got != tc.want {
			t.Errorf("witnessQuorum(%d, %d, %v) = %d, %v; want %d", tc.n, tc.q, tc.changed, got, err, tc.want)
		}
	}
	for _, at := range []string{"0001-01-01T00:00:00Z", "0001-01-01"} {
		if _, err := parseAt(at); err == nil || !strings.Contains(err.Error(), "before any index began") {
			t.Errorf("--at %s: %v, want it refused", at, err)
		}
	}
	if got, err := parseAt("2026-11-29"); err != nil || got.Format("2006-01-02T15:04:05Z07:00") != "2026-11-29T00:00:00Z" {
		t.Errorf("--at 2026-11-29: %v, %v", got, err)
	}
}

// --go-sumdb NAME is read at https://NAME; NAME=URL at URL; anything
// else is a usage error.
func TestParseGoSumDB(t *testing.T) {
	for spec, want := range map[string]string{
		"sum.golang.org": "https://sum.golang.org",
		"sum.golang.org=https://proxy.golang.org/sumdb/sum.golang.org":         "https://proxy.golang.org/sumdb/sum.golang.org",
		"sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8": "https://sum.golang.org",
	} {
		if db, err := parseGoSumDB(spec); err != nil || db.URL != want || db.Name != "sum.golang.org" {
			t.Errorf("--go-sumdb %s: %+v, %v", spec, db, err)
		}
	}
	for _, bad := range []string{"", "=https://x", "sum.golang.org=ftp://x", "sum.golang.org=https://", "a b", "s=https://h/base?token=abc", "s=https://h/base#frag"} {
		if _, err := parseGoSumDB(bad); err == nil {
			t.Errorf("--go-sumdb %q accepted", bad)
		}
	}
}
