package main

import (
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"cairn.dev/cairn/internal/web"
)

// termSafe is a command's standard output or error: text whose control
// characters that steer a terminal — escape sequences, carriage returns
// that overwrite a line, C1 controls, DEL, bytes that are no UTF-8 — are
// written escaped (\x1b; \u007f, \u009b; \x9b), tabs and newlines as
// they are. What cairn prints holds the
// words of others: a policy's rule names, the notes and ids of signed
// records, a server's or a bundle's answers, and none of it may redraw
// the user's screen (a REFUSED line overwritten with "allowed"). JSON
// output escapes them itself and goes out as it is (rawOut), as do the
// documents cairn prints (an SBOM, a proof, a root act: their own bytes);
// so does the progress bar, cairn's own drawing. A C1 control split
// between two writes is held until the next (pending).
type termSafe struct {
	w       io.Writer
	mu      sync.Mutex // writes come from many goroutines (a server's log lines)
	pending []byte     // a character the last write began and did not end
}

func newTermSafe(w io.Writer) *termSafe { return &termSafe{w: w} }

func (t *termSafe) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	in := p
	if len(t.pending) > 0 {
		in = append(t.pending, p...)
		t.pending = nil
	}
	// A character the next write ends (a C1 control, or text that bufio
	// or tabwriter cut) is held until it comes.
	for j := len(in) - 1; j >= 0 && j >= len(in)-3; j-- {
		if utf8.RuneStart(in[j]) {
			if !utf8.FullRune(in[j:]) {
				t.pending = append([]byte(nil), in[j:]...)
				in = in[:j]
			}
			break
		}
	}
	i := 0
	for i < len(in) && !steers(in, i) && reorders(in, i) == 0 {
		i++
	}
	if i == len(in) {
		if _, err := t.w.Write(in); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	b := make([]byte, 0, len(in)+16)
	for i := 0; i < len(in); i++ {
		if n := reorders(in, i); n > 0 {
			r, _ := utf8.DecodeRune(in[i:])
			b = fmt.Appendf(b, `\u%04x`, r)
			i += n - 1
			continue
		}
		switch c := in[i]; {
		case !steers(in, i):
			b = append(b, c)
		case c == 0xc2:
			b = fmt.Appendf(b, `\u%04x`, in[i+1])
			i++
		case c == 0x7f:
			b = append(b, `\u007f`...)
		default:
			b = fmt.Appendf(b, `\x%02x`, c)
		}
	}
	if _, err := t.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// steers says whether p[i] begins a control character other than a tab
// or a newline: C0, DEL, a C1 control in UTF-8 (0xc2 0x80–0x9f), or a
// byte 0x80–0x9f that begins no UTF-8 character (a C1 control to a
// terminal that reads 8-bit controls).
func steers(p []byte, i int) bool {
	switch c := p[i]; {
	case c == '\n' || c == '\t':
		return false
	case c < 0x20 || c == 0x7f:
		return true
	case c == 0xc2:
		return i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f
	case c >= 0x80 && c <= 0x9f:
		// A continuation byte: one of a character begun before it is
		// text, one alone is not.
		return i == 0 || !continues(p, i)
	}
	return false
}

// reorders returns the length of the character at p[i] if it is one
// that reorders or hides text on a terminal without being a control
// (web.Hides: a bidirectional mark, embedding, override or isolate, a
// zero-width character, a line or paragraph separator, a byte order
// mark; Trojan Source); 0 otherwise.
func reorders(p []byte, i int) int {
	if c := p[i]; c != 0xd8 && c != 0xe2 && c != 0xef { // the first bytes of U+061C, U+2000–U+2FFF, U+F000–U+FFFF
		return 0
	}
	if r, n := utf8.DecodeRune(p[i:]); web.Hides(r) {
		return n
	}
	return 0
}

// continues says whether p[i], a continuation byte, is part of a UTF-8
// character begun before it.
func continues(p []byte, i int) bool {
	j := i - 1
	for j > 0 && j > i-4 && p[j]&0xc0 == 0x80 {
		j--
	}
	r, size := utf8.DecodeRune(p[j:])
	return r != utf8.RuneError && j+size > i
}

// Fd is the file's, so that a terminal is still known for one.
func (t *termSafe) Fd() uintptr {
	if f, ok := t.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// raw is the writer itself, for cairn's own drawing (the progress bar)
// and the documents it prints.
func (t *termSafe) raw() io.Writer { return t.w }

// rawOut is w, or the writer a termSafe writes to: for output whose
// bytes are a document's own (JSON, which escapes what steers a
// terminal itself; a proof; a root act).
func rawOut(w io.Writer) io.Writer {
	if r, ok := w.(interface{ raw() io.Writer }); ok {
		return r.raw()
	}
	return w
}
