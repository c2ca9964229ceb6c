package evidence

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// A bundle read from a stream (a pipe, stdin) that claims a member of
// 1 GiB and ends 64 MiB into it is refused as truncated, having held no
// more than the stream sent: its buffer doubled as it filled, and a
// verifier held three times what a stream sent before it refused it.
func TestStreamHoldsWhatItSent(t *testing.T) {
	manifest, err := json.Marshal(map[string]any{"format": Format, "version": Version,
		"members": []map[string]any{{"path": "sbom.cdx.json", "size": 1 << 30, "sha256": strings.Repeat("0", 64)}}})
	if err != nil {
		t.Fatal(err)
	}
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
	tw.Write(manifest)
	tw.WriteHeader(&tar.Header{Name: "sbom.cdx.json", Mode: 0o644, Size: 1 << 30, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
	tw.Flush()
	const sent = 64 << 20
	stream := io.MultiReader(bytes.NewReader(head.Bytes()), io.LimitReader(zeros{}, sent))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = Read(stream, 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "truncated?") {
		t.Fatalf("a stream that ends within its member: %v, want it refused as truncated", err)
	}
	// The old buffer allocated 238 MiB here, chunks 68 MiB: a bound
	// between them, with room for what else the process allocates.
	if held := after.TotalAlloc - before.TotalAlloc; held > sent*5/2 {
		t.Fatalf("reading %d MiB of a stream allocated %d MiB: more than the stream sent", sent>>20, held>>20)
	}
}

// zeros reads as zero bytes, without end.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
