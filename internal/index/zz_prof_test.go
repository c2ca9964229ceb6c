package index_test

import (
	"context"
	"os"
	"testing"
	"time"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/index"
)

func TestVerifyProfile(t *testing.T) {
	ctx := context.Background()
	dir := "/work/main/bench/out/prof"
	if _, err := os.Stat(dir); err != nil {
		start := time.Now()
		if _, err := gen.Build(ctx, dir, 20000, false); err != nil {
			t.Fatal(err)
		}
		t.Logf("gen %s", time.Since(start))
	}
	r, err := index.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	res, err := r.Verify(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify %d records in %s: %.0f/s", res.Records, time.Since(start), float64(res.Records)/time.Since(start).Seconds())
}
