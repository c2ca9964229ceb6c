package blob

import (
	"fmt"
	"time"
)

// Headers of an authenticated upload. An upload is signed by the
// uploader's own key — a key the repository's root granted a publish
// scope — over UploadMessage; there are no passwords.
const (
	HeaderKey       = "Cairn-Key"       // the key id, "SHA256:…"
	HeaderTime      = "Cairn-Time"      // RFC 3339, UTC
	HeaderSignature = "Cairn-Signature" // base64 ed25519 signature
)

// UploadMessage is what an uploader signs: the blob's digest and size and
// the time, so that a signature authorises one upload for a few minutes.
func UploadMessage(ref Ref, t time.Time) []byte {
	return fmt.Appendf(nil, "cairn-upload-v1\nsha256:%s\n%d\n%s\n", ref.SHA256, ref.Size, t.UTC().Format(time.RFC3339))
}
