package transport

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://bob:s3cret@127.0.0.1:8080/idx", "http://127.0.0.1:8080/idx"},
		{"https://tok3n@mirror.example/blobs?sig=abc#x", "https://mirror.example/blobs"},
		{"s3://bucket?endpoint=http://127.0.0.1:9000&access_key=AK", "s3://bucket"},
		{"file:///srv/blobs", "file:///srv/blobs"},
		{"http://bob:s3cret@[::1:bad/x", "http://[::1:bad/x"},
	} {
		got := RedactString(tc.in)
		if got != tc.want {
			t.Errorf("RedactString(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"s3cret", "tok3n", "sig=", "access_key"} {
			if strings.Contains(got, secret) {
				t.Errorf("RedactString(%q) = %q: shows %s", tc.in, got, secret)
			}
		}
	}
}
