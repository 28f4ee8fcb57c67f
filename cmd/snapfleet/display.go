package main

import (
	"bytes"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// display is the live progress of run, work --idle-exit and dlq replay on a terminal's
// stderr: a few lines redrawn in place every refresh. The logs of the command go through
// it (Write): it clears its lines, writes the log, and draws them again below, so that
// the two never mix. Close draws the final state once more and leaves it on the screen.
// It is only ever made for a terminal (isTerminal): a pipe or a file gets the logs alone.
type display struct {
	out    io.Writer
	render func() []string

	mu    sync.Mutex
	drawn int // lines on the screen now
	done  bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

// displayEvery is how often the display is redrawn.
const displayEvery = 250 * time.Millisecond

// maxLine bounds a line, so that none wraps on an 80-column terminal (the redraw counts
// lines).
const maxLine = 79

// newDisplay starts a display on out redrawn every interval.
func newDisplay(out io.Writer, every time.Duration, render func() []string) *display {
	d := &display{out: out, render: render, stop: make(chan struct{})}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				d.mu.Lock()
				if !d.done {
					d.redraw()
				}
				d.mu.Unlock()
			}
		}
	}()
	return d
}

// Write writes a log line above the display.
func (d *display) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return d.out.Write(p)
	}
	var b bytes.Buffer
	d.clear(&b)
	b.Write(p)
	if len(p) > 0 && p[len(p)-1] != '\n' {
		b.WriteByte('\n')
	}
	d.draw(&b)
	if _, err := d.out.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close draws the final state, ends it with a new line and stops redrawing; what is
// written afterwards goes straight to the terminal. Closing twice does nothing.
func (d *display) Close() {
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return
	}
	d.redraw()
	if d.drawn > 0 {
		_, _ = io.WriteString(d.out, "\n")
	}
	d.done = true
	d.mu.Unlock()
	close(d.stop)
	d.wg.Wait()
}

func (d *display) redraw() {
	var b bytes.Buffer
	d.clear(&b)
	d.draw(&b)
	_, _ = d.out.Write(b.Bytes())
}

// clear erases the lines drawn (the cursor is at the end of the last one).
func (d *display) clear(b *bytes.Buffer) {
	if d.drawn == 0 {
		return
	}
	b.WriteString("\r\x1b[K")
	for range d.drawn - 1 {
		b.WriteString("\x1b[1A\x1b[K")
	}
	d.drawn = 0
}

// draw writes the current lines, leaving the cursor at the end of the last one.
func (d *display) draw(b *bytes.Buffer) {
	lines := d.render()
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(cut(l, maxLine))
	}
	d.drawn = len(lines)
}

// cut shortens s to n characters.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
