package translog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

const commitID = "0123456789abcdef0123456789abcdef01234567"

func TestEntryText(t *testing.T) {
	data := []byte(`{"hello":"world"}`)
	e := NewEntry(commitID, 1700000000, "packages/8/9/e/6/acme/fastjson/1.2.3/descriptor.json", data)
	sum := sha256.Sum256(data)
	want := commitID + " 1700000000 " + hexOf(sum[:]) + " 17 packages/8/9/e/6/acme/fastjson/1.2.3/descriptor.json\n"
	if got := string(e.Text()); got != want {
		t.Fatalf("Text() = %q, want %q", got, want)
	}
	back, err := ParseEntry(e.Text())
	if err != nil {
		t.Fatal(err)
	}
	if back != e {
		t.Fatalf("ParseEntry(Text()) = %+v, want %+v", back, e)
	}
	if LeafHash(e.Text()) != tlog.RecordHash(e.Text()) {
		t.Fatal("LeafHash is not RFC 6962's leaf hash")
	}
	// RFC 6962: SHA-256(0x00 || entry).
	if h := sha256.Sum256(append([]byte{0}, e.Text()...)); LeafHash(e.Text()) != tlog.Hash(h) {
		t.Fatal("LeafHash is not SHA-256(0x00 || entry)")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestParseEntryStrict(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	good := commitID + " 1700000000 " + sum + " 17 root/00000001.json\n"
	if _, err := ParseEntry([]byte(good)); err != nil {
		t.Fatalf("good entry refused: %v", err)
	}
	for name, line := range map[string]string{
		"no newline":          strings.TrimSuffix(good, "\n"),
		"crlf":                strings.TrimSuffix(good, "\n") + "\r\n",
		"two newlines":        good + "\n",
		"upper-case commit":   strings.ToUpper(commitID) + " 1700000000 " + sum + " 17 root/00000001.json\n",
		"short commit":        commitID[:39] + " 1700000000 " + sum + " 17 root/00000001.json\n",
		"sha-256 commit":      sum + " 1700000000 " + sum + " 17 root/00000001.json\n",
		"time with plus":      commitID + " +1700000000 " + sum + " 17 root/00000001.json\n",
		"time leading zero":   commitID + " 01700000000 " + sum + " 17 root/00000001.json\n",
		"time not a number":   commitID + " 17e8 " + sum + " 17 root/00000001.json\n",
		"upper-case sha256":   commitID + " 1700000000 " + strings.ToUpper(sum) + " 17 root/00000001.json\n",
		"short sha256":        commitID + " 1700000000 " + sum[:62] + " 17 root/00000001.json\n",
		"negative size":       commitID + " 1700000000 " + sum + " -17 root/00000001.json\n",
		"size leading zero":   commitID + " 1700000000 " + sum + " 017 root/00000001.json\n",
		"minus zero size":     commitID + " 1700000000 " + sum + " -0 root/00000001.json\n",
		"two spaces":          commitID + "  1700000000 " + sum + " 17 root/00000001.json\n",
		"space in path":       commitID + " 1700000000 " + sum + " 17 root/0000 0001.json\n",
		"tab in path":         commitID + " 1700000000 " + sum + " 17 root/0000\t0001.json\n",
		"non-ascii path":      commitID + " 1700000000 " + sum + " 17 root/é.json\n",
		"empty path":          commitID + " 1700000000 " + sum + " 17 \n",
		"missing field":       commitID + " 1700000000 " + sum + " root/00000001.json\n",
		"too long":            commitID + " 1700000000 " + sum + " 17 " + strings.Repeat("a", MaxEntry) + "\n",
		"empty":               "",
		"trailing space":      commitID + " 1700000000 " + sum + " 17 root/00000001.json \n",
		"leading space":       " " + good,
		"size overflows":      commitID + " 1700000000 " + sum + " 99999999999999999999 root/00000001.json\n",
		"nul byte in path":    commitID + " 1700000000 " + sum + " 17 root/\x00.json\n",
		"delete byte in path": commitID + " 1700000000 " + sum + " 17 root/\x7f.json\n",
	} {
		if _, err := ParseEntry([]byte(line)); !errors.Is(err, ErrEntry) {
			t.Errorf("%s: ParseEntry(%q) = %v, want ErrEntry", name, line, err)
		}
	}
}

func TestEntryCheck(t *testing.T) {
	e := NewEntry(commitID, 1, "a b", nil)
	if err := e.Check(); err == nil {
		t.Fatal("an entry with a space in its path checks")
	}
	e.Path = "root/00000001.json"
	if err := e.Check(); err != nil {
		t.Fatal(err)
	}
	e.Path = strings.Repeat("a", MaxEntry-100)
	if err := e.Check(); err == nil {
		t.Fatalf("an entry of %d bytes checks", len(e.Text()))
	}
	e.Path = e.Path[:MaxEntry-200]
	if err := e.Check(); err != nil {
		t.Fatalf("an entry of %d bytes: %v", len(e.Text()), err)
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add([]byte(NewEntry(commitID, 1700000000, "root/00000001.json", []byte("x")).Text()))
	f.Add([]byte(commitID + " -5 " + strings.Repeat("0", 64) + " 0 a\n"))
	f.Add([]byte("x y z\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		e, err := ParseEntry(text)
		if err != nil {
			return
		}
		// Whatever parses is the one spelling Text writes.
		if !bytes.Equal(e.Text(), text) {
			t.Fatalf("ParseEntry(%q) = %+v, whose Text is %q", text, e, e.Text())
		}
	})
}

// Check accepts exactly the entries whose Text parses back.
func FuzzEntryCheck(f *testing.F) {
	f.Add(commitID, int64(1700000000), int64(17), "root/00000001.json")
	f.Add(commitID, int64(-1), int64(-1), "a b")
	f.Add(strings.ToUpper(commitID), int64(0), int64(0), "x")
	f.Fuzz(func(t *testing.T, commit string, time, size int64, path string) {
		e := Entry{Commit: commit, Time: time, Size: size, Path: path}
		_, perr := ParseEntry(e.Text())
		if cerr := e.Check(); (cerr == nil) != (perr == nil) {
			t.Fatalf("Check() = %v, ParseEntry(Text()) = %v", cerr, perr)
		}
	})
}

func TestMapEntryText(t *testing.T) {
	root := tlog.Hash(sha256.Sum256([]byte("map")))
	e := MapEntry{Commit: commitID, Time: 1700000000, Root: root}
	want := commitID + " 1700000000 map " + hexOf(root[:]) + "\n"
	if got := string(e.Text()); got != want {
		t.Fatalf("Text() = %q, want %q", got, want)
	}
	if !IsMapEntry(e.Text()) {
		t.Fatal("IsMapEntry(map entry) = false")
	}
	back, err := ParseMapEntry(e.Text())
	if err != nil {
		t.Fatal(err)
	}
	if back != e {
		t.Fatalf("ParseMapEntry(Text()) = %+v, want %+v", back, e)
	}
	// A file entry is not a map entry, and each parser refuses the other kind.
	file := NewEntry(commitID, 1700000000, "map", []byte("x")).Text()
	if IsMapEntry(file) {
		t.Fatalf("IsMapEntry(%q) = true", file)
	}
	if _, err := ParseMapEntry(file); !errors.Is(err, ErrEntry) {
		t.Fatalf("ParseMapEntry(file entry) = %v, want ErrEntry", err)
	}
	_, err = ParseEntry(e.Text())
	if !errors.Is(err, ErrEntry) || !strings.Contains(err.Error(), "map leaf") {
		t.Fatalf("ParseEntry(map entry) = %v, want ErrEntry naming a map leaf", err)
	}
}

func TestParseMapEntryStrict(t *testing.T) {
	root := strings.Repeat("ab", 32)
	good := commitID + " 1700000000 map " + root + "\n"
	if _, err := ParseMapEntry([]byte(good)); err != nil {
		t.Fatalf("good map entry refused: %v", err)
	}
	for name, line := range map[string]string{
		"no newline":        strings.TrimSuffix(good, "\n"),
		"crlf":              strings.TrimSuffix(good, "\n") + "\r\n",
		"two newlines":      good + "\n",
		"upper-case commit": strings.ToUpper(commitID) + " 1700000000 map " + root + "\n",
		"short commit":      commitID[:39] + " 1700000000 map " + root + "\n",
		"leading zero time": commitID + " 01700000000 map " + root + "\n",
		"plus time":         commitID + " +1700000000 map " + root + "\n",
		"MAP":               commitID + " 1700000000 MAP " + root + "\n",
		"upper-case root":   commitID + " 1700000000 map " + strings.ToUpper(root) + "\n",
		"short root":        commitID + " 1700000000 map " + root[:62] + "\n",
		"extra field":       commitID + " 1700000000 map " + root + " x\n",
		"two spaces":        commitID + "  1700000000 map " + root + "\n",
		"trailing space":    commitID + " 1700000000 map " + root + " \n",
		"empty":             "",
	} {
		if _, err := ParseMapEntry([]byte(line)); !errors.Is(err, ErrEntry) {
			t.Errorf("%s: ParseMapEntry(%q) = %v, want ErrEntry", name, line, err)
		}
	}
}
