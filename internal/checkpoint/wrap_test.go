package checkpoint

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"cairn.dev/cairn/internal/keys"
)

// A checkpoint's errors keep their cause's family (%w): a bad time is a
// *time.ParseError, a signature by no granted key a note error.
func TestCheckpointErrorsWrap(t *testing.T) {
	text := strings.Replace(Checkpoint{Introduction: strings.Repeat("a", 64), Head: strings.Repeat("b", 40), Records: 1, Time: time.Now()}.Text(), "time 2", "time x2", 1)
	var pe *time.ParseError
	if _, err := Parse(text); !errors.As(err, &pe) || !strings.Contains(err.Error(), "checkpoint time") {
		t.Errorf("bad time: %v, want a *time.ParseError within", err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	msg, err := Sign(Checkpoint{Introduction: strings.Repeat("a", 64), Head: strings.Repeat("b", 40), Records: 1, Time: time.Now()}, keys.NewSigner(priv))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(msg, func(string) ed25519.PublicKey { return nil })
	var unknown *note.UnknownVerifierError
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unknown) && !errors.As(err, &unverified) {
		t.Errorf("no granted key: %v, want a note error within", err)
	}
}
