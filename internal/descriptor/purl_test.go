package descriptor

import "testing"

// A version's purl: generic, escaped, with its served repository's URL.
func TestPURL(t *testing.T) {
	for _, c := range []struct{ name, version, loc, want string }{
		{"acme/log", "1.1.0", "path:/srv/index", "pkg:generic/acme/log@1.1.0"},
		{"acme/log", "2.0.0-rc.1+build.5", "https://cairn.acme.example", "pkg:generic/acme/log@2.0.0-rc.1%2Bbuild.5?repository_url=https://cairn.acme.example"},
		{"acme/log", "1.0.0", "http://127.0.0.1:8080/upstreams/public", "pkg:generic/acme/log@1.0.0?repository_url=http://127.0.0.1:8080/upstreams/public"},
		{"github.com/BurntSushi/toml/v2", "2.0.0+incompatible", "", "pkg:generic/github.com/BurntSushi/toml/v2@2.0.0%2Bincompatible"},
	} {
		if got := PURL(c.name, c.version, c.loc); got != c.want {
			t.Errorf("PURL(%q, %q, %q) = %q, want %q", c.name, c.version, c.loc, got, c.want)
		}
	}
}
