package checkpoint

import (
	"crypto/ed25519"
	"errors"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// A checkpoint's errors keep their cause's family (%w): a bad text is an
// ErrMalformed (a bad time a strconv error within), a signature by no
// granted key an ErrUnsigned with the note error within.
func TestCheckpointErrorsWrap(t *testing.T) {
	text := strings.Replace(example().Text(), "cairn-time 1", "cairn-time x1", 1)
	_, err := Parse(text)
	if !errors.Is(err, ErrMalformed) || !errors.Is(err, strconv.ErrSyntax) || !strings.Contains(err.Error(), "cairn-time") {
		t.Errorf("bad time: %v, want ErrMalformed and strconv.ErrSyntax within", err)
	}
	msg, err := Sign(example(), newSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(msg, example().Origin, []ed25519.PublicKey{newSigner(t).Public()})
	var unknown *note.UnknownVerifierError
	var unverified *note.UnverifiedNoteError
	if !errors.Is(err, ErrUnsigned) || !errors.As(err, &unknown) && !errors.As(err, &unverified) {
		t.Errorf("no granted key: %v, want ErrUnsigned and a note error within", err)
	}
}
