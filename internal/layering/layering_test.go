package layering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "cairn.dev/cairn/"

// Special entries of the table.
const (
	anyBelowCmd = "<any internal package>" // fixtures that start servers
	anything    = "<anything>"             // the CLI and the benchmarks
)

// allowed is the layering: for each of the module's packages (its path
// without the module's), the module's packages it may import. Only
// non-test files count, so fixture packages (…test) are checked too, and
// packages outside the module (the standard library, third parties) are
// not in it. DESIGN.md's "Parts" is the source: change both together.
var allowed = map[string][]string{
	// The bottom: storage and transport, keys, git.
	"internal/safefile":                {},
	"internal/transport":               {},
	"internal/transport/transporttest": {"internal/transport"},
	"internal/keys":                    {"internal/safefile"},
	"internal/gitx":                    {"internal/safefile", "internal/transport"},
	"internal/blob":                    {"internal/transport", "internal/safefile"},
	"internal/blob/blobtest":           {"internal/blob"},

	// Formats.
	"internal/record":     {"internal/blob", "internal/keys"},
	"internal/descriptor": {"internal/blob", "internal/record"},
	"internal/snapshot":   {"internal/blob", "internal/descriptor", "internal/record"},
	"internal/checkpoint": {"internal/keys", "internal/translog"},
	// OSV records and osv-scanner reports, read into vulnerable results.
	"internal/osv":         {"internal/record"},
	"internal/osv/osvtest": {},
	// The transparency log: leaves, tiles, proofs, the map (no index, no git).
	"internal/translog":            {"internal/safefile"},
	"internal/witness":             {"internal/keys", "internal/safefile"},
	"internal/witness/witnesstest": {"internal/keys"},
	"internal/witness/audit":       {"internal/index", "internal/checkpoint", "internal/translog", "internal/witness"},

	// The index: the only reader of the layout, the only caller of gitx.
	// It reads policy only to parse a policy record's text (rule
	// policy-chain: a version that does not compile never enters); policy
	// reads no index, so the two stay a line.
	"internal/index/layout": {"internal/blob", "internal/descriptor", "internal/record"},
	"internal/index": {"internal/index/layout", "internal/blob", "internal/checkpoint", "internal/descriptor",
		"internal/gitx", "internal/keys", "internal/policy", "internal/record", "internal/safefile", "internal/snapshot", "internal/translog"},
	"internal/author": {"internal/index", "internal/blob", "internal/descriptor", "internal/keys",
		"internal/osv", "internal/record", "internal/safefile", "internal/snapshot"},
	"internal/index/indextest": {"internal/index", "internal/index/layout", "internal/author", "internal/keys", "internal/record",
		"internal/blob", "internal/descriptor"},

	// The domain: none of it runs git; policy reads no index.
	"internal/policy": {"internal/blob", "internal/descriptor", "internal/record"},
	// Go modules: zips, h1 hashes, a GOPROXY and a checksum database read; no index, no serving.
	"internal/gomod": {"internal/blob", "internal/descriptor", "internal/safefile"},
	// The light client: an index read with proofs, no git.
	"internal/light": {"internal/index", "internal/checkpoint", "internal/keys", "internal/record",
		"internal/safefile", "internal/translog", "internal/transport", "internal/witness"},
	"internal/remote": {"internal/index", "internal/author", "internal/blob", "internal/checkpoint", "internal/witness",
		"internal/descriptor", "internal/keys", "internal/record", "internal/safefile", "internal/transport"},
	// A policy's subject read from the index: one builder for clients and the server.
	"internal/verdict": {"internal/index", "internal/policy"},
	"internal/plan": {"internal/index", "internal/policy", "internal/verdict", "internal/remote", "internal/light", "internal/witness", "internal/blob",
		"internal/checkpoint", "internal/descriptor", "internal/record", "internal/safefile", "internal/snapshot"},
	"internal/proof": {"internal/index", "internal/remote", "internal/light", "internal/checkpoint", "internal/record",
		"internal/translog", "internal/witness"},
	"internal/install": {"internal/blob", "internal/descriptor", "internal/plan", "internal/safefile"},
	// A lock's SBOM (CycloneDX).
	"internal/sbom": {"internal/plan", "internal/blob", "internal/descriptor", "internal/record"},
	// OpenVEX documents of a version's records (the CLI and the server).
	"internal/vex": {"internal/index", "internal/descriptor", "internal/record"},
	// Evidence bundles: a light client's reads of a locked project, kept and replayed
	// (subject documents in translog's compact encoding).
	"internal/evidence": {"internal/plan", "internal/policy", "internal/proof", "internal/light", "internal/index",
		"internal/blob", "internal/checkpoint", "internal/keys", "internal/record", "internal/remote", "internal/transport", "internal/witness", "internal/sbom",
		"internal/translog"},
	"internal/server": {"internal/index", "internal/author", "internal/blob", "internal/checkpoint", "internal/translog", "internal/witness",
		"internal/descriptor", "internal/keys", "internal/record", "internal/safefile", "internal/transport",
		"internal/vex", "internal/policy", "internal/verdict", "internal/gomod", "internal/web"},
	// Pages for people: read through what the server keeps, no git, no serving of their own.
	"internal/web": {"internal/index", "internal/policy", "internal/verdict", "internal/checkpoint", "internal/blob", "internal/descriptor", "internal/record"},
	"internal/certifier": {"internal/index", "internal/author", "internal/remote", "internal/blob",
		"internal/descriptor", "internal/keys", "internal/osv", "internal/record", "internal/safefile", "internal/transport"},
	"internal/server/servertest": {anyBelowCmd},

	// This test.
	"internal/layering": {},

	// The top.
	"cmd/cairn":        {anything},
	"bench/cairnbench": {anything},
	"bench/gen":        {anything},
}

// importedOnlyBy names packages that only the listed packages may
// import, whatever the importer's layer allows otherwise (wildcards
// included): the index's layout is the index's, and the benchmarks'
// generator writes an index as the index would.
var importedOnlyBy = map[string][]string{
	"internal/index/layout": {"internal/index", "internal/index/indextest", "bench/cairnbench", "bench/gen"},
	// gitx is the door to git, and the index its one caller (the
	// benchmarks' generator writes git objects as the index does).
	"internal/gitx": {"internal/index", "bench/gen"},
}

// A package's imports, as go list reports them.
type pkg struct {
	ImportPath string
	Imports    []string
}

// violations returns what breaks the layering in pkgs (the module's
// packages and their imports, full paths): a package the table does not
// place, and every import its layer does not allow.
func violations(table map[string][]string, pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		name, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		may, placed := table[name]
		if !placed {
			out = append(out, fmt.Sprintf("%s is in no layer: place it in the table of internal/layering/layering_test.go with the packages it may import", name))
			continue
		}
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if who, only := importedOnlyBy[dep]; ok && only && !slices.Contains(who, name) {
				out = append(out, fmt.Sprintf("forbidden import: %s imports %s, which only %s may import (importedOnlyBy in internal/layering/layering_test.go)", name, dep, strings.Join(who, ", ")))
				continue
			}
			if !ok || slices.Contains(may, anything) || slices.Contains(may, dep) {
				continue
			}
			if slices.Contains(may, anyBelowCmd) && strings.HasPrefix(dep, "internal/") {
				continue
			}
			list := strings.Join(may, ", ")
			if list == "" {
				list = "none of the module's packages"
			}
			out = append(out, fmt.Sprintf("forbidden import: %s imports %s; its layer may import only %s (the table in internal/layering/layering_test.go)", name, dep, list))
		}
	}
	sort.Strings(out)
	return out
}

// goList lists the module's packages and their imports (test files
// left out).
func goList(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "cairn.dev/cairn/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reading go list's output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages: is this the cairn module?", len(pkgs))
	}
	return pkgs
}

// The module's imports keep the layering.
func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list the packages")
	}
	for _, v := range violations(allowed, goList(t)) {
		t.Error(v)
	}
}

// The table is a layering: every name in it is a package of the table,
// and no package may import, directly or through others, itself.
func TestTableIsLayered(t *testing.T) {
	for name, may := range allowed {
		for _, dep := range may {
			if _, ok := allowed[dep]; !ok && dep != anything && dep != anyBelowCmd {
				t.Errorf("%s may import %s, which is not in the table", name, dep)
			}
		}
	}
	// Depth-first search for a cycle among the packages of fixed imports.
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var visit func(name string, path []string)
	visit = func(name string, path []string) {
		switch state[name] {
		case open:
			t.Errorf("the table has a cycle: %s", strings.Join(append(path, name), " → "))
			return
		case done:
			return
		}
		state[name] = open
		for _, dep := range allowed[name] {
			if _, ok := allowed[dep]; ok {
				visit(dep, append(path, name))
			}
		}
		state[name] = done
	}
	for name := range allowed {
		visit(name, nil)
	}
}

// The checker catches what it is for: an injected forbidden edge (blob
// importing keys again, policy importing index, server running git), a
// package in no layer, and an import of a fixture's wildcard that leaves
// the internal tree; and it lets the allowed graph pass.
func TestViolationsCaught(t *testing.T) {
	ok := []pkg{
		{"cairn.dev/cairn/internal/blob", []string{"io", "cairn.dev/cairn/internal/transport"}},
		{"cairn.dev/cairn/internal/policy", []string{"cairn.dev/cairn/internal/record", "github.com/google/cel-go/cel"}},
		{"cairn.dev/cairn/internal/server/servertest", []string{"cairn.dev/cairn/internal/server", "cairn.dev/cairn/internal/index/indextest"}},
		{"cairn.dev/cairn/cmd/cairn", []string{"cairn.dev/cairn/internal/server", "cairn.dev/cairn/internal/index"}},
		{"cairn.dev/cairn/bench/gen", []string{"cairn.dev/cairn/internal/gitx"}},
		{"cairn.dev/cairn/internal/index", []string{"cairn.dev/cairn/internal/index/layout"}},
		{"cairn.dev/cairn/bench/gen", []string{"cairn.dev/cairn/internal/index/layout"}},
	}
	if v := violations(allowed, ok); len(v) != 0 {
		t.Fatalf("the allowed graph fails: %q", v)
	}
	for _, c := range []struct {
		p    pkg
		want string
	}{
		{pkg{"cairn.dev/cairn/internal/blob", []string{"cairn.dev/cairn/internal/keys"}}, "forbidden import: internal/blob imports internal/keys"},
		{pkg{"cairn.dev/cairn/internal/policy", []string{"cairn.dev/cairn/internal/index"}}, "forbidden import: internal/policy imports internal/index"},
		{pkg{"cairn.dev/cairn/internal/server", []string{"cairn.dev/cairn/internal/gitx"}}, "forbidden import: internal/server imports internal/gitx"},
		{pkg{"cairn.dev/cairn/internal/safefile", []string{"cairn.dev/cairn/internal/keys"}}, "its layer may import only none of the module's packages"},
		{pkg{"cairn.dev/cairn/internal/server/servertest", []string{"cairn.dev/cairn/cmd/cairn"}}, "forbidden import: internal/server/servertest imports cmd/cairn"},
		{pkg{"cairn.dev/cairn/internal/tlog", nil}, "internal/tlog is in no layer"},
		{pkg{"cairn.dev/cairn/internal/remote", []string{"cairn.dev/cairn/internal/index/layout"}}, "forbidden import: internal/remote imports internal/index/layout, which only internal/index"},
		{pkg{"cairn.dev/cairn/cmd/cairn", []string{"cairn.dev/cairn/internal/index/layout"}}, "forbidden import: cmd/cairn imports internal/index/layout, which only"},
		{pkg{"cairn.dev/cairn/cmd/cairn", []string{"cairn.dev/cairn/internal/gitx"}}, "forbidden import: cmd/cairn imports internal/gitx, which only internal/index, bench/gen may import"},
		{pkg{"cairn.dev/cairn/internal/server/servertest", []string{"cairn.dev/cairn/internal/gitx"}}, "forbidden import: internal/server/servertest imports internal/gitx, which only"},
		{pkg{"cairn.dev/cairn/internal/server/servertest", []string{"cairn.dev/cairn/internal/index/layout"}}, "forbidden import: internal/server/servertest imports internal/index/layout"},
	} {
		v := violations(allowed, append(slices.Clone(ok), c.p))
		if len(v) != 1 || !strings.Contains(v[0], c.want) {
			t.Errorf("with %s importing %q: %q, want one violation saying %q", c.p.ImportPath, c.p.Imports, v, c.want)
		}
	}
}
