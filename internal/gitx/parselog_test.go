package gitx

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
)

// TestParseLog reads `git log --raw -z` output through a reader whose
// buffer is smaller than its tokens, so that every token is read in
// pieces, and checks each field.
func TestParseLog(t *testing.T) {
	zero := strings.Repeat("0", 40)
	a, b, c := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	long := strings.Repeat("d/", 100) + "file.json"
	out := "\x01" + a + "\x021700000000\x00" +
		":000000 100644 " + zero + " " + b + " A\x00" + long + "\x00" +
		"\n\x01" + c + " " + a + "\x021700000001\x00" +
		":100644 100755 " + b + " " + c + " M\x00x\x00" +
		":100644 000000 " + b + " " + zero + " D\x00y\x00"
	var got []LogEntry
	if err := parseLog(bufio.NewReaderSize(strings.NewReader(out), 16), func(e *LogEntry) error { got = append(got, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []LogEntry{
		{ID: a, Parents: []string{}, Time: 1700000000, Changes: []Change{{Status: 'A', Path: long, OldMode: "000000", NewMode: "100644", OldID: zero, NewID: b}}},
		{ID: c, Parents: []string{a}, Time: 1700000001, Changes: []Change{
			{Status: 'M', Path: "x", OldMode: "100644", NewMode: "100755", OldID: b, NewID: c},
			{Status: 'D', Path: "y", OldMode: "100644", NewMode: "000000", OldID: b, NewID: zero},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseLog:\ngot  %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"\x01\x02", ":100644 A\x00", "junk\x00"} {
		if err := parseLog(bufio.NewReaderSize(strings.NewReader(bad), 16), func(*LogEntry) error { return nil }); err == nil {
			t.Errorf("parseLog(%q): no error", bad)
		}
	}
}
