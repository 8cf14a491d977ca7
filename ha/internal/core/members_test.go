package core

import (
	"strings"
	"testing"
)

func TestParseMemberAcceptsOnlyWhatHanodeCreates(t *testing.T) {
	guid := strings.Repeat("ab", 16)
	cases := []struct {
		in   string
		ok   bool
		seq  int64
		guid string
	}{
		{"_c_" + guid + "-m-0000000012", true, 12, guid},
		{"_c_" + guid + "-m-2147483647", true, 2147483647, guid},
		{"_c_" + guid + "-m-12", false, 0, ""},          // not ten digits
		{"_c_" + guid + "-m-00000000x2", false, 0, ""},  // not a number
		{"_c_" + guid + "-m--000000001", false, 0, ""},  // a sign where a digit belongs
		{"_c_" + guid + "-m-+000000001", false, 0, ""},  // likewise
		{"_c_" + guid + "-m- 000000001", false, 0, ""},  // likewise
		{"_c_" + guid + "-m-00000000001", false, 0, ""}, // eleven digits
		{"_c_" + strings.ToUpper(guid) + "-m-0000000001", false, 0, ""},
		{"_c_" + guid[:31] + "-m-0000000001", false, 0, ""}, // short guid
		{"_c_-m-0000000001", false, 0, ""},
		{"member-0000000001", false, 0, ""},
		{"leader", false, 0, ""},
		{"", false, 0, ""},
	}
	for _, c := range cases {
		m, ok := parseMember(c.in)
		if ok != c.ok || m.Seq != c.seq || m.GUID != c.guid {
			t.Errorf("parseMember(%q) = %+v, %v; want seq %d guid %q ok %v", c.in, m, ok, c.seq, c.guid, c.ok)
		}
	}
}

func TestMembersSortBySequenceNotByName(t *testing.T) {
	// With protected names a string sort orders by guid: "ff.." seq 1 must still come first.
	a := "_c_" + strings.Repeat("f", 32) + "-m-0000000001"
	b := "_c_" + strings.Repeat("0", 32) + "-m-0000000002"
	c := "_c_" + strings.Repeat("7", 32) + "-m-0000000010"
	sorted := SortMembers([]string{c, "junk", b, "_c_" + strings.Repeat("0", 32) + "-m--000000001", a})
	if len(sorted) != 3 || sorted[0].Node != a || sorted[1].Node != b || sorted[2].Node != c {
		t.Fatalf("sorted = %+v", sorted)
	}
	if p := memberPrefix("abc"); p != "_c_abc-m-" {
		t.Fatalf("memberPrefix = %q", p)
	}
}

func FuzzParseMember(f *testing.F) {
	f.Add("_c_" + strings.Repeat("ab", 16) + "-m-0000000012")
	f.Add("_c_" + strings.Repeat("ab", 16) + "-m--000000012")
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := parseMember(s)
		if !ok {
			return
		}
		if m.Seq < 0 || memberPrefix(m.GUID)+s[len(s)-seqLen:] != s {
			t.Fatalf("parseMember(%q) = %+v", s, m)
		}
	})
}

// TestDecodeMemberRefusesWhatNoMemberWrites: a member record names a member
// and carries terms hanode can issue. Data another client wrote with a term
// at MaxTerm or beyond is no member's: it is not trusted as one, and the
// node is swept like any unreadable one (simulator seed 9947: two such nodes
// at the head of the line, in a live foreign session, left every member
// behind them waiting for ever).
func TestDecodeMemberRefusesWhatNoMemberWrites(t *testing.T) {
	info := MemberInfo{Name: "a", Role: "primary"}
	for _, c := range []struct {
		name string
		data []byte
		ok   bool
		why  string
	}{
		{"a standby", MustJSON(MemberData{MemberInfo: info}), true, ""},
		{"a holder", MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary", SeenTerm: 1795996804209}, LeaseTerm: 1795996804209, LeaseN: 3}), true, ""},
		{"the largest term issued", MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary", SeenTerm: MaxTerm - 2}}), true, ""},
		{"seen term beyond", MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary", SeenTerm: 1<<62 + 5}}), false, "beyond any hanode issues"},
		{"lease term beyond", MustJSON(MemberData{MemberInfo: info, LeaseTerm: MaxTerm}), false, "beyond any hanode issues"},
		{"no role", MustJSON(MemberInfo{Name: "a"}), false, "no name or role"},
		{"not JSON", []byte("not json"), false, "not JSON"},
		{"trailing data", append(MustJSON(MemberData{MemberInfo: info}), " {}"...), false, "trailing data"},
	} {
		_, why, ok := DecodeMember(c.data)
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s: DecodeMember(%s) = %q, %v; want ok %v and a reason with %q", c.name, c.data, why, ok, c.ok, c.why)
		}
	}
}
