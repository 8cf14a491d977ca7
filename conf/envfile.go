package conf

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// Value is one key's value from an env file and the line that set it last.
type Value struct {
	Value string
	Line  int
}

// SyntaxError is a problem at a position in an env file: a shell syntax error,
// or a construct that is valid shell but that hanode refuses to evaluate.
type SyntaxError struct {
	File      string
	Line, Col int
	Msg       string
	// Name is set when the line assigns to something that is not a
	// variable name (HA-ID in HA-ID=x, which a shell runs as a command).
	Name string
}

// Error renders the error as "file:line:col: message".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Is makes every SyntaxError match ErrInvalid: a bad env file is a bad
// configuration.
func (e *SyntaxError) Is(target error) bool { return target == ErrInvalid }

// ParseEnvFile parses src (file name used only in messages). lookupEnv
// supplies the process environment for $VAR expansion (os.LookupEnv in
// production); nil means an empty environment.
//
// The file is a shell fragment, evaluated with real shell semantics for this
// subset, in order, as /bin/sh would when it sources the file:
//
//   - comments, blank lines, backslash-newline continuation;
//   - KEY=value, several assignments on one line (separated by blanks or ';');
//   - 'single' and "double" quotes, backslash escapes;
//   - export KEY=value and export KEY (the latter sets nothing); as in the
//     shell, export expands all its arguments before it assigns any;
//   - $VAR and ${VAR}, which see keys assigned earlier in the file, then the
//     process environment (unset is empty), so X="$X more" appends;
//   - the pure parameter expansions ${VAR:-word}, ${VAR-word}, ${VAR:+word},
//     ${VAR+word}, ${VAR:?message}, ${VAR?message} and ${#VAR};
//   - ~ and ~/path at the start of a value (from HOME).
//
// Everything else is refused with a *SyntaxError naming file:line:col:
// assignments to what is not a variable name (HA-ID=x, which a shell runs as
// a command; SyntaxError.Name holds the name), commands (echo, source, .),
// pipelines, && and || lists, redirections, background jobs, function
// definitions, compound commands, command substitution ($(...) and
// backticks), process substitution, arithmetic
// expansion (bash evaluates variable contents inside $((...)) as arithmetic,
// which can run commands, so none is accepted), assigning expansions
// (${VAR:=word}), other ${...} forms, arrays, +=, $'...' and $"...",
// ~user, ~ after ':' (which shells expand in assignments), and a value
// longer than 1 MiB.
//
// All refusals in the file are reported together (errors.Join). A shell
// syntax error stops the parser, so it is reported with the refusals found
// before it. With an error, the map still holds every value evaluated: a
// refused statement sets nothing, and nothing after a syntax error is set.
func ParseEnvFile(name string, src []byte, lookupEnv func(string) (string, bool)) (map[string]Value, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	ev := &evaluator{name: name, env: &fileEnv{vars: map[string]Value{}, lookup: lookupEnv}}
	ev.errs = nulErrors(name, src)
	// Bash grammar parses the most constructs, so a bash-ism is refused by
	// name below rather than reported as a puzzling syntax error.
	parser := syntax.NewParser(syntax.Variant(syntax.LangBash))
	// The loop never breaks: StmtsSeq (v3.14.1) may yield again after its
	// consumer stops, which panics. Everything after the first syntax error
	// is drained and ignored.
	syntaxErr := false
	for stmt, err := range parser.StmtsSeq(bytes.NewReader(src)) {
		switch {
		case syntaxErr:
		case err != nil:
			ev.errs = append(ev.errs, ev.parseError(err))
			syntaxErr = true
		default:
			ev.stmt(stmt)
		}
	}
	if len(ev.errs) > 0 {
		slices.SortStableFunc(ev.errs, func(a, b error) int {
			sa, sb := a.(*SyntaxError), b.(*SyntaxError)
			return cmp.Or(cmp.Compare(sa.Line, sb.Line), cmp.Compare(sa.Col, sb.Col))
		})
		// The values evaluated despite the errors go back too, so the
		// caller can still check every other key and report all at once.
		return ev.env.vars, errors.Join(ev.errs...)
	}
	return ev.env.vars, nil
}

// maxNulLines bounds how many lines with a NUL byte are reported one by one
// (a UTF-16 or binary file has one on every line).
const maxNulLines = 5

// nulErrors refuses every NUL byte in src, one error per line at its first
// NUL, wherever it is (in quotes, a comment, a name). The shell parser drops
// NUL bytes silently, as shells do, so X="a<NUL>b" would set "ab": not what
// the file holds, and nothing an environment variable or an argument can
// hold either.
func nulErrors(name string, src []byte) []error {
	var errs []error
	line, more := 1, 0
	for rest := src; len(rest) > 0; line++ {
		text, next, _ := bytes.Cut(rest, []byte("\n"))
		rest = next
		col := bytes.IndexByte(text, 0)
		if col < 0 {
			continue
		}
		if len(errs) == maxNulLines {
			more++
			continue
		}
		errs = append(errs, &SyntaxError{File: name, Line: line, Col: col + 1,
			Msg: "NUL byte is not allowed: a shell drops it silently, and no value can hold one (is the file UTF-16, or binary?)"})
	}
	if more > 0 {
		last := errs[len(errs)-1].(*SyntaxError)
		last.Msg += fmt.Sprintf(" (and NUL bytes on %d more lines)", more)
	}
	return errs
}

// maxValueLen bounds one expanded value; real values are a few hundred bytes.
const maxValueLen = 1 << 20

// evaluator checks and evaluates one file's statements in order.
type evaluator struct {
	name string
	env  *fileEnv
	errs []error
}

func (ev *evaluator) errAt(pos syntax.Pos, format string, args ...any) {
	ev.errs = append(ev.errs, &SyntaxError{File: ev.name, Line: int(pos.Line()), Col: int(pos.Col()), Msg: fmt.Sprintf(format, args...)})
}

// errName refuses an assignment to name, which is not a variable name.
func (ev *evaluator) errName(pos syntax.Pos, name string) {
	ev.errs = append(ev.errs, &SyntaxError{File: ev.name, Line: int(pos.Line()), Col: int(pos.Col()), Name: name,
		Msg: fmt.Sprintf("%q is not a variable name (letters, digits and '_', not starting with a digit): an env file may only assign variables (KEY=value)", name)})
}

// assignLike returns the name of a command word that looks like an
// assignment to a badly named variable: HA-ID=x or ha.id=x, whose name
// starts with a letter, digit or '_' and holds only those, '-' and '.'.
func assignLike(w *syntax.Word) (string, bool) {
	if len(w.Parts) == 0 {
		return "", false
	}
	lit, ok := w.Parts[0].(*syntax.Lit)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(lit.Value, "=")
	if !ok || name == "" || name[0] == '-' || name[0] == '.' {
		return "", false
	}
	for _, r := range name {
		if !(r == '_' || r == '-' || r == '.' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return "", false
		}
	}
	return name, true
}

func (ev *evaluator) parseError(err error) error {
	var pe syntax.ParseError
	var le syntax.LangError
	switch {
	case errors.As(err, &pe):
		return &SyntaxError{File: ev.name, Line: int(pe.Pos.Line()), Col: int(pe.Pos.Col()), Msg: pe.Text}
	case errors.As(err, &le):
		le.Filename = ""
		_, msg, _ := strings.Cut(le.Error(), ": ")
		return &SyntaxError{File: ev.name, Line: int(le.Pos.Line()), Col: int(le.Pos.Col()), Msg: msg}
	default:
		return &SyntaxError{File: ev.name, Line: 1, Col: 1, Msg: err.Error()}
	}
}

// stmt checks one statement and, when it is acceptable, applies its
// assignments.
func (ev *evaluator) stmt(s *syntax.Stmt) {
	before := len(ev.errs)
	switch {
	case s.Negated:
		ev.errAt(s.Pos(), "negation (!) is not allowed")
	case s.Background:
		ev.errAt(s.Semicolon, "background jobs (&) are not allowed")
	case s.Coprocess, s.Disown:
		ev.errAt(s.Semicolon, "job control is not allowed")
	}
	for _, r := range s.Redirs {
		ev.errAt(r.Pos(), "redirections are not allowed")
	}
	var assigns []*syntax.Assign
	switch c := s.Cmd.(type) {
	case nil:
		// Only redirections, reported above.
	case *syntax.CallExpr:
		if len(c.Args) > 0 {
			if name, ok := assignLike(c.Args[0]); ok {
				ev.errName(c.Args[0].Pos(), name)
			} else {
				ev.errAt(c.Args[0].Pos(), "command %q is not allowed: an env file may only assign variables (KEY=value)", wordText(c.Args[0]))
			}
		}
		assigns = c.Assigns
	case *syntax.DeclClause:
		if c.Variant.Value != "export" {
			ev.errAt(c.Pos(), "%q is not allowed: only KEY=value and export KEY=value", c.Variant.Value)
		} else {
			assigns = c.Args
		}
	case *syntax.FuncDecl:
		ev.errAt(c.Pos(), "function definitions are not allowed")
	case *syntax.BinaryCmd:
		if c.Op == syntax.Pipe || c.Op == syntax.PipeAll {
			ev.errAt(c.OpPos, "pipelines are not allowed")
		} else {
			ev.errAt(c.OpPos, "command lists (%s) are not allowed", c.Op)
		}
	default:
		ev.errAt(c.Pos(), "%s is not allowed: an env file may only assign variables (KEY=value)", commandKind(c))
	}
	for _, a := range assigns {
		ev.checkAssign(a)
	}
	if len(ev.errs) > before {
		return
	}
	// Plain assignments take effect one by one (A=1 B=$A sees A), but export
	// is a command whose arguments are all expanded before it runs: in
	// export A=1 B=$A, B sees the A from before the line. Shells agree.
	_, isExport := s.Cmd.(*syntax.DeclClause)
	pending := map[string]Value{}
	for _, a := range assigns {
		if a.Naked {
			continue // export KEY: marks for export, sets nothing
		}
		if a.Value != nil {
			a.Value.Parts = unescapeLits(a.Value.Parts)
		}
		val, err := expand.Literal(&expand.Config{Env: ev.env}, a.Value)
		if err != nil {
			var ue expand.UnsetParameterError
			if errors.As(err, &ue) {
				ev.errAt(ue.Node.Pos(), "%s", ue.Error())
			} else {
				ev.errAt(a.Pos(), "%s: %v", a.Name.Value, err)
			}
			return
		}
		if len(val) > maxValueLen {
			// A=$A$A repeated doubles each line: stop before memory does.
			ev.errAt(a.Pos(), "%s: value longer than %d bytes", a.Name.Value, maxValueLen)
			return
		}
		v := Value{Value: val, Line: int(a.Pos().Line())}
		if isExport {
			pending[a.Name.Value] = v
		} else {
			ev.env.vars[a.Name.Value] = v
		}
	}
	maps.Copy(ev.env.vars, pending)
}

func (ev *evaluator) checkAssign(a *syntax.Assign) {
	switch {
	case a.Name == nil:
		// export -n, export -p and the like.
		ev.errAt(a.Pos(), "export options are not allowed")
		return
	case !isName(a.Name.Value):
		// The parser may take 0X=[y for an assignment; a shell runs it as a
		// command named "0X=[y".
		ev.errName(a.Pos(), a.Name.Value)
		return
	case a.Append:
		ev.errAt(a.Pos(), "+= is a bash extension: write %s=\"$%s more\"", a.Name.Value, a.Name.Value)
	case a.Index != nil:
		ev.errAt(a.Pos(), "array elements are not allowed")
	case a.Array != nil:
		ev.errAt(a.Pos(), "arrays are not allowed")
	}
	if a.Value != nil {
		ev.checkWord(a.Value)
	}
}

// checkWord refuses every word part that is not pure or not portable.
func (ev *evaluator) checkWord(w *syntax.Word) {
	if len(w.Parts) > 0 {
		if lit, ok := w.Parts[0].(*syntax.Lit); ok && strings.HasPrefix(lit.Value, "~") {
			if !(lit.Value == "~" && len(w.Parts) == 1) && !strings.HasPrefix(lit.Value, "~/") {
				ev.errAt(lit.Pos(), "only ~ and ~/path are allowed, not ~user or a quoted tilde prefix: write the directory out, or use $HOME")
			}
		}
	}
	for _, p := range w.Parts {
		if lit, ok := p.(*syntax.Lit); ok && strings.Contains(lit.Value, ":~") {
			// Shells expand ~ after ':' in assignments (PATH=a:~/bin); refusing
			// keeps hanode from disagreeing with them silently.
			ev.errAt(lit.Pos(), "~ after ':' is not allowed: quote it, or use $HOME")
		}
	}
	ev.checkParts(w.Parts)
}

func (ev *evaluator) checkParts(parts []syntax.WordPart) {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
		case *syntax.SglQuoted:
			if p.Dollar {
				ev.errAt(p.Pos(), "$'...' quoting is a bash extension: use '...' or \"...\"")
			}
		case *syntax.DblQuoted:
			if p.Dollar {
				ev.errAt(p.Pos(), "$\"...\" quoting is a bash extension: use \"...\"")
			}
			ev.checkParts(p.Parts)
		case *syntax.ParamExp:
			ev.checkParam(p)
		case *syntax.CmdSubst:
			if p.Backquotes {
				ev.errAt(p.Pos(), "command substitution (backticks) is not allowed")
			} else {
				ev.errAt(p.Pos(), "command substitution is not allowed")
			}
		case *syntax.ArithmExp:
			ev.errAt(p.Pos(), "arithmetic expansion is not allowed")
		case *syntax.ProcSubst:
			ev.errAt(p.Pos(), "process substitution is not allowed")
		default:
			ev.errAt(p.Pos(), "this expansion is not allowed")
		}
	}
}

// pureOps are the ${VAR<op>word} operators that neither assign nor match
// patterns: they only choose between the value, a word, or an error.
var pureOps = map[syntax.ParExpOperator]bool{
	syntax.DefaultUnset: true, syntax.DefaultUnsetOrNull: true,
	syntax.AlternateUnset: true, syntax.AlternateUnsetOrNull: true,
	syntax.ErrorUnset: true, syntax.ErrorUnsetOrNull: true,
}

func (ev *evaluator) checkParam(p *syntax.ParamExp) {
	const allowed = "allowed: $VAR, ${VAR}, ${VAR:-word}, ${VAR:+word}, ${VAR:?message} (also without ':') and ${#VAR}"
	if p.Param == nil || p.NestedParam != nil || p.Flags != nil {
		ev.errAt(p.Pos(), "this parameter expansion is not allowed (%s)", allowed)
		return
	}
	if !isName(p.Param.Value) {
		ev.errAt(p.Pos(), "special parameter $%s is not allowed (%s)", p.Param.Value, allowed)
		return
	}
	exotic := p.Excl || p.Width || p.IsSet || p.Index != nil || p.Slice != nil || p.Repl != nil ||
		p.Names != 0 || len(p.Modifiers) > 0 ||
		p.Split != syntax.OptUnset || p.GlobSubst != syntax.OptUnset || p.RcExpand != syntax.OptUnset
	if exotic || (p.Exp != nil && !pureOps[p.Exp.Op]) || (p.Length && p.Exp != nil) {
		ev.errAt(p.Pos(), "this form of ${%s...} is not allowed (%s)", p.Param.Value, allowed)
		return
	}
	if p.Exp != nil && p.Exp.Word != nil {
		ev.checkWord(p.Exp.Word)
	}
}

// unescapeLits does the quote removal that expand.Literal leaves undone for
// backslashes outside quotes (X=a\ b is "a b" in a shell): each escaped
// character becomes a single-quoted part, which also keeps \~ from being
// expanded as a tilde. Words inside ${VAR:-word} are unquoted too.
func unescapeLits(parts []syntax.WordPart) []syntax.WordPart {
	out := make([]syntax.WordPart, 0, len(parts))
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
			s := p.Value
			for {
				i := strings.IndexByte(s, '\\')
				if i < 0 || i == len(s)-1 {
					break // a trailing backslash stays, as in the shell
				}
				_, size := utf8.DecodeRuneInString(s[i+1:])
				if i > 0 {
					out = append(out, &syntax.Lit{ValuePos: p.ValuePos, Value: s[:i]})
				}
				out = append(out, &syntax.SglQuoted{Left: p.ValuePos, Value: s[i+1 : i+1+size]})
				s = s[i+1+size:]
			}
			if s != "" {
				out = append(out, &syntax.Lit{ValuePos: p.ValuePos, Value: s})
			}
		case *syntax.ParamExp:
			if p.Exp != nil && p.Exp.Word != nil {
				p.Exp.Word.Parts = unescapeLits(p.Exp.Word.Parts)
			}
			out = append(out, p)
		default:
			out = append(out, p)
		}
	}
	return out
}

// isName reports whether s is a shell variable name.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

func wordText(w *syntax.Word) string {
	if lit := w.Lit(); lit != "" {
		return lit
	}
	var sb strings.Builder
	syntax.NewPrinter().Print(&sb, w)
	return sb.String()
}

func commandKind(c syntax.Command) string {
	switch c.(type) {
	case *syntax.IfClause:
		return "if"
	case *syntax.WhileClause:
		return "while/until"
	case *syntax.ForClause:
		return "for"
	case *syntax.CaseClause:
		return "case"
	case *syntax.Block:
		return "a { ... } block"
	case *syntax.Subshell:
		return "a ( ... ) subshell"
	case *syntax.ArithmCmd:
		return "an (( ... )) command"
	case *syntax.TestClause:
		return "a [[ ... ]] test"
	case *syntax.LetClause:
		return "let"
	case *syntax.TimeClause:
		return "time"
	case *syntax.CoprocClause:
		return "coproc"
	default:
		return "this command"
	}
}

// fileEnv is what $VAR sees while the file is evaluated: the keys the file
// assigned so far, then the process environment.
type fileEnv struct {
	vars   map[string]Value
	lookup func(string) (string, bool)
}

func (e *fileEnv) Get(name string) expand.Variable {
	if v, ok := e.vars[name]; ok {
		return expand.Variable{Set: true, Kind: expand.String, Str: v.Value}
	}
	// Only plain names reach the process environment; the expander also asks
	// for special names such as "HOME user".
	if isName(name) {
		if s, ok := e.lookup(name); ok {
			return expand.Variable{Set: true, Kind: expand.String, Str: s}
		}
	}
	return expand.Variable{}
}

func (e *fileEnv) Each(fn func(name string, vr expand.Variable) bool) {
	for name, v := range e.vars {
		if !fn(name, expand.Variable{Set: true, Kind: expand.String, Str: v.Value}) {
			return
		}
	}
}
