package report

import (
	"fmt"
	"html/template"
	"io"
	"time"
)

// WriteHTML writes the report as one self-contained page: inline style, tables and SVG
// charts drawn in Go; no script, font or image is fetched to open it.
func (r *Report) WriteHTML(w io.Writer) error {
	page := struct {
		*Report
		Offenders                  []VolumeStatus
		StatusSVG, AgeSVG, CostSVG template.HTML
		Generated                  string
		DeadLetterTotal            string
	}{Report: r, Offenders: r.WorstOffenders(), Generated: r.Now.Format(time.RFC3339), DeadLetterTotal: "no --queue given"}
	if d := r.Failures.DeadLetters; d != nil {
		page.DeadLetterTotal = fmt.Sprint(d.Total)
	}
	var err error
	if page.StatusSVG, err = r.statusChart(); err != nil {
		return err
	}
	if page.AgeSVG, err = r.ageChart(); err != nil {
		return err
	}
	if page.CostSVG, err = r.costChart(); err != nil {
		return err
	}
	return pageTemplate.Execute(w, page)
}

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"usd":     func(f float64) string { return fmt.Sprintf("$%.2f", f) },
	"gb":      func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"when":    newest,
	"dash":    dash,
	"rfc3339": func(t time.Time) string { return t.Format(time.RFC3339) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>snapfleet coverage report {{.Generated}}</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222;background:#fff}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}
th{background:#eef}
.figures td:last-child{font-weight:bold;text-align:right}
.late{background:#fff3cd}.missing{background:#f8d7da}.ok{background:#d4edda}
.charts svg{margin:0.5em 1em 0.5em 0;border:1px solid #ddd}
</style></head>
<body>
<h1>snapfleet coverage report</h1>
<p>At {{.Generated}}, over {{.Accounts}} account(s) and {{.Regions}} region(s).</p>
<h2>Headline</h2>
<table class="figures" id="headline">
<tr><td>Volumes ok</td><td id="volumes_ok">{{.Headline.VolumesOK}}</td></tr>
<tr><td>Volumes late</td><td id="volumes_late">{{.Headline.VolumesLate}}</td></tr>
<tr><td>Volumes missing</td><td id="volumes_missing">{{.Headline.VolumesMissing}}</td></tr>
<tr><td>Unprotected in-use volumes</td><td id="unprotected">{{.Headline.Unprotected}}</td></tr>
<tr><td>Opted out</td><td id="opted_out">{{.Headline.OptedOut}}</td></tr>
<tr><td>Error snapshots</td><td id="error_snapshots">{{.Headline.ErrorSnapshots}}</td></tr>
<tr><td>Pending snapshots</td><td id="pending_snapshots">{{.Headline.PendingSnapshots}}</td></tr>
<tr><td>Dead letters</td><td id="dead_letters">{{.DeadLetterTotal}}</td></tr>
<tr><td>Estimated monthly cost (upper bound)</td><td id="estimated_monthly_cost_usd">{{usd .Headline.MonthlyCostUSD}}</td></tr>
</table>
{{range .Errors}}<p class="missing">Not read: {{.Account}}/{{.Region}}: {{.Error}}</p>{{end}}
<div class="charts">{{.StatusSVG}}{{.AgeSVG}}{{.CostSVG}}</div>
<h2>Per account-region</h2>
<table><tr><th>Account/region</th><th>ok</th><th>late</th><th>missing</th><th>unprotected</th><th>opted out</th></tr>
{{range .ByScope}}<tr><td>{{.Key}}</td><td>{{.OK}}</td><td>{{.Late}}</td><td>{{.Missing}}</td><td>{{.Unprotected}}</td><td>{{.OptedOut}}</td></tr>
{{end}}</table>
<h2>Per policy</h2>
<table><tr><th>Policy</th><th>ok</th><th>late</th><th>missing</th></tr>
{{range .ByPolicy}}<tr><td>{{.Key}}</td><td>{{.OK}}</td><td>{{.Late}}</td><td>{{.Missing}}</td></tr>
{{end}}</table>
<h2>Worst offenders</h2>
{{if .Offenders}}<table><tr><th>Status</th><th>Account</th><th>Region</th><th>Policy</th><th>Volume</th><th>Instance</th><th>Newest recovery point</th><th>Late by</th></tr>
{{range .Offenders}}<tr class="{{.Status}}"><td>{{.Status}}</td><td>{{.Account}}</td><td>{{.Region}}</td><td>{{.Policy}}</td><td>{{.Volume}}</td><td>{{.Instance}}</td><td>{{when .Newest}}</td><td>{{dash .LateBy}}</td></tr>
{{end}}</table>{{else}}<p>Every selected volume is within its RPO.</p>{{end}}
<h2>Unprotected in-use volumes</h2>
{{if .Unprotected}}<table><tr><th>Volume</th><th>Account</th><th>Region</th><th>Instance</th></tr>
{{range .Unprotected}}<tr><td>{{.Volume}}</td><td>{{.Account}}</td><td>{{.Region}}</td><td>{{.Instance}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Opted out</h2>
{{if .OptedOut}}<table><tr><th>Volume</th><th>Account</th><th>Region</th><th>Instance</th><th>Why</th></tr>
{{range .OptedOut}}<tr><td>{{.Volume}}</td><td>{{.Account}}</td><td>{{.Region}}</td><td>{{.Instance}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Recovery points</h2>
<table><tr><th>Total</th><th>Crash-consistent</th><th>Application-consistent</th><th>Archived</th><th>Copies</th></tr>
<tr><td>{{.RecoveryPoints.Total}}</td><td>{{.RecoveryPoints.Crash}}</td><td>{{.RecoveryPoints.Application}}</td><td>{{.RecoveryPoints.Archived}}</td><td>{{.RecoveryPoints.Copies}}</td></tr></table>
{{if .RecoveryPoints.CopiesByDestination}}<table><tr><th>Copies in</th><th>Count</th></tr>
{{range .RecoveryPoints.CopiesByDestination}}<tr><td>{{.Key}}</td><td>{{.Count}}</td></tr>{{end}}</table>{{end}}
<h2>Failures</h2>
{{with .Failures.DeadLetters}}<table><tr><th>Dead-letter reason</th><th>Count</th></tr>
{{range .ByReason}}<tr><td>{{.Key}}</td><td>{{.Count}}</td></tr>{{end}}</table>{{end}}
{{if or .Failures.Error .Failures.Pending}}<table><tr><th>Snapshot</th><th>State</th><th>Account</th><th>Region</th><th>Policy</th><th>Volume</th></tr>
{{range .Failures.Error}}<tr class="missing"><td>{{.Snapshot}}</td><td>error</td><td>{{.Account}}</td><td>{{.Region}}</td><td>{{.Policy}}</td><td>{{.Volume}}</td></tr>{{end}}
{{range .Failures.Pending}}<tr><td>{{.Snapshot}}</td><td>pending</td><td>{{.Account}}</td><td>{{.Region}}</td><td>{{.Policy}}</td><td>{{.Volume}}</td></tr>{{end}}
</table>{{else}}<p>No snapshot pending or in error.</p>{{end}}
<h2>Estimated monthly cost</h2>
<p>{{.Cost.Estimate}}.</p>
{{with .Cost.Measured}}<p id="measured">Measured with the EBS direct API: {{.Snapshots}} snapshots of {{.Volumes}} volumes, {{gb .ChangedGB}} GB billed of {{gb .FullGB}} GB counted (ratio {{printf "%.2f" .Ratio}}); the standard tier at that ratio: {{usd .StandardUSD}} a month, extrapolated from the sample.</p>{{end}}
<p>Prices: standard ${{.Cost.StandardPrice}}, archive ${{.Cost.ArchivePrice}} per GB-month.</p>
<table><tr><th>Policy</th><th>Snapshots</th><th>Standard GB</th><th>Archive GB</th><th>USD/month</th></tr>
{{range .Cost.ByPolicy}}<tr><td>{{.Key}}</td><td>{{.Snapshots}}</td><td>{{gb .StandardGB}}</td><td>{{gb .ArchiveGB}}</td><td>{{usd .USD}}</td></tr>{{end}}
</table>
<table><tr><th>Account</th><th>Snapshots</th><th>Standard GB</th><th>Archive GB</th><th>USD/month</th></tr>
{{range .Cost.ByAccount}}<tr><td>{{.Key}}</td><td>{{.Snapshots}}</td><td>{{gb .StandardGB}}</td><td>{{gb .ArchiveGB}}</td><td>{{usd .USD}}</td></tr>{{end}}
</table>
{{range $k, $rows := .Cost.ByTag}}<table><tr><th>{{$k}}</th><th>Snapshots</th><th>Standard GB</th><th>Archive GB</th><th>USD/month</th></tr>
{{range $rows}}<tr><td>{{.Key}}</td><td>{{.Snapshots}}</td><td>{{gb .StandardGB}}</td><td>{{gb .ArchiveGB}}</td><td>{{usd .USD}}</td></tr>{{end}}
</table>{{end}}
<h2>Last drill per policy</h2>
{{if .Drills.Note}}<p>{{.Drills.Note}}</p>{{else}}<table><tr><th>Policy</th><th>Last drill</th><th>Restored</th><th>p50 s</th><th>p99 s</th></tr>
{{range .Drills.ByPolicy}}<tr><td>{{.Policy}}</td>{{with .Drill}}<td>{{rfc3339 .LastDrill}}</td><td>{{.Succeeded}} of {{.Tried}}</td><td>{{printf "%.0f" .P50}}</td><td>{{printf "%.0f" .P99}}</td>{{else}}<td>never</td><td>-</td><td>-</td><td>-</td>{{end}}</tr>{{end}}
</table>{{end}}
</body></html>
`))
