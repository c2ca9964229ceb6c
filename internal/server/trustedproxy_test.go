package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// Behind a load balancer (and, for a writer, behind its replicas, which
// forward pushes and uploads), a request is counted against the client
// the trusted proxies name, not the proxy: otherwise every client shares
// the proxy's --max-client-uploads. The attack: a client that writes
// X-Forwarded-For itself to pass for others (and dodge its own limit)
// is still counted as itself.
func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("192.0.2.7/32")}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy", "198.51.100.1:5000", nil, "198.51.100.1"},
		{"attack: an untrusted client names another", "198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"the load balancer names its client", "192.0.2.7:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"a replica behind the balancer forwards to the writer", "10.0.0.2:4000", []string{"203.0.113.9, 192.0.2.7"}, "203.0.113.9"},
		{"attack: a client's own header before the balancer's", "192.0.2.7:80", []string{"203.0.113.66, 203.0.113.9"}, "203.0.113.9"},
		{"headers given twice, read in order", "10.0.0.2:4000", []string{"203.0.113.66", "203.0.113.9, 192.0.2.7"}, "203.0.113.9"},
		{"not an address where the client should be", "192.0.2.7:80", []string{"203.0.113.66, junk"}, "192.0.2.7"},
		{"every hop trusted", "10.0.0.2:4000", []string{"10.0.0.5, 192.0.2.7"}, "10.0.0.2"},
		{"a trusted proxy with nothing to say", "192.0.2.7:80", nil, "192.0.2.7"},
		{"IPv4 in IPv6", "[::ffff:192.0.2.7]:80", []string{"203.0.113.9"}, "203.0.113.9"},
	} {
		r := httptest.NewRequest("PUT", "/blobs/sha256/00", nil)
		r.RemoteAddr = c.peer
		for _, h := range c.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		if got := ClientAddr(r, trusted); got != c.want {
			t.Errorf("%s: counted against %s, want %s", c.name, got, c.want)
		}
	}
	r := httptest.NewRequest("PUT", "/", nil)
	r.RemoteAddr = "192.0.2.7:80"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got := ClientAddr(r, nil); got != "192.0.2.7" {
		t.Errorf("with no trusted proxy, X-Forwarded-For is believed: %s", got)
	}
}
