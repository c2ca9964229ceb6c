// Package verdict reads what a policy judges of a version from the index:
// its descriptor and every record about it, as a policy.Subject. It is
// the one builder of a Subject from the index, shared by the clients
// (internal/plan, internal/evidence) and the server (its policy gate),
// so that a server and its clients judge a version on the same records.
package verdict

import (
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/policy"
)

// Local names this repository's own records about a version that an
// upstream it follows publishes (an organisation's audit of an upstream
// version, kept under upstreams/UP/ of its own index).
type Local struct {
	Catalog    *index.Catalog // the following repository, at its verified head
	Repository string         // its name, as the policy names repositories
	Upstream   string         // the upstream's name in that repository
}

// Subject reads version of name at c (a catalog of the repository named
// repository, as the policy names it) and, when local is not nil, the
// records local keeps about it: the version's own records first, in the
// index's order, then the local ones. The subject's descriptor, and the
// records' artifact lists and predicates, may be the catalog's own
// (index.Catalog.VersionShared): a policy reads them, never changes them.
func Subject(c *index.Catalog, repository, name, version string, local *Local) (*policy.Subject, error) {
	d, ref, recs, err := c.VersionShared(name, version)
	if err != nil {
		return nil, err
	}
	sub := &policy.Subject{Descriptor: d, Ref: ref, Records: Records(recs, repository)}
	if local != nil {
		own, err := local.Catalog.UpstreamRecords(local.Upstream, name, version)
		if err != nil {
			return nil, err
		}
		sub.Records = append(sub.Records, Records(own, local.Repository)...)
	}
	return sub, nil
}

// Records is a version's records as the index shows them, as a policy
// reads them: repository names the repository whose root granted their
// holders (as the policy names it). A record is active while no revoke
// or supersede record ends it; a record whose key was revoked after it
// signed stays active (the index refuses what a key signs after its
// revocation).
func Records(views []index.RecordView, repository string) []policy.Record {
	out := make([]policy.Record, 0, len(views))
	for i := range views {
		rv := &views[i]
		if rv.Record == nil {
			continue
		}
		out = append(out, policy.Record{
			ID: rv.ID, Kind: rv.Record.Kind, Issuer: rv.Issuer, Holder: rv.Holder, Repository: repository,
			Active: rv.Status.Active(), Status: rv.Status.String(), EndedBy: rv.EndedBy,
			Artifacts: rv.Artifacts, Predicate: rv.Record.Predicate,
		})
	}
	return out
}
