package conf

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nsgPrimary1 is the first /etc/default/netspyglass example of the
// NetSpyGlass HA documentation, verbatim: the fixture shared with the
// end-to-end tests (testdata/README.md).
var nsgPrimary1 = mustReadFile(filepath.Join("..", "testdata", "netspyglass", "primary-1"))

// mustReadFile returns the content of a fixture; tests cannot run without it.
func mustReadFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(fmt.Sprintf("fixture: %v", err))
	}
	return string(b)
}

// testEnv is the process environment the env-file tests pretend to have.
var testEnv = map[string]string{"HOME": "/home/nsg", "LANG": "C.UTF-8", "EMPTY": ""}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

type envFileCase struct {
	name string
	src  string
	want map[string]Value
}

var envFileCases = []envFileCase{
	{
		name: "comments and blank lines are skipped",
		src:  "# comment\n\n   # indented comment\nA=1 # trailing comment\n\n",
		want: map[string]Value{"A": {"1", 4}},
	},
	{
		name: "plain assignment keeps the text",
		src:  "NAME=primary-1\nZK=zk1:2181,zk2:2181/nsg\n",
		want: map[string]Value{"NAME": {"primary-1", 1}, "ZK": {"zk1:2181,zk2:2181/nsg", 2}},
	},
	{
		name: "single quotes keep dollars, backslashes and double quotes",
		src:  `A='$HOME \n "x" $(date)'`,
		want: map[string]Value{"A": {`$HOME \n "x" $(date)`, 1}},
	},
	{
		name: "double quotes expand and unescape only the special characters",
		src:  `A="home=$HOME \$x \"q\" \\ \` + "`" + ` \n"`,
		want: map[string]Value{"A": {`home=/home/nsg $x "q" \ ` + "`" + ` \n`, 1}},
	},
	{
		name: "backslash outside quotes escapes one character",
		src:  `A=a\ b\$c\"d\\e`,
		want: map[string]Value{"A": {`a b$c"d\e`, 1}},
	},
	{
		name: "quotes concatenate",
		src:  `A='a b'"c $HOME"d`,
		want: map[string]Value{"A": {"a bc /home/nsgd", 1}},
	},
	{
		name: "empty values",
		src:  "A=\nB=''\nC=\"\"\n",
		want: map[string]Value{"A": {"", 1}, "B": {"", 2}, "C": {"", 3}},
	},
	{
		// export expands all its arguments before assigning: E misses D.
		name: "export with and without value",
		src:  "export A=1\nB=2\nexport B\nexport C\nexport D=4 E=$D F=$A\n",
		want: map[string]Value{"A": {"1", 1}, "B": {"2", 2}, "D": {"4", 5}, "E": {"", 5}, "F": {"1", 5}},
	},
	{
		name: "$VAR and ${VAR} see earlier keys, then the environment",
		src:  "A=x\nB=$A-${A}-$HOME-${LANG}-$UNSET-${EMPTY}.\n",
		want: map[string]Value{"A": {"x", 1}, "B": {"x-x-/home/nsg-C.UTF-8--.", 2}},
	},
	{
		name: "a key of the file shadows the environment from its line on",
		src:  "A=$HOME\nHOME=/srv\nB=$HOME\n",
		want: map[string]Value{"A": {"/home/nsg", 1}, "HOME": {"/srv", 2}, "B": {"/srv", 3}},
	},
	{
		name: "self-append, line of the last assignment",
		src:  "OPTS=-a\nOPTS=\"$OPTS -b\"\n\nOPTS=\"$OPTS -c\"\n",
		want: map[string]Value{"OPTS": {"-a -b -c", 4}},
	},
	{
		name: "backslash-newline continues the line",
		src:  "A=\"one \\\ntwo\" B=x\\\ny\nC=3\n",
		want: map[string]Value{"A": {"one two", 1}, "B": {"xy", 2}, "C": {"3", 4}},
	},
	{
		name: "several assignments on one line, left to right",
		src:  "A=1 B=$A; C=$B$A;D=4\n",
		want: map[string]Value{"A": {"1", 1}, "B": {"1", 1}, "C": {"11", 1}, "D": {"4", 1}},
	},
	{
		name: "pure parameter expansions",
		src: "S=set\n" +
			"A=${UNSET:-dflt} B=${EMPTY:-dflt} C=${EMPTY-dflt} D=${S:-dflt}\n" +
			"E=${S:+alt} F=${UNSET+alt} G=${EMPTY+alt} H=${EMPTY:+alt}\n" +
			"I=${#S} J=${S:?needed} K=${UNSET:-\"$S x\"}\n",
		want: map[string]Value{
			"S": {"set", 1},
			"A": {"dflt", 2}, "B": {"dflt", 2}, "C": {"", 2}, "D": {"set", 2},
			"E": {"alt", 3}, "F": {"", 3}, "G": {"alt", 3}, "H": {"", 3},
			"I": {"3", 4}, "J": {"set", 4}, "K": {"set x", 4},
		},
	},
	{
		name: "tilde at the start of a value is HOME",
		src:  "A=~\nB=~/conf\nC='~'\nD=\\~\nE=a~b\n",
		want: map[string]Value{"A": {"/home/nsg", 1}, "B": {"/home/nsg/conf", 2}, "C": {"~", 3}, "D": {"~", 4}, "E": {"a~b", 5}},
	},
	{
		name: "glob characters are literal in assignments",
		src:  "A=*.go B=[ab]? C={a,b}\n",
		want: map[string]Value{"A": {"*.go", 1}, "B": {"[ab]?", 1}, "C": {"{a,b}", 1}},
	},
	{
		name: "NetSpyGlass example verbatim",
		src:  nsgPrimary1,
		want: map[string]Value{
			"NAME":    {"primary-1", 2},
			"ROLE":    {"primary", 6},
			"REGION":  {"world", 12},
			"HA_ID":   {"nsg-development-primary-ha", 14},
			"JVM_CLI": {"-XX:+UseG1GC -XX:MaxPermSize=256m -XX:G1HeapRegionSize=32M -XX:+ParallelRefProcEnabled", 17},
			"SERVER_CLI": {"-XX:+UseG1GC -XX:MaxPermSize=256m -XX:G1HeapRegionSize=32M -XX:+ParallelRefProcEnabled" +
				" -DZK=embedded -DNAME=primary-1 -DROLE=primary -DREGION=world -DHA_ID=nsg-development-primary-ha" +
				" -DCONFIG=/home/nsg/nw2.conf -DLOG_DIR=/home/nsg/logs", 19},
		},
	},
}

func TestParseEnvFileAccepts(t *testing.T) {
	for _, tc := range envFileCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvFile("f", []byte(tc.src), lookupIn(testEnv))
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestParseEnvFileAgreesWithShell sources every accepted case with the real
// shells and compares the values, so "shell semantics" is measured, not
// assumed. It skips a shell that is not installed.
func TestParseEnvFileAgreesWithShell(t *testing.T) {
	for _, shell := range []string{"dash", "bash"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("%s not installed", shell)
			continue
		}
		for _, tc := range envFileCases {
			t.Run(shell+"/"+tc.name, func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "env")
				require.NoError(t, os.WriteFile(file, []byte(tc.src), 0o600))
				keys := slices.Sorted(maps.Keys(tc.want))
				// Print each key as NAME=value NUL; "v" cannot clash with a key of the cases.
				script := `. "$1"; shift; for k; do eval "v=\${$k}"; printf '%s=%s\0' "$k" "$v"; done`
				cmd := exec.CommandContext(t.Context(), path, append([]string{"-c", script, "sh", file}, keys...)...)
				for k, v := range testEnv {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				out, err := cmd.Output()
				require.NoError(t, err)
				got := map[string]string{}
				for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
					k, v, _ := strings.Cut(kv, "=")
					got[k] = v
				}
				want := map[string]string{}
				for k, v := range tc.want {
					want[k] = v.Value
				}
				assert.Equal(t, want, got)
			})
		}
	}
}

func TestParseEnvFileRefuses(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // every message, in order
	}{
		{"command", "echo hi", []string{`f:1:1: command "echo" is not allowed`}},
		{"source", "source /etc/x", []string{`f:1:1: command "source" is not allowed`}},
		{"dot", ". /etc/x", []string{`f:1:1: command "." is not allowed`}},
		{"assignment before a command", "A=1 exec foo", []string{`f:1:5: command "exec" is not allowed`}},
		{"command substitution", "A=$(id -u)", []string{"f:1:3: command substitution is not allowed"}},
		{"backticks", "A=`id -u`", []string{"f:1:3: command substitution (backticks) is not allowed"}},
		{"command substitution in double quotes", `A="x $(id)"`, []string{"f:1:6: command substitution is not allowed"}},
		{"command substitution in a default", "A=${B:-$(id)}", []string{"f:1:8: command substitution is not allowed"}},
		{"arithmetic", "A=$((1+2))", []string{"f:1:3: arithmetic expansion is not allowed"}},
		{"arithmetic that runs a command", "A=$((x[$(id)]))", []string{"f:1:3: arithmetic expansion is not allowed"}},
		{"process substitution", "A=<(ls)", []string{"f:1:3: process substitution is not allowed"}},
		{"function", "f() { A=1; }", []string{"f:1:1: function definitions are not allowed"}},
		{"function keyword", "function f { A=1; }", []string{"f:1:1: function definitions are not allowed"}},
		{"pipeline", "A=1 | cat", []string{"f:1:5: pipelines are not allowed"}},
		{"and list", "A=1 && B=2", []string{"f:1:5: command lists (&&) are not allowed"}},
		{"or list", "A=1 || B=2", []string{"f:1:5: command lists (||) are not allowed"}},
		{"redirection", "A=1 >/tmp/x", []string{"f:1:5: redirections are not allowed"}},
		{"background", "A=1 &", []string{"f:1:5: background jobs (&) are not allowed"}},
		{"negation", "! A=1", []string{"f:1:1: negation (!) is not allowed"}},
		{"if", "if true; then A=1; fi", []string{"f:1:1: if is not allowed"}},
		{"subshell", "( A=1 )", []string{"f:1:1: a ( ... ) subshell is not allowed"}},
		{"block", "{ A=1; }", []string{"f:1:1: a { ... } block is not allowed"}},
		{"readonly", "readonly A=1", []string{`f:1:1: "readonly" is not allowed`}},
		{"declare", "declare -x A=1", []string{`f:1:1: "declare" is not allowed`}},
		{"export option", "export -n A", []string{"f:1:8: export options are not allowed"}},
		{"append operator", "A+=x", []string{`f:1:1: += is a bash extension: write A="$A more"`}},
		{"array", "A=(x y)", []string{"f:1:1: arrays are not allowed"}},
		{"array element", "A[0]=x", []string{"f:1:1: array elements are not allowed"}},
		{"ANSI-C quotes", "A=$'x\\n'", []string{"f:1:3: $'...' quoting is a bash extension"}},
		{"locale quotes", `A=$"x"`, []string{`f:1:3: $"..." quoting is a bash extension`}},
		{"assigning expansion", "A=${B:=x}", []string{"f:1:3: this form of ${B...} is not allowed"}},
		{"pattern removal", "A=${HOME#/}", []string{"f:1:3: this form of ${HOME...} is not allowed"}},
		{"replacement", "A=${HOME/a/b}", []string{"f:1:3: this form of ${HOME...} is not allowed"}},
		{"substring", "A=${HOME:1}", []string{"f:1:3: this form of ${HOME...} is not allowed"}},
		{"indirection", "A=${!HOME}", []string{"f:1:3: this form of ${HOME...} is not allowed"}},
		{"positional parameter", "A=$1", []string{"f:1:3: special parameter $1 is not allowed"}},
		{"process id", "A=$$", []string{"f:1:3: special parameter $$ is not allowed"}},
		{"error expansion", "A=${UNSET:?must be set}", []string{"f:1:3: UNSET: must be set"}},
		{"tilde user", "A=~root/x", []string{"f:1:3: only ~ and ~/path are allowed"}},
		{"tilde after colon", "A=/bin:~/bin", []string{"f:1:3: ~ after ':' is not allowed"}},
		{"extended glob", "A=@(x|y)", []string{"f:1:3: this expansion is not allowed"}},
		{"value that doubles on every line", "A=0123456789abcdef\n" + strings.Repeat("A=$A$A\n", 17), []string{"f:18:1: A: value longer than 1048576 bytes"}},
		{"dash in a name", `HA-ID="g"`, []string{`f:1:1: "HA-ID" is not a variable name (letters, digits and '_', not starting with a digit): an env file may only assign variables (KEY=value)`}},
		{"dot in a name after an assignment", "A=1 ha.id=g", []string{`f:1:5: "ha.id" is not a variable name`}},
		{"digit first", "0X=[y", []string{`f:1:1: "0X" is not a variable name`}},
		{"an option is a command", "--x=1", []string{`f:1:1: command "--x=1" is not allowed`}},
		{"unclosed quote", "A=1\nB='x", []string{"f:2:3: reached EOF without closing quote `'`"}},
		{"NUL in double quotes", "A=1\nB=\"a\x00b\"", []string{"f:2:5: NUL byte is not allowed"}},
		{"NUL in single quotes", "B='a\x00b'", []string{"f:1:5: NUL byte is not allowed"}},
		{"NUL unquoted", "B=a\x00b", []string{"f:1:4: NUL byte is not allowed"}},
		{"NUL in a comment", "# a\x00\nB=1", []string{"f:1:4: NUL byte is not allowed"}},
		{"NUL before a name", "\x00B=1", []string{"f:1:1: NUL byte is not allowed"}},
		{"NULs, one error a line", "B=\x00\x00\nC=\x00", []string{"f:1:3: NUL byte", "f:2:3: NUL byte"}},
		{"NULs on many lines", strings.Repeat("\x00\n", 8), []string{"f:1:1: NUL", "f:2:1: NUL", "f:3:1: NUL", "f:4:1: NUL", "f:5:1: NUL byte is not allowed: a shell drops it silently, and no value can hold one (is the file UTF-16, or binary?) (and NUL bytes on 3 more lines)"}},
		{"a UTF-16 file", "\xff\xfeA\x00=\x001\x00\n\x00", []string{"f:1:1: invalid UTF-8 encoding", "f:1:4: NUL byte", "f:2:1: NUL byte"}},
		{"NUL with other problems, in file order", "A=$(x)\nB=\"\x00\"\nC=`y`", []string{"f:1:3: command substitution", "f:2:4: NUL byte", "f:3:3: command substitution (backticks)"}},
		{"NUL after a syntax error", "A='x\nB=\x00", []string{"f:1:3: reached EOF", "f:2:3: NUL byte"}},
		{"bad syntax", "A=1\nB=(\n", []string{"f:2:"}},
		{
			name: "every problem is reported, and a syntax error after them",
			src:  "A=$(x)\necho b\nC=`y`\nD=ok\nE='open",
			want: []string{
				"f:1:3: command substitution is not allowed",
				`f:2:1: command "echo" is not allowed`,
				"f:3:3: command substitution (backticks) is not allowed",
				"f:5:3: reached EOF without closing quote",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvFile("f", []byte(tc.src), lookupIn(testEnv))
			require.Error(t, err)
			_ = got // what is still evaluated is checked in TestParseEnvFileKeepsValuesBesideErrors
			assert.ErrorIs(t, err, ErrInvalid)
			var se *SyntaxError
			require.ErrorAs(t, err, &se)
			msgs := strings.Split(err.Error(), "\n")
			require.Len(t, msgs, len(tc.want), "errors: %v", err)
			for i, want := range tc.want {
				assert.True(t, strings.HasPrefix(msgs[i], want), "error %d is %q, want prefix %q", i, msgs[i], want)
			}
		})
	}
}

// TestParseEnvFileNamesBadVariableNames: a refused assignment to something
// that is not a variable name carries the name, so Load can say which key
// it misspells.
func TestParseEnvFileNamesBadVariableNames(t *testing.T) {
	cases := []struct{ src, name string }{
		{`HA-ID="g"`, "HA-ID"},
		{"A=1 ha.id=g", "ha.id"},
		{"0X=[y", "0X"},
		{"echo HA-ID=g", ""},
		{"A=$(x)", ""},
	}
	for _, tc := range cases {
		_, err := ParseEnvFile("f", []byte(tc.src), nil)
		var se *SyntaxError
		require.ErrorAs(t, err, &se, tc.src)
		assert.Equal(t, tc.name, se.Name, tc.src)
	}
}

func TestParseEnvFileNilLookupIsEmptyEnvironment(t *testing.T) {
	got, err := ParseEnvFile("f", []byte("A=${HOME:-none}"), nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]Value{"A": {"none", 1}}, got)
}

// renderEnvFile writes values back as KEY='value' lines.
func renderEnvFile(vals map[string]Value) []byte {
	var b bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		b.WriteString(k + "='" + strings.ReplaceAll(vals[k].Value, "'", `'\''`) + "'\n")
	}
	return b.Bytes()
}

func FuzzParseEnvFile(f *testing.F) {
	for _, tc := range envFileCases {
		f.Add([]byte(tc.src))
	}
	for _, s := range []string{
		"A=$(id)\necho x", "A=`x`", "f() { :; }", "A=${B:=c}", "A='x", "A=\"$A'\"'\\''", "A=$'\\x00'",
		"export A B=$A", "A=~ B=~/x C=~x", "A=${#B}${B:?x}", "A=\\\n\\\n", "A='\r\n'", "A=\"\x00\"",
		"A=${B:-${C:-$D}}", "A=${B-'x'\"y\"}", "A=a\\", "A='\\'\\''\\'",
		"HA-ID=\"g\"", "A=1 ha.id=$A x", "0X=[y", "--x=1", "HA-ID=$(x)",
	} {
		f.Add([]byte(s))
	}
	lookup := lookupIn(testEnv)
	f.Fuzz(func(t *testing.T, src []byte) {
		vals, err := ParseEnvFile("fuzz", src, lookup)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not a SyntaxError: %v", err)
			}
			for _, e := range unjoin(err) {
				// A name given with a refusal is one the shell would not assign.
				if se, ok := e.(*SyntaxError); ok && se.Name != "" && isName(se.Name) {
					t.Fatalf("refused %q, a variable name: %v", se.Name, err)
				}
			}
			return
		}
		rendered := renderEnvFile(vals)
		again, err := ParseEnvFile("rendered", rendered, nil)
		if err != nil {
			t.Fatalf("rendered file does not parse: %v\n%s", err, rendered)
		}
		if len(again) != len(vals) {
			t.Fatalf("rendered file has %d keys, want %d:\n%s", len(again), len(vals), rendered)
		}
		for k, v := range vals {
			if again[k].Value != v.Value {
				t.Fatalf("%s: re-parsed %q, want %q\n%s", k, again[k].Value, v.Value, rendered)
			}
		}
	})
}

// TestParseEnvFileKeepsValuesBesideErrors: a file with refused lines still
// yields the values it could evaluate, so Load can report every problem at
// once; refused statements set nothing and nothing after a syntax error is set.
func TestParseEnvFileKeepsValuesBesideErrors(t *testing.T) {
	got, err := ParseEnvFile("f", []byte("A=$(x)\nB=1\nC=`y`\nD=$B-ok\nE='open\nF=never"), lookupIn(testEnv))
	require.Error(t, err)
	assert.Equal(t, map[string]Value{"B": {Value: "1", Line: 2}, "D": {Value: "1-ok", Line: 4}}, got)
}
