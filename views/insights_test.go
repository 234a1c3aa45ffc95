package views

import (
	"strconv"
	"testing"
	"time"
)

// A bar is as tall as its build's duration against the longest, which
// fills the area below the label band; a build of no time still shows, one
// without a duration is a stub; every label stays inside the chart.
func TestChartBarsScaleToTheLongestAndKeepLabelsInside(t *testing.T) {
	passed, running := Status{Word: "passed", Class: "status-success"}, Status{Word: "running", Class: "status-running"}
	var v ChartView
	for i, d := range []time.Duration{40 * time.Second, 0, 20 * time.Second, 10 * time.Second} {
		v.Builds = append(v.Builds, ChartBuild{Number: 12340 + i, Status: passed, Took: d, Done: true, Duration: "x"})
	}
	for i := range 46 {
		v.Builds = append(v.Builds, ChartBuild{Number: 12350 + i, Status: running})
	}
	num := func(s string) float64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	bars := chartBars(v)
	if len(bars) != 50 {
		t.Fatalf("%d bars", len(bars))
	}
	area := float64(chartHeight - tipBand)
	for i, want := range []float64{area, 2, area / 2, area / 4, stubHeight} {
		if h, y := num(bars[i].H), num(bars[i].Y); h < want-0.1 || h > want+0.1 || y+h < chartHeight-0.1 || y+h > chartHeight+0.1 {
			t.Errorf("bar %d: height %v from %v, want %v standing on the base", i, h, y, want)
		}
	}
	if bars[0].Class != "bar bar-success" || bars[4].Class != "bar bar-running" || bars[4].Tip != "#12350 running" || bars[0].Tip != "#12340 passed x" {
		t.Errorf("bars 0 and 4: %q %q, %q %q", bars[0].Class, bars[0].Tip, bars[4].Class, bars[4].Tip)
	}
	for i, b := range bars {
		if left, w := num(b.TipBox), num(b.TipW); left < 0 || left+w > chartWidth || float64(len(b.Tip))*0.6*tipFont > w {
			t.Errorf("bar %d: label box %v+%v outside the chart or narrower than %q", i, left, w, b.Tip)
		}
		if x := num(b.X); x < 0 || x+num(b.W) > chartWidth {
			t.Errorf("bar %d at %v outside the chart", i, x)
		}
	}
	if got := longestText(v); got != "x" {
		t.Errorf("the axis's top reads %q", got)
	}
}
