// Package catalog is the catalog of roles an HA group can serve (primary,
// secondary, monitor, compute, alert) and the rules for combining them in
// one ROLE value. It knows nothing of how a duty is run: that is package
// roles, which supervises the active duty (ACTIVE_CMD).
package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// Role is one kind of server in a NetSpyGlass-style cluster.
type Role string

// The catalog, in canonical order.
const (
	// Primary coordinates the cluster: it signals the polling cycle, runs
	// discovery and scheduled reports.
	Primary Role = "primary"
	// Secondary is a second-tier coordinator; it never combines with primary.
	Secondary Role = "secondary"
	// Monitor polls devices in its region.
	Monitor Role = "monitor"
	// Compute runs scripts and derived computations.
	Compute Role = "compute"
	// Alert evaluates and sends alerts.
	Alert Role = "alert"
)

// All lists every role in canonical order.
var All = []Role{Primary, Secondary, Monitor, Compute, Alert}

// ErrUnknownRole and ErrBadCombination are the refusals of Parse.
var (
	ErrUnknownRole    = errors.New("catalog: unknown role")
	ErrBadCombination = errors.New("catalog: roles cannot be combined")
)

// Set is a validated, non-empty combination of roles in canonical order.
type Set []Role

// String renders the set as the canonical comma list ("primary,monitor").
func (s Set) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = string(r)
	}
	return strings.Join(parts, ",")
}

// Has reports whether the set includes r.
func (s Set) Has(r Role) bool {
	for _, x := range s {
		if x == r {
			return true
		}
	}
	return false
}

// Parse reads a ROLE value: one role, or a comma list for a combined
// single-server role such as "primary,monitor". Spaces around names are
// ignored and the result is in canonical order, so "monitor, primary" and
// "primary,monitor" name the same group role.
//
// Combination rules: a combined role folds other duties into one server, so
// it must include primary (the server that coordinates the cluster), may not
// also include secondary, and may not repeat a role.
func Parse(s string) (Set, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty (one of %s, or a comma list such as primary,monitor)", ErrUnknownRole, Set(All))
	}
	seen := map[Role]bool{}
	for _, part := range strings.Split(s, ",") {
		r := Role(strings.ToLower(strings.TrimSpace(part)))
		if !known(r) {
			return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownRole, strings.TrimSpace(part), Set(All))
		}
		if seen[r] {
			return nil, fmt.Errorf("%w: %q appears twice", ErrBadCombination, r)
		}
		seen[r] = true
	}
	var set Set
	for _, r := range All {
		if seen[r] {
			set = append(set, r)
		}
	}
	if len(set) > 1 {
		if !seen[Primary] {
			return nil, fmt.Errorf("%w: %s (a combined role must include primary)", ErrBadCombination, set)
		}
		if seen[Secondary] {
			return nil, fmt.Errorf("%w: %s (primary and secondary are different servers)", ErrBadCombination, set)
		}
	}
	return set, nil
}

func known(r Role) bool {
	for _, x := range All {
		if x == r {
			return true
		}
	}
	return false
}
