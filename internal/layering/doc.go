// Package layering keeps cairn's import graph as DESIGN.md's "Parts"
// draws it. Its test holds the allowed graph, written down once as one
// table, and fails when a package imports what its layer may not, or when
// a package is in no layer: a new package is placed deliberately, by a
// line in the table.
//
// The package has no code: its test is the whole of it.
package layering
