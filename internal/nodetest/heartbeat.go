package nodetest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// HeartbeatInterval is the pace of HeartbeatCmd.
const HeartbeatInterval = 50 * time.Millisecond

// HeartbeatCmd is an ACTIVE_CMD that appends one line every 50 ms to file:
// "<unix ns> <HANODE_NAME> <HANODE_TERM> <HANODE_ROLE> <HANODE_HA_ID>".
// The time is taken by date(1) in the duty itself, so a line proves that the
// duty ran at that instant.
func HeartbeatCmd(file string) string {
	return `while :; do echo "$(date +%s%N) $HANODE_NAME $HANODE_TERM $HANODE_ROLE $HANODE_HA_ID" >> ` +
		ShellQuote(file) + `; sleep 0.05; done`
}

// Heartbeat is one line of a heartbeat file.
type Heartbeat struct {
	At   time.Time
	Name string
	Term int64
	Role string
	HAID string
}

// ReadHeartbeats parses a heartbeat file; a missing file has no lines. A
// malformed line (a duty killed in the middle of a write) is skipped and
// counted in bad.
func ReadHeartbeats(file string) (beats []Heartbeat, bad int, err error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hb, ok := parseHeartbeat(sc.Text())
		if !ok {
			bad++
			continue
		}
		beats = append(beats, hb)
	}
	return beats, bad, sc.Err()
}

func parseHeartbeat(line string) (Heartbeat, bool) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return Heartbeat{}, false
	}
	ns, err1 := strconv.ParseInt(f[0], 10, 64)
	term, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return Heartbeat{}, false
	}
	hb := Heartbeat{At: time.Unix(0, ns), Name: f[1], Term: term}
	if len(f) > 3 {
		hb.Role = f[3]
	}
	if len(f) > 4 {
		hb.HAID = f[4]
	}
	return hb, true
}

// Heartbeats reads the node's heartbeat file.
func (n *Node) Heartbeats() []Heartbeat {
	n.t.Helper()
	beats, _, err := ReadHeartbeats(n.HeartbeatFile())
	if err != nil {
		n.t.Fatalf("nodetest: %v", err)
	}
	return beats
}

// DutySpan is the time from the first to the last heartbeat of one duty
// (one name in one term). The duty surely ran throughout.
type DutySpan struct {
	Name        string
	Term        int64
	First, Last time.Time
	Lines       int
}

func (s DutySpan) String() string {
	return fmt.Sprintf("%s term %d [%s .. %s] (%d lines)", s.Name, s.Term,
		s.First.Format("15:04:05.000"), s.Last.Format("15:04:05.000"), s.Lines)
}

// Spans groups heartbeats by name and term, ordered by first heartbeat.
func Spans(beats []Heartbeat) []DutySpan {
	type key struct {
		name string
		term int64
	}
	idx := map[key]int{}
	var out []DutySpan
	for _, hb := range beats {
		k := key{hb.Name, hb.Term}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, DutySpan{Name: hb.Name, Term: hb.Term, First: hb.At, Last: hb.At})
			i = len(out) - 1
		}
		s := &out[i]
		if hb.At.Before(s.First) {
			s.First = hb.At
		}
		if hb.At.After(s.Last) {
			s.Last = hb.At
		}
		s.Lines++
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First.Before(out[j].First) })
	return out
}

// DutyOverlap is two duties that surely ran at the same time: Later wrote
// its first heartbeat before Earlier wrote its last.
type DutyOverlap struct {
	Earlier, Later DutySpan
}

// Overlap is how long both surely ran.
func (o DutyOverlap) Overlap() time.Duration {
	end := o.Earlier.Last
	if o.Later.Last.Before(end) {
		end = o.Later.Last
	}
	return end.Sub(o.Later.First)
}

func (o DutyOverlap) String() string {
	return fmt.Sprintf("duties overlapped for %v: %s and %s", o.Overlap(), o.Earlier, o.Later)
}

// CheckSpans returns every pair of duty spans that overlap, and every
// successor whose term is not larger than its predecessor's (spans ordered
// by first heartbeat).
func CheckSpans(spans []DutySpan) (overlaps []DutyOverlap, termProblems []string) {
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			a, b := spans[i], spans[j] // a.First <= b.First
			if !b.First.After(a.Last) {
				overlaps = append(overlaps, DutyOverlap{Earlier: a, Later: b})
			}
		}
		if i > 0 && spans[i].Term <= spans[i-1].Term {
			termProblems = append(termProblems, fmt.Sprintf("term did not grow from %s to %s", spans[i-1], spans[i]))
		}
	}
	return overlaps, termProblems
}
