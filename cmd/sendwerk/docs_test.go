package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk"
)

// TestDocsPage loads /docs from a running server in headless Chromium (Debian's) and checks
// that the reference lists every operation of the embedded spec, with nothing fetched from
// elsewhere. It keeps a screenshot for a person to look at.
func TestDocsPage(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	page := b.do(t, http.MethodGet, "/docs", "", "", "")
	require.Equal(t, http.StatusOK, page.status)
	require.Contains(t, page.header.Get("Content-Security-Policy"), "default-src 'none'")
	require.NotRegexp(t, `(src|href)="(https?:)?//`, string(page.body), "the page must not load anything from another origin")
	asset := b.do(t, http.MethodGet, "/docs/redoc.standalone.js", "", "", "")
	require.Equal(t, http.StatusOK, asset.status)
	require.Greater(t, len(asset.body), 100_000, "the vendored viewer is served from the binary")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(b.baseURL + "/docs/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
	require.Equal(t, "../docs", resp.Header.Get("Location"), "relative, so it also works under a proxy's path prefix")

	var spec *openapi3.T
	dom, console := chromium(t, "--dump-dom", b.baseURL+"/docs")
	require.NotContains(t, console, "Content Security Policy", "the page tried to load something the policy forbids")
	spec, err = openapi3.NewLoader().LoadFromData(sendwerk.OpenAPISpec)
	require.NoError(t, err)
	var ops int
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			require.Contains(t, dom, `operation/`+op.OperationID, "%s %s (%s) is not listed", method, path, op.OperationID)
			require.Contains(t, dom, htmlEscape(op.Summary), "%s's summary is not shown", op.OperationID)
		}
	}
	require.Greater(t, ops, 10)

	shot := filepath.Join(artifactDir(t), "docs.png")
	chromium(t, "--window-size=1400,1000", "--hide-scrollbars", "--screenshot="+shot, b.baseURL+"/docs")
	t.Logf("screenshot of /docs: %s", shot)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.Greater(t, distinctColors(img), 20, "the screenshot looks blank")
}

// chromium runs Debian's headless Chromium with the flags that keep it off the network but
// for the page, and returns its stdout and its console log.
func chromium(t *testing.T, args ...string) (stdout, console string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	require.NoError(t, err, "Debian's chromium is needed (make setup installs it)")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), errOut.String())
	return out.String(), errOut.String()
}

// artifactDir is where tests keep files for people: $TEST_ARTIFACTS_DIR, or a directory in
// the system temp directory that outlives the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "sendwerk-test-artifacts")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

func distinctColors(img image.Image) int {
	seen := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 7 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 7 {
			r, g, b, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, b, a}] = true
		}
	}
	return len(seen)
}

var htmlSpecial = regexp.MustCompile(`[&<>"']`)

// htmlEscape escapes like the DOM serialiser does in text: & < > only.
func htmlEscape(s string) string {
	return htmlSpecial.ReplaceAllStringFunc(s, func(c string) string {
		return map[string]string{"&": "&amp;", "<": "&lt;", ">": "&gt;", `"`: `"`, "'": "'"}[c]
	})
}
