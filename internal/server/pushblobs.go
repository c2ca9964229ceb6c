package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gomod"
	"cairn.dev/cairn/internal/index"
)

// lacking is what a push names that the server's store does not hold:
// the blobs of one version (or of one other place in the index), or a Go
// module version whose held blobs do not hash to its descriptor's h1:.
type lacking struct {
	What string     // "acme/x@1.0.0", or the directory of the record
	Refs []blob.Ref // the blobs missing
	Err  error      // the blobs are held and do not match (Refs is empty)
}

func (l lacking) String() string {
	if l.Err != nil {
		return fmt.Sprintf("%s: the blobs this server holds do not match the pushed descriptor: %v; a Go module version is only accepted with the bytes its h1: hashes name", l.What, l.Err)
	}
	var refs []string
	for _, r := range l.Refs {
		refs = append(refs, fmt.Sprintf("sha256:%s (%d bytes)", r.SHA256, r.Size))
	}
	return fmt.Sprintf("%s: this server does not hold %s, which the pushed records name; a version is only accepted with its blobs, so that it can be installed from here", l.What, strings.Join(refs, ", "))
}

// missingBlobs returns the blobs that the files added from old to new
// name and the store lacks. Only the pushed commits' files count: blobs
// that older records name (an upstream's, fetched when first asked for)
// are not asked for. Each new version needs its descriptor and every one
// of its artifacts, save one case: binaries may be published while the
// source stays internal (cairn promote --artifacts binary), so a version
// with binaries, all of them held, may lack its source artifacts. Every
// other blob a new record names with its size (evidence, a snapshot) is
// needed; one named by digest alone (what a test run read) is not.
func missingBlobs(ctx context.Context, repo *index.Repo, old, new string) ([]lacking, error) {
	type group struct {
		what      string
		need      []blob.Ref
		artifacts []descriptor.Artifact
		goDesc    *descriptor.Descriptor // a Go module version's
	}
	var groups []*group
	byWhat := map[string]*group{}
	get := func(what string) *group {
		g := byWhat[what]
		if g == nil {
			g = &group{what: what}
			byWhat[what] = g
			groups = append(groups, g)
		}
		return g
	}
	isArtifact := map[string]bool{}
	err := repo.AddedBetween(ctx, old, new, func(_ string, added []index.Entry) error {
		for _, f := range added {
			if f.About() == "" {
				continue // the rules have judged it
			}
			g := get(f.About())
			if f.Descriptor {
				g.need = append(g.need, blob.DigestBytes(f.Data))
				if d, err := descriptor.Parse(f.Data); err == nil {
					if d.Go != nil {
						g.goDesc = d
					}
					for _, a := range d.Artifacts {
						g.artifacts = append(g.artifacts, a)
						isArtifact[a.Ref.SHA256] = true
					}
				}
				continue
			}
			f.Blobs(func(ref blob.Ref) {
				if ref.Size >= 0 {
					g.need = append(g.need, ref)
				}
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	held := map[string]bool{} // by sha256: whether the store holds it
	for _, g := range groups {
		for _, a := range g.artifacts {
			if _, ok := held[a.Ref.SHA256]; ok {
				continue
			}
			ok, err := repo.Blobs.Stat(ctx, a.Ref)
			if err != nil {
				return nil, fmt.Errorf("looking for %s in the server's store: %w", a.Ref, err)
			}
			held[a.Ref.SHA256] = ok
		}
	}
	var out []lacking
	for _, g := range groups {
		var miss []blob.Ref
		seen := map[string]bool{}
		for _, ref := range g.need {
			if seen[ref.SHA256] || isArtifact[ref.SHA256] {
				// An artifact named by a record (a reproduced record's
				// source) is judged with its version's artifacts.
				continue
			}
			seen[ref.SHA256] = true
			ok, err := repo.Blobs.Stat(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("looking for %s in the server's store: %w", ref, err)
			}
			if !ok {
				miss = append(miss, ref)
			}
		}
		miss = append(miss, missingArtifacts(g.artifacts, held)...)
		if len(miss) > 0 {
			out = append(out, lacking{What: g.what, Refs: miss})
			continue
		}
		if g.goDesc != nil {
			if err := heldGoSums(ctx, repo.Blobs, g.goDesc); err != nil {
				out = append(out, lacking{What: g.what, Err: err})
			}
		}
	}
	return out, nil
}

// heldGoSums checks a Go module version's zip and go.mod, held in store,
// against its descriptor's h1: hashes and as the go command would take
// them for its module@version (gomod.CheckFiles): a pusher who hashed
// another module's files is refused.
func heldGoSums(ctx context.Context, store blob.Store, d *descriptor.Descriptor) error {
	zipRef, _ := goArtifact(d, descriptor.KindSource)
	modRef, _ := goArtifact(d, descriptor.KindGoMod)
	mod, err := blob.ReadAll(ctx, store, modRef)
	if err != nil {
		return fmt.Errorf("reading go.mod %s: %w", modRef, err)
	}
	var zipPath string
	if fsStore, ok := store.(*blob.FS); ok {
		if zipPath, err = fsStore.Path(zipRef); err != nil {
			return err
		}
	} else {
		tmp, err := os.CreateTemp("", "cairn-push-*.zip")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		rc, err := store.Open(ctx, zipRef)
		if err != nil {
			return err
		}
		_, err = io.Copy(tmp, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading the zip %s: %w", zipRef, err)
		}
		zipPath = tmp.Name()
	}
	return gomod.CheckFiles(d, zipPath, mod)
}

// missingArtifacts returns the artifacts of one version that a push needs
// and the store does not hold (held, by sha256): every artifact, except
// the source artifacts of a version that has binaries and holds them all
// — the product's promise that binaries can be published while the
// source stays internal. Each blob is named once.
func missingArtifacts(artifacts []descriptor.Artifact, held map[string]bool) []blob.Ref {
	binaries, binariesHeld := 0, true
	for _, a := range artifacts {
		if a.Kind == "binary" {
			binaries++
			binariesHeld = binariesHeld && held[a.Ref.SHA256]
		}
	}
	sourceOptional := binaries > 0 && binariesHeld
	var miss []blob.Ref
	seen := map[string]bool{}
	for _, a := range artifacts {
		if held[a.Ref.SHA256] || seen[a.Ref.SHA256] || (sourceOptional && a.Kind != "binary") {
			continue
		}
		seen[a.Ref.SHA256] = true
		miss = append(miss, a.Ref)
	}
	return miss
}
