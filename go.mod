module cairn.dev/cairn

go 1.26.8

require (
	github.com/in-toto/attestation v1.2.0
	github.com/secure-systems-lab/go-securesystemslib v0.11.1
	golang.org/x/crypto v0.58.0
	google.golang.org/protobuf v1.36.11
)

require golang.org/x/sys v0.49.0 // indirect
