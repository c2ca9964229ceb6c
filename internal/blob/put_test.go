package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An upload's source is checked as it is sent, and its last byte held
// back until it has matched: a server never receives a whole body of
// bytes that are not the blob (a server that trusted Content-Length and
// stored without hashing would store nothing wrong), and the caller gets
// the *MismatchError every Store's Put answers with.
func TestPutSendsNoWrongBody(t *testing.T) {
	type got struct {
		n   int
		err error
	}
	bodies := make(chan got, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		bodies <- got{len(b), err}
		w.WriteHeader(http.StatusCreated)
	}))
	defer ts.Close()
	h := &HTTP{URL: ts.URL, Signer: edSigner{testKey(t)}}
	ctx := context.Background()
	data := bytes.Repeat([]byte("cairn blob "), 10_000)
	ref := DigestBytes(data)
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 1
	for name, src := range map[string]io.Reader{
		"last byte wrong": bytes.NewReader(bad),
		"one byte short":  bytes.NewReader(data[:len(data)-1]),
		"one byte more":   io.MultiReader(bytes.NewReader(data), strings.NewReader("x")),
	} {
		err := h.Put(ctx, ref, src)
		var me *MismatchError
		if !errors.As(err, &me) || me.Want != ref {
			t.Errorf("%s: Put = %v, want a *MismatchError for %v", name, err, ref)
		}
		// The headers, and most of the body, left before the end of the
		// source was read: the handler ran, and saw the body cut.
		select {
		case g := <-bodies:
			if g.err == nil && int64(g.n) == ref.Size {
				t.Errorf("%s: the server received the whole body (%d bytes)", name, g.n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the request never reached the server", name)
		}
	}
	if err := h.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put of the blob: %v", err)
	}
	if g := <-bodies; g.err != nil || int64(g.n) != ref.Size {
		t.Fatalf("the server received %d bytes (%v), want %d", g.n, g.err, ref.Size)
	}
	empty := DigestBytes(nil)
	if err := h.Put(ctx, empty, strings.NewReader("x")); !errors.As(err, new(*MismatchError)) {
		t.Fatalf("Put of the empty blob from a source of one byte = %v, want a *MismatchError", err)
	}
}

// A server's 422 with its evidence (HeaderGot) comes back as the
// *MismatchError it found, not a refusal of the key; a 422 without
// evidence stays a refusal.
func TestMismatchAnswer(t *testing.T) {
	want := DigestBytes([]byte("the blob"))
	other := DigestBytes([]byte("other bytes"))
	var got string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if got != "" {
			w.Header().Set(HeaderGot, got)
		}
		http.Error(w, "SECURITY ERROR: said the server", http.StatusUnprocessableEntity)
	}))
	defer ts.Close()
	h := &HTTP{URL: ts.URL, Signer: edSigner{testKey(t)}}
	for _, c := range []struct {
		header string
		want   *MismatchError // nil: a refusal
	}{
		{GotHeader(&MismatchError{Want: want, GotSHA256: other.SHA256, GotSize: want.Size}), &MismatchError{Want: want, GotSHA256: other.SHA256, GotSize: want.Size}},
		{GotHeader(&MismatchError{Want: want, GotSize: want.Size + 1}), &MismatchError{Want: want, GotSize: want.Size + 1}},
		{"", nil},
		{"sha256:nothex 8", nil},
		{"8", nil}, // a size-only mismatch of the right size is no evidence
	} {
		got = c.header
		err := h.Put(context.Background(), want, strings.NewReader("the blob"))
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "said the server") {
			t.Fatalf("Cairn-Got %q: %v, want the server's 422", c.header, err)
		}
		var me *MismatchError
		switch {
		case c.want == nil && (errors.As(err, &me) || !errors.Is(err, ErrRefused)):
			t.Errorf("Cairn-Got %q: %v, want a refusal and no mismatch", c.header, err)
		case c.want != nil && (!errors.As(err, &me) || *me != *c.want || !errors.Is(err, ErrMismatch)):
			t.Errorf("Cairn-Got %q: %v, want %#v", c.header, err, c.want)
		}
	}
}
