package witness

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A witness's 503 carries the wait its Retry-After asks for, in seconds
// or as an HTTP date, for the submitter to honour; none, or one past or
// unreadable, is 0.
func TestSubmitRetryAfter(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		header   string
		min, max time.Duration
	}{
		{"1", time.Second, time.Second},
		{"120", 2 * time.Minute, 2 * time.Minute},
		{now.Add(30 * time.Second).UTC().Format(http.TimeFormat), 25 * time.Second, 30 * time.Second},
		{now.Add(-time.Hour).UTC().Format(http.TimeFormat), 0, 0},
		{"", 0, 0},
		{"soon", 0, 0},
		{"-5", 0, 0},
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			http.Error(w, "cannot tell yet", http.StatusServiceUnavailable)
		}))
		_, err := Submit(context.Background(), ts.Client(), ts.URL, 0, nil, []byte("example.org/log\n1\nAAAA\n\n— example.org/log AAAA\n"))
		ts.Close()
		var re *ResponseError
		if !errors.As(err, &re) || re.Status != http.StatusServiceUnavailable {
			t.Fatalf("Retry-After %q: %v, want a 503 *ResponseError", tc.header, err)
		}
		if re.RetryAfter < tc.min || re.RetryAfter > tc.max {
			t.Errorf("Retry-After %q: RetryAfter %v, want between %v and %v", tc.header, re.RetryAfter, tc.min, tc.max)
		}
	}
}
