package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// Uploaded reports an upload of the blobs a server lacks.
type Uploaded struct {
	Remote   string `json:"remote"`
	URL      string `json:"url"`
	Named    int    `json:"named"`    // blobs the chosen files name (with their size)
	Held     int    `json:"held"`     // of those, the ones this repository holds
	Uploaded int    `json:"uploaded"` // of those, the ones the server lacked, now sent
}

// UploadMissing sends a server the blobs that main's index names (only
// those of the versions given as NAME@VERSION, if any) which this
// repository holds and the server lacks: the blobs of versions pushed
// with git without them, or of commits about to be pushed. Each upload
// is signed by s. name is a remote (cairn remote add), or a git remote
// of a clone (origin) whose URL is a cairn server's index.git.
func UploadMissing(ctx context.Context, r *index.Repo, name string, s keys.Signer, versions []string, o Options) (*Uploaded, error) {
	url, err := blobURL(ctx, r, name)
	if err != nil {
		return nil, err
	}
	out := &Uploaded{Remote: name, URL: url}
	head, err := r.Head(ctx, index.MainRef)
	if err != nil {
		return nil, err
	}
	var want []string // NAME@VERSION
	for _, v := range versions {
		n, ver := descriptor.SplitID(v)
		if n == "" || ver == "" {
			return nil, fmt.Errorf("%q: name versions as NAME@VERSION", v)
		}
		want = append(want, n+"@"+ver)
	}
	found := make([]bool, len(want))
	var refs []blob.Ref
	seen := map[string]bool{}
	err = r.Entries(ctx, head, func(e index.Entry) error {
		if len(want) > 0 {
			in := false
			for i, w := range want {
				if e.Upstream == "" && e.Version != "" && e.About() == w {
					in, found[i] = true, true
				}
			}
			if !in {
				return nil
			}
		}
		e.Blobs(func(ref blob.Ref) {
			if ref.Size >= 0 && !seen[ref.SHA256] {
				seen[ref.SHA256] = true
				refs = append(refs, ref)
			}
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("no version %s in %s: %w", versions[i], r.Dir, fs.ErrNotExist)
		}
	}
	out.Named = len(refs)
	var held []blob.Ref
	for _, ref := range refs {
		if ok, _ := r.Blobs.Stat(ctx, ref); ok {
			held = append(held, ref)
		}
	}
	out.Held = len(held)
	out.Uploaded, err = uploadBlobs(ctx, r, &blob.HTTP{URL: url, Client: o.client(), Signer: uploadSigner(s)}, held, &retries{}, o)
	return out, err
}

// blobURL returns the blob server of a remote, or of a git remote of a
// clone of a cairn server.
func blobURL(ctx context.Context, r *index.Repo, name string) (string, error) {
	rm, err := Get(r, name)
	if err == nil && rm.Plain() {
		return "", errPlain(rm, "it takes no uploads: put blobs on its mirrors' store")
	}
	if err == nil {
		return rm.URL, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	got, ok, gerr := r.GitRemoteURL(ctx, name)
	if gerr != nil || !ok {
		return "", err
	}
	u := strings.TrimSpace(got)
	base, ok := strings.CutSuffix(strings.TrimSuffix(u, "/"), "/index.git")
	if !ok || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
		return "", fmt.Errorf("git remote %s of %s is %s, not a cairn server's index.git over HTTP: %w", name, r.Dir, u, fs.ErrNotExist)
	}
	return base, nil
}
