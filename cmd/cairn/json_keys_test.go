package main

import (
	"go/ast"
	"go/types"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// snakeCase is the one case of every key cairn prints with --json.
var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestJSONKeysOneCase: every value a command prints with --json (each
// argument of printJSON, each changed.json, each json.Encoder's Encode
// in this package) has snake_case keys, walked through its type: struct
// tags (a field with no tag prints its Go name, which fails), embedded
// structs, pointers, slices, maps, and map literals' keys. A new command
// that prints a type with a camelCase or untagged field fails here.
func TestJSONKeysOneCase(t *testing.T) {
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedTypes | packages.NeedTypesInfo | packages.NeedSyntax}
	pkgs, err := packages.Load(cfg, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || len(pkgs[0].Errors) > 0 {
		t.Fatalf("loading cmd/cairn: %v", pkgs[0].Errors)
	}
	p := pkgs[0]
	w := &keyWalker{t: t, seen: map[types.Type]bool{}}
	printed := 0
	check := func(e ast.Expr) {
		printed++
		w.where = p.Fset.Position(e.Pos()).String()
		if lit, ok := ast.Unparen(e).(*ast.CompositeLit); ok {
			if _, isMap := p.TypesInfo.TypeOf(lit).Underlying().(*types.Map); isMap {
				for _, el := range lit.Elts {
					kv := el.(*ast.KeyValueExpr)
					if bl, ok := kv.Key.(*ast.BasicLit); ok {
						k, _ := strconv.Unquote(bl.Value)
						w.key(k, "map literal")
					}
					w.walk(p.TypesInfo.TypeOf(kv.Value), "map literal")
				}
				return
			}
		}
		w.walk(p.TypesInfo.TypeOf(e), "")
	}
	for _, f := range p.Syntax {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					if fn.Name == "printJSON" && len(n.Args) == 2 {
						check(n.Args[1])
					}
				case *ast.SelectorExpr:
					if fn.Sel.Name == "Encode" && len(n.Args) == 1 && strings.HasSuffix(types.TypeString(p.TypesInfo.TypeOf(fn.X), nil), "encoding/json.Encoder") {
						check(n.Args[0])
					}
				}
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok && id.Name == "json" {
					if obj, ok := p.TypesInfo.Uses[id].(*types.Var); ok && obj.IsField() {
						check(n.Value)
					}
				}
			}
			return true
		})
	}
	if printed < 10 {
		t.Fatalf("found only %d values printed as JSON: is the walk still finding printJSON?", printed)
	}
}

type keyWalker struct {
	t     *testing.T
	where string
	seen  map[types.Type]bool
}

func (w *keyWalker) key(k, in string) {
	if !snakeCase.MatchString(k) {
		w.t.Errorf("%s: key %q (in %s) is not snake_case", w.where, k, in)
	}
}

var (
	jsonMarshaler = types.NewInterfaceType([]*types.Func{types.NewFunc(0, nil, "MarshalJSON", types.NewSignatureType(nil, nil, nil, nil, types.NewTuple(types.NewVar(0, nil, "", types.NewSlice(types.Typ[types.Byte])), types.NewVar(0, nil, "", types.Universe.Lookup("error").Type())), false))}, nil).Complete()
	textMarshaler = types.NewInterfaceType([]*types.Func{types.NewFunc(0, nil, "MarshalText", types.NewSignatureType(nil, nil, nil, nil, types.NewTuple(types.NewVar(0, nil, "", types.NewSlice(types.Typ[types.Byte])), types.NewVar(0, nil, "", types.Universe.Lookup("error").Type())), false))}, nil).Complete()
)

// walk checks the keys of the JSON that values of type t print as.
func (w *keyWalker) walk(t types.Type, in string) {
	if t == nil || w.seen[t] {
		return
	}
	w.seen[t] = true
	if named, ok := t.(*types.Named); ok {
		in = named.String()
	}
	if types.Implements(t, jsonMarshaler) || types.Implements(types.NewPointer(t), jsonMarshaler) ||
		types.Implements(t, textMarshaler) || types.Implements(types.NewPointer(t), textMarshaler) {
		return // prints as a value, not keys
	}
	switch u := t.Underlying().(type) {
	case *types.Pointer:
		w.walk(u.Elem(), in)
	case *types.Slice:
		w.walk(u.Elem(), in)
	case *types.Array:
		w.walk(u.Elem(), in)
	case *types.Map:
		w.walk(u.Elem(), in)
	case *types.Struct:
		for i := range u.NumFields() {
			f := u.Field(i)
			tag := reflect.StructTag(u.Tag(i)).Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if tag == "-" || (!f.Exported() && !f.Embedded()) {
				continue
			}
			if f.Embedded() && name == "" {
				w.walk(f.Type(), in) // its fields are promoted
				continue
			}
			if name == "" {
				name = f.Name()
			}
			w.key(name, in+"."+f.Name())
			w.walk(f.Type(), in)
		}
	}
}
