package author

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// The root's acts — a grant, a key revocation, a root rotation, an
// upstream's declaration — need a threshold of root keys. Each is built
// once, as a statement that names the index it is for (its
// introduction) and the time it is to be applied by (rules act-index,
// act-window): signed in one process (Grant, RevokeKey, RotateRoot,
// DeclareUpstream) within DefaultWindow, prepared to be signed apart
// (PrepareGrant, …; see Act) within the window asked. Bound so, an act
// made in one index (staging) cannot be copied into another that shares
// its root keys (production).

// KeyGrant asks for a grant.
type KeyGrant struct {
	Key     ed25519.PublicKey
	Holder  string
	Scopes  []string
	Expires *time.Time
}

// Grant grants a key scopes, signed by a threshold of root keys.
func Grant(ctx context.Context, r *index.Repo, g KeyGrant, roots ...keys.Signer) (*Added, error) {
	act, err := PrepareGrant(r, g, DefaultWindow)
	if err != nil {
		return nil, err
	}
	return signRootAct(ctx, r, act, roots)
}

// PrepareGrant prepares a grant in r to be signed apart, applied within
// window.
func PrepareGrant(r *index.Repo, g KeyGrant, window time.Duration) (*Act, error) {
	return prepare(r, window, func(by *time.Time, idx string) ([]byte, error) { return grantStatement(g, by, idx) })
}

func grantStatement(g KeyGrant, applyBy *time.Time, idx string) ([]byte, error) {
	for _, s := range g.Scopes {
		if _, err := record.ParseScope(s); err != nil {
			return nil, err
		}
	}
	return record.Build(record.Grant, []record.Subject{keySubject(g.Key)},
		record.GrantPredicate{Key: keys.FormatPublic(g.Key), Holder: g.Holder, Scopes: g.Scopes, Expires: g.Expires, Issued: now(), ApplyBy: applyBy, Index: idx})
}

func keySubject(pub ed25519.PublicKey) record.Subject {
	return record.Subject{Name: keys.ID(pub), Digest: map[string]string{"sha256": keys.IDHex(pub)}}
}

// RevokeKey revokes a key, signed by a threshold of root keys. What the
// key signed before stays valid; it signs nothing after.
func RevokeKey(ctx context.Context, r *index.Repo, id, reason string, roots ...keys.Signer) (*Added, error) {
	act, err := PrepareRevokeKey(ctx, r, id, reason, DefaultWindow)
	if err != nil {
		return nil, err
	}
	return signRootAct(ctx, r, act, roots)
}

// PrepareRevokeKey prepares a key's revocation to be signed apart,
// applied within window.
func PrepareRevokeKey(ctx context.Context, r *index.Repo, id, reason string, window time.Duration) (*Act, error) {
	return prepare(r, window, func(by *time.Time, idx string) ([]byte, error) {
		return revokeKeyStatement(ctx, r, id, reason, by, idx)
	})
}

func revokeKeyStatement(ctx context.Context, r *index.Repo, id, reason string, applyBy *time.Time, idx string) ([]byte, error) {
	st, err := headState(ctx, r)
	if err != nil {
		return nil, err
	}
	k, err := st.Key(id)
	if err != nil {
		return nil, err
	}
	if k == nil {
		if root, err := st.Root(); err == nil && root != nil && root.Keys[id] != nil {
			// No grant made it a root key, and no revocation ends one.
			return nil, fmt.Errorf("key %s is a root key of %s (root version %d, threshold %d of %d), which no grant made and key revoke cannot end: rotate the root without it (cairn root rotate --new-root-key KEY.pub for each key that stays, signed by %d of the current root keys and the new ones; or --unsigned, each holder signing apart)", id, r.Dir, root.Version, root.Threshold, len(root.Keys), root.Threshold)
		}
		return nil, fmt.Errorf("key %s is not granted in %s (see cairn key list): %w", id, r.Dir, fs.ErrNotExist)
	}
	return record.Build(record.RevokeKey, []record.Subject{keySubject(k.Pub)}, record.RevokeKeyPredicate{Reason: reason, Issued: now(), ApplyBy: applyBy, Index: idx})
}

// RotateRoot replaces the root keys and threshold. It must be signed by a
// threshold of the current root keys and of the new ones: oldSigners and
// newSigners all sign.
func RotateRoot(ctx context.Context, r *index.Repo, oldSigners, newSigners []keys.Signer, threshold int) (*Added, error) {
	var pubs []ed25519.PublicKey
	for _, s := range newSigners {
		pubs = append(pubs, s.Public())
	}
	act, err := PrepareRotateRoot(ctx, r, pubs, threshold, DefaultWindow)
	if err != nil {
		return nil, err
	}
	return signRootAct(ctx, r, act, append(append([]keys.Signer(nil), oldSigners...), newSigners...))
}

// PrepareRotateRoot prepares a root rotation to the given keys and
// threshold, to be signed apart by a threshold of the current root keys
// and of the new ones, applied within window.
func PrepareRotateRoot(ctx context.Context, r *index.Repo, newKeys []ed25519.PublicKey, threshold int, window time.Duration) (*Act, error) {
	return prepare(r, window, func(by *time.Time, idx string) ([]byte, error) {
		return rotateStatement(ctx, r, newKeys, threshold, by, idx)
	})
}

func rotateStatement(ctx context.Context, r *index.Repo, newKeys []ed25519.PublicKey, threshold int, applyBy *time.Time, idx string) ([]byte, error) {
	st, err := headState(ctx, r)
	if err != nil {
		return nil, err
	}
	cur, err := st.Root()
	if err != nil {
		return nil, err
	}
	p := record.RootPredicate{Version: cur.Version + 1, Threshold: threshold, Previous: cur.RecordID, Issued: now(), ApplyBy: applyBy, Index: idx}
	var subjects []record.Subject
	for _, k := range newKeys {
		p.Keys = append(p.Keys, record.RootKey{Key: keys.FormatPublic(k)})
		subjects = append(subjects, keySubject(k))
	}
	return record.Build(record.Root, subjects, p)
}

// DeclareUpstream adds the root's declaration of an upstream, signed by
// a threshold of root keys.
func DeclareUpstream(ctx context.Context, r *index.Repo, name, url, introduction string, roots ...keys.Signer) (*Added, error) {
	act, err := PrepareDeclareUpstream(ctx, r, name, url, introduction, DefaultWindow)
	if err != nil {
		return nil, err
	}
	return signRootAct(ctx, r, act, roots)
}

// PrepareDeclareUpstream prepares an upstream's declaration to be signed
// apart, applied within window.
func PrepareDeclareUpstream(ctx context.Context, r *index.Repo, name, url, introduction string, window time.Duration) (*Act, error) {
	// One index followed under two names publishes every name twice:
	// each would be ambiguous, and nothing served of the upstream.
	ups, err := r.Followed(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range ups {
		if u.Introduction == introduction && u.Name != name {
			return nil, fmt.Errorf("introduction %.16s is upstream %s's, which this repository follows already (at %s): one index followed under two names would publish every name twice, each then ambiguous", introduction, u.Name, u.URL)
		}
	}
	return prepare(r, window, func(by *time.Time, idx string) ([]byte, error) {
		return upstreamStatement(r, name, url, introduction, by, idx)
	})
}

func upstreamStatement(r *index.Repo, name, url, introduction string, applyBy *time.Time, idx string) ([]byte, error) {
	url = strings.TrimSuffix(url, "/")
	if introduction == r.Config.Introduction {
		return nil, fmt.Errorf("introduction %.16s is this repository's own: an upstream is another index", introduction)
	}
	p := record.UpstreamPredicate{Name: name, URL: url, Introduction: introduction, Issued: now(), ApplyBy: applyBy, Index: idx}
	return record.Build(record.Upstream, []record.Subject{{Name: name, Digest: map[string]string{"sha256": introduction}}}, p)
}

// signRootAct signs a root act with every signer, in one process, and
// appends it.
func signRootAct(ctx context.Context, r *index.Repo, act *Act, signers []keys.Signer) (*Added, error) {
	if len(signers) == 0 {
		return nil, fmt.Errorf("a root act needs a threshold of root keys: none given")
	}
	rec, err := record.Sign(act.rec.Payload, signers...)
	if err != nil {
		return nil, err
	}
	return add(ctx, r, signers[0], Summary(rec), index.Change{Records: []*record.Record{rec}})
}

// Summary says in one line what a root act does: the commit message that
// adds it, and what a holder reads before signing it apart.
func Summary(rec *record.Record) string {
	switch p := rec.Predicate.(type) {
	case record.GrantPredicate:
		return fmt.Sprintf("grant %s to %s: %s", rec.Statement.Subject[0].Name, p.Holder, strings.Join(p.Scopes, " "))
	case record.RevokeKeyPredicate:
		return "revoke key " + rec.Statement.Subject[0].Name
	case record.RootPredicate:
		return fmt.Sprintf("root version %d", p.Version)
	case record.UpstreamPredicate:
		return fmt.Sprintf("follow upstream %s at %s", p.Name, p.URL)
	}
	return string(rec.Kind) + " " + rec.ID
}
