package index

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
)

// KeysGranted returns the keys that, at commit, are not revoked and hold
// a grant, live or expired, of a scope whose action is action (e.g.
// "checkpoint"), sorted by id: the keys whose signatures a checker tries,
// when the signature names its key only by a hash (a signed note).
// Whether a grant was live when the key signed is the caller's check
// (Key.Active at the signature's time).
func (r *Repo) KeysGranted(ctx context.Context, commit, action string) ([]*Key, error) {
	return r.keysGranted(ctx, commit, action, false)
}

// KeysGrantedEver is KeysGranted with the keys revoked by commit: the
// keys that signed past checkpoints, which a key revoked since may have
// signed before its revocation (Key.MayHaveCheckpointed). A checker of
// a live checkpoint asks KeysGranted.
func (r *Repo) KeysGrantedEver(ctx context.Context, commit, action string) ([]*Key, error) {
	return r.keysGranted(ctx, commit, action, true)
}

func (r *Repo) keysGranted(ctx context.Context, commit, action string, revoked bool) ([]*Key, error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, err
	}
	t := &treeState{files: newGitFiles(r.git, rd, commit)}
	ids, err := t.keyIDs()
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	var out []*Key
	for _, id := range ids {
		k, err := t.Key(id)
		if err != nil {
			return nil, err
		}
		if k == nil || k.RevokedBy != "" && !revoked || !k.grants(action) {
			continue
		}
		out = append(out, k)
	}
	return out, nil
}

// grants says whether a grant of k, live or not, holds a scope of action.
func (k *Key) grants(action string) bool {
	for _, g := range k.Grants {
		for _, s := range g.Scopes {
			if s.Action == action {
				return true
			}
		}
	}
	return false
}

// LeafFile returns the bytes of the file at path of the layout as commit
// holds it: the content of the log leaf whose entry names that commit and
// path. A path commit does not hold is fs.ErrNotExist.
func (r *Repo) LeafFile(ctx context.Context, commit, path string) ([]byte, error) {
	data, ok, err := r.fileAt(ctx, commit, path)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s:%s: no such file: %w", commit, path, fs.ErrNotExist)
	}
	return data, nil
}
