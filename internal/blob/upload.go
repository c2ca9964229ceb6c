package blob

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of an authenticated upload. An upload is signed by the
// uploader's own key — a key the repository's root granted a publish
// scope — over UploadMessage; there are no passwords.
const (
	HeaderKey       = "Cairn-Key"       // the key id, "SHA256:…"
	HeaderTime      = "Cairn-Time"      // RFC 3339, UTC
	HeaderSignature = "Cairn-Signature" // base64 ed25519 signature

	// HeaderGot is the evidence on a server's 422 answer to an upload
	// whose bytes were not the blob: what it received instead, as
	// GotHeader formats it. The client turns it back into a
	// *MismatchError.
	HeaderGot = "Cairn-Got"
)

// GotHeader formats a mismatch's evidence for HeaderGot: "sha256:HEX
// SIZE", or "SIZE" when the size alone was wrong.
func GotHeader(e *MismatchError) string {
	if e.GotSHA256 == "" {
		return strconv.FormatInt(e.GotSize, 10)
	}
	return fmt.Sprintf("sha256:%s %d", e.GotSHA256, e.GotSize)
}

// parseGot reads a HeaderGot value back into the mismatch with want; ok
// is false for a value GotHeader would not write.
func parseGot(want Ref, v string) (*MismatchError, bool) {
	d, size, found := strings.Cut(v, " ")
	if !found {
		d, size = "", v
	} else if d, found = strings.CutPrefix(d, "sha256:"); !found || !IsDigest(d) {
		return nil, false
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || (d == "" && n == want.Size) {
		return nil, false
	}
	return &MismatchError{Want: want, GotSHA256: d, GotSize: n}, true
}

// UploadMessage is what an uploader signs: the blob's digest and size and
// the time, so that a signature authorises one upload for a few minutes.
func UploadMessage(ref Ref, t time.Time) []byte {
	return fmt.Appendf(nil, "cairn-upload-v1\nsha256:%s\n%d\n%s\n", ref.SHA256, ref.Size, t.UTC().Format(time.RFC3339))
}
