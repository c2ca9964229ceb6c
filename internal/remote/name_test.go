package remote

import (
	"strings"
	"testing"
)

// A remote's name is at most 63 bytes.
func TestCheckNameLength(t *testing.T) {
	if err := CheckName(strings.Repeat("r", 63)); err != nil {
		t.Errorf("63 bytes: %v", err)
	}
	if err := CheckName(strings.Repeat("r", 64)); err == nil {
		t.Error("64 bytes accepted")
	}
	if err := CheckName("Origin"); err == nil {
		t.Error("an uppercase name accepted")
	}
}
