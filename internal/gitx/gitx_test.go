package gitx

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func commitFiles(t *testing.T, r *Repo, rd *Reader, parent string, files ...string) string {
	t.Helper()
	base := ""
	var parents []string
	if parent != "" {
		c, err := rd.Commit(parent)
		if err != nil {
			t.Fatal(err)
		}
		base, parents = c.Tree, []string{parent}
	}
	var fl []File
	for _, f := range files {
		fl = append(fl, File{Path: f, Data: []byte("content of " + f)})
	}
	b := r.NewBatch()
	tree, err := b.AddToTree(rd, base, fl)
	if err != nil {
		t.Fatal(err)
	}
	id := b.Write("commit", FormatCommit(tree, parents, "cairn <test>", 1700000000, "test"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	return id
}

// newRepo makes a bare repository and a batch reader on it.
func newRepo(t *testing.T) (context.Context, *Repo, *Reader) {
	ctx := context.Background()
	r, err := InitBare(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return ctx, r, rd
}

func TestAppendWalkAndFsck(t *testing.T) {
	ctx, r, rd := newRepo(t)
	c1 := commitFiles(t, r, rd, "", "root/1.json", "a/b/c.json", "a/b-c.json", "a/b.d/x")
	if err := r.UpdateRef(ctx, "refs/heads/main", c1, "", "init"); err != nil {
		t.Fatal(err)
	}
	c2 := commitFiles(t, r, rd, c1, "a/b/d.json", "z.json")
	if err := r.UpdateRef(ctx, "refs/heads/main", c2, c1, "append"); err != nil {
		t.Fatal(err)
	}
	// A stale compare-and-swap is refused.
	c3 := commitFiles(t, r, rd, c1, "q.json")
	if err := r.UpdateRef(ctx, "refs/heads/main", c3, c1, "stale"); !errors.Is(err, ErrRefMoved) {
		t.Fatalf("stale UpdateRef = %v, want ErrRefMoved", err)
	}
	// git itself finds the packs and objects we wrote well-formed and sorted.
	if out, err := r.run(ctx, nil, "fsck", "--strict", "--no-dangling"); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
	packs, _ := filepath.Glob(filepath.Join(r.GitDir, "objects", "pack", "*.idx"))
	if len(packs) != 3 {
		t.Fatalf("%d packs, want one per flushed batch (3)", len(packs))
	}
	for _, p := range packs {
		if out, err := r.run(ctx, nil, "verify-pack", "-v", p); err != nil {
			t.Fatalf("git verify-pack %s: %v\n%s", p, err, out)
		}
	}
	out, _ := r.run(ctx, nil, "ls-tree", "-r", "--name-only", "main")
	want := "a/b-c.json\na/b.d/x\na/b/c.json\na/b/d.json\nroot/1.json\nz.json\n"
	if string(out) != want {
		t.Fatalf("ls-tree:\n%s\nwant:\n%s", out, want)
	}
	blob, err := rd.Read("main:a/b/d.json")
	if err != nil || string(blob.Data) != "content of a/b/d.json" {
		t.Fatalf("read by path: %v %q", err, blob)
	}
	if _, err := rd.Read("main:nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing path: %v", err)
	}
	// Adding an existing path is refused: trees only grow.
	c, _ := rd.Commit(c2)
	if _, err := r.NewBatch().AddToTree(rd, c.Tree, []File{{Path: "a/b/c.json", Data: []byte("x")}}); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite = %v, want ErrExists", err)
	}
	if _, err := r.NewBatch().AddToTree(rd, c.Tree, []File{{Path: "a/../evil", Data: nil}}); err == nil {
		t.Fatal("accepted a path with ..")
	}
	var log []string
	err = r.Walk(ctx, WalkOptions{To: "main"}, func(e *LogEntry) error {
		var s []string
		for _, ch := range e.Changes {
			s = append(s, fmt.Sprintf("%c %s", ch.Status, ch.Path))
		}
		log = append(log, fmt.Sprintf("%d parents: %s", len(e.Parents), strings.Join(s, ", ")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantLog := []string{
		"0 parents: A a/b-c.json, A a/b.d/x, A a/b/c.json, A root/1.json",
		"1 parents: A a/b/d.json, A z.json",
	}
	if strings.Join(log, "\n") != strings.Join(wantLog, "\n") {
		t.Fatalf("walk:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(wantLog, "\n"))
	}
	// Incremental walk: only what is new.
	n := 0
	r.Walk(ctx, WalkOptions{From: c1, To: "main"}, func(e *LogEntry) error { n++; return nil })
	if n != 1 {
		t.Fatalf("walk from c1 saw %d commits, want 1", n)
	}
	if ok, _ := r.IsAncestor(ctx, c1, c2); !ok {
		t.Fatal("c1 should be an ancestor of c2")
	}
	if ok, _ := r.IsAncestor(ctx, c3, c2); ok {
		t.Fatal("c3 is not an ancestor of c2")
	}
}

// Walk reports modifications, deletions and mode changes made with plain
// git in a work tree, and commits that change nothing.
func TestWalkSeesEditsAndDeletes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=x", "-c", "user.email=x@x"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("init", "-q")
	write("a.json", "a")
	write("b.json", "b")
	write("c.json", "c")
	run("add", ".")
	run("commit", "-q", "-m", "add")
	write("a.json", "edited")
	os.Remove(filepath.Join(dir, "b.json"))
	os.Chmod(filepath.Join(dir, "c.json"), 0o755)
	run("add", "-A")
	run("commit", "-q", "-m", "edit, delete, chmod")
	run("commit", "-q", "--allow-empty", "-m", "nothing")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.WorkTree == "" {
		t.Fatal("work tree not detected")
	}
	var log []string
	err = r.Walk(ctx, WalkOptions{To: "HEAD"}, func(e *LogEntry) error {
		var s []string
		for _, ch := range e.Changes {
			s = append(s, fmt.Sprintf("%c %s %s", ch.Status, ch.Path, ch.NewMode))
		}
		log = append(log, strings.Join(s, ", "))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"A a.json 100644, A b.json 100644, A c.json 100644",
		"M a.json 100644, D b.json 000000, M c.json 100755",
		"",
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Fatalf("walk:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

// Appends make one pack each; MaybeRepack keeps their number bounded and
// loses nothing.
func TestMaybeRepack(t *testing.T) {
	ctx, r, rd := newRepo(t)
	head := ""
	for i := 0; i < 12; i++ {
		head = commitFiles(t, r, rd, head, fmt.Sprintf("f/%d.json", i))
		if err := r.MaybeRepack(ctx, 4); err != nil {
			t.Fatal(err)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(r.GitDir, "objects", "pack", "*.idx"))
	if len(packs) > 5 {
		t.Fatalf("%d packs after repacking with limit 4", len(packs))
	}
	r.UpdateRef(ctx, "refs/heads/main", head, "", "t")
	out, _ := r.run(ctx, nil, "ls-tree", "-r", "--name-only", "main")
	if n := strings.Count(string(out), "\n"); n != 12 {
		t.Fatalf("%d files after repack, want 12", n)
	}
	if out, err := r.run(ctx, nil, "fsck", "--strict"); err != nil {
		t.Fatalf("fsck: %v %s", err, out)
	}
}

// A server whose appends were rolled up keeps a reachability bitmap (a
// multi-pack one), even after its geometric repack rolled up the pack
// whose bitmap a full repack wrote: without one, every clone and fetch it
// serves walks the whole history.
func TestMaybeRepackKeepsBitmap(t *testing.T) {
	ctx, r, rd := newRepo(t)
	head := commitFiles(t, r, rd, "", "f/first.json")
	r.UpdateRef(ctx, "refs/heads/main", head, "", "t")
	if err := r.Repack(ctx); err != nil { // a pack with its bitmap
		t.Fatal(err)
	}
	var pending []string // appends whose ref has not moved yet, when another repacks
	for i := 0; i < 12; i++ {
		next := commitFiles(t, r, rd, head, fmt.Sprintf("f/%d.json", i))
		if err := r.UpdateRef(ctx, "refs/heads/main", next, head, "t"); err != nil {
			t.Fatal(err)
		}
		head = next
		pending = append(pending, commitFiles(t, r, rd, head, fmt.Sprintf("g/%d.json", i)))
		if err := r.MaybeRepack(ctx, 4); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range pending {
		if out, err := r.run(ctx, nil, "cat-file", "-e", id+"^{tree}"); err != nil {
			t.Fatalf("a commit no ref named yet was lost by a repack: %v %s", err, out)
		}
	}
	bitmaps, _ := filepath.Glob(filepath.Join(r.GitDir, "objects", "pack", "*.bitmap"))
	if len(bitmaps) == 0 {
		t.Fatal("no reachability bitmap after the geometric repacks")
	}
	with, err := r.run(ctx, nil, "rev-list", "--objects", "--use-bitmap-index", "--count", head)
	if err != nil {
		t.Fatal(err)
	}
	without, err := r.run(ctx, nil, "rev-list", "--objects", "--count", head)
	if err != nil || string(with) != string(without) {
		t.Fatalf("objects counted with the bitmap: %s, without: %s (%v)", with, without, err)
	}
	if out, err := r.run(ctx, nil, "fsck", "--strict"); err != nil {
		t.Fatalf("fsck: %v %s", err, out)
	}
}

func FuzzParseTree(f *testing.F) {
	data, _ := FormatTree([]TreeEntry{{Mode: ModeFile, Name: "a.json", ID: strings.Repeat("ab", 20)}, {Mode: ModeTree, Name: "d", ID: strings.Repeat("cd", 20)}})
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseTree(data, 40)
		if err != nil {
			return
		}
		for _, e := range entries {
			if len(e.ID) != 40 {
				t.Fatalf("entry %q has id %q", e.Name, e.ID)
			}
		}
	})
}

// ReadMany returns the objects in the order asked, across more requests
// than fit in one write (and more replies than a pipe holds, which would
// hang a reader that wrote every request before reading); a missing one
// is fs.ErrNotExist and leaves the stream in step for the next request.
func TestReadMany(t *testing.T) {
	_, r, rd := newRepo(t)
	var files []string
	for i := range 40 {
		files = append(files, fmt.Sprintf("d/f%02d.json", i))
	}
	head := commitFiles(t, r, rd, "", files...)
	var specs []string
	for i := range 10000 { // about 170 KiB of requests, 2 MiB of replies
		specs = append(specs, head+":"+files[i%len(files)])
	}
	objs, err := rd.ReadMany(specs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		if want := "content of " + files[i%len(files)]; string(o.Data) != want || o.Type != "blob" {
			t.Fatalf("object %d: %s %q, want the blob %q", i, o.Type, o.Data, want)
		}
	}
	_, err = rd.ReadMany([]string{head + ":d/f01.json", head + ":d/none.json", head + ":d/f02.json"})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "d/none.json") {
		t.Fatalf("a missing object: %v, want fs.ErrNotExist naming it", err)
	}
	o, err := rd.Read(head + ":d/f03.json")
	if err != nil || string(o.Data) != "content of d/f03.json" {
		t.Fatalf("the read after a missing object: %v %q", err, o.Data)
	}
	if _, err := rd.ReadMany([]string{"a\nb"}); err == nil {
		t.Fatal("a name with a newline was asked for")
	}
}

// Reads from many goroutines at once, with restarts among them, each get
// their own object (a Reader runs a second git process while two are
// served); after Close every read is refused, also one that waited.
func TestReaderConcurrent(t *testing.T) {
	_, r, rd := newRepo(t)
	var files []string
	for i := range 20 {
		files = append(files, fmt.Sprintf("d/f%02d.json", i))
	}
	head := commitFiles(t, r, rd, "", files...)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 200 {
				f := files[(g+i)%len(files)]
				if i%50 == 0 {
					rd.Restart()
				}
				var data []byte
				if i%2 == 0 {
					o, err := rd.Read(head + ":" + f)
					if err != nil {
						errs <- err
						return
					}
					data = o.Data
				} else {
					objs, err := rd.ReadMany([]string{head + ":" + f, head + ":" + f})
					if err != nil {
						errs <- err
						return
					}
					data = objs[1].Data
				}
				if string(data) != "content of "+f {
					errs <- fmt.Errorf("read %s, got %q", f, data)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := rd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Read(head + ":" + files[0]); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("a read after Close: %v", err)
	}
}

// The repositories cairn makes store objects whole (Compression): those
// cairn packs itself, and those git writes loose and then repacks, so a
// reader inflates nothing. Compressible bytes show in the pack as they
// are only if nothing deflated them.
func TestObjectsStoredWhole(t *testing.T) {
	ctx, r, rd := newRepo(t)
	ours := strings.Repeat("packed by cairn, stored whole; ", 64)
	b := r.NewBatch()
	tree, err := b.AddToTree(rd, "", []File{{Path: "a/ours.json", Data: []byte(ours)}})
	if err != nil {
		t.Fatal(err)
	}
	head := b.Write("commit", FormatCommit(tree, nil, "cairn <test>", 1700000000, "test"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	theirs := strings.Repeat("written loose by git, then repacked; ", 64)
	out, err := r.run(ctx, []byte(theirs), "hash-object", "-w", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateRef(ctx, "refs/heads/main", head, "", "t"); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateRef(ctx, "refs/tags/loose", strings.TrimSpace(string(out)), "", "t"); err != nil {
		t.Fatal(err)
	}
	if err := r.Repack(ctx); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(r.GitDir, "objects", "pack", "*.pack"))
	var all []byte
	for _, p := range packs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	for _, s := range []string{ours, theirs} {
		if !strings.Contains(string(all), s) {
			t.Errorf("no pack holds %.30q… whole: it was compressed", s)
		}
	}
}
