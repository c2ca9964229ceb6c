package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// A refusal of a module with a long path (its first line and hint leave
// little room): the go command still shows all three lines, the hint
// whole; the rule line is cut to the rule's name, not dropped. The go
// command keeps 8 lines and 648 bytes of a body (cmd/go/internal/web).
func TestRefusalKeepsHintForLongPath(t *testing.T) {
	g := newGoFixture(t, noHighVulns)
	long := "example.com/" + strings.Repeat("long-element/", 17) + "greet" // 238 bytes
	g.publish(long, "1.0.0", "hello")
	g.vulnerable(long, "1.0.0")

	resp, body := g.do("GET", "/go/"+long+"/@v/v1.0.0.zip", nil, nil)
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if resp.StatusCode != 403 || len(body) > 648 || len(lines) != 3 {
		t.Fatalf("refusal of %s: %d, %d bytes, %d lines (want 403, 3 lines within 648 bytes):\n%s", long, resp.StatusCode, len(body), len(lines), body)
	}
	hint := "hint: use an allowed version (cairn show " + long + "), or ask the issuer to answer the record with fixed"
	if !strings.HasPrefix(lines[1], `rule "no-high-vulnerabilities"`) || lines[2] != hint {
		t.Errorf("refusal lines:\n%s\nwant the rule's name, then %q", body, hint)
	}

	goCmd := newGoCommand(t, g.url+"/go")
	out, _ := goCmd.run(t.TempDir(), "mod", "download", "-json", long+"@v1.0.0")
	var dl struct{ Error string }
	if err := json.Unmarshal([]byte(out), &dl); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	if !strings.Contains(dl.Error, "server response:") || !strings.Contains(dl.Error, `rule "no-high-vulnerabilities"`) ||
		!strings.Contains(dl.Error, hint) || strings.Contains(dl.Error, "Truncated") {
		t.Errorf("the go command does not show the whole refusal:\n%s", dl.Error)
	}
}

// A require rule's count and max_age are in the refusal's rule line.
func TestRefusalNamesCount(t *testing.T) {
	g := newGoFixture(t, "require:\n  - {name: tested-twice, property: tested, count: 2, max_age: 7d}\n")
	g.publish("example.com/greet", "1.0.0", "hello")
	resp, body := g.do("GET", "/go/example.com/greet/@v/v1.0.0.info", nil, nil)
	if want := `rule "tested-twice" (require tested by 2 certifiers within 7d): `; resp.StatusCode != 403 || !strings.Contains(string(body), want) {
		t.Errorf("refusal: %d %q, want %q", resp.StatusCode, body, want)
	}
}
