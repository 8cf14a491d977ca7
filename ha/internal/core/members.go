package core

import "slices"

// Member node names are "_c_<32 hex>-m-<10-digit sequence>". The guid is
// fixed for a session, so after a create whose reply was lost the node can be
// found again instead of creating a second one (which would lead in our
// place). Anything else under members/ is not hanode's and is ignored.
const (
	protectedPrefix = "_c_"
	memberInfix     = "-m-"
	guidLen         = 32
	seqLen          = 10
)

// memberPrefix is the name passed to a sequential create for this guid.
func memberPrefix(guid string) string { return protectedPrefix + guid + memberInfix }

// MemberNodeName is a parsed member node name.
type MemberNodeName struct {
	Node string // node name, no path
	GUID string
	Seq  int64
}

// parseMember parses a member node name strictly: exactly the shape hanode
// creates, lowercase hex and ten ASCII digits, so a hand-made "-1" or "+5"
// can never sort first.
func parseMember(name string) (MemberNodeName, bool) {
	const n = len(protectedPrefix) + guidLen + len(memberInfix) + seqLen
	if len(name) != n || name[:len(protectedPrefix)] != protectedPrefix {
		return MemberNodeName{}, false
	}
	guid := name[len(protectedPrefix) : len(protectedPrefix)+guidLen]
	for i := 0; i < len(guid); i++ {
		if c := guid[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return MemberNodeName{}, false
		}
	}
	rest := name[len(protectedPrefix)+guidLen:]
	if rest[:len(memberInfix)] != memberInfix {
		return MemberNodeName{}, false
	}
	var seq int64
	for _, c := range []byte(rest[len(memberInfix):]) {
		if c < '0' || c > '9' {
			return MemberNodeName{}, false
		}
		seq = seq*10 + int64(c-'0')
	}
	return MemberNodeName{Node: name, GUID: guid, Seq: seq}, true
}

// SortMembers parses children, drops what is not a member name, and orders
// the rest by sequence (never by name: the guid comes first, so a string sort
// would order by guid).
func SortMembers(children []string) []MemberNodeName {
	out := make([]MemberNodeName, 0, len(children))
	for _, c := range children {
		if m, ok := parseMember(c); ok {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b MemberNodeName) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		if a.Node < b.Node {
			return -1
		}
		return 1
	})
	return out
}

// IsMemberNode reports whether name has the shape of a member node's name
// (a reader need not read the others).
func IsMemberNode(name string) bool {
	_, ok := parseMember(name)
	return ok
}
