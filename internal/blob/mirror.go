package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// Mirror is the store a mirror's URL names: a cairn server or any HTTP
// mirror (http://, https://: an *HTTP on client), or an object store
// (s3://, gs://, azblob://, file:///DIR: a Bucket, opened on first use).
// Both verify every byte they return, so a mirror is never trusted by
// location. CheckMirror says beforehand whether url is one.
//
// A mirror's URL may come from a file someone else wrote (a project's
// cairn.yaml, a repository's cairn.json), and an object store is read
// with the credentials in the user's environment: a mirror is opened
// read only (no parameter that writes or creates, such as
// create_dir=true), and never over plain http to another machine unless
// anonymously (CheckMirror's rules; the bucket is not opened otherwise).
func Mirror(urlstr string, client *http.Client) Store {
	if isHTTP(urlstr) {
		return &HTTP{URL: urlstr, Client: client}
	}
	return &lazyBucket{url: urlstr}
}

// CheckMirror reports whether urlstr names a mirror Mirror can read: an
// http(s) URL, or an object store whose driver the program links.
func CheckMirror(urlstr string) error {
	u, err := url.Parse(urlstr)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("mirror %q: want an http(s) URL or an object store's (s3://BUCKET?region=…, file:///DIR, …)", urlstr)
	}
	if isHTTP(urlstr) {
		if u.Host == "" {
			return fmt.Errorf("mirror %q: no host", urlstr)
		}
		return nil
	}
	if !bucketMux().ValidBucketScheme(u.Scheme) {
		return &DriverError{URL: redact(u), Scheme: u.Scheme, Known: bucketMux().BucketSchemes()}
	}
	return checkReadOnly(u)
}

// ErrMirrorUnsafe is the parent of the errors of a mirror's URL that
// would write on this machine or send the user's credentials in clear.
var ErrMirrorUnsafe = errors.New("a mirror is read only, with credentials never sent in clear")

// writeParams are the object store URL parameters that write or create
// (fileblob's create_dir, dir_file_mode, no_tmp_dir and metadata; the
// S3 driver's server-side encryption of what it writes).
var writeParams = []string{"create_dir", "dir_file_mode", "no_tmp_dir", "metadata", "ssetype", "kmskeyid"}

// checkReadOnly refuses an object store mirror's URL that names a
// parameter that writes or creates, or an endpoint reached over plain
// http on another machine with the user's credentials (S3's
// endpoint=http://… or disable_https=true without anonymous=true,
// Azure's protocol=http).
func checkReadOnly(u *url.URL) error {
	q := u.Query()
	for _, p := range writeParams {
		if q.Has(p) {
			return fmt.Errorf("%w: mirror %s: the parameter %s= writes or creates on this machine: remove it from the mirror's URL", ErrMirrorUnsafe, redact(u), p)
		}
	}
	var host string
	plain := false
	switch u.Scheme {
	case "s3":
		if anon, _ := strconv.ParseBool(q.Get("anonymous")); anon {
			return nil
		}
		ep := q.Get("endpoint")
		if ep == "" {
			return nil
		}
		e, err := url.Parse(ep)
		if err != nil || e.Host == "" {
			e, err = url.Parse("//" + ep)
		}
		if err != nil {
			return fmt.Errorf("mirror %s: endpoint %q is not a URL", redact(u), ep)
		}
		off, _ := strconv.ParseBool(q.Get("disable_https"))
		host, plain = e.Hostname(), e.Scheme == "http" || (e.Scheme == "" && off)
	case "azblob":
		host, plain = q.Get("domain"), q.Get("protocol") == "http"
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	if plain && !loopback(host) {
		return fmt.Errorf("%w: mirror %s: its endpoint %s is plain http on another machine, and the store is read with the credentials in your environment (they would travel in clear): use https, or anonymous=true for a public bucket", ErrMirrorUnsafe, redact(u), host)
	}
	return nil
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isHTTP(urlstr string) bool {
	u, err := url.Parse(urlstr)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// lazyBucket opens its bucket when first used: a mirror list is built
// where no error can be returned (a remote's chain), and most installs
// never reach their last mirrors.
type lazyBucket struct {
	url  string
	once sync.Once
	b    *Bucket
	err  error
}

func (l *lazyBucket) open(ctx context.Context) (*Bucket, error) {
	l.once.Do(func() {
		u, err := url.Parse(l.url)
		if err != nil {
			l.err = fmt.Errorf("mirror %q: %w", l.url, err)
			return
		}
		if l.err = checkReadOnly(u); l.err == nil {
			l.b, l.err = OpenBucket(context.WithoutCancel(ctx), l.url)
		}
	})
	return l.b, l.err
}

// String returns the URL without its query, which a chain's errors name.
func (l *lazyBucket) String() string {
	if u, err := url.Parse(l.url); err == nil {
		return redact(u)
	}
	return l.url
}

func (l *lazyBucket) Open(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	b, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return b.Open(ctx, ref)
}

func (l *lazyBucket) Stat(ctx context.Context, ref Ref) (bool, error) {
	b, err := l.open(ctx)
	if err != nil {
		return false, err
	}
	return b.Stat(ctx, ref)
}

func (l *lazyBucket) Put(ctx context.Context, ref Ref, r io.Reader) error {
	b, err := l.open(ctx)
	if err != nil {
		return err
	}
	return b.Put(ctx, ref, r)
}
