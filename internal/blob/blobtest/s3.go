//go:build s3

package blobtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcblob "gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"
)

// S3EndpointEnv names the S3 endpoint scripts/seaweedfs starts
// (SeaweedFS's S3 gateway) for the tests tagged s3.
const S3EndpointEnv = "CAIRN_TEST_S3_ENDPOINT"

// NewS3Bucket creates a new bucket, named prefix and a number, on the S3
// endpoint scripts/seaweedfs started, and returns its URL as a user
// writes it (cairn init --blobs, a mirror, log publish --to).
func NewS3Bucket(t testing.TB, prefix string) string {
	t.Helper()
	endpoint := os.Getenv(S3EndpointEnv)
	if endpoint == "" {
		t.Fatal(S3EndpointEnv + " is not set: run scripts/seaweedfs, which starts SeaweedFS's S3 server and sets it")
	}
	u, err := CreateS3Bucket(context.Background(), endpoint, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// CreateS3Bucket creates a new bucket, named prefix and a number, on the
// S3 server at endpoint, and returns its URL.
func CreateS3Bucket(ctx context.Context, endpoint, prefix string) (string, error) {
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	u := "s3://" + name + "?endpoint=" + endpoint + "&region=us-east-1&use_path_style=true&disable_https=true"
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
