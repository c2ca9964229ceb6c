package plan

import (
	"strings"
	"testing"
)

// cairn.yaml's git: and log: keys: an index on a plain git host is read as
// a full replica and needs its published log; log: beside url: is the
// light client's static copy of the server's tiles.
func TestProjectPlainGitHost(t *testing.T) {
	intro := strings.Repeat("ab", 32)
	for _, c := range []struct {
		repo, where, err string
	}{
		{repo: "git: https://git.example.com/index.git, log: https://log.example.com/", where: "git:https://git.example.com/index.git"},
		{repo: "git: git://git.example.com/index.git, log: https://log.example.com, light: false", where: "git:git://git.example.com/index.git"},
		{repo: "url: https://cairn.example.com, log: https://cdn.example.com/log", where: "https://cairn.example.com"},
		{repo: "git: https://git.example.com/index.git", err: "git: needs log:"},
		{repo: "git: https://git.example.com/index.git, log: https://l, light: true", err: "read as a full replica"},
		{repo: "git: '--upload-pack=touch /tmp/x', log: https://l", err: "git URL"},
		{repo: "git: 'ext::sh -c touch% /tmp/x', log: https://l", err: "git URL"},
		{repo: "git: https://g/index.git, url: https://c, log: https://l", err: "give one of url"},
		{repo: "url: https://cairn.example.com, light: false, log: https://l", err: "log: goes with git:"},
		{repo: "path: idx, log: https://l", err: "log: goes with git:"},
		{repo: "url: https://cairn.example.com, log: ftp://l", err: "want the http:// or https:// URL"},
	} {
		yaml := "repositories:\n  - {name: acme, " + c.repo + ", introduction: " + intro + "}\npackages:\n  acme/lib: ^1.0\n"
		p, err := ParseProject(t.TempDir(), []byte(yaml))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error saying %q", c.repo, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.repo, err)
			continue
		}
		r := p.Repositories[0]
		if r.Where() != c.where || r.IsLight() != strings.HasPrefix(c.repo, "url:") || strings.HasSuffix(r.Log, "/") {
			t.Errorf("%s: where %s, light %v, log %s", c.repo, r.Where(), r.IsLight(), r.Log)
		}
	}
}
