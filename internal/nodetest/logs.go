package nodetest

import (
	"encoding/json"
	"strings"
)

// LogEntry is one JSON line of hanode's log.
type LogEntry struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Name   string `json:"name"`
	From   string `json:"from"`
	To     string `json:"to"`
	Term   int64  `json:"term"`
	Reason string `json:"reason"`
	// Fields holds every field of the line.
	Fields map[string]any `json:"-"`
}

// ParseLog parses hanode's JSON log lines; other lines are skipped.
func ParseLog(text string) []LogEntry {
	var out []LogEntry
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e LogEntry
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		_ = json.Unmarshal([]byte(line), &e.Fields)
		out = append(out, e)
	}
	return out
}

// LogEntries parses the current run's log.
func (n *Node) LogEntries() []LogEntry { return ParseLog(n.Logs()) }

// StateChanges returns the current run's "state change" entries in order.
func (n *Node) StateChanges() []LogEntry {
	var out []LogEntry
	for _, e := range n.LogEntries() {
		if e.Msg == "state change" {
			out = append(out, e)
		}
	}
	return out
}

// HasLog reports whether the current run logged an entry with message msg.
func (n *Node) HasLog(msg string) bool {
	for _, e := range n.LogEntries() {
		if e.Msg == msg {
			return true
		}
	}
	return false
}
