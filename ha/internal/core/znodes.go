package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Layout names every znode hanode uses. root already includes any chroot.
type Layout struct {
	root  string
	group string // HA_ID
}

// NewLayout returns the layout of group (HA_ID; "" when only the cluster-wide
// nodes are needed) under root.
func NewLayout(root, group string) Layout { return Layout{root: root, group: group} }

// Group is the layout's HA_ID.
func (l Layout) Group() string { return l.group }

// WithGroup is the layout of another group under the same root.
func (l Layout) WithGroup(group string) Layout { return Layout{root: l.root, group: group} }

// NamesDir holds the server-name reservations.
func (l Layout) NamesDir() string { return l.root + "/names" }

// NameNode is the reservation of server name n.
func (l Layout) NameNode(n string) string { return l.NamesDir() + "/" + n }

// GroupsDir holds one node per HA group.
func (l Layout) GroupsDir() string { return l.root + "/groups" }

// GroupOf is the group node of HA_ID id.
func (l Layout) GroupOf(id string) string { return l.GroupsDir() + "/" + id }

// GroupNode is this group's node; its data is the group record.
func (l Layout) GroupNode() string { return l.GroupOf(l.group) }

// MembersDir holds the group's member nodes.
func (l Layout) MembersDir() string { return l.GroupNode() + "/members" }

// MemberNode is the member node named n.
func (l Layout) MemberNode(n string) string { return l.MembersDir() + "/" + n }

// LeaderNode is the group's leader record.
func (l Layout) LeaderNode() string { return l.GroupNode() + "/leader" }

// Parents are the persistent nodes above a member, outermost first.
func (l Layout) Parents() []string {
	var out []string
	for i := 1; i < len(l.root); i++ {
		if l.root[i] == '/' {
			out = append(out, l.root[:i])
		}
	}
	return append(out, l.root, l.GroupsDir(), l.GroupNode(), l.MembersDir())
}

// groupRecord is the data of groups/<HA_ID>: the group's identity, fixed by
// its first member. A node whose role, region or lease differs is refused:
// every member must wait out the same lease (ha/doc.go).
type groupRecord struct {
	HAID    string `json:"ha_id"`
	Role    string `json:"role"`
	Region  string `json:"region"`
	LeaseMS int64  `json:"lease_ms"`
	// Policy is the election policy ("" is PolicyFirstCome, as written
	// before policies existed).
	Policy string `json:"policy,omitempty"`
	// Paused is the group's maintenance mode (pause.go); nil: not paused.
	Paused *PauseInfo `json:"paused,omitempty"`
	// Switchover names the member an operator asked to lead next
	// (switchover.go); nil: none.
	Switchover *SwitchoverInfo `json:"switchover,omitempty"`
	Created    time.Time       `json:"created"`
}

// Leader record states.
const (
	RecFencing  = "fencing"  // claimed; the holder fences Previous before it acts
	RecActive   = "active"   // the holder may be acting
	RecReleased = "released" // the holder stopped its duty and gave up
)

// MaxTerm is the largest term hanode issues: terms stay exact for JSON
// consumers. A leader record at or above it cannot grow and is refused.
const MaxTerm = 1<<53 - 1

// LeaderRecord is the data of groups/<HA_ID>/leader. Every claim, release and
// activation writes it with a version check (ha/doc.go).
type LeaderRecord struct {
	Term int64 `json:"term"`
	// HolderNode is the member node (name, not path) that made the claim.
	HolderNode string    `json:"holder"`
	Name       string    `json:"name"`
	Host       string    `json:"host"`
	HTTP       string    `json:"http,omitempty"`
	Session    string    `json:"session"`
	Since      time.Time `json:"since"`
	State      string    `json:"state"`
	// Previous is the last leader that may have acted, while State is
	// fencing; nil then means it is not known.
	Previous *LeaderInfo `json:"previous,omitempty"`
	// Candidates, while State is fencing, are all the members that may
	// have acted when the record could not say who led (Previous is the
	// first of them); omitted when there is one or none.
	Candidates []LeaderInfo `json:"candidates,omitempty"`
	// Reason, in a released record, is why its holder released (the
	// reason it stepped down with: "shutting down", "resigned: ...",
	// "health check failing: ..."); the next leader records it in the
	// group's history.
	Reason string `json:"reason,omitempty"`
}

// RecKind is what a read of the leader record found.
type RecKind uint8

const (
	RecAbsent RecKind = iota // no node
	RecOK                    // a record this version of hanode understands
	RecBad                   // a node whose data is not a usable leader record
)

// DecodeLeader reads leader-record data. Anything that is not a record with
// a positive term, a holder and a known state is recBad, with a reason.
func DecodeLeader(data []byte) (LeaderRecord, RecKind, string) {
	var r LeaderRecord
	if err := StrictJSON(data, &r); err != nil {
		return LeaderRecord{}, RecBad, err.Error()
	}
	switch {
	case r.Term <= 0:
		return r, RecBad, fmt.Sprintf("term %d is not positive", r.Term)
	case r.HolderNode == "":
		return r, RecBad, "no holder"
	case r.State != RecFencing && r.State != RecActive && r.State != RecReleased:
		return r, RecBad, fmt.Sprintf("unknown state %q", r.State)
	}
	return r, RecOK, ""
}

// MemberData is the data of a member node: what the member publishes, and
// while it holds the lease, the term and count of its extensions (every
// extension is a write of this node, see ha/doc.go).
type MemberData struct {
	MemberInfo
	LeaseTerm int64 `json:"lease_term,omitempty"`
	LeaseN    int64 `json:"lease_n,omitempty"`
}

// DecodeMember reads member data; ok is false for anything that is not a
// member record (those nodes are ignored, never trusted).
func DecodeMember(data []byte) (MemberData, string, bool) {
	var m MemberData
	if err := StrictJSON(data, &m); err != nil {
		return MemberData{}, err.Error(), false
	}
	if m.Name == "" || m.Role == "" {
		return MemberData{}, "no name or role", false
	}
	if m.SeenTerm >= MaxTerm-1 || m.LeaseTerm >= MaxTerm-1 {
		// No hanode issues such a term: whoever wrote it is not a member,
		// and a node nobody can trust as one is swept like garbage once it
		// stays unchanged (a live member rewrites its node first).
		return MemberData{}, fmt.Sprintf("term %d is beyond any hanode issues (%d)", max(m.SeenTerm, m.LeaseTerm), int64(MaxTerm)), false
	}
	return m, "", true
}

// StrictJSON decodes one JSON object and nothing after it.
func StrictJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("empty")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ha: encode: " + err.Error()) // plain structs only
	}
	return b
}

// SessionHex formats a session id the way ZooKeeper's own tools do.
func SessionHex(id int64) string { return fmt.Sprintf("0x%x", id) }

// Quote shortens foreign data for a message.
func Quote(data []byte) string {
	const max = 60
	if len(data) > max {
		return fmt.Sprintf("%q...", data[:max])
	}
	return fmt.Sprintf("%q", data)
}
