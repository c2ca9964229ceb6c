package policy

import (
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/record"
)

// StatusWords are the words a record's status reads as, the index's
// (index.Status's display words; a test holds the two together).
var StatusWords = []string{"active", "revoked", "superseded", "issuer key revoked"}

// fieldWords are the fields of CEL's types that hold one of a few words,
// and those words ("" where the field may be empty): a condition that
// compares such a field with any other word is refused when the policy
// loads. `record.severity == "hgh"` is true of no record, so a forbid
// rule with it forbade nothing, and `record.result == "PASS"` failed
// every tested record; a misspelt word is the same mistake as a misspelt
// issuer, and is refused as one is.
var fieldWords = map[string]map[string][]string{
	"policy.celRecord": {
		"kind":     kindWords(),
		"status":   StatusWords,
		"result":   {"PASSED", "WARNED", "FAILED", ""},
		"severity": severityWords(),
	},
	"policy.celVuln":     {"severity": severityWords()},
	"policy.celArtifact": {"kind": descriptor.Kinds},
}

// wordHints say more of a field than its words do.
var wordHints = map[string]string{
	"severity": ` (cairn's bands, lower case, "" when a record names no vulnerability; record.score holds the severity as the record gives it, a CVSS score or a word)`,
	"result":   ` (a tested record's result as in-toto writes it, upper case; "" for other records)`,
}

func kindWords() []string {
	var w []string
	for _, k := range record.Kinds {
		w = append(w, string(k))
	}
	return w
}

func severityWords() []string {
	var w []string
	for s := record.SeverityNone; s <= record.SeverityCritical; s++ {
		w = append(w, s.String())
	}
	return append(w, "")
}

// checkWords refuses a comparison (==, !=, in) of a field that holds one
// of a few words with a string literal that is none of them.
func checkWords(checked *ast.AST) error {
	var errs []string
	for _, call := range ast.MatchDescendants(ast.NavigateAST(checked), ast.KindMatcher(ast.CallKind)) {
		c := call.AsCall()
		args := c.Args()
		if len(args) != 2 {
			continue
		}
		switch c.FunctionName() {
		case "_==_", "_!=_":
			errs = append(errs, compared(checked, args[0], args[1])...)
			errs = append(errs, compared(checked, args[1], args[0])...)
		case "@in":
			if args[1].Kind() == ast.ListKind {
				for _, e := range args[1].AsList().Elements() {
					errs = append(errs, compared(checked, args[0], e)...)
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// compared checks a literal compared with a field: nothing when field is
// not a select of a field with words, or lit not a string literal.
func compared(checked *ast.AST, field, lit ast.Expr) []string {
	if field.Kind() != ast.SelectKind || lit.Kind() != ast.LiteralKind {
		return nil
	}
	s, ok := lit.AsLiteral().Value().(string)
	if !ok || lit.AsLiteral().Type() != types.StringType {
		return nil
	}
	sel := field.AsSelect()
	typ := checked.GetType(sel.Operand().ID())
	if typ == nil {
		return nil
	}
	words, ok := fieldWords[typ.TypeName()][sel.FieldName()]
	if !ok || slices.Contains(words, s) {
		return nil
	}
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, fmt.Sprintf("%q", w))
	}
	name := sel.FieldName()
	if sel.Operand().Kind() == ast.IdentKind {
		name = sel.Operand().AsIdent() + "." + name
	}
	return []string{fmt.Sprintf("%s is never %q: it is one of %s%s", name, s, strings.Join(quoted, ", "), wordHints[sel.FieldName()])}
}
