package nodetest

import (
	"maps"
	"strings"
	"testing"
	"time"
)

// DefaultSessionTimeout is the ZK_SESSION_TIMEOUT of HAEnv: short enough for
// crash tests, long enough that a loaded CI machine does not lose sessions.
const DefaultSessionTimeout = 4 * time.Second

// HAEnv returns the keys of a member of HA group haID on ZooKeeper zk:
// NAME, ROLE=primary, REGION=world, HA_ID, ZK and ZK_SESSION_TIMEOUT=4s.
func HAEnv(zk, haID, name string) map[string]string {
	return map[string]string{
		"NAME":               name,
		"ROLE":               "primary",
		"REGION":             "world",
		"HA_ID":              haID,
		"ZK":                 zk,
		"ZK_SESSION_TIMEOUT": DefaultSessionTimeout.String(),
		"LOG_LEVEL":          "info",
	}
}

// GroupID turns a test name into a valid HA_ID.
func GroupID(t testing.TB) string {
	id := strings.ToLower(sanitize(t.Name()))
	if len(id) > 100 {
		id = id[len(id)-100:]
	}
	return "g-" + strings.Trim(id, "._-")
}

// GroupOptions describe an HA group started by StartGroup.
type GroupOptions struct {
	// ZK is the connect string (required).
	ZK string
	// HAID defaults to GroupID(t).
	HAID string
	// Names of the members, started in this order (default a, b, c).
	Names []string
	// Env adds or overrides keys of every member.
	Env map[string]string
	// Heartbeat gives every member the heartbeat duty.
	Heartbeat bool
}

// StartGroup starts one node per name with HAEnv keys (plus Env), each
// waiting until it answers HTTP. It does not wait for an election: use a
// Checker's WaitSingleLeader.
func StartGroup(t testing.TB, g GroupOptions) []*Node {
	t.Helper()
	if g.HAID == "" {
		g.HAID = GroupID(t)
	}
	if len(g.Names) == 0 {
		g.Names = []string{"a", "b", "c"}
	}
	nodes := make([]*Node, 0, len(g.Names))
	for _, name := range g.Names {
		env := HAEnv(g.ZK, g.HAID, name)
		maps.Copy(env, g.Env)
		nodes = append(nodes, Start(t, Options{Name: name, Env: env, Heartbeat: g.Heartbeat}))
	}
	return nodes
}
