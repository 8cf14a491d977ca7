package ha

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// layout names every znode hanode uses. root already includes any chroot.
type layout struct {
	root  string
	group string // HA_ID
}

func (l layout) namesDir() string         { return l.root + "/names" }
func (l layout) name(n string) string     { return l.namesDir() + "/" + n }
func (l layout) groupsDir() string        { return l.root + "/groups" }
func (l layout) groupOf(id string) string { return l.groupsDir() + "/" + id }
func (l layout) groupNode() string        { return l.groupOf(l.group) }
func (l layout) membersDir() string       { return l.groupNode() + "/members" }
func (l layout) member(n string) string   { return l.membersDir() + "/" + n }
func (l layout) leaderNode() string       { return l.groupNode() + "/leader" }

// parents are the persistent nodes above a member, outermost first.
func (l layout) parents() []string {
	var out []string
	for i := 1; i < len(l.root); i++ {
		if l.root[i] == '/' {
			out = append(out, l.root[:i])
		}
	}
	return append(out, l.root, l.groupsDir(), l.groupNode(), l.membersDir())
}

// groupRecord is the data of groups/<HA_ID>: the group's identity, fixed by
// its first member. A node whose role, region or lease differs is refused:
// every member must wait out the same lease (doc.go).
type groupRecord struct {
	HAID    string    `json:"ha_id"`
	Role    string    `json:"role"`
	Region  string    `json:"region"`
	LeaseMS int64     `json:"lease_ms"`
	Created time.Time `json:"created"`
}

// Leader record states.
const (
	recFencing  = "fencing"  // claimed; the holder fences Previous before it acts
	recActive   = "active"   // the holder may be acting
	recReleased = "released" // the holder stopped its duty and gave up
)

// MaxTerm is the largest term hanode issues: terms stay exact for JSON
// consumers. A leader record at or above it cannot grow and is refused.
const MaxTerm = 1<<53 - 1

// leaderRecord is the data of groups/<HA_ID>/leader. Every claim, release and
// activation writes it with a version check (doc.go).
type leaderRecord struct {
	Term int64 `json:"term"`
	// Holder is the member node (name, not path) that made the claim.
	Holder  string    `json:"holder"`
	Name    string    `json:"name"`
	Host    string    `json:"host"`
	HTTP    string    `json:"http,omitempty"`
	Session string    `json:"session"`
	Since   time.Time `json:"since"`
	State   string    `json:"state"`
	// Previous is the last leader that may have acted, while State is
	// fencing; nil then means it is not known.
	Previous *LeaderInfo `json:"previous,omitempty"`
	// Candidates, while State is fencing, are all the members that may
	// have acted when the record could not say who led (Previous is the
	// first of them); omitted when there is one or none.
	Candidates []LeaderInfo `json:"candidates,omitempty"`
}

// recKind is what a read of the leader record found.
type recKind uint8

const (
	recAbsent recKind = iota // no node
	recOK                    // a record this version of hanode understands
	recBad                   // a node whose data is not a usable leader record
)

// decodeLeader reads leader-record data. Anything that is not a record with
// a positive term, a holder and a known state is recBad, with a reason.
func decodeLeader(data []byte) (leaderRecord, recKind, string) {
	var r leaderRecord
	if err := strictJSON(data, &r); err != nil {
		return leaderRecord{}, recBad, err.Error()
	}
	switch {
	case r.Term <= 0:
		return r, recBad, fmt.Sprintf("term %d is not positive", r.Term)
	case r.Holder == "":
		return r, recBad, "no holder"
	case r.State != recFencing && r.State != recActive && r.State != recReleased:
		return r, recBad, fmt.Sprintf("unknown state %q", r.State)
	}
	return r, recOK, ""
}

// memberData is the data of a member node: what the member publishes, and
// while it holds the lease, the term and count of its extensions (every
// extension is a write of this node, see doc.go).
type memberData struct {
	MemberInfo
	LeaseTerm int64 `json:"lease_term,omitempty"`
	LeaseN    int64 `json:"lease_n,omitempty"`
}

// decodeMember reads member data; ok is false for anything that is not a
// member record (those nodes are ignored, never trusted).
func decodeMember(data []byte) (memberData, string, bool) {
	var m memberData
	if err := strictJSON(data, &m); err != nil {
		return memberData{}, err.Error(), false
	}
	if m.Name == "" || m.Role == "" {
		return memberData{}, "no name or role", false
	}
	return m, "", true
}

// strictJSON decodes one JSON object and nothing after it.
func strictJSON(data []byte, v any) error {
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

// nameRecord is the data of names/<NAME>: who holds the name.
type nameRecord struct {
	Name    string    `json:"name"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Session string    `json:"session"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ha: encode: " + err.Error()) // plain structs only
	}
	return b
}

// sessionHex formats a session id the way ZooKeeper's own tools do.
func sessionHex(id int64) string { return fmt.Sprintf("0x%x", id) }

// quote shortens foreign data for a message.
func quote(data []byte) string {
	const max = 60
	if len(data) > max {
		return fmt.Sprintf("%q...", data[:max])
	}
	return fmt.Sprintf("%q", data)
}
