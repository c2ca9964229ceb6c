package transport

import (
	"net/url"
	"strings"
)

// Redact is u as cairn shows it (in errors, logs, answers to clients):
// without its user information (a writer's or a mirror's credentials,
// http://USER:PASS@HOST) nor its query and fragment (a store's options,
// which may carry keys). What the URL names stays readable.
func Redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// RedactString is Redact of the URL s. A string that does not parse as
// a URL is shown only up to its last '@' removed (what may be
// credentials), so a malformed URL leaks nothing either.
func RedactString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				return s[:j+3] + s[i+1:]
			}
			return s[i+1:]
		}
		return s
	}
	return Redact(u)
}
