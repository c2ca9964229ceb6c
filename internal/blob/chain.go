package blob

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"cairn.dev/cairn/internal/transport"
)

// Chain is a local store in front of a list of mirrors: a blob the local
// store lacks is fetched from the first mirror that has it, verified on
// the way in, and kept locally. A mirror that sends other bytes, or more
// than the size, is cut off and the next one is tried; the errors are
// kept as evidence.
type Chain struct {
	Local   Store
	Mirrors []Store
	// OnMirrorError, if set, hears of each mirror that failed.
	OnMirrorError func(mirror int, ref Ref, err error)
}

var _ Store = (*Chain)(nil)

// Open implements Store.
func (c *Chain) Open(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := c.Fetch(ctx, ref); err != nil {
		return nil, err
	}
	return c.Local.Open(ctx, ref)
}

// Stat implements Store: it reports the local store only.
func (c *Chain) Stat(ctx context.Context, ref Ref) (bool, error) { return c.Local.Stat(ctx, ref) }

// Put implements Store: it stores locally.
func (c *Chain) Put(ctx context.Context, ref Ref, r io.Reader) error {
	return c.Local.Put(ctx, ref, r)
}

// FetchError says that no source (a repository's server, then its
// mirrors) served a blob's bytes; it lists what each did.
type FetchError struct {
	Ref    Ref
	Errors []error
	// Mirrors name the mirrors of Errors, each by its String method
	// (an HTTP mirror's URL), "" where it has none.
	Mirrors []string
}

func (e *FetchError) Error() string {
	var b strings.Builder
	// A source caught serving other bytes is a security event, not an
	// absence: the summary says so first.
	lied := 0
	for _, err := range e.Errors {
		if errors.Is(err, ErrMismatch) {
			lied++
		}
	}
	switch {
	case lied > 0:
		fmt.Fprintf(&b, "blob %s: %d of its %d source(s) served other bytes than its digest names, and none served its own", e.Ref, lied, len(e.Errors))
	default:
		fmt.Fprintf(&b, "blob %s: no source has it", e.Ref)
	}
	for i, err := range e.Errors {
		if i < len(e.Mirrors) && e.Mirrors[i] != "" {
			fmt.Fprintf(&b, "; source %d (%s): %v", i+1, e.Mirrors[i], err)
			continue
		}
		fmt.Fprintf(&b, "; source %d: %v", i+1, err)
	}
	return b.String()
}

// Unwrap returns the mirrors' errors (a *MismatchError among them makes
// the whole a security error).
func (e *FetchError) Unwrap() []error { return append([]error{fs.ErrNotExist}, e.Errors...) }

// Fetch makes sure the local store holds ref, fetching it from the
// mirrors in order if it does not.
func (c *Chain) Fetch(ctx context.Context, ref Ref) error {
	if ok, err := c.Local.Stat(ctx, ref); err != nil || ok {
		return err
	}
	fe := &FetchError{Ref: ref}
	for i, m := range c.Mirrors {
		err := fetchOne(ctx, m, c.Local, ref)
		if err == nil {
			return nil
		}
		if le := (*localError)(nil); errors.As(err, &le) {
			return err // the local store failed (a full disk): no mirror would do better
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.OnMirrorError != nil {
			c.OnMirrorError(i, ref, err)
		}
		fe.Errors = append(fe.Errors, err)
		fe.Mirrors = append(fe.Mirrors, Name(m))
	}
	return fe
}

// Name is how a store names itself (its String: a URL, a directory),
// its credentials left out, as errors and CI logs show it; "" for a
// store that does not say.
func Name(s Store) string {
	if n, ok := s.(fmt.Stringer); ok {
		return transport.RedactString(n.String())
	}
	return ""
}

// fetchOne copies ref from a mirror into the local store. A failure
// that is neither the mirror's reads nor its bytes (a *MismatchError) is
// the local store's, and is returned as a *localError.
func fetchOne(ctx context.Context, from, to Store, ref Ref) error {
	rc, err := from.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	src := &sourceReader{r: rc}
	err = to.Put(ctx, ref, src)
	if err != nil && src.err == nil && !errors.Is(err, ErrMismatch) && ctx.Err() == nil {
		return &localError{ref, err}
	}
	return err
}

// localError is a local store's failure to keep a blob a mirror sent:
// a full disk, a read-only cache. Its text names the local path through
// the error it wraps (an *fs.PathError).
type localError struct {
	ref Ref
	err error
}

func (e *localError) Error() string {
	return fmt.Sprintf("blob %s: storing it in the local store: %v", e.ref, e.err)
}

func (e *localError) Unwrap() error { return e.err }

// sourceReader keeps the first read error of a mirror's stream.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// lineReader reads a batch stream: text lines and raw bytes.
type lineReader struct{ *bufio.Reader }

func newLineReader(r io.Reader) *lineReader { return &lineReader{bufio.NewReaderSize(r, 64<<10)} }

func (l *lineReader) line() (string, error) {
	s, err := l.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimSuffix(s, "\n"), nil
}
