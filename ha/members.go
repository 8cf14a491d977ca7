package ha

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
)

// Member node names are "_c_<guid>-m-<10-digit sequence>". The guid is fixed
// for a session, so after a create whose reply was lost the node can be found
// again instead of creating a second one (which would lead in our place).
const (
	protectedPrefix = "_c_"
	memberInfix     = "-m-"
)

// newGUID returns 32 hex digits.
func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ha: crypto/rand: " + err.Error()) // never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// memberPrefix is the name passed to a sequential create for this guid.
func memberPrefix(guid string) string { return protectedPrefix + guid + memberInfix }

// memberNode is a parsed member node name.
type memberNode struct {
	Name string // node name, no path
	GUID string
	Seq  int64
}

// parseMember parses a member node name; ok is false for anything else,
// which the election ignores.
func parseMember(name string) (memberNode, bool) {
	if !strings.HasPrefix(name, protectedPrefix) {
		return memberNode{}, false
	}
	rest := name[len(protectedPrefix):]
	i := strings.Index(rest, memberInfix)
	if i <= 0 {
		return memberNode{}, false
	}
	digits := rest[i+len(memberInfix):]
	if len(digits) != 10 {
		return memberNode{}, false
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || seq < 0 {
		return memberNode{}, false
	}
	return memberNode{Name: name, GUID: rest[:i], Seq: seq}, true
}

// sortMembers parses children and orders them by sequence (never by name:
// the guid comes first, so a string sort would order by guid).
func sortMembers(children []string) []memberNode {
	out := make([]memberNode, 0, len(children))
	for _, c := range children {
		if m, ok := parseMember(c); ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// position finds our node among sorted members: its index, and the node just
// before it (the one to watch) when we are not first. found is false when our
// node is not in the list: it is gone and we must rejoin.
func position(sorted []memberNode, own string) (idx int, pred memberNode, found bool) {
	for i, m := range sorted {
		if m.Name == own {
			if i > 0 {
				pred = sorted[i-1]
			}
			return i, pred, true
		}
	}
	return -1, memberNode{}, false
}

// findGUID returns our node if a create for guid already succeeded.
func findGUID(sorted []memberNode, guid string) (memberNode, bool) {
	for _, m := range sorted {
		if m.GUID == guid {
			return m, true
		}
	}
	return memberNode{}, false
}
