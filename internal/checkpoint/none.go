package checkpoint

// NoneHeader and None are how a server that signs no checkpoints (cairn
// serve started without a checkpoint key) says so. Its
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
// proxy, that does not know the endpoint) is not this case. The server
// sends and the client reads these two constants, so they cannot drift.
const (
	NoneHeader = "Cairn-Checkpoint"
	None       = "none"
)
