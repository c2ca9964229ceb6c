package layering

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// gitDoor is the one package that runs git (issue 13: "gitx is the only
// package that runs git").
const gitDoor = "internal/gitx"

// mayRunGit names the packages (module-relative directories) that run
// git themselves besides the door, each with why: the benchmarks measure
// plain git's floor, the baseline cairn is compared against, so they run
// the git a user would, not cairn's door to it.
var mayRunGit = map[string]string{
	"bench/cairnbench":         "measures plain git's floor",
	"internal/index/indextest": "tests tamper with an index as an attacker would, with git behind cairn's back",
}

// gitRunners returns every call, in the non-test Go files under root
// outside the door and mayRunGit, of os/exec's Command or CommandContext
// whose program is "git": a string literal or a constant declared as one.
func gitRunners(root string) ([]string, error) {
	byDir := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for dir, files := range byDir {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return nil, err
		}
		rel = filepath.ToSlash(rel)
		if rel == gitDoor {
			continue
		}
		if _, ok := mayRunGit[rel]; ok {
			continue
		}
		found, err := gitRunnersIn(root, files)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	sort.Strings(out)
	return out, nil
}

// gitRunnersIn checks the files of one package: constants are the
// package's (any file, any scope), the exec package is however each file
// names os/exec.
func gitRunnersIn(root string, files []string) ([]string, error) {
	fset := token.NewFileSet()
	var parsed []*ast.File
	consts := map[string]string{}
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		parsed = append(parsed, f)
		ast.Inspect(f, func(n ast.Node) bool {
			g, ok := n.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				return true
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if i < len(vs.Values) {
						if v, ok := stringLit(vs.Values[i]); ok {
							consts[id.Name] = v
						}
					}
				}
			}
			return true
		})
	}
	var out []string
	for _, f := range parsed {
		execName := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "os/exec" {
				execName = "exec"
				if imp.Name != nil {
					execName = imp.Name.Name
				}
			}
		}
		if execName == "" || execName == "_" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || pkg.Name != execName {
				return true
			}
			arg := -1
			switch sel.Sel.Name {
			case "Command":
				arg = 0
			case "CommandContext":
				arg = 1
			}
			if arg < 0 || len(call.Args) <= arg {
				return true
			}
			prog, ok := stringLit(call.Args[arg])
			if id, isIdent := call.Args[arg].(*ast.Ident); isIdent {
				prog, ok = consts[id.Name]
			}
			if ok && prog == "git" {
				pos := fset.Position(call.Pos())
				rel, _ := filepath.Rel(root, pos.Filename)
				out = append(out, fmt.Sprintf("%s:%d runs git itself (exec.%s): only %s runs git; give it a named verb there", filepath.ToSlash(rel), pos.Line, sel.Sel.Name, gitDoor))
			}
			return true
		})
	}
	return out, nil
}

// stringLit returns the value of a string literal.
func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(lit.Value)
	return v, err == nil
}

// No package but gitx runs git: the module's sources keep the door.
func TestOnlyGitxRunsGit(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no module at %s: %v", root, err)
	}
	found, err := gitRunners(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range found {
		t.Error(v)
	}
}

// The source check catches git run by a literal, a constant, or a renamed
// os/exec, in CommandContext or Command; it leaves other programs, test
// files, testdata and the door alone.
func TestGitRunnersCaught(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example\n")
	write("internal/server/run.go", `package server

import (
	"context"
	"os/exec"
)

func a(ctx context.Context) { exec.CommandContext(ctx, "git", "status") }
func b() { exec.Command("go", "version"); exec.Command("gitk") }
`)
	write("internal/server/consts.go", `package server

import run "os/exec"

const gitProgram = "git"

func c() { run.Command(gitProgram, "log") }
`)
	write("cmd/tool/main.go", `package main

import "os/exec"

func main() {
	const g = "git"
	exec.Command(g, "push")
}
`)
	write("cmd/tool/main_test.go", `package main

import "os/exec"

func helper() { exec.Command("git", "init") }
`)
	write("cmd/tool/testdata/x.go", `package x

import "os/exec"

func y() { exec.Command("git") }
`)
	write("internal/gitx/gitx.go", `package gitx

import "os/exec"

func run() { exec.Command("git", "init") }
`)
	found, err := gitRunners(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cmd/tool/main.go:7 runs git itself (exec.Command)",
		"internal/server/consts.go:7 runs git itself (exec.Command)",
		"internal/server/run.go:8 runs git itself (exec.CommandContext)",
	}
	if len(found) != len(want) {
		t.Fatalf("found %q, want %d violations %q", found, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(found[i], want[i]) {
			t.Errorf("violation %d: %q, want it to start %q", i, found[i], want[i])
		}
	}
}
