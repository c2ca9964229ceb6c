package server

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// FuzzPushCommands: whatever a push's body starts with, pushCommands does
// not panic; the commands it accepts name refs of one word each, and
// written back as pkt-lines they read the same; and the refusal a server
// answers such a push with (writePushError) is well-framed pkt-lines
// that name every ref and nothing else.
func FuzzPushCommands(f *testing.F) {
	zero, id := strings.Repeat("0", 40), strings.Repeat("ab", 20)
	f.Add(commands([]string{zero + " " + id + " refs/heads/main\x00report-status side-band-64k agent=git/2.43"}))
	f.Add(commands([]string{zero + " " + id + " refs/heads/main\x00report-status", id + " " + zero + " refs/heads/old"}))
	f.Add(commands([]string{zero + " " + id + " refs/heads/main"}))
	f.Add(append(commands([]string{zero + " " + id + " refs/heads/main\x00side-band"}), "PACK\x00\x00\x00\x02"...))
	// The longest ref a pkt-line holds: its "ng" line must still fit one.
	f.Add(commands([]string{"a b refs/heads/" + strings.Repeat("x", 0xffff-4-len("a b refs/heads/\n"))}))
	f.Add([]byte("0003"))
	f.Add([]byte("ffff" + zero))
	f.Add([]byte("00100 1 x y z\n0000"))
	f.Add([]byte("0000"))
	f.Fuzz(func(t *testing.T, head []byte) {
		refs, caps, ok := pushCommands(head)
		if !ok {
			if refs != nil || caps != "" {
				t.Fatalf("pushCommands(%q) refused, yet returned %q %q", head, refs, caps)
			}
			checkPushError(t, head, nil)
			return
		}
		if len(refs) == 0 {
			t.Fatalf("pushCommands(%q) accepted no command", head)
		}
		for _, r := range refs {
			if r == "" || strings.IndexFunc(r, unicode.IsSpace) >= 0 {
				t.Fatalf("pushCommands(%q): ref %q is not one word", head, r)
			}
		}
		// Written back with the shortest ids (never longer than the
		// original line), the commands read the same.
		lines := make([]string, len(refs))
		for i, r := range refs {
			lines[i] = "a b " + r
		}
		if caps != "" {
			lines[0] += "\x00" + caps
		}
		again := commands(lines)
		refs2, caps2, ok2 := pushCommands(again)
		if !ok2 || !slices.Equal(refs2, refs) || caps2 != caps {
			t.Fatalf("pushCommands(%q) = %q %q; written back as %q it reads %q %q %v", head, refs, caps, again, refs2, caps2, ok2)
		}
		checkPushError(t, head, refs)
	})
}

// commands frames lines as pkt-lines, each ending in a newline, and a
// flush.
func commands(lines []string) []byte {
	var b []byte
	for _, l := range lines {
		b = append(b, pkt(l+"\n")...)
	}
	return append(b, "0000"...)
}

// checkPushError checks that writePushError answers head with pkt-lines
// (in side bands or not) that refuse exactly refs, or an ERR for nil.
func checkPushError(t *testing.T, head []byte, refs []string) {
	t.Helper()
	rec := httptest.NewRecorder()
	writePushError(rec, head, "cairn: refused", "refused")
	lines, rest, ok := pktLines(rec.Body.Bytes())
	if !ok || len(rest) != 0 {
		t.Fatalf("the answer to %q is not pkt-lines: %q", head, rec.Body.Bytes())
	}
	if refs == nil {
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "ERR ") {
			t.Fatalf("the answer to unreadable commands %q is %q, want one ERR", head, lines)
		}
		return
	}
	if len(lines) > 0 && strings.HasPrefix(lines[0], "\x02") { // side bands: the status is in band 1
		var status []byte
		for _, l := range lines[1:] {
			if l == "" {
				break
			}
			if l[0] != 1 {
				t.Fatalf("the answer to %q has a packet %q outside band 1", head, l)
			}
			status = append(status, l[1:]...)
		}
		if lines, rest, ok = pktLines(status); !ok || len(rest) != 0 {
			t.Fatalf("the status in the side band of the answer to %q is not pkt-lines: %q", head, status)
		}
	}
	var ng []string
	for _, l := range lines {
		if r, ok := strings.CutPrefix(l, "ng "); ok {
			ng = append(ng, strings.TrimSuffix(r, " refused\n"))
		}
	}
	if !slices.Equal(ng, refs) {
		t.Fatalf("the answer to %q refuses %q, want %q", head, ng, refs)
	}
}

// pktLines splits b into the payloads of pkt-lines up to and including
// a flush ("" for it); ok is false for a bad length.
func pktLines(b []byte) (lines []string, rest []byte, ok bool) {
	for {
		if len(b) < 4 {
			return lines, b, len(b) == 0
		}
		n, err := strconv.ParseUint(string(b[:4]), 16, 16)
		if err != nil || (n != 0 && n < 4) || int(n) > len(b) || bytes.ContainsAny(b[:4], "+-") {
			return lines, b, false
		}
		if n == 0 {
			lines = append(lines, "")
			b = b[4:]
			continue
		}
		lines = append(lines, string(b[4:n]))
		b = b[n:]
	}
}
