package server

import (
	"net/http"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index/indextest"
)

// GET /api/v1/slices lists every Nth commit of main's first-parent
// history after from up to head, oldest first; asked again (a second new
// replica of the same head) it answers the same, from its cache; a head
// not on main is 404, an id that is no commit id 400.
func TestSliceList(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.SliceEvery = 2 })
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0"} {
		publishOne(t, f, v)
	}
	out, err := indextest.Git(t, f.repo, "rev-list", "--first-parent", "--reverse", "main")
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(out)
	head := ids[len(ids)-1]
	want := func(from int) string {
		var b strings.Builder
		rest := ids[from+1:]
		for i := 1; i < len(rest)-1; i += 2 {
			b.WriteString(rest[i] + "\n")
		}
		return b.String()
	}
	for round := range 2 {
		resp, body := f.do("GET", "/api/v1/slices?head="+head, nil, nil)
		if resp.StatusCode != http.StatusOK || string(body) != want(-1) {
			t.Fatalf("round %d: GET /api/v1/slices?head=main's head: %s\n%s\nwant:\n%s", round, resp.Status, body, want(-1))
		}
		from := ids[2]
		resp, body = f.do("GET", "/api/v1/slices?head="+head+"&from="+from, nil, nil)
		if resp.StatusCode != http.StatusOK || string(body) != want(2) {
			t.Fatalf("round %d: GET /api/v1/slices from the third commit: %s\n%s\nwant:\n%s", round, resp.Status, body, want(2))
		}
	}
	if resp, body := f.do("GET", "/api/v1/slices?head="+strings.Repeat("5", len(head)), nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a head not on main: %s\n%s", resp.Status, body)
	}
	if resp, body := f.do("GET", "/api/v1/slices?head=main", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("head=main: %s\n%s", resp.Status, body)
	}
}
