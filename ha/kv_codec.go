package ha

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The group's state area: keys and the record each key's znode holds.
//
// A key's znode is <root>/groups/<HA_ID>/state/<key>. Its data is one line
// of JSON, the header, then a newline, then the value's bytes as they are:
//
//	{"format":"hanode-state/1","term":7,"by":"primary-1"}\n<value>
//
// term is the leadership that wrote it (the fencing token of the writer's
// Fenced write) and by the writer's name. A text value stays readable with
// zkCli, and a value costs its own size plus the header (about 60 bytes),
// not a third more as base64 would. Anything else under state/ is foreign:
// reported and never served (decodeStateRecord says why).

// Limits of the state area. Sizes count bytes as ZooKeeper stores them.
const (
	// MaxStateValue is the largest value PutState accepts, in bytes.
	MaxStateValue = 64 << 10
	// MaxStateTotal bounds the bytes the group's state area holds: every
	// znode under state/, header included (and foreign znodes too: they
	// take ZooKeeper's memory all the same).
	MaxStateTotal = 1 << 20
	// MaxStateKey is the longest key, in bytes.
	MaxStateKey = 128
)

// StateKeyRule is what a valid key looks like, for error messages.
const StateKeyRule = "1 to 128 characters from A-Z a-z 0-9 . _ -, and not \".\" or \"..\""

// stateFormat names the record layout; a reader refuses any other.
const stateFormat = "hanode-state/1"

// maxStateHeader bounds the header line a reader looks for the newline in.
const maxStateHeader = 1024

// Refusals of the state area's API, wrapped with details.
var (
	// ErrBadStateKey: the key breaks StateKeyRule.
	ErrBadStateKey = errors.New("ha: bad state key")
	// ErrStateTooLarge: a value above MaxStateValue bytes.
	ErrStateTooLarge = errors.New("ha: state value too large")
	// ErrStateFull: the write would take the group's state area above
	// MaxStateTotal bytes; the message says how much it holds.
	ErrStateFull = errors.New("ha: group state area full")
	// ErrStateNotFound: DeleteState of a key that does not exist.
	ErrStateNotFound = errors.New("ha: no such state key")
	// ErrStateUnavailable: ZooKeeper could not be read to check the
	// write (no session, a failed read); nothing was written.
	ErrStateUnavailable = errors.New("ha: state area unavailable")
)

// ValidStateKey returns nil for a valid key, else an error wrapping
// ErrBadStateKey that states the rule.
func ValidStateKey(key string) error {
	if len(key) == 0 || len(key) > MaxStateKey || key == "." || key == ".." {
		return fmt.Errorf("%w %q: %s", ErrBadStateKey, key, StateKeyRule)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: %s", ErrBadStateKey, key, StateKeyRule)
		}
	}
	return nil
}

// stateHeader is the first line of a key's znode.
type stateHeader struct {
	Format string `json:"format"`
	Term   int64  `json:"term"`
	By     string `json:"by"`
}

// encodeStateRecord is the data of a key's znode.
func encodeStateRecord(term int64, by string, value []byte) []byte {
	h, err := json.Marshal(stateHeader{Format: stateFormat, Term: term, By: by})
	if err != nil {
		panic("ha: state header: " + err.Error()) // strings and an int64 always marshal
	}
	out := make([]byte, 0, len(h)+1+len(value))
	out = append(out, h...)
	out = append(out, '\n')
	return append(out, value...)
}

// decodeStateRecord parses a key's znode data, or says why it is not a
// state record. The value aliases data.
func decodeStateRecord(data []byte) (h stateHeader, value []byte, err error) {
	head := data[:min(len(data), maxStateHeader)]
	nl := bytes.IndexByte(head, '\n')
	if nl < 0 {
		return h, nil, errors.New("no header line (not a hanode state record)")
	}
	if err := json.Unmarshal(data[:nl], &h); err != nil {
		return stateHeader{}, nil, fmt.Errorf("header is not a hanode state record: %v", err)
	}
	switch {
	case h.Format != stateFormat:
		return stateHeader{}, nil, fmt.Errorf("format %q, want %q", h.Format, stateFormat)
	case h.Term < 1 || h.Term > MaxTerm:
		return stateHeader{}, nil, fmt.Errorf("term %d out of range [1, %d]", h.Term, int64(MaxTerm))
	case h.By == "" || !utf8.ValidString(h.By):
		return stateHeader{}, nil, errors.New("no writer name")
	}
	return h, data[nl+1:], nil
}
