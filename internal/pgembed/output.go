package pgembed

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// tailLines is how many of the last output lines a start-up error quotes: enough for the FATAL
// line and its DETAIL and HINT, even after a crash-recovery chatter.
const tailLines = 50

// output receives initdb's and postgres's stdout and stderr. Every line goes to the Logger; the
// last ones are kept for errors, because without a Logger they would be lost.
type output struct {
	logger  *slog.Logger
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.add(string(o.partial[:i]))
		o.partial = o.partial[i+1:]
	}
	o.partial = slices.Clone(o.partial)
	return len(p), nil
}

func (o *output) add(line string) {
	if line == "" {
		return
	}
	o.logger.Debug("postgres output", "line", line)
	o.lines = append(o.lines, line)
	if len(o.lines) > tailLines {
		o.lines = slices.Delete(o.lines, 0, len(o.lines)-tailLines)
	}
}

// tail is the last lines, formatted to end an error message.
func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.lines) == 0 {
		return " (no output)"
	}
	return "; last output:\n\t" + strings.Join(o.lines, "\n\t")
}
