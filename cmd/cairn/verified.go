package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/index"
)

// verifyRead verifies what is new on the repository's main since its last
// verified head before a command reads it (index.Repo.Verified), and
// refuses a history that breaks a rule or was rewritten. It only warns
// when the verified head cannot be remembered.
func verifyRead(cmd *cobra.Command, r *index.Repo) error {
	res, err := r.Verified(cmd.Context())
	if err != nil {
		return fmt.Errorf("the index does not verify, so nothing is read from it: %w", err)
	}
	warnUnsaved(cmd.ErrOrStderr(), res)
	return nil
}

// warnUnsaved says so when a verification could not remember its head.
func warnUnsaved(w io.Writer, res *index.VerifyResult) {
	if res.Unsaved != nil {
		fmt.Fprintf(w, "cairn: warning: the verified head could not be remembered (%v): the next command verifies these commits again\n", res.Unsaved)
	}
	if n := len(res.DroppedLocal); n > 0 {
		fmt.Fprintf(w, "cairn: note: main no longer holds %d commit(s) made in this clone that never reached a remote (%.12s…, dropped by a reset or a rebase): verified again from the introduction\n", n, res.DroppedLocal[0])
	}
	if res.LogErr != nil {
		fmt.Fprintf(w, "cairn: warning: the transparency log could not be kept (%v): the next verification brings it to the verified head\n", res.LogErr)
	}
}
