package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/install"
	"cairn.dev/cairn/internal/remote"
)

// Progress is drawn with github.com/schollz/progressbar/v3: one line per
// operation, which is all cairn draws (mpb's many concurrent bars are not
// needed), redrawn in place, its redraws throttled by the library, with
// few dependencies (x/term, uniseg, colorstring).

// redrawEvery is the shortest time between two redraws of a progress
// line: at most 10 a second, however often the work reports.
const redrawEvery = 100 * time.Millisecond

// isTerminal reports whether w is a terminal: a character device such as
// /dev/null is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws how far a long command is, on its standard error and
// only when that is a terminal (never with --json): one line per step
// (fetching, verifying, uploading), redrawn in place. A nil *progress
// draws nothing, so callers need not check.
type progress struct {
	w     io.Writer
	bytes bool // counts are bytes
	bar   *progressbar.ProgressBar
	step  string
	desc  string
	doneN int64 // as last set
	total int64 // as last drawn, -1: not known
	// drawn is when set last drew; pending, the state set since, not
	// drawn yet (set draws at most once per redrawEvery).
	drawn     time.Time
	drawnDone int64
	pending   *frame
}

// frame is the state of a progress line.
type frame struct {
	done, total int64
	desc        string
}

// newProgress returns the progress of a command's work, or nil when it
// is not to be drawn: quiet (--json), or stderr is not a terminal.
func newProgress(stderr io.Writer, quiet, bytes bool) *progress {
	if quiet || !isTerminal(stderr) {
		return nil
	}
	return &progress{w: rawOut(stderr), bytes: bytes} // cairn's own drawing, unescaped
}

// set says that done of total are done (total 0 or less: not known) in
// step; detail, if any, follows the step's name. A new step ends the
// line of the one before and starts its own.
func (p *progress) set(done, total int64, step, detail string) {
	if p == nil {
		return
	}
	if total <= 0 {
		total = -1
	}
	desc := step + detail
	if p.bar != nil && step != p.step {
		p.done()
	}
	fresh := p.bar == nil
	if fresh {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionThrottle(redrawEvery),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetTheme(progressbar.ThemeASCII),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionShowCount(),
			progressbar.OptionUseANSICodes(true), // a terminal: clear the line, not overwrite it with blanks
			// No spinner of its own drawing in the background: every
			// frame is drawn by set, after the work reports.
			progressbar.OptionSetSpinnerChangeInterval(0),
		}
		if p.bytes {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
		}
		p.bar, p.step, p.desc, p.total = progressbar.NewOptions64(total, opts...), step, desc, total
	}
	p.doneN = done
	// The library throttles its redraws only until the bar is full: a
	// step that goes on reporting at 100% (install unpacking after the
	// last byte, a description changing per package) would redraw on
	// every report. Throttle here too: draw at once only a new step's
	// first state and the first reaching of the whole, and the last
	// state when done ends the line.
	now := time.Now()
	reachesWhole := total > 0 && done >= total && p.drawnDone < total
	if !fresh && !reachesWhole && now.Sub(p.drawn) < redrawEvery {
		p.pending = &frame{done, total, desc}
		return
	}
	p.drawn = now
	p.draw(frame{done, total, desc})
}

// draw brings the bar to f.
func (p *progress) draw(f frame) {
	p.pending = nil
	p.drawnDone = f.done
	if f.total != p.total {
		p.total = f.total
		p.bar.ChangeMax64(f.total)
	}
	if f.desc != p.desc {
		p.desc = f.desc
		p.bar.Describe(f.desc)
	}
	p.bar.Set64(f.done)
}

// done ends the progress line, leaving its last state on the screen: a
// step cut short (an error) is not shown complete.
func (p *progress) done() {
	if p == nil || p.bar == nil {
		return
	}
	if p.pending != nil {
		p.draw(*p.pending)
	}
	if p.total < 0 || p.doneN >= p.total {
		p.bar.Finish()
	} else {
		p.bar.Exit()
	}
	fmt.Fprintln(p.w)
	p.bar = nil
}

// installProgress draws an install's progress: bytes fetched, then
// packages fetched and unpacked.
func installProgress(p *progress) func(install.Progress) {
	return func(ip install.Progress) {
		p.set(ip.Bytes, ip.TotalBytes, "install", fmt.Sprintf(": %d/%d packages  %s", ip.Packages, ip.TotalPackages, ip.Phase))
	}
}

// remoteProgress draws a pull's, sync's, push's or promote's progress:
// commits verified, blobs uploaded. Nil when p is.
func remoteProgress(p *progress) func(remote.Progress) {
	if p == nil {
		return nil
	}
	return func(rp remote.Progress) { p.set(int64(rp.Done), int64(rp.Total), rp.Step, "") }
}

// verifyProgress draws a verification's progress: commits replayed.
func verifyProgress(p *progress) func(index.Progress) {
	return func(ip index.Progress) {
		p.set(int64(ip.Commits), int64(ip.Total), "verifying "+ip.Line, "")
	}
}
