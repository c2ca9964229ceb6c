package server

import (
	"net/http"

	"cairn.dev/cairn/internal/checkpoint"
)

// checkpoint serves GET /api/v1/checkpoint: the signed checkpoint, or,
// without a key, the answer checkpoint.NoneHeader describes.
func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	if s.opts.CheckpointKey == nil {
		w.Header().Set(checkpoint.NoneHeader, checkpoint.None)
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusNotFound, "this server signs no checkpoints: it was started without --checkpoint-key, so clients cannot tell it from a frozen mirror; pull from it only with a remote added with --insecure-no-checkpoint, or ask its operator to serve with --checkpoint-key")
		return
	}
	s.checkpointGet(w, r)
}
