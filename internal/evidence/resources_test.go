package evidence

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A version 2 bundle's replay answers a batched read of subjects it holds as a
// server does, each document the member that answers the subject's own
// read (and marks them read); a batch with a subject it lacks, or a
// member that is not one JSON value, is answered 405, so that the light
// client reads one by one.
func TestReplayBatch(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, asVersion2(t, data))
	app, root := subjectMember(t, b.Files, "package acme/app"), subjectMember(t, b.Files, "root")
	size := strings.Split(app, "/")[6] // repos/0/api/v1/log/subject/N/…
	base := strings.TrimSuffix(b.Manifest.Repositories[0].URL, "/")
	post := func(files map[string][]byte, subjects ...string) (*http.Response, *replay) {
		t.Helper()
		rp := &replay{rs: newResources([]string{base}, 2), files: files}
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/log/subjects?size="+size, strings.NewReader(strings.Join(subjects, "\n")+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rp.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, rp
	}

	resp, rp := post(b.Files, "package acme/app", "root")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a batch of two subjects the bundle holds: %s", resp.Status)
	}
	var got struct {
		Size     json.Number       `json:"size"`
		Subjects []json.RawMessage `json:"subjects"`
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if err := json.Unmarshal(body.Bytes(), &got); err != nil || got.Size.String() != size || len(got.Subjects) != 2 {
		t.Fatalf("the batch's answer: %v %+v", err, got)
	}
	for i, name := range []string{app, root} {
		if !bytes.Equal(got.Subjects[i], bytes.TrimSpace(b.Files[name])) {
			t.Errorf("subject %d of the answer is not member %s", i, name)
		}
		if !rp.served[name] {
			t.Errorf("member %s answered, not marked read", name)
		}
	}

	if resp, _ := post(b.Files, "package acme/app", "package acme/none"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("a batch with a subject the bundle lacks: %s, want 405", resp.Status)
	}
	two := map[string][]byte{}
	for k, v := range b.Files {
		two[k] = v
	}
	two[app] = append(append(bytes.Clone(b.Files[app]), ' '), b.Files[root]...)
	if resp, rp := post(two, "package acme/app", "root"); resp.StatusCode != http.StatusMethodNotAllowed || len(rp.served) != 0 {
		t.Errorf("a member of two JSON values: %s, %d marked read; want 405, none", resp.Status, len(rp.served))
	}
}
