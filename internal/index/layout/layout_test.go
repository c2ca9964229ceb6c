package layout

import (
	"slices"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	good := []string{
		RootPath(1),
		KeyDir(strings.Repeat("ab", 32)) + "/" + strings.Repeat("c", 64) + ".json",
		VersionDir("acme/fastjson", "1.2.3") + "/" + DescriptorFile,
		RecordPath(VersionDir("acme/fastjson", "1.2.3-rc.1"), strings.Repeat("d", 64)),
		VersionDir("example.com/greet/v2", "2.0.0") + "/" + DescriptorFile,
		VersionDir("github.com/BurntSushi/toml", "2.0.0+incompatible") + "/" + DescriptorFile,
		RecordPath(VersionDir("golang.org/x/mod", "0.0.0-20261109003541-7506e5f91cd6"), strings.Repeat("d", 64)),
		"upstreams/up/" + RecordPath(VersionDir("example.com/a/b/c", "1.0.0"), strings.Repeat("d", 64)),
		RecordPath(PolicyDir("org-default"), strings.Repeat("e", 64)),
	}
	for _, p := range good {
		if _, err := ParsePath(p); err != nil {
			t.Errorf("ParsePath(%s): %v", p, err)
		}
	}
	bad := []string{
		"README", "root/1.json", "keys/ab/" + strings.Repeat("cd", 32) + "/x.json",
		strings.Replace(VersionDir("acme/fastjson", "1.2.3"), "acme/fastjson", "acme/other", 1) + "/" + DescriptorFile, // wrong shard
		VersionDir("acme/fastjson", "1.2") + "/" + DescriptorFile,
		VersionDir("acme/fastjson", "1.2.3") + "/notes.txt",
		"packages/../../etc/passwd",
		strings.Replace(VersionDir("example.com/greet/v2", "2.0.0"), "greet/v2", "greet/v3", 1) + "/" + DescriptorFile, // wrong shard
		strings.Replace(VersionDir("example.com/a/b", "1.0.0"), "example.com/a/b", "example.com/a/../b", 1) + "/" + DescriptorFile,
		strings.Replace(VersionDir("example.com/a/b", "1.0.0"), "example.com/a/b", "example.com/a//b", 1) + "/" + DescriptorFile,
		VersionDir("example.com/a", "1.0.0+build") + "/" + DescriptorFile,
		VersionDir("Example.com/a", "1.0.0") + "/" + DescriptorFile,
		VersionDir("example.com", "1.0.0") + "/" + DescriptorFile,
		RecordPath(PolicyDir("Org"), strings.Repeat("e", 64)),        // policy names are lowercase
		PolicyDir("org") + "/policy.yaml",                            // only records sit there
		RecordPath(PolicyDir("org")+"/old", strings.Repeat("e", 64)), // no deeper directories
	}
	for _, p := range bad {
		if _, err := ParsePath(p); err == nil {
			t.Errorf("ParsePath(%s) accepted", p)
		}
	}
}

func TestParsePathPolicy(t *testing.T) {
	id := strings.Repeat("f", 64)
	loc, err := ParsePath(RecordPath(PolicyDir("org-default"), id))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Place != PlacePolicy || loc.Policy != "org-default" || loc.RecordID != id || loc.Dir != "policies/org-default" {
		t.Errorf("ParsePath = %+v, want the policy org-default's record %s", loc, id)
	}
}

// The name is every element between the shard and the last two.
func TestParsePathNames(t *testing.T) {
	for _, name := range []string{"acme/x", "example.com/greet", "example.com/greet/v2", "github.com/BurntSushi/toml/v2"} {
		p := RecordPath(VersionDir(name, "2.0.0"), strings.Repeat("e", 64))
		loc, err := ParsePath(p)
		if err != nil {
			t.Fatalf("ParsePath(%s): %v", p, err)
		}
		if loc.Place != PlaceRecord || loc.Name != name || loc.Version != "2.0.0" || loc.Dir != VersionDir(name, "2.0.0") {
			t.Errorf("ParsePath(%s) = %+v, want record of %s@2.0.0", p, loc, name)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	f.Add(VersionDir("example.com/greet/v2", "2.0.0+incompatible") + "/" + DescriptorFile)
	f.Add(VersionDir("acme/fastjson", "1.2.3") + "/" + DescriptorFile)
	f.Add(RootPath(7))
	f.Add(RecordPath(PolicyDir("org-default"), strings.Repeat("a", 64)))
	f.Add("keys/ab/" + strings.Repeat("ab", 32) + "/" + strings.Repeat("0", 64) + ".json")
	f.Fuzz(func(t *testing.T, p string) {
		var a [2]string
		if got, want := Split(a[:0], p), strings.Split(p, "/"); !slices.Equal(got, want) {
			t.Fatalf("Split(%q) = %q, strings.Split %q", p, got, want)
		}
		loc, err := ParsePath(p)
		if err != nil {
			return
		}
		// Whatever parses names the directory it sits in, and round-trips.
		if !strings.HasPrefix(p, loc.Dir+"/") && loc.Place != PlaceRoot {
			t.Fatalf("%s parsed with dir %s", p, loc.Dir)
		}
		if loc.Place == PlaceDescriptor && VersionDir(loc.Name, loc.Version)+"/"+DescriptorFile != p {
			t.Fatalf("%s does not round-trip", p)
		}
	})
}

// Names that differ only in case share a shard; a cairn name's shard is
// the sha256 of the name itself, as before names could hold uppercase.
func TestShardFolds(t *testing.T) {
	if ShardDir("Corp.example/Greet") != ShardDir("corp.example/greet") {
		t.Fatalf("case variants in two shards: %s, %s", ShardDir("Corp.example/Greet"), ShardDir("corp.example/greet"))
	}
	if got := PackageDir("Corp.example/Greet"); !strings.HasSuffix(got, "/Corp.example/Greet") {
		t.Fatalf("PackageDir folds the elements: %s", got)
	}
	// sha256("acme/fastjson") begins 89e6: the shard every index has used.
	if got := PackageDir("acme/fastjson"); got != "packages/8/9/e/6/acme/fastjson" {
		t.Fatalf("PackageDir(acme/fastjson) = %s", got)
	}
}

func TestParseVersionDir(t *testing.T) {
	for _, name := range []string{"acme/fastjson", "example.com/greet/v2", "github.com/BurntSushi/toml"} {
		n, v, ok := ParseVersionDir(VersionDir(name, "1.0.0-rc.1"))
		if !ok || n != name || v != "1.0.0-rc.1" {
			t.Errorf("ParseVersionDir(%s) = %s, %s, %v", VersionDir(name, "1.0.0-rc.1"), n, v, ok)
		}
	}
	for _, dir := range []string{
		PackageDir("example.com/greet"), PackageDir("example.com/greet/v2"), ShardDir("acme/x"),
		ShardDir("example.com/greet/v2") + "/example.com/greet", // an element of a longer name
		strings.Replace(VersionDir("acme/x", "1.0.0"), "acme/x", "acme/y", 1),
		"upstreams/x/" + VersionDir("acme/x", "1.0.0"),
	} {
		if n, v, ok := ParseVersionDir(dir); ok {
			t.Errorf("ParseVersionDir(%s) = %s, %s: want not a version directory", dir, n, v)
		}
	}
}
