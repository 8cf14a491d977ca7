package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
)

// childLog carries what a child (the duty, FENCE_CMD) writes to one stream
// into hanode's log: with LOG_FORMAT=json each line becomes a JSON entry
// ("msg":"output", "stream", "line"), so that a log collector reading
// hanode's stderr sees nothing but JSON lines. With the console format the
// child writes to the stream itself, as before.
//
// The child gets the write end of a pipe as an *os.File: exec hands it over
// directly, so waiting for the child never waits for a copy, even when a
// daemon it started keeps the pipe open.
type childLog struct {
	w    *os.File      // what the child writes to
	pipe *os.File      // our write end of the pipe; nil without one
	done chan struct{} // closed when the reader has logged everything
}

// maxLine is the longest line logged as one entry; a longer one is split.
const maxLine = 64 << 10

// newChildLog returns the output for a child's stream: direct (the console
// format) or a pipe read into log at info level with the field stream.
func newChildLog(log *zap.Logger, format, stream string, direct *os.File) (*childLog, error) {
	if format != "json" {
		return &childLog{w: direct}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c := &childLog{w: w, pipe: w, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer r.Close()
		logLines(r, func(line string) { log.Info("output", zap.String("stream", stream), zap.String("line", line)) })
	}()
	return c, nil
}

// logLines calls emit with every line read from r, without its end of line,
// splitting lines longer than maxLine; a last line without an end of line
// is emitted too.
func logLines(r io.Reader, emit func(string)) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			emit(string(bytes.TrimRight(line, "\r\n")))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// Close closes hanode's write end and waits, at most wait, until the reader
// has logged what the children wrote (a child still running keeps the pipe
// open: its later lines are not waited for).
func (c *childLog) Close(wait time.Duration) {
	if c.pipe == nil {
		return
	}
	_ = c.pipe.Close()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
	}
}
