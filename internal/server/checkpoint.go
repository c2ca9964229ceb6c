package server

import "net/http"

// CheckpointHeader and CheckpointNone are how a server that signs no
// checkpoints (started without a checkpoint key) says so. Its
// GET /api/v1/checkpoint answers
//
//	HTTP/1.1 404 Not Found
//	Cairn-Checkpoint: none
//	Content-Type: text/plain; charset=utf-8
//
//	this server signs no checkpoints: it was started without --checkpoint-key …
//
// A client matches on the header (never on the body, which is for
// people) to tell "this server signs no checkpoints" apart from "this
// server's checkpoint is wrong or missing": any other answer without a
// signed checkpoint (a 404 without the header is another server, or a
// proxy, that does not know the endpoint) is not this case.
const (
	CheckpointHeader = "Cairn-Checkpoint"
	CheckpointNone   = "none"
)

// checkpoint serves GET /api/v1/checkpoint: the signed checkpoint, or,
// without a key, the answer CheckpointHeader describes.
func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	if s.opts.CheckpointKey == nil {
		w.Header().Set(CheckpointHeader, CheckpointNone)
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusNotFound, "this server signs no checkpoints: it was started without --checkpoint-key, so clients cannot tell it from a frozen mirror; pull from it only with a remote added with --insecure-no-checkpoint, or ask its operator to serve with --checkpoint-key")
		return
	}
	s.checkpointGet(w, r)
}
