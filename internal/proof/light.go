package proof

import (
	"context"
	"fmt"

	"cairn.dev/cairn/internal/light"
)

// FromView makes the proof of record id (its full id) from what a light
// client proved of a server: the record's leaf, entry and bytes, and its
// inclusion path computed from the server's tiles, to the view's verified
// checkpoint with the witnesses' cosignatures it carries, and the
// checkpoint's map leaf the view proved. url names the
// server in Made.Source.
func FromView(ctx context.Context, v *light.View, url, id string) (*Made, error) {
	rec, err := v.Record(ctx, id)
	if err != nil {
		return nil, err
	}
	p, err := NewProof(rec.Text, rec.Content, rec.Index, rec.Proof, v.MapLeaf.Text, v.MapLeaf.Proof, rec.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("%s: record %s: %w", url, id, err)
	}
	return &Made{Proof: p, ID: id, Checkpoint: v.Checkpoint.Checkpoint, Source: "the server at " + url}, nil
}
