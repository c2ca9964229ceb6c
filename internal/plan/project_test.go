package plan

import (
	"strings"
	"testing"
)

// TestProjectStrictAndLines: cairn.yaml is read in one pass, strictly
// (a key no field takes is refused, in a repository entry as at the top)
// and with each repository's line for its errors.
func TestProjectStrictAndLines(t *testing.T) {
	intro := strings.Repeat("ab", 32)
	repo := func(name string) string {
		return "  - name: " + name + "\n    url: http://x\n    introduction: " + intro + "\n"
	}
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown key in an entry", "repositories:\n" + repo("a") + "    mirror: http://y\n" + "packages: {acme/app: ^1}\n",
			"line 5: field mirror not found in a repository entry (its keys: name, url, git, log, path, introduction, mirrors, light, witnesses, quorum)"},
		{"unknown key at the top", "repositories:\n" + repo("a") + "pakages: {acme/app: ^1}\n",
			"line 5: field pakages not found in cairn.yaml (its keys: repositories, snapshot, packages, policy, platforms, verified)"},
		{"a repository twice, at its line", "repositories:\n" + repo("a") + repo("a") + "packages: {acme/app: ^1}\n",
			"cairn.yaml:5: repository a is listed twice"},
		{"a bad entry, at its line", "packages: {acme/app: ^1}\nrepositories:\n" + repo("a") + "  - name: b\n    url: http://y\n",
			"cairn.yaml:6: "},
		{"an entry that is not a mapping", "repositories:\n  - just a string\npackages: {acme/app: ^1}\n",
			"cannot unmarshal !!str"},
	} {
		_, err := ParseProject(".", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// Merge keys bring keys in from an anchor; the keys they bring are
	// checked where they are written, and an entry may be an alias.
	base := "repositories:\n  - &base\n    name: a\n    url: http://x\n    introduction: " + intro + "\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"a merge bringing an unknown key", base + "  - name: b\n    <<: [*base, {mirror: http://y}]\npackages: {acme/app: ^1}\n",
			"line 7: field mirror not found in a repository entry"},
		{"a << that is a string, not a merge", "repositories:\n" + repo("a") + "    !!str <<: {url: http://y}\npackages: {acme/app: ^1}\n",
			"field << not found in a repository entry"},
	} {
		_, err := ParseProject(".", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	merged, err := ParseProject(".", []byte(base+"  - &whole\n    <<: *base\n    name: c\n"+
		"  - <<: [*base]\n    name: b\n    url: http://z\npackages: {acme/app: ^1}\n"))
	if err != nil {
		t.Fatalf("entries with merge keys and an alias: %v", err)
	}
	if got := merged.Repositories; len(got) != 3 || got[1].Name != "c" || got[1].URL != "http://x" || got[1].Introduction != intro ||
		got[2].Name != "b" || got[2].URL != "http://z" || got[2].Introduction != intro {
		t.Errorf("merged repositories %+v, want c with a's url and b with its own", got)
	}
	p, err := ParseProject(".", []byte("packages: {acme/app: ^1}\nrepositories:\n"+repo("a")+repo("b")))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Repositories) != 2 || p.Repositories[0].Line != 3 || p.Repositories[1].Line != 6 || p.Repositories[1].Name != "b" || p.Repositories[1].Introduction != intro {
		t.Errorf("repositories %+v, want a at line 3 and b at line 6", p.Repositories)
	}
}
