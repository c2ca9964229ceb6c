package plan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cairn.dev/cairn/internal/light"
)

// ErrServerRefused is the parent of the errors of a version that the
// server of a light source refuses to serve by its policy
// (*ServerRefusedError).
var ErrServerRefused = errors.New("refused by the server's policy")

// Refusals returns what the server a light source reads refuses of name
// by its policy (light.View.Refusals), for the line s reads: nil if the
// source is not read by the light client, the server enforces no
// policy, or it serves name from another line than s. An upstream line's
// refusals are its server's (the one that follows it, s.Via): that
// server judges and serves the upstream's versions.
//
// They are the server's word, not proved, and honouring them is safe: a
// refusal only withholds a version (see light.Refusals).
func (s *Source) Refusals(ctx context.Context, name string) (*light.Refusals, error) {
	server := s.server()
	if server.View == nil {
		return nil, nil
	}
	rf, err := server.View.Refusals(ctx, name)
	if err != nil || rf == nil || rf.Source != s.Upstream {
		return nil, err
	}
	return rf, nil
}

// server is the source whose server serves s: s, or for an upstream
// line the repository that follows it.
func (s *Source) server() *Source {
	if s.Via != nil {
		return s.Via
	}
	return s
}

// ServerRefusedError is a version, or every version a range accepts,
// that the server of a light source refuses by its policy: the server's
// words (rule, reason, records) for each.
type ServerRefusedError struct {
	Name       string
	Repository string
	Wanted     string // the ranges that were not met but by refused versions ("" for a pin)
	Pinned     string // what pins the version: "cairn.yaml:12", "snapshot lts-1.0", "cairn.lock"
	Server     *light.Refusals
	Refused    []light.Refusal
	// Introduction is the one the server's repository is pinned by.
	Introduction string
}

func (e *ServerRefusedError) Error() string {
	var b strings.Builder
	pol := fmt.Sprintf("the server's policy %s (%.19s… at %s)", e.Server.Policy, e.Server.Digest, e.Server.URL)
	if e.Pinned != "" {
		fmt.Fprintf(&b, "%s pins %s@%s, which %s refuses", e.Pinned, e.Name, e.Refused[0].Version, pol)
	} else {
		fmt.Fprintf(&b, "every version of %s in repository %s that satisfies %s is refused by %s", e.Name, e.Repository, e.Wanted, pol)
	}
	for _, r := range e.Refused {
		fmt.Fprintf(&b, "\n  %s@%s: %s", e.Name, r.Version, Refused(e.Server, &r))
	}
	return b.String()
}

func (e *ServerRefusedError) Unwrap() error { return ErrServerRefused }

// Hint says what to do about a version the server refuses.
func (e *ServerRefusedError) Hint() string {
	return fmt.Sprintf("the server at %s does not serve what its policy %s refuses: pick another version of %s in %s (cairn show %s --url %s --introduction %s marks those it refuses), or ask the server's operator about the rule", e.Server.URL, e.Server.Policy, e.Name, ProjectFile, e.Name, e.Server.URL, e.Introduction)
}

// Refused says why a server refuses a version: "refused by the server's
// policy P: rule R (MODE), the server says: REASON (unproved)". The rule
// and the reason are the server's words, which nothing proves (records
// it names may be in no tree the client proved); printed beside proved
// records, they are marked as such.
func Refused(rf *light.Refusals, r *light.Refusal) string {
	s := fmt.Sprintf("refused by the server's policy %s: rule %q", rf.Policy, r.Rule)
	if r.Mode != "" {
		s += " (" + r.Mode + ")"
	}
	if r.Reason != "" {
		s += ", the server says: " + strings.ReplaceAll(r.Reason, "\n", " ") + " (its word, not proved)"
	}
	return s
}

// CheckServed checks that the server of each light source serves the
// version the lock pins of each of its packages: a *ServerRefusedError
// (Pinned "cairn.lock") names the first the server refuses by its
// policy, in its words, rather than leave the install to fail at the
// blob's fetch.
func CheckServed(ctx context.Context, l *Lock, srcs Sources) error {
	for i := range l.Packages {
		pkg := &l.Packages[i]
		s := srcs.Get(pkg.Repository)
		if s == nil {
			continue // Check names it
		}
		rf, err := s.Refusals(ctx, pkg.Name)
		if err != nil {
			return err
		}
		if r := rf.Of(pkg.Version); r != nil {
			return &ServerRefusedError{Name: pkg.Name, Repository: s.Name, Pinned: LockFile, Server: rf, Refused: []light.Refusal{*r}, Introduction: s.server().Introduction}
		}
	}
	return nil
}
