package remote

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"cairn.dev/cairn/internal/checkpoint"
)

// ServedIntroduction returns the introduction of the index whose log the
// cairn server at url serves: what its checkpoint's origin names,
// claimed (not verified: it tells a mistyped or wrong introduction, not
// a forged one, which a sync refuses).
func ServedIntroduction(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, "/")+"/log/checkpoint", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	note, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	c, err := checkpoint.Claimed(note)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", req.URL, err)
	}
	intro, ok := strings.CutPrefix(c.Origin, checkpoint.OriginPrefix)
	if !ok {
		return "", fmt.Errorf("GET %s: the checkpoint's origin %q is not a cairn index's", req.URL, c.Origin)
	}
	return intro, nil
}
