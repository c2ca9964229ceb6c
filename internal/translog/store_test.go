package translog

import (
	"strings"
	"testing"
)

// testSubject gives the test entries' paths a subject: their package.
func testSubject(path string) (string, bool) {
	parts := strings.Split(path, "/")
	if len(parts) < 7 || parts[0] != "packages" {
		return "", false
	}
	return "package " + parts[5] + "/" + parts[6], true
}

// testSubjects gives the test entries' paths their subjects: their
// package, and "all" for every tenth leaf's, as "keys" holds every key's
// files beside each key's own subject.
func testSubjects(path string) []string {
	s, ok := testSubject(path)
	if !ok {
		return nil
	}
	if strings.HasSuffix(path, "0/descriptor.json") {
		return []string{s, "all"}
	}
	return []string{s}
}

// handMap is the reference: the map built leaf by leaf from the entries.
func handMap(n int64) *Map {
	m := NewMap()
	for i := int64(0); i < n; i++ {
		e := testEntry(i)
		for _, s := range testSubjects(e.Path) {
			m.Add(s, i, LeafHash(e.Text()))
		}
	}
	return m
}

func TestStoreMapFollowsLog(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	empty, err := s.Map()
	if err != nil || empty.Size != 0 || empty.Map.Root() != NewMap().Root() {
		t.Fatalf("empty store's map: %+v, %v", empty, err)
	}
	grow(t, s.Log, 0, 1000, "a")
	at, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	if at.Size != 1000 || at.Root != s.Root() || at.Map.Root() != handMap(1000).Root() {
		t.Fatalf("map at 1000: size %d, root %v, want the hand-built %v", at.Size, at.Map.Root(), handMap(1000).Root())
	}
	// Staged leaves are not in it; committed ones are, and the map read
	// before stays what it was.
	for i := int64(1000); i < 1300; i++ {
		s.Append(testEntry(i))
	}
	if again, _ := s.Map(); again.Map != at.Map {
		t.Fatal("the map changed with staged leaves")
	}
	if err := s.Commit("b"); err != nil {
		t.Fatal(err)
	}
	later, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	if later.Size != 1300 || later.Map.Root() != handMap(1300).Root() {
		t.Fatal("the map did not follow the log")
	}
	if at.Map.Root() != handMap(1000).Root() {
		t.Fatal("the map read earlier changed")
	}
	// A subject's proof checks against the root, and gives its files.
	subject := "package acme/p150"
	v, idx, ok := later.Map.Get(subject)
	if !ok || len(idx) != 7 || idx[0] != 1050 {
		t.Fatalf("Get(%s) = %v %v %v", subject, v, idx, ok)
	}
	if err := VerifyMap(later.Map.Root(), subject, &v, later.Map.Prove(subject)); err != nil {
		t.Fatal(err)
	}

	// Another process appends: the store's map follows once reloaded.
	other, err := OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	grow(t, other, 1300, 1400, "c")
	other.Close()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if at, _ := s.Map(); at.Size != 1400 || at.Map.Root() != handMap(1400).Root() {
		t.Fatalf("after another process appended: map at %d", at.Size)
	}
}

// A map is rebuilt, not extended, when the log under it is another one.
func TestStoreMapRebuilt(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	grow(t, s.Log, 0, 10, "a")
	s.Map()
	// Swap the log for one of other entries behind the store's back.
	s.Log.Close()
	other := t.TempDir()
	l, _ := OpenLog(other)
	for i := int64(100); i < 120; i++ {
		l.Append(testEntry(i))
	}
	l.Commit("x")
	l.Close()
	s.Log, _ = OpenLog(other)
	at, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := NewMap()
	for i := int64(0); i < 20; i++ {
		e := testEntry(100 + i)
		for _, sub := range testSubjects(e.Path) {
			want.Add(sub, i, LeafHash(e.Text()))
		}
	}
	if at.Map.Root() != want.Root() {
		t.Fatal("the map was extended over another log instead of rebuilt")
	}
}
