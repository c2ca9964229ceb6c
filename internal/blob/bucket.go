package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	gcblob "gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"cairn.dev/cairn/internal/transport"
)

// Bucket is a blob store on an object store, through gocloud.dev/blob:
// S3 and what speaks its API (s3://BUCKET?endpoint=…), Google Cloud
// Storage (gs://), Azure Blob Storage (azblob://) and a directory
// (file:///DIR), chosen by URL; which schemes a program opens is decided
// by the drivers it links (see OpenBucket). Blob sha256:HEX is the object
// sha256/HEX (under the URL's prefix= if it names one), its SHA-256 in
// the object's metadata (sha256) once Put verified its bytes.
//
// Put verifies the bytes as they are uploaded and aborts the upload when
// they are not the blob, so a wrong upload never becomes visible: an
// object store makes an object visible only when its writer completes (a
// multipart upload is aborted, a directory's temporary file removed).
// Open verifies what it reads, so a store whose objects were changed
// behind cairn's back is caught on read, as a mirror is.
type Bucket struct {
	b    *gcblob.Bucket
	name string // the URL without its query, for messages
}

var _ Store = (*Bucket)(nil)

// OpenBucket opens the object store urlstr names. Its scheme must be one
// whose driver the program links (a blank import of
// gocloud.dev/blob/s3blob, fileblob, ...); gocloud's error names the
// schemes it knows otherwise. Close releases it.
func OpenBucket(ctx context.Context, urlstr string) (*Bucket, error) {
	u, err := url.Parse(urlstr)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("blob store %q: want a URL such as s3://BUCKET?endpoint=…&region=…, gs://BUCKET, azblob://CONTAINER or file:///DIR", urlstr)
	}
	if !bucketMux().ValidBucketScheme(u.Scheme) {
		return nil, &DriverError{URL: redact(u), Scheme: u.Scheme, Known: bucketMux().BucketSchemes()}
	}
	if u.Scheme == "file" && u.Query().Get("create_dir") == "" {
		if fi, err := os.Stat(u.Path); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("blob store %s: no directory %s: create it, or add ?create_dir=true to the URL: %w", redact(u), u.Path, fs.ErrNotExist)
		}
	}
	if u.Scheme == "file" && !u.Query().Has("no_tmp_dir") {
		// A write is staged beside its object, not in $TMPDIR: a
		// bucket on another file system than $TMPDIR (a volume of its
		// own) failed every write with "invalid cross-device link", and
		// a killed upload's staging file was left in /tmp, outside the
		// store.
		q := u.Query()
		q.Set("no_tmp_dir", "true")
		u.RawQuery = q.Encode()
		urlstr = u.String()
	}
	b, err := gcblob.OpenBucket(ctx, urlstr)
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", redact(u), err)
	}
	return NewBucket(b, redact(u)), nil
}

// ErrNoDriver is the parent of DriverError.
var ErrNoDriver = errors.New("no driver for the blob store's scheme")

// DriverError says that a blob store's URL names a scheme whose driver
// the program does not link (gs:// and azblob:// are left out of a
// default build of cairn: see cmd/cairn's driver files).
type DriverError struct {
	URL    string   // the store's URL, without its query
	Scheme string   // the scheme asked for
	Known  []string // the schemes the program opens
}

func (e *DriverError) Error() string {
	return fmt.Sprintf("blob store %s: this build has no driver for %s:// (it opens %s)", e.URL, e.Scheme, strings.Join(e.Known, ", "))
}

func (e *DriverError) Unwrap() error { return ErrNoDriver }

// NewBucket is a store on an opened bucket; name is what errors call it.
// The store owns b from then on: its Close closes b.
func NewBucket(b *gcblob.Bucket, name string) *Bucket { return &Bucket{b: b, name: name} }

// redact is u without its query (which may carry an endpoint's options)
// or user information.
func redact(u *url.URL) string { return transport.Redact(u) }

// String returns the store's URL, without its query, which errors and a
// chain's messages name.
func (s *Bucket) String() string { return s.name }

// Close releases the bucket.
func (s *Bucket) Close() error { return s.b.Close() }

// Key returns the object key of ref in the bucket (a URL's prefix= is
// added by the bucket itself).
func (s *Bucket) Key(ref Ref) string { return "sha256/" + ref.SHA256 }

// Open implements Store: the object's bytes, verified as they are read.
func (s *Bucket) Open(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ref.Check(); err != nil {
		return nil, err
	}
	r, err := s.b.NewReader(ctx, s.Key(ref), nil)
	if err != nil {
		return nil, s.fail("reading", ref, err)
	}
	if r.Size() != ref.Size {
		// Not the blob, whatever its bytes: a blob of another size, or
		// an object cut short. Reading it would end in a mismatch;
		// saying so now names the sizes.
		r.Close()
		return nil, fmt.Errorf("%s: %s: %w", s.name, s.Key(ref), &MismatchError{Want: ref, GotSize: r.Size()})
	}
	return struct {
		io.Reader
		io.Closer
	}{VerifyReader(r, ref), r}, nil
}

// Stat implements Store: whether the object is there with the blob's
// size and the SHA-256 Put writes beside the bytes it verified. An object
// put there otherwise (by another tool, or changed behind cairn's back
// at the same size) counts as absent, so that Put writes it again; its
// bytes are checked anyway whenever it is read.
func (s *Bucket) Stat(ctx context.Context, ref Ref) (bool, error) {
	if err := ref.Check(); err != nil {
		return false, err
	}
	a, err := s.b.Attributes(ctx, s.Key(ref))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return false, nil
	}
	if err != nil {
		return false, s.fail("reading the attributes of", ref, err)
	}
	return a.Size == ref.Size && a.Metadata[shaMeta] == ref.SHA256, nil
}

// shaMeta is the object metadata key Put writes the blob's SHA-256 in
// (lowercase: S3 and Azure return metadata keys lowercased).
const shaMeta = "sha256"

// Put implements Store. The bytes are hashed as they are uploaded; when
// they are not the blob the upload is aborted before it completes, so
// nothing becomes visible, and the error is a *MismatchError.
func (s *Bucket) Put(ctx context.Context, ref Ref, r io.Reader) error {
	if err := ref.Check(); err != nil {
		return err
	}
	// Stat only saves an upload: when it cannot tell (a directory bucket
	// reads an object's attributes while a concurrent Put of the same blob
	// writes them), upload anyway; a refusal of the credentials is said
	// as Stat says it.
	if ok, err := s.Stat(ctx, ref); err == nil && ok {
		return nil
	} else if gcerrors.Code(err) == gcerrors.PermissionDenied {
		return err // the credentials, which the upload would meet too
	}
	// Cancelling the writer's context before Close aborts the upload.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.b.NewWriter(wctx, s.Key(ref), &gcblob.WriterOptions{
		ContentType:  "application/octet-stream",
		CacheControl: "public, max-age=31536000, immutable",
		Metadata:     map[string]string{shaMeta: ref.SHA256},
		// The whole of a small blob is sent in one request.
		BufferSize: int(min(max(ref.Size, 1), 5<<20)),
	})
	if err != nil {
		return s.fail("writing", ref, err)
	}
	if _, err := io.Copy(w, VerifyReader(r, ref)); err != nil {
		cancel()
		w.Close() // aborted: its error is the cancellation's
		if errors.Is(err, ErrMismatch) {
			return err
		}
		return fmt.Errorf("%s: writing %s: %w", s.name, s.Key(ref), err)
	}
	if err := w.Close(); err != nil {
		return s.fail("writing", ref, err)
	}
	return nil
}

// Lookup returns the blob sha256:hex the bucket holds, with the size of
// its object, for a reader that knows the digest and not the size (a
// GET without ?size=). Like Stat, it counts an object as held only when
// Put wrote it (its sha256 metadata names hex); its bytes are still
// unchecked until read through Open. A blob not held wraps
// fs.ErrNotExist.
func (s *Bucket) Lookup(ctx context.Context, hex string) (Ref, error) {
	if !IsDigest(hex) {
		return Ref{}, fmt.Errorf("%q is not a sha256 digest in hex", hex)
	}
	ref := Ref{SHA256: hex}
	a, err := s.b.Attributes(ctx, s.Key(ref))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return Ref{}, fmt.Errorf("%s: no object %s: %w", s.name, s.Key(ref), fs.ErrNotExist)
	}
	if err != nil {
		return Ref{}, s.fail("reading the attributes of", ref, err)
	}
	if a.Metadata[shaMeta] != hex {
		return Ref{}, fmt.Errorf("%s: object %s was not put there by cairn (no sha256 metadata naming it): %w", s.name, s.Key(ref), fs.ErrNotExist)
	}
	ref.Size = a.Size
	return ref, nil
}

// Remove deletes the blob sha256:hex from the bucket; removing a missing
// blob succeeds.
func (s *Bucket) Remove(hex string) error {
	if !IsDigest(hex) {
		return fmt.Errorf("%q is not a sha256 digest in hex", hex)
	}
	ref := Ref{SHA256: hex}
	err := s.b.Delete(context.Background(), s.Key(ref))
	if err == nil || gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	return s.fail("deleting", ref, err)
}

// SignedURL returns a URL the object store serves ref at for a while
// (expiry), for a server to redirect a client to, or an error wrapping
// errors.ErrUnsupported when the store cannot sign one (a directory, an
// S3 bucket opened without credentials). The client still verifies what
// it reads: the redirect saves the server the bytes, not the check.
func (s *Bucket) SignedURL(ctx context.Context, ref Ref, expiry time.Duration) (string, error) {
	if err := ref.Check(); err != nil {
		return "", err
	}
	u, err := s.b.SignedURL(ctx, s.Key(ref), &gcblob.SignedURLOptions{Expiry: expiry, Method: "GET"})
	if gcerrors.Code(err) == gcerrors.Unimplemented {
		return "", fmt.Errorf("%s: no signed URLs: %w", s.name, errors.ErrUnsupported)
	}
	if err != nil {
		return "", s.fail("signing a URL of", ref, err)
	}
	return u, nil
}

// fail names what failed, where; a missing object wraps fs.ErrNotExist.
func (s *Bucket) fail(doing string, ref Ref, err error) error {
	key := s.Key(ref)
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return fmt.Errorf("%s: no object %s (blob %s): %w", s.name, key, ref, fs.ErrNotExist)
	case gcerrors.PermissionDenied:
		return fmt.Errorf("%s: %s %s: permission denied (check the credentials the environment gives, e.g. AWS_ACCESS_KEY_ID, and the bucket's policy): %w", s.name, doing, key, err)
	}
	return fmt.Errorf("%s: %s %s: %w", s.name, doing, key, err)
}

// bucketMux is gocloud's registry of the drivers the program links.
func bucketMux() *gcblob.URLMux { return gcblob.DefaultURLMux() }
