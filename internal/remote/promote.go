package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// Promoted reports a promotion.
type Promoted struct {
	Remote    string     `json:"remote"`
	Version   string     `json:"version"`
	Head      string     `json:"head"`
	Artifacts []string   `json:"artifacts"` // the artifacts whose blobs were sent
	Records   []string   `json:"records"`   // records copied
	Left      []LeftOut  `json:"left_behind,omitempty"`
	Uploaded  int        `json:"uploaded"`
	Withheld  []blob.Ref `json:"withheld,omitempty"` // artifacts not sent (the source, say)
}

// LeftOut is a record that stayed behind, and why: the other index's
// rules refuse it (its issuer is not granted there, usually).
type LeftOut struct {
	Record string `json:"record"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// Promote copies a published version to another index, the remote `to`:
// its descriptor and records byte for byte (so every signature over them
// still holds), and the blobs of the chosen artifacts only — the others
// (the source, for a binary-only release) are not sent. The publisher's
// key must be granted there; a record whose issuer is not is left behind
// and reported. Every rule of the other index is checked before anything
// is sent; blobs go first (uploads signed by s), then the commit, retried
// on a fresh head if the remote moved.
//
// sel chooses artifacts: "binary" (every binary), "source", "all", a
// platform, or a file name.
func Promote(ctx context.Context, r *index.Repo, id, to string, sel []string, s keys.Signer, o Options) (*Promoted, error) {
	name, version := descriptor.SplitID(id)
	rm, err := Get(r, to)
	if err != nil {
		return nil, err
	}
	if rm.Introduction == r.Config.Introduction {
		return nil, fmt.Errorf("remote %s holds this repository's own index: push to it (cairn push %s)", to, to)
	}
	if rm.Plain() {
		return nil, errPlain(rm, "cairn promote cannot upload blobs to it")
	}
	if len(sel) == 0 {
		return nil, errors.New("say which artifacts to send: --artifacts binary, source, all, a platform or a file name")
	}
	if _, err := r.Verify(ctx, false); err != nil {
		return nil, err
	}
	d, ref, files, err := versionFiles(ctx, r, name, version)
	if err != nil {
		return nil, err
	}
	out := &Promoted{Remote: to, Version: d.ID()}
	send := []blob.Ref{ref}
	for _, a := range d.Artifacts {
		if chosen(a, sel) {
			send = append(send, a.Ref)
			out.Artifacts = append(out.Artifacts, a.File)
		} else {
			out.Withheld = append(out.Withheld, a.Ref)
		}
	}
	if len(out.Artifacts) == 0 {
		var have []string
		for _, a := range d.Artifacts {
			have = append(have, a.Label()+" ("+a.File+")")
		}
		return nil, fmt.Errorf("%s has no artifact %s (it has: %s)", d.ID(), strings.Join(sel, ", "), strings.Join(have, ", "))
	}
	up := &blob.HTTP{URL: rm.URL, Client: o.client(), Signer: uploadSigner(s)}
	line := rm.Line(r)
	b := &retries{}
	for {
		if _, err := fetch(ctx, r, rm, o); err != nil {
			return nil, err
		}
		head, _, err := line.VerifiedHead()
		if err != nil {
			return nil, err
		}
		commit, copied, left, err := promoteCommit(ctx, r, line, head, d, files, s)
		if err != nil {
			return nil, err
		}
		out.Records, out.Left = copied, left
		refs := append([]blob.Ref(nil), send...)
		for _, f := range files {
			if f.ID != "" && slices.Contains(copied, f.ID) {
				f.Blobs(func(ref blob.Ref) {
					// Evidence this repository holds goes along; a record
					// naming a withheld artifact (a reproduced record's
					// source) does not send it.
					if held, _ := r.Blobs.Stat(ctx, ref); held && !withheld(out.Withheld, ref) {
						refs = append(refs, ref)
					}
				})
			}
		}
		n, err := uploadBlobs(ctx, r, up, uniqueRefs(refs), b, o)
		out.Uploaded += n
		if err != nil {
			return nil, err
		}
		landed, said, err := pushTo(ctx, r, rm, commit)
		if err != nil {
			return nil, err
		}
		if landed {
			// Fetch what landed: one commit to verify, the one just checked.
			if _, err := fetch(ctx, r, rm, o); err != nil {
				return nil, err
			}
			out.Head = commit
			return out, nil
		}
		if err := b.again(ctx, rm, said); err != nil {
			return nil, err
		}
	}
}

// versionFiles reads a version's descriptor and its entries from main.
func versionFiles(ctx context.Context, r *index.Repo, name, version string) (*descriptor.Descriptor, blob.Ref, []index.Entry, error) {
	d, ref, err := r.Descriptor(ctx, name, version)
	if err != nil {
		return nil, blob.Ref{}, nil, err
	}
	head, err := r.Head(ctx, index.MainRef)
	if err != nil {
		return nil, blob.Ref{}, nil, err
	}
	files, err := r.VersionEntries(ctx, head, name, version)
	if err != nil {
		return nil, blob.Ref{}, nil, err
	}
	return d, ref, files, nil
}

// promoteCommit builds the commit that copies the version onto head of
// the other index's line, checked by that index's rules. A record the
// rules refuse is left out (with the reason) and the rest tried again;
// the descriptor and its authored record cannot be left out.
func promoteCommit(ctx context.Context, r *index.Repo, l index.Line, head string, d *descriptor.Descriptor, files []index.Entry, s keys.Signer) (string, []string, []LeftOut, error) {
	// What the other index already holds of the version stays as it is.
	var todo []index.Entry
	published := false
	for _, f := range files {
		if _, ok, _ := r.EntryAt(ctx, head, f); ok {
			if f.Descriptor {
				published = true
			}
			continue
		}
		todo = append(todo, f)
	}
	if !published {
		if data, ok, _ := r.EntryAt(ctx, head, index.DescriptorEntry(d.Name, d.Version)); ok {
			return "", nil, nil, fmt.Errorf("%s is published in %s with another descriptor (sha256 %s): a version is published once; publish a new version", d.ID(), l.Name, blob.DigestBytes(data).SHA256)
		}
	}
	var left []LeftOut
	for {
		if len(todo) == 0 {
			return "", nil, left, fmt.Errorf("%s holds %s and every record about it that it accepts: nothing to promote", l.Name, d.ID())
		}
		msg := fmt.Sprintf("promote %s", d.ID())
		commit, err := r.CommitOn(ctx, l, head, todo, identOf(s), msg)
		if err == nil {
			var copied []string
			for _, f := range todo {
				if f.ID != "" {
					copied = append(copied, f.ID)
				}
			}
			return commit, copied, left, nil
		}
		var re *index.RuleError
		if !errors.As(err, &re) || re.Path == "" {
			return "", nil, left, err
		}
		i := slices.IndexFunc(todo, func(f index.Entry) bool { return f.Refused(re) })
		if i < 0 || todo[i].Descriptor || isAuthored(todo[i].Data) {
			return "", nil, left, fmt.Errorf("%s refuses %s: %w", l.Name, d.ID(), err)
		}
		kind := ""
		if rec, err := record.Parse(todo[i].Data); err == nil {
			kind = string(rec.Kind)
		}
		left = append(left, LeftOut{Record: todo[i].ID, Kind: kind, Reason: re.Error()})
		todo = append(todo[:i], todo[i+1:]...)
	}
}

func chosen(a descriptor.Artifact, sel []string) bool {
	for _, s := range sel {
		for _, s := range strings.Split(s, ",") {
			switch s = strings.TrimSpace(s); s {
			case "all":
				return true
			case "binary":
				if a.Kind == "binary" {
					return true
				}
			default:
				if a.Label() == s || a.File == s {
					return true
				}
			}
		}
	}
	return false
}

func identOf(s keys.Signer) string { return "cairn promote <" + keys.ID(s.Public()) + ">" }

func isAuthored(data []byte) bool {
	rec, err := record.Parse(data)
	return err == nil && rec.Kind == record.Authored
}

func withheld(list []blob.Ref, ref blob.Ref) bool {
	for _, w := range list {
		if w.SHA256 == ref.SHA256 {
			return true
		}
	}
	return false
}

func uniqueRefs(refs []blob.Ref) []blob.Ref {
	seen := map[string]bool{}
	var out []blob.Ref
	for _, r := range refs {
		if !seen[r.SHA256] {
			seen[r.SHA256] = true
			out = append(out, r)
		}
	}
	return out
}
