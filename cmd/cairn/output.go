package main

import (
	"encoding/json"
	"fmt"
	"io"

	"cairn.dev/cairn/internal/index"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printAdded prints the record ids and the commit an operation added.
func printAdded(w io.Writer, a *index.Added) {
	for _, id := range a.Records {
		fmt.Fprintf(w, "record %s\n", id)
	}
	fmt.Fprintf(w, "commit %s\n", a.Commit)
}
