//go:build azure

package main

// Azure Blob Storage (azblob://CONTAINER): credentials as Azure's SDK
// finds them (AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, …).
import _ "gocloud.dev/blob/azureblob"
