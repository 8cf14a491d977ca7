package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// A real headless Chromium for the tests of the status page, driven over
// the DevTools protocol by chromedp.

// browserNames are the Chromium binaries looked for on PATH, in order.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// ScreenshotDirEnv names a directory where the browser tests leave PNG
// screenshots of what they checked, for a person to look at.
const ScreenshotDirEnv = "HANODE_SCREENSHOT_DIR"

// browserCallTimeout bounds one command to the browser.
const browserCallTimeout = 10 * time.Second

// findBrowser returns the path of a Chromium binary. Without one it skips
// the test with a loud message, or fails it in CI (CI=true), where .ci/run
// installs Debian's chromium so that the test always runs.
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range browserNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("no Chromium on PATH (looked for %s): the status page is NOT tested in a browser; "+
		"install one (Debian: apt-get install chromium; .ci/run does)", strings.Join(browserNames, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** %s SKIPPED: %s\n\n", t.Name(), msg)
	t.Skip(msg)
	return ""
}

// startBrowser starts headless Chromium and returns the context of its
// first tab. The browser runs as root in containers and CI (no sandbox:
// Chromium refuses to start as root with one), without a GPU, in its own
// temporary profile; the kernel kills it if the test process dies, and
// t.Cleanup closes it and removes its profile.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	var out lockedBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, no timeout: see chromedp.Run
		t.Fatalf("start %s: %v\n%s", path, err, out.String())
	}
	return ctx
}

// lockedBuffer collects the browser's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tab is one browser tab and what its pages reported as errors.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu     sync.Mutex
	errors []string
}

// newTab opens a tab in the browser of parent (nojs: with scripts off) and
// records every uncaught exception, console error and browser error entry
// (a script or style the page's policy refused is one).
func newTab(t *testing.T, parent context.Context, name string, nojs bool) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, name: name}
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				msg = "console.error"
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				msg = string(e.Entry.Source) + ": " + e.Entry.Text
			}
		}
		if msg != "" {
			tb.mu.Lock()
			tb.errors = append(tb.errors, msg)
			tb.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	tb.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, runtime.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if nojs {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled,
				emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}
		return nil
	}))
	return tb
}

// do runs actions in the tab, failing the test on an error.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserCallTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
}

// eval evaluates a script in the tab's page and decodes its value.
func eval[T any](tb *tab, script string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, browserCallTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](script))
}

// screenshot saves the whole page as <name>.png in ScreenshotDirEnv's
// directory, when it is set.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv(ScreenshotDirEnv)
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, browserCallTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Errorf("%s: screenshot: %v", tb.name, err)
		return
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Errorf("%s: %v", tb.name, err)
		return
	}
	tb.t.Logf("screenshot: %s", p)
}

// checkNoErrors fails the test for every error the tab's pages reported.
func (tb *tab) checkNoErrors() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errors {
		tb.t.Errorf("%s: the page reported %s", tb.name, e)
	}
}
