package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
)

// A long pull is fetched in slices and verified as it arrives: the
// server lists commits of its history at regular intervals (GET
// /api/v1/slices), and the pull fetches the history up to each in turn,
// verifying the slice before while the next one arrives, each from the
// head verified before it exactly as an incremental pull verifies. The
// list is trusted for nothing but where to cut: a commit outside the
// history is refused (*SliceError) as soon as its slice is verified, and
// the remote's ref and verified head move only once the whole history to
// the checkpoint's head has passed. A pull cut short leaves them where
// they were; what was verified of the slices is not kept.

// ErrSlice is what a *SliceError is.
var ErrSlice = errors.New("a slice outside the served history")

// SliceError is a security error: the commits a server listed to cut its
// history at (GET /api/v1/slices) are not one history: Commit does not
// descend from After, the head verified before it. Nothing was kept: the
// local copy stays at Verified.
type SliceError struct {
	Remote   string // the line, as messages call it
	URL      string
	Commit   string // the commit listed, or the head served after the last one
	After    string // the commit verified before it
	Verified string // the head this copy stays at ("" if none yet)
}

func (e *SliceError) Error() string {
	stays := "this copy stays at " + e.Verified
	if e.Verified == "" {
		stays = "nothing of it was kept"
	}
	return fmt.Sprintf("SECURITY ERROR: %s (%s) cut its history at commits that are not one history: %s does not descend from %s, which came before it in the server's list (GET /api/v1/slices) or was verified from it before: the server lists commits outside the history it serves; %s",
		e.Remote, e.URL, e.Commit, e.After, stays)
}

// Unwrap makes a *SliceError an ErrSlice.
func (e *SliceError) Unwrap() error { return ErrSlice }

// maxSliceList bounds the answer of GET /api/v1/slices: 100,000 commit
// ids of SHA-256 (a hundred million commits, a slice every 1,024).
const maxSliceList = 100_000 * 65

// getSlices asks the server where to cut the history from from to head
// (commits the server signed a checkpoint of): the commits it lists, in
// order. Any failure is no list: the pull fetches the history whole.
func getSlices(ctx context.Context, rm *Remote, o Options, from, head string) []string {
	u := rm.URL + "/api/v1/slices?head=" + url.QueryEscape(head)
	if from != "" {
		u += "&from=" + url.QueryEscape(from)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil
	}
	resp, err := o.client().Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSliceList+1))
	if err != nil || len(body) > maxSliceList {
		return nil
	}
	ids := strings.Fields(string(body))
	for _, id := range ids {
		if !index.IsCommitID(id) {
			return nil
		}
	}
	return ids
}

// fetched is the ref that holds what a sliced pull fetched until it is
// verified: the head served, and each slice before it.
func (rm *Remote) fetched(r *index.Repo) string {
	return strings.Replace(rm.incoming(r).Ref, "/incoming/", "/fetched/", 1)
}

// pickSlices chooses where to cut among the commits the server listed:
// at m places evenly spread, (2k+1)/2m of the way, so that the first
// slice, whose fetch nothing overlaps, and the last, whose verification
// nothing overlaps, are half the size of those between. Each cut costs
// a request, a pack and a verification begun and committed of its own
// (on a 100k-record index, about half a second of CPU, mostly git
// reading the state the slice starts from), and what it saves is the
// CPU a fetch leaves idle: on two cores one cut, at the middle, pays;
// more cores verify faster and leave more idle, so up to four.
func pickSlices(list []string) []string {
	m := sliceCuts
	var picks []string
	for k := 0; k < m; k++ {
		id := list[(2*k+1)*len(list)/(2*m)]
		if len(picks) == 0 || picks[len(picks)-1] != id {
			picks = append(picks, id)
		}
	}
	return picks
}

// sliceCuts is how many cuts pickSlices makes (a variable so that tests
// can cut more than this machine's cores would).
var sliceCuts = min(4, max(1, runtime.GOMAXPROCS(0)/2))

// sliced is what fetchSliced did.
type sliced struct {
	last    string // the last slice verified ("" = none: the pull was not sliced)
	served  string // the head the server served, fetched and on in.Ref
	commits int    // commits verified in the slices
	records int
	// undo puts back the refs the slices moved (in.Ref and the fetched
	// pin), for a pull refused after them: they name what the server
	// sent, whose objects no one checked connected beyond what the
	// verification read, and nothing in the repository may name an
	// object it lacks (git gc, fsck, the git door).
	undo func()
}

// fetchSliced fetches a cairn server's history up to the head it serves
// in slices (see getSlices), verifying each on the incoming line in
// while the next one is fetched, and leaves in.Ref at the served head,
// fetched but not verified past the last slice. in's verified head must
// be the line's (or none, for a first pull). The zero sliced says the
// server listed no slices: nothing was done.
func fetchSliced(ctx context.Context, r *index.Repo, rm *Remote, o Options, in, line index.Line, note []byte, verified string) (sliced, error) {
	if rm.Plain() || rm.via != "" {
		return sliced{}, nil
	}
	// Cut up to the head the pull goes to: its checkpoint's (whether the
	// server serves it is judged by the pull, with the evidence), or with
	// none the head served. A server that lists nothing to cut at (a short
	// history, an older server) costs one request.
	serving := func() string {
		refs, err := r.RemoteRefs(ctx, rm.gitURL(), index.MainRef)
		if err != nil || len(refs) != 1 || refs[0].Name != index.MainRef {
			return "" // the fetch says what is wrong
		}
		return refs[0].ID
	}
	var head, served string
	if note != nil {
		c, err := checkpoint.Claimed(note)
		if err != nil {
			return sliced{}, nil
		}
		head = c.Head
	} else if head = serving(); head == "" {
		return sliced{}, nil
	}
	list := getSlices(ctx, rm, o, verified, head)
	if len(list) == 0 {
		return sliced{}, nil
	}
	if served = head; note != nil {
		// Read after the checkpoint: the same head or a newer one.
		if served = serving(); served == "" {
			return sliced{}, nil
		}
	}
	outer := ctx
	named := func(err error) error {
		if cerr := context.Cause(outer); cerr != nil {
			err = cerr // interrupted: what failed then is no news
		}
		return fmt.Errorf("%s: %w", line.Name, err)
	}

	// The fetches, one after the other, each telling the server only of
	// the slice before (a first one of nothing): what arrived is kept
	// under a ref of its own until it is verified.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type arrival struct {
		id  string
		err error
	}
	arrived := make(chan arrival, len(list)+1)
	pin := rm.fetched(r)
	// A refused or interrupted pull puts back the refs it moved (undo);
	// deferred first, so that it runs once the fetches have stopped.
	pinAt, err := refAt(ctx, r, pin)
	if err != nil {
		return sliced{}, named(err)
	}
	inAt, err := refAt(ctx, r, in.Ref)
	if err != nil {
		return sliced{}, named(err)
	}
	undo := func() {
		bg := context.WithoutCancel(outer)
		for _, ref := range [][2]string{{pin, pinAt}, {in.Ref, inAt}} {
			if now, err := refAt(bg, r, ref[0]); err == nil && now != ref[1] {
				r.MoveRef(bg, ref[0], ref[1], now)
			}
		}
	}
	kept := false
	defer func() {
		if !kept {
			undo()
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		prev, at := verified, ""
		if cur, err := refAt(ctx, r, pin); err == nil {
			at = cur
		}
		for _, id := range append(pickSlices(list), served) {
			var haves []string
			if prev != "" {
				haves = []string{prev}
			}
			err := r.FetchPack(ctx, o.client(), rm.gitURL(), []string{id}, haves)
			if err == nil && id != at {
				err = r.MoveRef(ctx, pin, id, at)
			}
			arrived <- arrival{id, err}
			if err != nil {
				return
			}
			prev, at = id, id
		}
	}()
	defer func() {
		cancel()
		<-done
	}()

	s := sliced{served: served, undo: undo}
	cur := inAt
	after := verified
	progress := in.Progress
	for {
		a := <-arrived
		if a.err != nil {
			return sliced{}, named(a.err)
		}
		if cur != a.id {
			if err := r.MoveRef(ctx, in.Ref, a.id, cur); err != nil {
				return sliced{}, named(err)
			}
			cur = a.id
		}
		if a.id == served {
			break
		}
		base := s.commits
		if progress != nil {
			in.Progress = func(p index.Progress) {
				p.Commits, p.Total = base+p.Commits, base+p.Total
				progress(p)
			}
		}
		res, err := r.VerifyLine(ctx, in, false)
		var fe *index.ForkError
		if errors.As(err, &fe) && outer.Err() == nil && after == verified && verified != "" {
			// The first slice does not continue from the head verified
			// before: the server's history does not, told apart as any
			// pull's is.
			return sliced{}, breakOf(ctx, r, rm, line, fe)
		}
		if errors.As(err, &fe) && outer.Err() == nil {
			return sliced{}, &SliceError{Remote: line.Name, URL: rm.URL, Commit: a.id, After: after, Verified: verified}
		}
		if err != nil {
			return sliced{}, named(err)
		}
		s.last, after = a.id, a.id
		s.commits += res.Commits
		s.records += res.Records
	}
	kept = true
	return s, nil
}
