package install

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index/indextest"
)

// depth is how many links a chain climbs: more than any temporary
// directory is deep, fewer than the kernel's 40 links a lookup.
const depth = 30

// chainTar is the symlink-chain attack: u0 is a directory, each u(k) ->
// u(k-1)/.. climbs one level while its target looks local, and passwd ->
// uN/etc/passwd reads the host's file.
func chainTar(t *testing.T) []byte {
	es := []entry{{tar.Header{Name: "u0/", Typeflag: tar.TypeDir, Mode: 0o755}, ""}}
	for k := 1; k <= depth; k++ {
		es = append(es, entry{tar.Header{Name: fmt.Sprintf("u%d", k), Typeflag: tar.TypeSymlink, Linkname: fmt.Sprintf("u%d/..", k-1)}, ""})
	}
	es = append(es, entry{tar.Header{Name: "passwd", Typeflag: tar.TypeSymlink, Linkname: fmt.Sprintf("u%d/etc/passwd", depth)}, ""})
	return craft(t, es...)
}

func chainZip(t *testing.T) []byte {
	es := [][2]string{{"u0/", ""}}
	for k := 1; k <= depth; k++ {
		es = append(es, [2]string{fmt.Sprintf("u%d", k), fmt.Sprintf("->u%d/..", k-1)})
	}
	es = append(es, [2]string{"passwd", fmt.Sprintf("->u%d/etc/passwd", depth)})
	return zipOf(t, es)
}

// refused installs an archive and checks that it is refused as unsafe,
// naming want, that nothing was materialised, and that no installed link
// reads outside.
func refused(t *testing.T, file string, archive []byte, want string) {
	t.Helper()
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/evil", Version: "1.0.0", BinaryFile: file, Binary: archive})
	w.onDisk("packages:\n  acme/evil: '*'\n")
	into := filepath.Join(t.TempDir(), "deps")
	_, err := w.install(into, false)
	if got, rerr := os.ReadFile(filepath.Join(into, "acme/evil/passwd")); rerr == nil {
		host, _ := os.ReadFile("/etc/passwd")
		t.Errorf("the install's passwd reads %d bytes (the host's /etc/passwd: %v)", len(got), bytes.Equal(got, host))
	}
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), want) {
		t.Fatalf("install = %v; want an unsafe-archive error saying %q", err, want)
	}
	if _, err := os.Lstat(into); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("something was materialised: %v", err)
	}
}

// TestSymlinkChain is issue 12 item 1: a chain of links that each look
// local climbs out of the package; the archive is refused, tar and zip.
func TestSymlinkChain(t *testing.T) {
	t.Run("tar.gz", func(t *testing.T) { refused(t, "", chainTar(t), `entry "u2": a symlink to "u1/.." points out`) })
	t.Run("zip", func(t *testing.T) { refused(t, "x.zip", chainZip(t), `entry "u2": a symlink to "u1/.." points out`) })
}

// TestUnsafeEntries: links judged against the whole archive (a target
// that becomes a link later), hard links out, devices, fifos, loops.
func TestUnsafeEntries(t *testing.T) {
	file := func(name string) entry { return entry{tar.Header{Name: name, Typeflag: tar.TypeReg}, "x"} }
	link := func(name, to string) entry {
		return entry{tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}, ""}
	}
	hard := func(name, to string) entry {
		return entry{tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to}, ""}
	}
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"a link whose target becomes a link later", []entry{link("a", "d/.."), link("d", ".")}, `entry "a": a symlink to "d/.." points out`},
		{"a link through a later link in a directory", []entry{file("s/f"), link("a", "s/d/../../x"), link("s/d", "..")}, `entry "a": a symlink to "s/d/../../x" points out`},
		{"an absolute link", []entry{link("passwd", "/etc/passwd")}, `a symlink to "/etc/passwd" points out`},
		{"a link loop", []entry{link("a", "b/x"), link("b", "a")}, "a loop of symlinks"},
		{"a hard link to an absolute path", []entry{hard("passwd", "/etc/passwd")}, `a hard link to "/etc/passwd" points out`},
		{"a hard link out", []entry{hard("passwd", "../../../../../../../../../etc/passwd")}, `a hard link to "../../../../../../../../../etc/passwd" points out`},
		{"a hard link through a link", []entry{link("up", "."), hard("passwd", "up/x")}, "goes through the symlink up"},
		{"a hard link to a file not (yet) in the archive", []entry{hard("a", "b"), file("b")}, `a hard link to "b": no regular file of that name earlier in the archive`},
		{"a hard link to a symlink", []entry{link("l", "x"), hard("a", "l")}, `a hard link to "l": no regular file of that name earlier in the archive`},
		{"a fifo", []entry{{tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}, ""}}, "device and fifo entries"},
		{"a block device", []entry{{tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8}, ""}}, "device and fifo entries"},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, "", craft(t, tc.entries...), tc.want) })
	}
	for _, tc := range []struct {
		name    string
		entries [][2]string
		want    string
	}{
		{"zip: a link whose target becomes a link later", [][2]string{{"a", "->d/.."}, {"d", "->."}}, `entry "a": a symlink to "d/.." points out`},
		{"zip: an absolute link", [][2]string{{"passwd", "->/etc/passwd"}}, `a symlink to "/etc/passwd" points out`},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, "x.zip", zipOf(t, tc.entries), tc.want) })
	}
	for _, mode := range []fs.FileMode{fs.ModeNamedPipe, fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice, fs.ModeSocket} {
		t.Run("zip: "+mode.String(), func(t *testing.T) {
			refused(t, "x.zip", zipMode(t, "dev", mode|0o644), "device and fifo entries")
		})
	}
}

// TestSafeEntries: what a real archive holds still installs — links to
// files that come later, a hard link to an earlier file, and a setuid
// file, unpacked without its setuid, setgid and sticky bits.
func TestSafeEntries(t *testing.T) {
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/ok", Version: "1.0.0", Binary: craft(t,
		entry{tar.Header{Name: "lib/libz.so", Typeflag: tar.TypeSymlink, Linkname: "libz.so.1"}, ""},
		entry{tar.Header{Name: "lib/libz.so.1", Typeflag: tar.TypeReg}, "elf"},
		entry{tar.Header{Name: "bin/tool", Typeflag: tar.TypeReg, Mode: 0o7755}, "#!/bin/sh\n"},
		entry{tar.Header{Name: "bin/tool2", Typeflag: tar.TypeLink, Linkname: "bin/tool"}, ""},
		entry{tar.Header{Name: "share/up", Typeflag: tar.TypeSymlink, Linkname: "../lib/./libz.so"}, ""},
	)})
	w.onDisk("packages:\n  acme/ok: '*'\n")
	into := filepath.Join(t.TempDir(), "deps")
	if _, err := w.install(into, false); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(into, "acme/ok")
	if got := read(t, filepath.Join(pkg, "share/up")); got != "elf" {
		t.Fatalf("share/up reads %q", got)
	}
	if got := read(t, filepath.Join(pkg, "bin/tool2")); got != "#!/bin/sh\n" {
		t.Fatalf("the hard link reads %q", got)
	}
	for _, f := range []string{"bin/tool", "bin/tool2"} {
		fi, err := os.Stat(filepath.Join(pkg, f))
		if err != nil || fi.Mode() != 0o755 {
			t.Fatalf("%s: mode %v (%v), want -rwxr-xr-x with no setuid, setgid or sticky bit", f, fi.Mode(), err)
		}
	}
	m, err := ReadManifest(into)
	if err != nil {
		t.Fatal(err)
	}
	var tool2 *File
	for i, f := range m.Packages[0].Files {
		if f.Path == "acme/ok/bin/tool2" {
			tool2 = &m.Packages[0].Files[i]
		}
	}
	if tool2 == nil || tool2.Type != "file" || tool2.Size != 10 || tool2.Mode != "0755" {
		t.Fatalf("manifest entry of the hard link: %+v", tool2)
	}
}

// zipMode is a zip of one entry with the given mode.
func zipMode(t *testing.T, name string, mode fs.FileMode) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name, Method: zip.Store}
	h.SetMode(mode)
	fw, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte("x"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
