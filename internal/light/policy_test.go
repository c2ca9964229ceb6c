package light_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server/servertest"
)

// A light client reads a policy of the index as a replica does: its
// versions are the subject "policy NAME" of the log's map, proved
// complete, and judged by the rules. A server that leaves out the latest
// version (to have clients judge by an older, laxer one) is caught.
func TestLightReadsPolicy(t *testing.T) {
	w := indextest.New(t)
	officer := indextest.NewSigner()
	w.Grant(officer, "policy-officers", "policy:org-*")
	lax := "forbid:\n  - {name: no-withdrawn, property: withdrawn}\n"
	strict := lax + "  - {name: no-vulns, property: vulnerable}\n"
	if _, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(lax), officer); err != nil {
		t.Fatal(err)
	}
	latest, err := author.PublishPolicy(w.Ctx, w.Repo, "org-default", []byte(strict), w.Root)
	if err != nil {
		t.Fatal(err)
	}
	honest := servertest.Serve(w)
	ctx := context.Background()

	full, err := w.Repo.Catalog(ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := open(t, newClient(w, honest, t.TempDir())).Catalog()
	if err != nil {
		t.Fatal(err)
	}
	want, err := full.PolicyHistory(ctx, "org-default")
	if err != nil {
		t.Fatal(err)
	}
	got, err := lc.PolicyHistory(ctx, "org-default")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("history:\nreplica %+v\nlight   %+v", want, got)
	}
	text, v, err := lc.PolicyText("org-default")
	if err != nil || string(text) != strict || v.RecordID != latest.Record {
		t.Fatalf("the light client's latest version: %q %+v %v; want %s", text, v, err, latest.Record)
	}

	omit := tamper(t, honest, func(path string, _ http.Header, body []byte) []byte {
		if !strings.HasPrefix(path, "/api/v1/log/subject") || !strings.Contains(path, "policy") {
			return body
		}
		var d subjectDoc
		json.Unmarshal(body, &d)
		d.Files = d.Files[:len(d.Files)-1]
		d.Count = uint64(len(d.Files))
		out, _ := json.Marshal(d)
		return out
	})
	lc, err = open(t, newClient(w, omit, t.TempDir())).Catalog()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = lc.PolicyText("org-default")
	wantProofError(t, err, `subject "policy org-default"`)
}
