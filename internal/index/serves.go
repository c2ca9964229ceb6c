package index

import (
	"fmt"
	"io/fs"
	"strings"
)

// Who serves a package name. A repository serves a name itself when
// its main publishes it. Otherwise, when the name is internal to it
// (Names: inside one of its keys' live publish grants), nobody serves
// it: its upstream namesakes are never used. Otherwise the followed
// upstream whose verified copy publishes it serves it — if exactly one
// does. When several do, none is chosen: a choice by name order would
// let a newly followed upstream (or a rename) silently take a name over,
// so every reader refuses with an *AmbiguousError naming them, and the
// user names one (cairn certify --upstream). Every reader asks servedBy:
// the server's light reads (FindPackage), the listing (Packages), show
// (ShowUpstreamPackage), certifying an upstream's version
// (UpstreamVersion) and resolution (plan, through ChooseUpstream).

// AmbiguousError is the refusal for a name that this repository neither
// publishes nor claims and that several upstreams it follows publish.
type AmbiguousError struct {
	Name      string
	Upstreams []string // in name order
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%s is published by upstreams %s and not by this repository: no reader chooses between them (the repository's root may stop following all but one: cairn upstream remove; cairn certify --upstream %s certifies one's version)",
		e.Name, strings.Join(e.Upstreams, ", "), e.Upstreams[0])
}

// servedBy is the rule, for a name this repository's main does not
// publish: why is why it is internal ("" if it is not, see Names.Why),
// publishers the followed upstreams whose verified copies publish it.
// It returns the one upstream that serves the name, an error wrapping
// fs.ErrNotExist if none does, or an *AmbiguousError.
func servedBy(name, why string, publishers []*Upstream) (*Upstream, error) {
	if why != "" {
		return nil, fmt.Errorf("%s is an internal name: its upstream namesakes are never used (%s): %w", name, why, fs.ErrNotExist)
	}
	switch len(publishers) {
	case 0:
		return nil, fmt.Errorf("%s is published neither here nor in an upstream this repository verified (cairn sync fetches and verifies them): %w", name, fs.ErrNotExist)
	case 1:
		return publishers[0], nil
	}
	names := make([]string, len(publishers))
	for i, u := range publishers {
		names[i] = u.Name
	}
	return nil, &AmbiguousError{Name: name, Upstreams: names}
}

// ChooseUpstream applies the rule of servedBy for a reader that holds
// the upstream lines itself (plan's sources): given the names of the
// followed upstreams whose verified copies publish name (name is not
// internal to the repository that follows them), it returns the one
// that serves it, or an *AmbiguousError when there are several.
func ChooseUpstream(name string, publishers []string) (string, error) {
	ups := make([]*Upstream, len(publishers))
	for i, p := range publishers {
		ups[i] = &Upstream{Name: p}
	}
	u, err := servedBy(name, "", ups)
	if err != nil {
		return "", err
	}
	return u.Name, nil
}
