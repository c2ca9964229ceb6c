package blob

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
)

// Mirror is the store a mirror's URL names: a cairn server or any HTTP
// mirror (http://, https://: an *HTTP on client), or an object store
// (s3://, gs://, azblob://, file:///DIR: a Bucket, opened on first use).
// Both verify every byte they return, so a mirror is never trusted by
// location. CheckMirror says beforehand whether url is one.
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
	return nil
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
	l.once.Do(func() { l.b, l.err = OpenBucket(context.WithoutCancel(ctx), l.url) })
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
