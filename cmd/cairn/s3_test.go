//go:build s3

// The CLI against a real S3 (SeaweedFS): scripts/seaweedfs starts it and
// runs the tests tagged s3 with CAIRN_TEST_S3_ENDPOINT and the
// credentials it was given (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) set.

package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rogpeppe/go-internal/testscript"
	gcblob "gocloud.dev/blob"
)

// TestS3Scripts runs testdata/s3's sessions, each with a new bucket on
// the S3 server whose URL, as a user would write it, is $BUCKET.
func TestS3Scripts(t *testing.T) {
	endpoint := os.Getenv("CAIRN_TEST_S3_ENDPOINT")
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
			u, err := newS3Bucket(endpoint)
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

// newS3Bucket creates a bucket on the S3 server at endpoint and returns
// its URL for cairn init --blobs and mirrors.
func newS3Bucket(endpoint string) (string, error) {
	name := fmt.Sprintf("cairn-cli-%d", time.Now().UnixNano())
	u := "s3://" + name + "?endpoint=" + endpoint + "&region=us-east-1&use_path_style=true&disable_https=true"
	ctx := context.Background()
	b, err := gcblob.OpenBucket(ctx, u)
	if err != nil {
		return "", err
	}
	defer b.Close()
	var client *s3.Client
	if !b.As(&client) {
		return "", fmt.Errorf("s3blob gives no *s3.Client")
	}
	// The S3 port opens before SeaweedFS's filer is ready: try for a while.
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
		if err == nil {
			return u, nil
		}
		if time.Since(start) > time.Minute {
			return "", fmt.Errorf("creating bucket %s on %s: %v", name, endpoint, err)
		}
	}
}
