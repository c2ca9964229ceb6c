package remote

import (
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/keys"
)

// uploadKey lets a keys.Signer sign blob uploads: blob owns the small
// interface it needs (blob.Signer), so the store does not import keys.
type uploadKey struct{ keys.Signer }

// KeyID returns the key's fingerprint, which the server looks up.
func (k uploadKey) KeyID() string { return keys.ID(k.Public()) }

// uploadSigner returns s as a blob.Signer, or nil for no key (a
// blob.HTTP that only reads).
func uploadSigner(s keys.Signer) blob.Signer {
	if s == nil {
		return nil
	}
	return uploadKey{s}
}
