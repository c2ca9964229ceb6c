package gitx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// FetchPack fetches the objects of the commits wants that the commits
// haves (held here) lack from the repository served by git's smart HTTP
// at url (its /git-upload-pack, protocol v2), as one thin pack that
// `git index-pack --fix-thin` completes from this repository's objects
// and indexes. It writes no ref: the caller points one at each want it
// keeps. Unlike Fetch it runs no connectivity check over the whole
// repository (what `git fetch` does after every pack, as `git clone`
// does not): a caller that reads every object it fetched, as a
// verification does, finds a missing one there. A server that does not
// hold a want, or that answers with anything but a pack, is an error
// naming the URL.
func (r *Repo) FetchPack(ctx context.Context, client *http.Client, url string, wants, haves []string) error {
	var req bytes.Buffer
	pkt := func(s string) { fmt.Fprintf(&req, "%04x%s", len(s)+4, s) }
	pkt("command=fetch\n")
	if r.HexSize() == 64 {
		pkt("object-format=sha256\n")
	}
	req.WriteString("0001")
	pkt("thin-pack\n")
	pkt("ofs-delta\n")
	pkt("no-progress\n")
	for _, w := range wants {
		if !r.isID(w) {
			return fmt.Errorf("fetching from %s: want %q: not an object id", url, w)
		}
		pkt("want " + w + "\n")
	}
	for _, h := range haves {
		if !r.isID(h) {
			return fmt.Errorf("fetching from %s: have %q: not an object id", url, h)
		}
		pkt("have " + h + "\n")
	}
	pkt("done\n")
	req.WriteString("0000")
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/git-upload-pack", &req)
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/x-git-upload-pack-request")
	hr.Header.Set("Accept", "application/x-git-upload-pack-result")
	hr.Header.Set("Git-Protocol", "version=2")
	resp, err := client.Do(hr)
	if err != nil {
		return fmt.Errorf("fetching from %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetching from %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-git-upload-pack-result" {
		return fmt.Errorf("fetching from %s: the server answered %q, not a git upload-pack result", url, ct)
	}

	cmd := r.command(ctx, "index-pack", "--stdin", "--fix-thin")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pw, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	perr := demuxPack(bufio.NewReaderSize(resp.Body, 64<<10), pw)
	pw.Close()
	werr := cmd.Wait()
	if perr != nil && werr != nil {
		return fmt.Errorf("fetching from %s: %w (git index-pack: %v: %s)", url, perr, werr, strings.TrimSpace(stderr.String()))
	}
	if perr != nil {
		return fmt.Errorf("fetching from %s: %w", url, perr)
	}
	if werr != nil {
		return fmt.Errorf("fetching from %s: git index-pack: %w: %s", url, werr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// errPackProtocol is what a malformed upload-pack answer is.
var errPackProtocol = errors.New("malformed git upload-pack answer")

// demuxPack reads a protocol v2 fetch answer (sections of pkt-lines, the
// last one "packfile", its lines side-band: 1 the pack, 2 progress, 3 an
// error) and writes the pack to w.
func demuxPack(rd *bufio.Reader, w io.Writer) error {
	var buf [65520]byte
	inPack := false
	for {
		n, err := readPkt(rd, buf[:])
		if err != nil {
			return err
		}
		switch {
		case n == 0: // flush: the end
			if !inPack {
				return fmt.Errorf("%w: no pack in the answer", errPackProtocol)
			}
			return nil
		case n < 0: // delimiter: another section follows
			continue
		}
		line := buf[:n]
		if !inPack {
			if s := strings.TrimSuffix(string(line), "\n"); s == "packfile" {
				inPack = true
			} else if msg, ok := strings.CutPrefix(s, "ERR "); ok {
				return fmt.Errorf("the server refused: %s", msg)
			}
			continue // another section (acknowledgments, …): not asked for
		}
		switch line[0] {
		case 1:
			if _, err := w.Write(line[1:]); err != nil {
				return err
			}
		case 2: // progress
		case 3:
			return fmt.Errorf("the server failed: %s", strings.TrimSpace(string(line[1:])))
		default:
			return fmt.Errorf("%w: side-band %d", errPackProtocol, line[0])
		}
	}
}

// readPkt reads one pkt-line into buf: its payload's length, 0 for a
// flush, -1 for a delimiter or response end.
func readPkt(rd *bufio.Reader, buf []byte) (int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("%w: %v", errPackProtocol, err)
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: pkt-line length %q", errPackProtocol, hdr[:])
	}
	switch {
	case n == 0:
		return 0, nil
	case n == 1 || n == 2:
		return -1, nil
	case n < 5 || int(n)-4 > len(buf):
		return 0, fmt.Errorf("%w: pkt-line length %d", errPackProtocol, n)
	}
	if _, err := io.ReadFull(rd, buf[:n-4]); err != nil {
		return 0, fmt.Errorf("%w: %v", errPackProtocol, err)
	}
	return int(n) - 4, nil
}
