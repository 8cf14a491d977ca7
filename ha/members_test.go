package ha

import (
	"strings"
	"testing"
)

func TestParseMember(t *testing.T) {
	guid := strings.Repeat("ab", 16)
	cases := []struct {
		in   string
		ok   bool
		seq  int64
		guid string
	}{
		{"_c_" + guid + "-m-0000000012", true, 12, guid},
		{"_c_" + guid + "-m-2147483647", true, 2147483647, guid},
		{"_c_" + guid + "-m-12", false, 0, ""},         // not ten digits
		{"_c_" + guid + "-m-00000000x2", false, 0, ""}, // not a number
		{"_c_-m-0000000001", false, 0, ""},             // no guid
		{"member-0000000001", false, 0, ""},            // not protected
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
	sorted := sortMembers([]string{c, "junk", b, a})
	if len(sorted) != 3 || sorted[0].Name != a || sorted[1].Name != b || sorted[2].Name != c {
		t.Fatalf("sorted = %+v", sorted)
	}
	if idx, pred, ok := position(sorted, c); !ok || idx != 2 || pred.Name != b {
		t.Fatalf("position(c) = %d %+v %v: a standby watches only its predecessor", idx, pred, ok)
	}
	if idx, _, ok := position(sorted, a); !ok || idx != 0 {
		t.Fatalf("position(a) = %d %v: lowest leads", idx, ok)
	}
	if _, _, ok := position(sorted, "gone"); ok {
		t.Fatal("a node not listed must be reported missing")
	}
	if m, ok := findGUID(sorted, strings.Repeat("0", 32)); !ok || m.Name != b {
		t.Fatal("findGUID must find a node created earlier in this session")
	}
	if p := memberPrefix("abc"); p != "_c_abc-m-" {
		t.Fatalf("memberPrefix = %q", p)
	}
}
