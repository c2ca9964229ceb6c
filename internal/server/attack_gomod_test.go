package server

import (
	"strings"
	"testing"
)

// Attack: a Go descriptor pushed over git whose zip and go.mod are
// another module's (made by golang.org/x/mod/zip for evil.example/x, so
// every file lies outside example.com/greet@v1.0.3/, and whose go.mod
// declares module evil.example/x), with h1 hashes the pusher computed over
// those same bytes. The hashes match; the go command would refuse the
// files ("module declares its path as ..."). The push is refused, naming
// the check (gomod.CheckFiles), and main does not move.
func TestAttackPushGoZipOfAnotherModule(t *testing.T) {
	g := newGoFixture(t, "")
	const path = "example.com/greet"
	other := buildGoModule(t, goModuleDir(t, "evil.example/x", "evil"), "evil.example/x", "1.0.3")
	before, after, out, err := g.pushGo(path, "1.0.3", other) // h1s are the bytes' own
	if err == nil || after != before {
		resp, body := g.do("GET", "/go/example.com/greet/@v/v1.0.3.mod", nil, nil)
		t.Fatalf("a Go module whose zip is evil.example/x@v1.0.3's and whose go.mod declares evil.example/x was accepted at push as %s@1.0.3 (push: %v)\nGET .mod: %d %q\n%s", path, err, resp.StatusCode, body, out)
	}
	if !strings.Contains(out, `go.mod declares module "evil.example/x", not example.com/greet`) {
		t.Errorf("the push was refused without saying why:\n%s", out)
	}
}
