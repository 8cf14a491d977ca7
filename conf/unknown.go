package conf

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Variables that are not keys. An env file in the NetSpyGlass style also
// holds other programs' settings (JVM_CLI, SERVER_CLI), and the environment
// may hold HANODE_ variables that are not keys. hanode ignores them and lists
// them as notices. A name one typo away from a key is refused instead (see
// resembles): ignoring HAID="g" would leave HA_ID unset, and the server would
// run standalone, always active, next to its group's leader.
//
// This file holds the detection: resembles and misspelt for every source,
// and scanEnviron for the environment. The env file's variables are sorted
// where the file is read (scanFile, envread.go).

// NoticeKind says what a Notice is about.
type NoticeKind string

const (
	// NoticeUnused is a variable that hanode read but does not use, because
	// it is not a key: JVM_CLI in the env file, HANODE_FOO in the
	// environment, -DCONFIG in SERVER_CLI.
	NoticeUnused NoticeKind = "unused"
	// NoticeWarning is a valid configuration that is probably not what was
	// meant, such as ZK set without HA_ID (standalone, always active).
	NoticeWarning NoticeKind = "warning"
)

// Notice is something about a valid configuration that an operator should
// see: `hanode check-config` prints it and `hanode run` logs it.
type Notice struct {
	Kind NoticeKind
	// Key is the variable as its source names it: a key (ZK), a variable of
	// the env file (JVM_CLI), the name after HANODE_ of an environment
	// variable (FOO for HANODE_FOO), or the name of a -D word in SERVER_CLI
	// (CONFIG for -DCONFIG=...).
	Key string
	// Value is set for warnings only: an unused variable may hold anything,
	// a password included, so its value is not kept.
	Value string
	// Source is where the variable was set, in the form of Setting.Source:
	// "/etc/default/hanode:17", "env HANODE_FOO",
	// "/etc/default/hanode:19, -DCONFIG in SERVER_CLI".
	Source string
	Msg    string
}

// String renders the notice as a FieldError is rendered:
// `KEY="value" (from source): msg`, or `KEY (from source): msg` when the
// notice keeps no value.
func (n Notice) String() string {
	if n.Kind == NoticeWarning {
		return fmt.Sprintf("%s=%q (from %s): %s", n.Key, n.Value, n.Source, n.Msg)
	}
	return fmt.Sprintf("%s (from %s): %s", n.Key, n.Source, n.Msg)
}

const unusedMsg = "not a hanode key, ignored"

// resembles returns the key that name is taken to be a misspelling of.
// caseOnly reports that the two differ only in case.
//
// The rule compares name and each key without regard to case, by their
// optimal string alignment distance d (see osaDistance: each insertion,
// deletion or substitution of a character, or swap of two adjacent
// characters, counts 1). name misspells key k when
//
//   - d = 0, whatever k's length: it differs from k only in case (ha_id,
//     Zk, Name); shells and hanode treat names case-sensitively;
//   - d = 1 and k has 5 characters or more: one typo (HAID, HA-ID, HA_DI,
//     NETID, LOGLEVEL, ZK_SESION_TIMEOUT).
//
// Keys of up to 4 characters (ZK, NAME, ROLE) match only by case: most
// one-edit neighbours of a short word are other words (NAMES, FNAME, RULE,
// ROLES) rather than typos. Missing one of them is caught anyway: NAME and
// ROLE are required, and HA_ID is refused without ZK.
//
// Never more than one edit: most misspellings are a single edit (Damerau,
// 1964), whereas keys are made of short words, and one short word put for
// another is two edits and usually a different setting (DB_SESSION_TIMEOUT
// is two from ZK_SESSION_TIMEOUT, FETCH_TIMEOUT two from FENCE_TIMEOUT).
// When several keys match, the nearest wins, then the first in table order.
func resembles(name string) (key string, caseOnly, ok bool) {
	if key, caseOnly, ok := resemblesJobKey(name); ok { // JOB_<NAME>_CMND (jobs.go)
		return key, caseOnly, true
	}
	lower := strings.ToLower(name)
	n := utf8.RuneCountInString(lower)
	best := 2 // more than any limit: no key yet
	for _, k := range keys {
		limit := 1
		if len(k.name) <= 4 {
			limit = 0
		}
		if diff := n - len(k.name); diff > limit || -diff > limit {
			continue // cannot be within limit; keeps long names cheap
		}
		if d := osaDistance(lower, strings.ToLower(k.name)); d <= limit && d < best {
			key, best = k.name, d
		}
	}
	return key, best == 0, key != ""
}

// osaDistance is the optimal string alignment distance between a and b
// (Damerau–Levenshtein without editing a substring twice): the least number
// of insertions, deletions and substitutions of one character, and swaps of
// two adjacent characters, that turn a into b. It counts runes.
func osaDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// d[i][j] is the distance between s[:i] and t[:j].
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(s)][len(t)]
}

// misspelt is the error for a variable named name that misspells key (see
// resembles). spelled is the key written the way it is written where name
// was: HA_ID in the env file, HANODE_HA_ID in the environment, -DHA_ID in
// SERVER_CLI.
func misspelt(name, value, source, key, spelled string, caseOnly bool) error {
	msg := fmt.Sprintf("unknown key, one typo away from %s: write %s "+
		"(a name this close to a key is refused, not ignored; rename it if it is not meant for hanode)", key, spelled)
	if caseOnly {
		msg = fmt.Sprintf("unknown key; keys are case-sensitive: write %s", spelled)
	}
	return &FieldError{Key: name, Value: value, Source: source, Msg: msg}
}

// hintMisspelt completes the parser's refusal of a name that is not a
// variable name (HA-ID=x) with the key it misspells, if any.
func hintMisspelt(err error) {
	if err == nil {
		return
	}
	for _, e := range unjoin(err) {
		if se, ok := e.(*SyntaxError); ok && se.Name != "" {
			if key, _, ok := resembles(se.Name); ok {
				se.Msg += fmt.Sprintf("; %s is one typo away from %s: write %s", se.Name, key, key)
			}
		}
	}
}

// scanEnviron finds the HANODE_ variables of an os.Environ-style list that
// are not keys: unused ones as notices sorted by name, misspelt keys as
// errors. The first entry of a name counts, as in getenv.
func scanEnviron(environ []string) (unused []Notice, errs []error) {
	seen := map[string]bool{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, EnvPrefix)
		if !ok || rest == "" || seen[rest] {
			continue
		}
		seen[rest] = true
		if _, known := lookupKey(rest); known {
			continue
		}
		source := "env " + name
		if key, caseOnly, near := resembles(rest); near {
			errs = append(errs, misspelt(rest, value, source, key, EnvPrefix+key, caseOnly))
			continue
		}
		unused = append(unused, Notice{Kind: NoticeUnused, Key: rest, Source: source, Msg: unusedMsg})
	}
	slices.SortFunc(unused, func(a, b Notice) int { return cmp.Compare(a.Key, b.Key) })
	return unused, errs
}
