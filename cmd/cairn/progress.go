package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"cairn.dev/cairn/internal/install"
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
// only when that is a terminal (never with --json). A nil *progress
// draws nothing, so callers need not check.
type progress struct {
	w     io.Writer
	bytes bool // counts are bytes
	bar   *progressbar.ProgressBar
	desc  string
}

// newProgress returns the progress of cmd's work, or nil when it is not
// to be drawn: quiet (--json), or standard error is not a terminal.
func newProgress(stderr io.Writer, quiet, bytes bool) *progress {
	if quiet || !isTerminal(stderr) {
		return nil
	}
	return &progress{w: stderr, bytes: bytes}
}

// set says that done of total are done (total 0 or less: not known),
// and what is being done.
func (p *progress) set(done, total int64, desc string) {
	if p == nil {
		return
	}
	if total <= 0 {
		total = -1
	}
	if p.bar == nil {
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
		}
		if p.bytes {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
		}
		p.bar, p.desc = progressbar.NewOptions64(total, opts...), desc
	}
	if total != p.bar.GetMax64() {
		p.bar.ChangeMax64(total)
	}
	if desc != p.desc {
		p.desc = desc
		p.bar.Describe(desc)
	}
	p.bar.Set64(done)
}

// done ends the progress line, leaving its last state on the screen.
func (p *progress) done() {
	if p == nil || p.bar == nil {
		return
	}
	p.bar.Finish()
	fmt.Fprintln(p.w)
}

// installProgress draws an install's progress: bytes fetched, then
// packages fetched and unpacked.
func installProgress(p *progress) func(install.Progress) {
	return func(ip install.Progress) {
		p.set(ip.Bytes, ip.TotalBytes, fmt.Sprintf("%d/%d packages  %s", ip.Packages, ip.TotalPackages, ip.Phase))
	}
}
