package report

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// fixtureReport is the report of fixtureScope with dead letters and a drill.
func fixtureReport(t *testing.T) *Report {
	cfg := testConfig(t, "report:\n  cost_tags: [Team]\n")
	rep := Compute([]*Scope{fixtureScope(cfg)}, cfg, now)
	rep.Accounts, rep.Regions = 1, 1
	rep.Failures.DeadLetters = deadLetters("file:q.db", []DeadLetter{{Reason: "invalid_message"}, {Reason: "refused_newer"}, {Reason: "invalid_message"}})
	rep.Headline.DeadLetters = 3
	rep.Drills = lastDrillPerPolicy(cfg, drills{{Policy: "daily", At: now, Snapshot: "snap-a2", OK: true, Seconds: 42}})
	return rep
}

// headlineFigures are the headline's figures as the page prints them, by element id.
func headlineFigures(r *Report) map[string]string {
	h := r.Headline
	return map[string]string{
		"volumes_ok": fmt.Sprint(h.VolumesOK), "volumes_late": fmt.Sprint(h.VolumesLate),
		"volumes_missing": fmt.Sprint(h.VolumesMissing), "unprotected": fmt.Sprint(h.Unprotected),
		"opted_out": fmt.Sprint(h.OptedOut), "error_snapshots": fmt.Sprint(h.ErrorSnapshots),
		"pending_snapshots": fmt.Sprint(h.PendingSnapshots), "dead_letters": fmt.Sprint(h.DeadLetters),
		"estimated_monthly_cost_usd": fmt.Sprintf("$%.2f", h.MonthlyCostUSD),
	}
}

// external matches a reference to anything outside the page.
var external = regexp.MustCompile(`(?i)(url\(\s*['"]?[a-z]+:|@import|^\s*(https?|ftp|file):|^\s*//)`)

// TestHTMLParses: the page parses as HTML, shows every headline figure under its id, has
// three SVG charts and the offenders, and references nothing outside itself: no script,
// no link, no src/href/xlink:href to a URL, no url() or @import in styles.
func TestHTMLParses(t *testing.T) {
	t.Parallel()
	rep := fixtureReport(t)
	var b bytes.Buffer
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	byID, svgs := map[string]string{}, 0
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script", "link", "iframe", "img", "object", "embed":
				t.Errorf("the page has a <%s>", n.Data)
			case "svg":
				svgs++
			case "style":
				if n.FirstChild != nil && external.MatchString(n.FirstChild.Data) {
					t.Errorf("a style references outside the page: %s", n.FirstChild.Data)
				}
			}
			for _, a := range n.Attr {
				if a.Key == "id" {
					byID[a.Val] = text(n)
				}
				switch strings.ToLower(a.Key) {
				case "src", "href", "xlink:href", "style", "srcset", "action":
					if external.MatchString(a.Val) || strings.Contains(strings.ToLower(a.Val), "url(") {
						t.Errorf("<%s %s=%q> references outside the page", n.Data, a.Key, a.Val)
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for id, want := range headlineFigures(rep) {
		if byID[id] != want {
			t.Errorf("headline %s shows %q, want %q", id, byID[id], want)
		}
	}
	if svgs != 3 {
		t.Errorf("%d SVG charts, want 3 (RPO status, age, cost)", svgs)
	}
	page := text(doc)
	for _, want := range []string{"vol-c", "vol-b", "2h0m0s", "vol-e", "snapfleet:skip=true", "snap-c", "invalid_message", "1 of 1", UpperBound} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
}

// byID is the text of every element with an id.
func byID(n *html.Node) map[string]string {
	out := map[string]string{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for _, a := range n.Attr {
			if n.Type == html.ElementNode && a.Key == "id" {
				out[a.Val] = text(n)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

// chromium finds the browser; the test fails, never skips, without it (make test installs
// it: scripts/ensure-chromium.sh).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/ensure-chromium.sh (make test does)")
	return ""
}

// TestHTMLRendersInChromium: headless Chromium opens the page with the network cut off,
// its screenshot is not blank (more than one colour), and the DOM it built shows every
// headline figure.
func TestHTMLRendersInChromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	rep := fixtureReport(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var b bytes.Buffer
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(profile string, args ...string) []byte {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--proxy-server=127.0.0.1:9", "--user-data-dir=" + filepath.Join(dir, profile)}
		cmd := exec.Command(bin, append(append(base, args...), "file://"+page)...)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
		}
		return out.Bytes()
	}
	shot := filepath.Join(dir, "shot.png")
	run("profile-shot", "--screenshot="+shot, "--window-size=1200,1600")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	colours := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y && len(colours) < 3; y += 7 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 7 {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if len(colours) < 2 {
		t.Errorf("the screenshot is blank: one colour")
	}

	dom, err := html.Parse(bytes.NewReader(run("profile-dom", "--dump-dom")))
	if err != nil {
		t.Fatal(err)
	}
	shown := byID(dom)
	for id, want := range headlineFigures(rep) {
		if shown[id] != want {
			t.Errorf("Chromium's DOM shows %s = %q, want %q", id, shown[id], want)
		}
	}
	if !strings.Contains(text(dom), "Volumes late") {
		t.Errorf("Chromium's DOM has no headline table:\n%.2000s", text(dom))
	}
}
