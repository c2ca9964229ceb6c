package layout

import (
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	good := []string{
		RootPath(1),
		KeyDir(strings.Repeat("ab", 32)) + "/" + strings.Repeat("c", 64) + ".json",
		VersionDir("acme/fastjson", "1.2.3") + "/" + DescriptorFile,
		RecordPath(VersionDir("acme/fastjson", "1.2.3-rc.1"), strings.Repeat("d", 64)),
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
	}
	for _, p := range bad {
		if _, err := ParsePath(p); err == nil {
			t.Errorf("ParsePath(%s) accepted", p)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	f.Add(VersionDir("acme/fastjson", "1.2.3") + "/" + DescriptorFile)
	f.Add(RootPath(7))
	f.Add("keys/ab/" + strings.Repeat("ab", 32) + "/" + strings.Repeat("0", 64) + ".json")
	f.Fuzz(func(t *testing.T, p string) {
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
