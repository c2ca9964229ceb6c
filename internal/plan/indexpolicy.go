package plan

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"cairn.dev/cairn/internal/record"
)

// IndexPolicyPrefix begins a reference to a policy of the index rather
// than a file: "index:NAME", as cairn.yaml's policy or a --policy flag
// gives it.
const IndexPolicyPrefix = "index:"

// IndexPolicy returns the name of the index's policy that ref names
// ("index:NAME"), and whether it names one.
func IndexPolicy(ref string) (name string, ok bool) {
	return strings.CutPrefix(ref, IndexPolicyPrefix)
}

// checkPolicyRef checks a policy reference: a file, or index:NAME with a
// policy's name.
func checkPolicyRef(ref string) error {
	if name, ok := IndexPolicy(ref); ok {
		return record.CheckPolicyName(name)
	}
	return nil
}

// readPolicy reads the policy ref names, with the pin a lock records of
// it: a file (its path as given, read by read), or index:NAME — the version in force
// at the verified head of the project's first repository (srcs[0]: a
// replica's head, or what a light client proved against the server's
// checkpoint), pinned by its text's sha256 and its record.
func readPolicy(ref string, read func(string) ([]byte, error), srcs Sources) ([]byte, *PolicyPin, error) {
	name, inIndex := IndexPolicy(ref)
	if !inIndex {
		data, err := read(ref)
		if err != nil {
			return nil, nil, err
		}
		return data, &PolicyPin{File: filepath.Base(ref), SHA256: digestOf(data)}, nil
	}
	if err := record.CheckPolicyName(name); err != nil {
		return nil, nil, err
	}
	if len(srcs) == 0 || srcs[0].Catalog == nil {
		return nil, nil, errors.New(ref + ": no repository to read the policy from")
	}
	s := srcs[0]
	text, v, err := s.Catalog.PolicyText(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s, in repository %s: %w", ref, s.Name, err)
	}
	return text, &PolicyPin{File: ref, SHA256: v.Digest, Record: v.RecordID}, nil
}
