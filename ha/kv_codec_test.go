package ha

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestStateKeysFollowTheRule(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"leader-epoch", true},
		{"snapshot_2026.12.06", true},
		{"A.b_C-9", true},
		{"...", true}, // only "." and ".." are ZooKeeper's path steps
		{strings.Repeat("k", 128), true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("k", 129), false},
		{"a/b", false},
		{"a b", false},
		{"a:b", false},
		{"ключ", false},
		{"a\x00", false},
		{"a%2Fb", false},
	} {
		err := ValidStateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidStateKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrBadStateKey) || !strings.Contains(err.Error(), StateKeyRule)) {
			t.Errorf("ValidStateKey(%q) = %v: want ErrBadStateKey naming the rule", tc.key, err)
		}
	}
}

func TestStateRecordRoundTrips(t *testing.T) {
	for _, v := range [][]byte{nil, {}, []byte("x"), []byte("line one\nline two\n"), bytes.Repeat([]byte{0, 0xff, '\n'}, 1000)} {
		data := encodeStateRecord(42, "primary-1", v)
		h, got, err := decodeStateRecord(data)
		if err != nil {
			t.Fatalf("decode(encode(%q)): %v", v, err)
		}
		if h.Term != 42 || h.By != "primary-1" || !bytes.Equal(got, v) {
			t.Fatalf("decode(encode(%q)) = %+v %q", v, h, got)
		}
	}
	if got := string(encodeStateRecord(7, "b", []byte("v"))); got != `{"format":"hanode-state/1","term":7,"by":"b"}`+"\nv" {
		t.Fatalf("record %q: the documented layout changed", got)
	}
}

func TestForeignStateDataIsRefusedWithAReason(t *testing.T) {
	for _, tc := range []struct{ name, data, reason string }{
		{"empty", "", "no header line"},
		{"plain text", "hello", "no header line"},
		{"json without newline", `{"format":"hanode-state/1","term":1,"by":"a"}`, "no header line"},
		{"not json", "hello\nworld", "not a hanode state record"},
		{"other format", `{"format":"hanode-state/2","term":1,"by":"a"}` + "\n", "format"},
		{"no term", `{"format":"hanode-state/1","by":"a"}` + "\n", "term 0"},
		{"negative term", `{"format":"hanode-state/1","term":-3,"by":"a"}` + "\n", "term -3"},
		{"huge term", `{"format":"hanode-state/1","term":9007199254740993,"by":"a"}` + "\n", "out of range"},
		{"no writer", `{"format":"hanode-state/1","term":1}` + "\n", "no writer"},
		{"trailing data", `{"format":"hanode-state/1","term":1,"by":"a"} x` + "\n", "not a hanode state record"},
		{"header too long", `{"format":"hanode-state/1","term":1,"by":"` + strings.Repeat("a", maxStateHeader) + `"}` + "\n", "no header line"},
	} {
		_, _, err := decodeStateRecord([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: decode = %v, want an error saying %q", tc.name, err, tc.reason)
		}
	}
}

// FuzzDecodeStateRecord: any bytes under state/ are judged without a
// panic, and what is accepted re-encodes to the same record.
func FuzzDecodeStateRecord(f *testing.F) {
	f.Add(encodeStateRecord(1, "a", []byte("v")))
	f.Add([]byte(`{"format":"hanode-state/1","term":1,"by":"a","x":1}` + "\n"))
	f.Add([]byte("\n"))
	f.Add([]byte(`{"Format":"hanode-state/1","TERM":2,"by":"\u00e9"}` + "\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, v, err := decodeStateRecord(data)
		if err != nil {
			return
		}
		if h.Term < 1 || h.Term > MaxTerm || h.By == "" {
			t.Fatalf("accepted a header out of bounds: %+v", h)
		}
		h2, v2, err := decodeStateRecord(encodeStateRecord(h.Term, h.By, v))
		if err != nil || h2 != h || !bytes.Equal(v, v2) {
			t.Fatalf("re-encoding %+v %q gives %+v %q %v", h, v, h2, v2, err)
		}
	})
}
