package index

import (
	"context"
	"time"
)

// CheckLine checks the commits from old (a head of the line introduced
// by introduction, already verified) to new against the rules, as
// VerifyLine would, without remembering anything and without a log:
// the commits a plain git host serves past its signed checkpoint, which
// a client judges but does not follow yet. A history from new that does
// not pass through old is a *ForkError.
func (r *Repo) CheckLine(ctx context.Context, introduction, old, new string) (*VerifyResult, error) {
	start := time.Now()
	res := &VerifyResult{From: old, Head: new}
	st := NewOverlay(nil)
	if old != "" {
		var err error
		if st, err = r.State(ctx, old); err != nil {
			return nil, err
		}
	}
	if err := r.replay(ctx, res, st, &replayOptions{introduction: introduction, verified: old, mark: -1}); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}
