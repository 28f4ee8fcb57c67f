package report

import (
	"fmt"
	"html/template"

	"github.com/go-analyze/charts"
)

// The report's charts, drawn in Go as inline SVG: nothing is fetched to show them.

// statusChart is a stacked bar per account-region: ok, late and missing volumes.
func (r *Report) statusChart() (template.HTML, error) {
	if len(r.ByScope) == 0 {
		return "", nil
	}
	labels := make([]string, len(r.ByScope))
	ok, late, missing := make([]float64, len(r.ByScope)), make([]float64, len(r.ByScope)), make([]float64, len(r.ByScope))
	for i, c := range r.ByScope {
		labels[i] = c.Key
		ok[i], late[i], missing[i] = float64(c.OK), float64(c.Late), float64(c.Missing)
	}
	stack := true
	opt := charts.NewBarChartOptionWithData([][]float64{ok, late, missing})
	opt.StackSeries = &stack
	// ok green, late amber, missing red: the page's own colours for the statuses.
	opt.Theme = charts.GetTheme(charts.ThemeLight).WithSeriesColors([]charts.Color{
		charts.ColorRGB(0x4c, 0xaf, 0x50), charts.ColorRGB(0xff, 0xb3, 0x00), charts.ColorRGB(0xe5, 0x39, 0x35)})
	opt.Title = charts.TitleOption{Text: "RPO status per account-region"}
	opt.Legend = charts.LegendOption{SeriesNames: []string{"ok", "late", "missing"}, Offset: charts.OffsetRight}
	opt.CategoryAxis = charts.CategoryAxisOption{Labels: labels}
	return svg(opt)
}

// ageBuckets are the bars of the age distribution, as fractions of the RPO.
var ageBuckets = []struct {
	label string
	upTo  float64
}{{"≤ 25% of RPO", 0.25}, {"≤ 50%", 0.5}, {"≤ 100%", 1}, {"≤ 200%", 2}, {"> 200%", 1e308}}

// ageChart counts the selected volumes by the age of their newest recovery point
// relative to their RPO; missing ones last.
func (r *Report) ageChart() (template.HTML, error) {
	if len(r.Volumes) == 0 {
		return "", nil
	}
	labels := make([]string, 0, len(ageBuckets)+1)
	counts := make([]float64, len(ageBuckets)+1)
	for _, b := range ageBuckets {
		labels = append(labels, b.label)
	}
	labels = append(labels, "missing")
	for _, v := range r.Volumes {
		if v.Newest == nil {
			counts[len(ageBuckets)]++
			continue
		}
		for i, b := range ageBuckets {
			if v.AgeSeconds <= b.upTo*v.RPOSeconds {
				counts[i]++
				break
			}
		}
	}
	opt := charts.NewBarChartOptionWithData([][]float64{counts})
	opt.Title = charts.TitleOption{Text: "Age of the newest recovery point"}
	opt.CategoryAxis = charts.CategoryAxisOption{Labels: labels}
	return svg(opt)
}

// costChart is the estimated monthly cost per policy.
func (r *Report) costChart() (template.HTML, error) {
	if len(r.Cost.ByPolicy) == 0 {
		return "", nil
	}
	labels := make([]string, len(r.Cost.ByPolicy))
	usd := make([]float64, len(r.Cost.ByPolicy))
	for i, c := range r.Cost.ByPolicy {
		labels[i], usd[i] = c.Key, c.USD
	}
	opt := charts.NewBarChartOptionWithData([][]float64{usd})
	opt.Title = charts.TitleOption{Text: "Estimated monthly cost per policy (USD, upper bound)"}
	opt.CategoryAxis = charts.CategoryAxisOption{Labels: labels}
	return svg(opt)
}

func svg(opt charts.BarChartOption) (template.HTML, error) {
	p := charts.NewPainter(charts.PainterOptions{OutputFormat: charts.ChartOutputSVG, Width: 720, Height: 360})
	if err := p.BarChart(opt); err != nil {
		return "", fmt.Errorf("drawing %q: %w", opt.Title.Text, err)
	}
	b, err := p.Bytes()
	if err != nil {
		return "", fmt.Errorf("drawing %q: %w", opt.Title.Text, err)
	}
	return template.HTML(b), nil // the library's own SVG, from numbers and our labels
}
