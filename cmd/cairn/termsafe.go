package main

import (
	"fmt"
	"io"
)

// termSafe is a command's standard output or error: text whose control
// characters that steer a terminal — escape sequences, carriage returns
// that overwrite a line, C1 controls — are written escaped (\x1b,
// \u009b), tabs and newlines as they are. What cairn prints holds the
// words of others: a policy's rule names, the notes and ids of signed
// records, a server's or a bundle's answers, and none of it may redraw
// the user's screen (a REFUSED line overwritten with "allowed"). JSON
// output escapes them itself; the progress bar, cairn's own drawing, is
// written to the terminal unescaped (raw).
type termSafe struct{ w io.Writer }

func (t termSafe) Write(p []byte) (int, error) {
	i := 0
	for i < len(p) && !steers(p, i) {
		i++
	}
	if i == len(p) {
		return t.w.Write(p)
	}
	b := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case !steers(p, i):
			b = append(b, c)
		case c == 0xc2:
			b = fmt.Appendf(b, `\u%04x`, p[i+1])
			i++
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
// or a newline: C0, DEL, or a C1 control in UTF-8 (0xc2 0x80–0x9f).
func steers(p []byte, i int) bool {
	switch c := p[i]; {
	case c == '\n' || c == '\t':
		return false
	case c < 0x20 || c == 0x7f:
		return true
	case c == 0xc2:
		return i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f
	}
	return false
}

// Fd is the file's, so that a terminal is still known for one.
func (t termSafe) Fd() uintptr {
	if f, ok := t.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// raw is the writer itself, for cairn's own drawing (the progress bar).
func (t termSafe) raw() io.Writer { return t.w }
