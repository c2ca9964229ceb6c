package index_test

import (
	"bytes"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index"
)

// A read of a subject whose Load is under way waits for it and finds
// its files: it is not answered from a half-loaded MemFiles, where the
// file would read as absent (a vulnerable record nobody would see).
func TestMemFilesReadWaitsForLoad(t *testing.T) {
	f := index.MemFile{Path: "root/00000002.json", Data: []byte("{}")}
	entered, release := make(chan struct{}), make(chan struct{})
	mf := &index.MemFiles{Load: func(subject string) ([]index.MemFile, error) {
		close(entered)
		<-release
		return []index.MemFile{{Path: "root/00000001.json", Data: []byte("{}")}, f}, nil
	}}
	type read struct {
		data []byte
		err  error
	}
	first, second := make(chan read, 1), make(chan read, 1)
	go func() {
		data, err := mf.Read("root/00000001.json")
		first <- read{data, err}
	}()
	<-entered // the first read is loading the subject
	go func() {
		data, err := mf.Read(f.Path)
		second <- read{data, err}
	}()
	var r read
	select {
	case r = <-second:
		close(release) // answered while the load was under way
	case <-time.After(200 * time.Millisecond):
		close(release)
		r = <-second
	}
	if r.err != nil || !bytes.Equal(r.data, f.Data) {
		t.Fatalf("a read of %s while its subject loads: %q, %v; want its bytes", f.Path, r.data, r.err)
	}
	if r := <-first; r.err != nil {
		t.Fatalf("the read that loaded the subject: %v", r.err)
	}
}
