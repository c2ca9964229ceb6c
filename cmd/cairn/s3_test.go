//go:build s3

// The CLI against a real S3 (SeaweedFS): scripts/seaweedfs starts it and
// runs the tests tagged s3 with CAIRN_TEST_S3_ENDPOINT and the
// credentials it was given (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) set.

package main

import (
	"context"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"cairn.dev/cairn/internal/blob/blobtest"
)

// TestS3Scripts runs testdata/s3's sessions, each with a new bucket on
// the S3 server whose URL, as a user would write it, is $BUCKET.
func TestS3Scripts(t *testing.T) {
	endpoint := os.Getenv(blobtest.S3EndpointEnv)
	if endpoint == "" {
		t.Fatal("CAIRN_TEST_S3_ENDPOINT is not set: run scripts/seaweedfs, which starts SeaweedFS's S3 server and sets it")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/s3",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			for _, kv := range [][2]string{
				{"GIT_AUTHOR_NAME", "mallory"}, {"GIT_AUTHOR_EMAIL", "mallory@example.com"},
				{"GIT_COMMITTER_NAME", "mallory"}, {"GIT_COMMITTER_EMAIL", "mallory@example.com"},
				{"GIT_CONFIG_NOSYSTEM", "1"}, {"SSH_AUTH_SOCK", ""}, {"CAIRN_KEY", ""}, {"CAIRN_REPO", ""},
				{"AWS_ACCESS_KEY_ID", os.Getenv("AWS_ACCESS_KEY_ID")}, {"AWS_SECRET_ACCESS_KEY", os.Getenv("AWS_SECRET_ACCESS_KEY")},
			} {
				e.Setenv(kv[0], kv[1])
			}
			u, err := blobtest.CreateS3Bucket(context.Background(), endpoint, "cairn-cli")
			if err != nil {
				return err
			}
			e.Setenv("BUCKET", u)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitserver": cmdWaitServer,
			"grab":       cmdGrab,
			"httpget":    cmdHTTPGet,
			"expand":     cmdExpand,
		},
	})
}
