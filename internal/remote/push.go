package remote

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// maxPushAttempts bounds how often Push rebases onto a remote that moved.
const maxPushAttempts = 10

// Pushed reports a push.
type Pushed struct {
	Remote   string `json:"remote"`
	Head     string `json:"head"`
	Commits  int    `json:"commits"`  // commits the remote did not have
	Uploaded int    `json:"uploaded"` // blobs uploaded
	Rebased  int    `json:"rebased"`  // times main was rebased onto a remote that moved
}

// PushError is a push the server refused for a rule: retrying will not help.
type PushError struct {
	Remote string
	Output string // what the server said, as git relayed it
}

func (e *PushError) Error() string {
	return fmt.Sprintf("remote %s refused the push:\n%s", e.Remote, e.Output)
}

// Push sends main's commits that the remote lacks: first the blobs they
// refer to (uploads signed by s), then the commits. If the remote moved
// meanwhile, main's own commits are replayed onto the remote's verified
// head — every rule checked again — and pushed again.
func Push(ctx context.Context, r *index.Repo, name string, s keys.Signer, o Options) (*Pushed, error) {
	rm, err := Get(r, name)
	if err != nil {
		return nil, err
	}
	if rm.Introduction != r.Config.Introduction {
		return nil, fmt.Errorf("remote %s holds another index (introduction %.16s, this one %.16s): use cairn promote to copy versions to it", name, rm.Introduction, r.Config.Introduction)
	}
	if _, err := r.Verify(ctx, false); err != nil {
		return nil, err
	}
	out := &Pushed{Remote: name}
	up := &blob.HTTP{URL: rm.URL, Client: o.client(), Signer: s}
	for attempt := 0; ; attempt++ {
		if attempt > 0 || !o.Fresh {
			if _, err := fetch(ctx, r, rm, o); err != nil {
				return nil, err
			}
		}
		head, err := r.Git.ResolveRef(ctx, Ref(name))
		if err != nil {
			return nil, err
		}
		main, err := r.Head(ctx)
		if err != nil {
			return nil, err
		}
		if ok, _ := r.Git.IsAncestor(ctx, main, head); ok {
			_, err := advanceMain(ctx, r, rm)
			out.Head = head
			return out, err
		}
		if ok, _ := r.Git.IsAncestor(ctx, head, main); !ok {
			if o.BeforeRebase != nil {
				if err := o.BeforeRebase(ctx, head); err != nil {
					return nil, err
				}
			}
			if err := rebase(ctx, r, rm, head, main); err != nil {
				return nil, err
			}
			out.Rebased++
			if main, err = r.Head(ctx); err != nil {
				return nil, err
			}
		}
		n, commits, err := upload(ctx, r, up, head, main)
		if err != nil {
			return nil, err
		}
		out.Uploaded += n
		landed, err := pushTo(ctx, r, rm, main, attempt)
		if err != nil {
			return nil, err
		}
		if landed {
			out.Head, out.Commits = main, commits
			// The remote's main is now our main, which is verified: no
			// need to fetch and replay it again.
			if err := r.MoveRef(ctx, Ref(name), main, head); err != nil {
				return nil, err
			}
			return out, r.Adopt(r.Main(), rm.Line(r))
		}
		// The remote moved first: fetch, rebase, try again.
	}
}

// Discard drops main's commits that the remote lacks: main moves to the
// remote's verified head. A certifier discards what it could not push, so
// that nothing unpushed lingers to be pushed later beside a second
// certification of the same version. It returns how many commits were
// dropped.
func Discard(ctx context.Context, r *index.Repo, name string) (int, error) {
	rm, err := Get(r, name)
	if err != nil {
		return 0, err
	}
	if rm.Introduction != r.Config.Introduction {
		return 0, fmt.Errorf("remote %s holds another index: main does not follow it", name)
	}
	head, err := r.Git.ResolveRef(ctx, Ref(name))
	if err != nil || head == "" {
		return 0, err
	}
	main, err := r.Git.ResolveRef(ctx, index.MainRef)
	if err != nil || main == head {
		return 0, err
	}
	n := 0
	if main != "" {
		out, err := r.Git.Git(ctx, nil, "rev-list", "--count", main, "^"+head)
		if err != nil {
			return 0, err
		}
		if n, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
			return 0, err
		}
	}
	if err := r.MoveRef(ctx, index.MainRef, head, main); err != nil {
		return 0, err
	}
	return n, r.Adopt(rm.Line(r), r.Main())
}

// pushTo pushes commit as the remote's main with the git client. It
// reports false and no error when the remote moved first (fetch and try
// again), and a PushError when the server refused a rule or attempt is
// the last allowed.
func pushTo(ctx context.Context, r *index.Repo, rm *Remote, commit string, attempt int) (bool, error) {
	_, err := r.Git.Git(ctx, nil, "push", "--quiet", "--porcelain", rm.URL+"/index.git", commit+":"+index.MainRef)
	if err == nil {
		return true, nil
	}
	if strings.Contains(err.Error(), "cairn: refused: rule") || attempt >= maxPushAttempts {
		return false, &PushError{Remote: rm.Name, Output: remoteLines(err.Error())}
	}
	return false, nil
}

// remoteLines keeps what the server said.
func remoteLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "remote: "); i >= 0 {
			out = append(out, "  "+strings.TrimSpace(l[i:]))
		}
	}
	if len(out) == 0 {
		return "  " + s
	}
	return strings.Join(out, "\n")
}

// rebase replays main's commits after the merge base onto onto, each as a
// new append checked by every rule. If one no longer applies (someone
// else published the same version first), main is left as it was.
func rebase(ctx context.Context, r *index.Repo, rm *Remote, onto, main string) error {
	out, err := r.Git.Git(ctx, nil, "rev-list", "--reverse", main, "^"+onto)
	if err != nil {
		return err
	}
	type commit struct {
		files         []gitx.File
		ident, header string
	}
	rd, err := r.Reader(ctx)
	if err != nil {
		return err
	}
	var todo []commit
	for _, id := range strings.Fields(string(out)) {
		c, err := rd.Commit(id)
		if err != nil {
			return err
		}
		var files []gitx.File
		err = r.Git.Walk(ctx, gitx.WalkOptions{From: id + "^", To: id}, func(e *gitx.LogEntry) error {
			for _, ch := range e.Changes {
				if ch.Status != 'A' {
					return fmt.Errorf("commit %.12s changes %s: only added files can be replayed", id, ch.Path)
				}
				o, err := rd.Read(ch.NewID)
				if err != nil {
					return err
				}
				files = append(files, gitx.File{Path: ch.Path, Data: o.Data})
			}
			return nil
		})
		if err != nil {
			return err
		}
		todo = append(todo, commit{files: files, ident: c.Committer, header: strings.TrimSpace(c.Message)})
	}
	// main moves to the remote's head, verified by the fetch just made,
	// and grows from there; its old verified head is kept to put back.
	saved := r.Main()
	saved.Name, saved.Marker = "main before rebase", filepath.Join(dir(r), rm.Name+".main-before-rebase.json")
	if err := r.Adopt(r.Main(), saved); err != nil {
		return err
	}
	if err := r.MoveRef(ctx, index.MainRef, onto, main); err != nil {
		return err
	}
	if err := r.Adopt(rm.Line(r), r.Main()); err != nil {
		return err
	}
	for _, c := range todo {
		if _, err := r.Append(ctx, c.files, c.ident, c.header); err != nil {
			// Put main back where it was: nothing is lost.
			if cur, rerr := r.Git.ResolveRef(ctx, index.MainRef); rerr == nil {
				if r.MoveRef(ctx, index.MainRef, main, cur) == nil {
					r.Adopt(saved, r.Main())
				}
			}
			return fmt.Errorf("replaying %q onto the remote's head: %w", c.header, err)
		}
	}
	os.Remove(saved.Marker)
	return nil
}

// upload sends the blobs that the commits from base to main refer to and
// that this repository holds; it returns how many it sent and how many
// commits there are.
func upload(ctx context.Context, r *index.Repo, up *blob.HTTP, base, main string) (int, int, error) {
	var refs []blob.Ref
	seen := map[string]bool{}
	want := func(ref blob.Ref) {
		if ref.Size >= 0 && !seen[ref.SHA256] {
			seen[ref.SHA256] = true
			refs = append(refs, ref)
		}
	}
	rd, err := r.Reader(ctx)
	if err != nil {
		return 0, 0, err
	}
	commits := 0
	err = r.Git.Walk(ctx, gitx.WalkOptions{From: base, To: main}, func(e *gitx.LogEntry) error {
		commits++
		for _, ch := range e.Changes {
			if ch.Status != 'A' {
				continue
			}
			o, err := rd.Read(ch.NewID)
			if err != nil {
				return err
			}
			index.FileBlobs(ch.Path, o.Data, want)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	var held []blob.Ref
	for _, ref := range refs {
		// A blob not held here was promoted binary-only, or uploaded by
		// someone else.
		if ok, _ := r.Blobs.Stat(ctx, ref); ok {
			held = append(held, ref)
		}
	}
	sent, err := Upload(ctx, r, up, held)
	return sent, commits, err
}

// Origin returns the blob store of the server a git clone was cloned
// from (its origin's URL, less /index.git), or nil if the repository is
// not a clone of a cairn server over HTTP.
func Origin(ctx context.Context, r *index.Repo, s keys.Signer, o Options) *blob.HTTP {
	out, err := r.Git.Git(ctx, nil, "config", "--get", "remote.origin.url")
	if err != nil {
		return nil
	}
	u := strings.TrimSpace(string(out))
	base, ok := strings.CutSuffix(strings.TrimSuffix(u, "/"), "/index.git")
	if !ok || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
		return nil
	}
	return &blob.HTTP{URL: base, Client: o.client(), Signer: s}
}

// Upload sends blobs this repository holds to a server, skipping those
// it has; it returns how many it sent.
func Upload(ctx context.Context, r *index.Repo, to *blob.HTTP, refs []blob.Ref) (int, error) {
	sent := 0
	for _, ref := range refs {
		if ok, err := to.Stat(ctx, ref); err == nil && ok {
			continue
		}
		rc, err := r.Blobs.Open(ctx, ref)
		if err != nil {
			return sent, err
		}
		err = to.Put(ctx, ref, rc)
		rc.Close()
		if err != nil {
			return sent, fmt.Errorf("uploading %s to %s: %w", ref, to.URL, err)
		}
		sent++
	}
	return sent, nil
}
