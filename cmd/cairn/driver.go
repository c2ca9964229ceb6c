package main

// The object stores a repository's blobs may live on (cairn init --blobs
// URL, a mirror's URL): each driver is a blank import, registered by
// its package's init. file:// and s3:// (S3 and what speaks its API:
// SeaweedFS, MinIO, R2, …) are in every build; gs:// and azblob:// cost
// every command their SDKs' package initialisation, so they are built
// only with -tags gcs and -tags azure (driver_gcs.go, driver_azure.go).
import (
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob"
)

// driverTags names the build tag that links each scheme's driver that a
// default build leaves out, for the hint of an error naming it.
var driverTags = map[string]string{"gs": "gcs", "azblob": "azure"}

// driverHint is the hint for a blob store's URL whose driver this
// build does not link.
func driverHint(scheme string) string {
	if tag, ok := driverTags[scheme]; ok {
		return scheme + ":// needs cairn built with -tags " + tag + ": go build -tags " + tag + " ./cmd/cairn"
	}
	return "name the store by a URL of a scheme cairn opens: s3://BUCKET?region=REGION[&endpoint=URL], file:///DIR (or gs://, azblob:// in a build with -tags gcs, azure)"
}
