//go:build browser

// The pages in a real browser: headless Chromium (Debian's chromium),
// driven over the DevTools protocol by chromedp, with JavaScript turned
// off, as a person without it sees them. scripts/browser installs
// Chromium and runs this test; CAIRN_SCREENSHOTS=DIR keeps a screenshot
// of each main page there (the README's are in docs/screenshots).

package web_test

import (
	"bytes"
	"context"
	"image"
	"image/color/palette"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"cairn.dev/cairn/internal/web"
)

// chromium is the browser the test drives: $CHROMIUM, else Debian's.
func chromium(t *testing.T) string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium: %v (scripts/browser installs it: apt-get install chromium)", err)
	}
	return p
}

// browser starts a fresh headless Chromium, with JavaScript off.
func browser(t *testing.T) context.Context {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if _, err := chromedp.Call(tctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return tctx
}

func TestBrowser(t *testing.T) {
	s := newSite(t)
	ctx := browser(t)
	shots := os.Getenv("CAIRN_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// visit opens path and returns main's visible text (and keeps a
	// screenshot named shot).
	visit := func(path, shot string) string {
		t.Helper()
		main := chromedp.CSS("main")
		if err := chromedp.Do(ctx, chromedp.Navigate(s.url+path), chromedp.WaitVisible(main)); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		title, err := chromedp.Run(ctx, chromedp.Title())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(main))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var png []byte
		if shots != "" && shot != "" {
			if png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			png = smaller(t, png)
		}
		if !strings.HasSuffix(title, "· cairn") {
			t.Errorf("%s: title %q", path, title)
		}
		if png != nil {
			if err := os.WriteFile(filepath.Join(shots, shot+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return text
	}
	contains := func(page, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: a person does not see %q:\n%s", page, w, text)
			}
		}
	}

	home := visit("/", "home")
	contains("/", home, "acme/hello", "1.1.0", "acme/evil", "Recent activity", "revoke")

	// The search form works without JavaScript: type, press the button.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#q"), "hel")); err != nil {
		t.Fatal(err)
	}
	// The click submits the form: the browser loads the results.
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS("form[role=search] button")))); err != nil {
		t.Fatal(err)
	}
	results, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(results, "/?q=hel") {
		t.Errorf("the search went to %s, want /?q=hel", results)
	}
	found, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main table")))
	if err != nil {
		t.Fatal(err)
	}
	contains("/?q=hel", found, "acme/hello")
	if strings.Contains(found, "acme/evil") {
		t.Errorf("the search for hel lists acme/evil:\n%s", found)
	}

	pkg := visit("/packages/acme/hello", "package")
	contains("package", pkg, "1.1.0", "1.0.0", "uuid", "src.tar.gz", "linux-amd64.tar.gz", "sha256:")

	refused := visit("/packages/acme/hello@1.1.0", "version-refused")
	contains("the refused version", refused, "acme-security", "revoked by "+s.revoke11[:16],
		"REFUSED", "require audited-by-security", "FAIL",
		"no active audited by acme-security; record "+s.audit11[:16]+" by acme-security")

	allowed := visit("/packages/acme/hello@1.0.0?policy=org", "version-allowed")
	contains("the allowed version", allowed, "allowed", "pass", "answers record "+s.vuln10[:16])

	key := visit(web.KeyURL(s.secID), "key")
	contains("the security team's key", key, "acme-security", "certify:audited", "acme/hello@1.1.0")

	log := visit("/log", "log")
	contains("the log", log, "Latest checkpoint", "tree size", "Witnesses")

	notFound := visit("/packages/acme/none", "")
	contains("a 404", notFound, "404", "not published", "search")

	evil := visit("/packages/acme/evil", "")
	contains("a hostile summary", evil, hostile)
}

// smaller re-encodes a screenshot in a palette of 256 colours, at PNG's
// best compression: a page of text loses nothing a reader sees, and the
// file a tenth of its size.
func smaller(t *testing.T, data []byte) []byte {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the screenshot: %v", err)
	}
	pal := image.NewPaletted(img.Bounds(), palette.Plan9)
	draw.Draw(pal, img.Bounds(), img, img.Bounds().Min, draw.Src)
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, pal); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
