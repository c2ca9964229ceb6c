package remote

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"cairn.dev/cairn/internal/checkpoint"
)

// ServedIntroduction returns the introduction of the index whose log the
// cairn server at url serves: what its checkpoint's origin names,
// claimed (not verified: it tells a mistyped or wrong introduction, not
// a forged one, which a sync refuses).
func ServedIntroduction(ctx context.Context, client *http.Client, url string) (string, error) {
	u := strings.TrimSuffix(url, "/") + "/log/checkpoint"
	resp, body, err := fetchCheckpoint(ctx, &Remote{Name: url, URL: url}, Options{Client: client}, u)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	c, err := checkpoint.Claimed(body)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	return c.Introduction(), nil
}
