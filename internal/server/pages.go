package server

import (
	"context"
	"fmt"
	"time"

	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/web"
)

// pageSource is what the pages (internal/web) read: main's verified
// head, the package listing GET /api/v1/packages keeps, the transparency
// log as the light reads serve it (its entries and files, kept in
// memory), the latest checkpoint and the server's policy.
func (s *Server) pageSource() web.Source {
	src := web.Source{
		Repo:       s.repo,
		Repository: PolicyRepository,
		Logger:     s.log,
		Verified: func(ctx context.Context) (string, error) {
			res, err := s.verify(ctx)
			if err != nil {
				return "", err
			}
			return res.Head, nil
		},
		Packages: s.packages,
		Leaves:   s.pageLeaves,
		Subject:  s.pageSubject,
	}
	if s.ckpt != nil {
		src.CheckpointKey = keys.ID(s.opts.CheckpointKey.Public())
		src.Checkpoint = func(ctx context.Context) ([]byte, error) {
			_, note, _, err := s.signed(ctx)
			return note, err
		}
		for _, w := range s.opts.Witnesses {
			src.Witnesses = append(src.Witnesses, web.Witness{URL: w.URL, VKey: w.VKey})
		}
	}
	if s.opts.Replica != nil {
		src.Checkpoint = func(ctx context.Context) ([]byte, error) {
			note, _, _, err := s.followedNow()
			return note, err
		}
	}
	if s.gate != nil {
		src.Policy = func(ctx context.Context) (*policy.Policy, string, error) {
			key, err := s.blobKey(ctx)
			if err != nil {
				return nil, "", err
			}
			pol, err := s.policyAt(ctx, key)
			return pol, s.gate.label(), err
		}
	}
	return src
}

// pageLeaves returns the leaves from (inclusive) to to (exclusive) of the
// served log, clipped to its size (from < 0: counted back from its end;
// to < 0: its end), with the bytes of
// each file when data is set, and the log's size.
func (s *Server) pageLeaves(ctx context.Context, from, to int64, data bool) ([]web.Leaf, int64, error) {
	v, err := s.served(ctx)
	if err != nil {
		return nil, 0, err
	}
	if from < 0 {
		from = max(v.Size+from, 0)
	}
	if to < 0 || to > v.Size {
		to = v.Size
	}
	var out []web.Leaf
	for i := max(from, 0); i < to; i++ {
		l, err := s.pageLeaf(ctx, v, i, data)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, l)
	}
	return out, v.Size, nil
}

// pageSubject returns the leaves of subject's files in the served log,
// in log order, without their bytes.
func (s *Server) pageSubject(ctx context.Context, subject string) ([]web.Leaf, error) {
	v, err := s.served(ctx)
	if err != nil {
		return nil, err
	}
	_, leaves, _ := v.mapAt.Map.Get(subject)
	out := make([]web.Leaf, 0, len(leaves))
	for _, i := range leaves {
		l, err := s.pageLeaf(ctx, v, i, false)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// pageLeaf reads leaf i of v: a file's entry (and its bytes, if data),
// or a map leaf, which closes a commit.
func (s *Server) pageLeaf(ctx context.Context, v logView, i int64, data bool) (web.Leaf, error) {
	text, err := s.entry(v, i)
	if err != nil {
		return web.Leaf{}, err
	}
	if translog.IsMapEntry(text) {
		me, err := translog.ParseMapEntry(text)
		if err != nil {
			return web.Leaf{}, fmt.Errorf("leaf %d: %w", i, err)
		}
		return web.Leaf{Index: i, Commit: me.Commit, Time: time.Unix(me.Time, 0).UTC(), Map: true}, nil
	}
	e, err := translog.ParseEntry(text)
	if err != nil {
		return web.Leaf{}, fmt.Errorf("leaf %d: %w", i, err)
	}
	l := web.Leaf{Index: i, Commit: e.Commit, Time: time.Unix(e.Time, 0).UTC(), Path: e.Path}
	if data {
		f, err := s.logFile(ctx, v, i)
		if err != nil {
			return web.Leaf{}, err
		}
		l.Data = f.Content
	}
	return l, nil
}
