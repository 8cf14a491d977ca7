package ha

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
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

// groupRecord is the data of groups/<HA_ID>: the group's identity, fixed by
// its first member. A node with another role or region is refused.
type groupRecord struct {
	HAID    string    `json:"ha_id"`
	Role    string    `json:"role"`
	Region  string    `json:"region"`
	Created time.Time `json:"created"`
}

// leaderRecord is the data of groups/<HA_ID>/leader, written (versioned) by
// each new leader before it acts. It keeps the term across leaders.
//
// Active is set, by a versioned write, just before the holder's duty
// starts: a holder that never got that far ran nothing. Previous is the last
// holder that did set Active, so fencing always targets a leader that may
// really have acted, even if leaders in between died while fencing.
type leaderRecord struct {
	Term     int64         `json:"term"`
	Name     string        `json:"name"`
	Host     string        `json:"host"`
	HTTP     string        `json:"http,omitempty"`
	Since    time.Time     `json:"since"`
	Session  string        `json:"session"`
	Active   bool          `json:"active"`
	Previous *leaderRecord `json:"previous,omitempty"`
}

// fenceTarget is the last leader that may have run its duty: the holder if
// it went active, else the one it had to fence. nil: nobody ever led.
func (r leaderRecord) fenceTarget() *leaderRecord {
	if r.Active {
		t := r
		t.Previous = nil
		return &t
	}
	return r.Previous
}

// nameRecord is the data of names/<NAME>: who holds the name.
type nameRecord struct {
	Name    string    `json:"name"`
	HAID    string    `json:"ha_id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Session string    `json:"session"`
}

// store performs every znode creation, so access control is added in one
// place (acl).
type store struct {
	conn *zk.Conn
	acl  []zk.ACL
}

func newStore(conn *zk.Conn) store {
	return store{conn: conn, acl: zk.WorldACL(zk.PermAll)}
}

// ensurePath creates p and any missing ancestors as empty persistent nodes.
// Recreating the tree is what lets a group recover after ZooKeeper lost its
// data (Curator's CURATOR-724 never did).
func (s store) ensurePath(p string) error {
	if p == "" || p == "/" {
		return nil
	}
	if ok, _, err := s.conn.Exists(p); err != nil {
		return fmt.Errorf("ha: exists %s: %w", p, err)
	} else if ok {
		return nil
	}
	if err := s.ensurePath(path.Dir(p)); err != nil {
		return err
	}
	return s.createPersistent(p, nil)
}

// createPersistent creates p; an existing node is not an error.
func (s store) createPersistent(p string, data []byte) error {
	_, err := s.conn.Create(p, data, 0, s.acl)
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("ha: create %s: %w", p, err)
	}
	return nil
}

// createOnce creates a persistent node and reports zk.ErrNodeExists as is,
// for records where the first writer wins.
func (s store) createOnce(p string, data []byte) error {
	_, err := s.conn.Create(p, data, 0, s.acl)
	return err
}

// createEphemeral creates an ephemeral node and reports zk.ErrNodeExists as is.
func (s store) createEphemeral(p string, data []byte) error {
	_, err := s.conn.Create(p, data, zk.FlagEphemeral, s.acl)
	return err
}

// createMember creates the ephemeral sequential member node named by prefix
// in dir and returns its node name (no path).
func (s store) createMember(dir, prefix string, data []byte) (string, error) {
	p, err := s.conn.Create(dir+"/"+prefix, data, zk.FlagEphemeral|zk.FlagSequence, s.acl)
	if err != nil {
		return "", err
	}
	return p[strings.LastIndex(p, "/")+1:], nil
}

// getJSON reads a node and decodes its JSON data into v.
func (s store) getJSON(p string, v any) (*zk.Stat, error) {
	data, st, err := s.conn.Get(p)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, v); err != nil {
			return st, fmt.Errorf("ha: decode %s: %w", p, err)
		}
	}
	return st, nil
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
