package certifier

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A corrupt state file's error keeps the decoder's (%w).
func TestCorruptStateWraps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadProgress(path, progress{})
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("corrupt state: %v, want a *json.SyntaxError within", err)
	}
}
