//go:build gcs

package main

// Google Cloud Storage (gs://BUCKET): credentials as Google's SDK finds
// them (GOOGLE_APPLICATION_CREDENTIALS, the metadata server).
import _ "gocloud.dev/blob/gcsblob"
