package server

import (
	"bytes"
	"cairn.dev/cairn/internal/index/indextest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
)

// publishInClone publishes a version in a replica of f's index (fetched
// over git from the server), with the artifacts files lists (name →
// kind/platform line of the manifest), and returns the replica and the
// version's descriptor. Nothing is uploaded to the server.
func publishInClone(t *testing.T, f *fixture, name, version string, artifacts [][3]string) (*index.Repo, *author.Published) {
	t.Helper()
	c, err := index.InitReplica(f.ctx, filepath.Join(t.TempDir(), "clone"), f.repo.Config.Introduction)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := indextest.Git(t, c, "fetch", "-q", f.url+"/index.git", "+"+index.MainRef+":"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var m strings.Builder
	m.WriteString("name: " + name + "\nversion: " + version + "\nartifacts:\n")
	for _, a := range artifacts { // {kind, platform, file}
		m.WriteString("  - kind: " + a[0] + "\n")
		if a[1] != "" {
			m.WriteString("    platform: " + a[1] + "\n")
		}
		m.WriteString("    file: " + a[2] + "\n")
		os.WriteFile(filepath.Join(dir, a[2]), []byte("the bytes of "+a[2]+" in "+name+"@"+version), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(m.String()), 0o644)
	p, err := author.Publish(f.ctx, c, dir, f.alice)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// upload sends the named blobs of c's store to f's server, signed by alice.
func upload(t testing.TB, f *fixture, c *index.Repo, refs ...blob.Ref) {
	t.Helper()
	up := &blob.HTTP{URL: f.url, Signer: uploadKey{f.alice}}
	for _, ref := range refs {
		data, err := blob.ReadAll(f.ctx, c.Blobs, ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := up.Put(f.ctx, ref, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
}

// pushClone pushes c's main to f's server with the git client.
func pushClone(t testing.TB, f *fixture, c *index.Repo) (string, error) {
	t.Helper()
	out, err := indextest.Git(t, c, "push", f.url+"/index.git", index.MainRef+":"+index.MainRef)
	if err != nil {
		return err.Error(), err
	}
	return string(out), nil
}

func artifact(d *descriptor.Descriptor, label string) blob.Ref {
	for _, a := range d.Artifacts {
		if a.Label() == label {
			return a.Ref
		}
	}
	panic("no artifact " + label)
}

// Attack (issue 12 review, item 1): a version is accepted only with the
// blobs of every artifact, save the source of a version whose binaries
// are all held (binaries published while the source stays internal).
func TestAttackPushMissingArtifacts(t *testing.T) {
	f := newFixture(t)
	bins := [][3]string{{"binary", "linux-amd64", "x-linux"}, {"binary", "darwin-arm64", "x-darwin"}}
	cases := []struct {
		name      string
		artifacts [][3]string
		send      []string // artifacts uploaded, by label
		missing   string   // the artifact the refusal must name; "" if accepted
	}{
		{"two binaries, one uploaded", bins, []string{"linux-amd64"}, "darwin-arm64"},
		{"source and two binaries, one binary uploaded", append([][3]string{{"source", "", "src.tar.gz"}}, bins...), []string{"linux-amd64"}, "darwin-arm64"},
		{"source only, not uploaded", [][3]string{{"source", "", "src.tar.gz"}}, nil, "source"},
		{"binaries only, all uploaded", bins, []string{"linux-amd64", "darwin-arm64"}, ""},
		{"source withheld, binaries uploaded", append([][3]string{{"source", "", "src.tar.gz"}}, bins...), []string{"linux-amd64", "darwin-arm64"}, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "acme/p" + string(rune('a'+i))
			c, p := publishInClone(t, f, name, "1.0.0", tc.artifacts)
			refs := []blob.Ref{p.Ref}
			for _, l := range tc.send {
				refs = append(refs, artifact(p.Descriptor, l))
			}
			upload(t, f, c, refs...)
			before, _ := f.repo.Head(f.ctx, index.MainRef)
			out, err := pushClone(t, f, c)
			after, _ := f.repo.Head(f.ctx, index.MainRef)
			if tc.missing == "" {
				if err != nil {
					t.Fatalf("push refused:\n%s", out)
				}
				if head, _ := c.Head(f.ctx, index.MainRef); after != head {
					t.Fatalf("main is %s, want the pushed %s", after, head)
				}
				return
			}
			if err == nil {
				t.Fatalf("a version lacking its %s artifact was accepted:\n%s", tc.missing, out)
			}
			prefix := "remote: cairn: refused: " + name + "@1.0.0: this server does not hold "
			_, line, _ := strings.Cut(out, prefix)
			line, _, _ = strings.Cut(line, "\n")
			if want := "sha256:" + artifact(p.Descriptor, tc.missing).SHA256; !strings.Contains(line, want) {
				t.Errorf("git push output has no line %q naming %s:\n%s", prefix, want, out)
			}
			for _, l := range tc.send {
				if r := artifact(p.Descriptor, l); strings.Contains(line, r.SHA256) {
					t.Errorf("the refusal names %s, which the server holds:\n%s", l, out)
				}
			}
			if after != before {
				t.Fatalf("main moved to %s on a refused push", after)
			}
		})
	}
}
